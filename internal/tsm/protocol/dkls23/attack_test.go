package dkls23

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	voi "gitlab.com/yawning/secp256k1-voi"

	"github.com/sharevault/sharevault/internal/tsm/protocol"
)

func culpritIs(t *testing.T, err error, party int, want string) {
	t.Helper()
	var ce *protocol.CulpritError
	if !errors.As(err, &ce) || ce.Party != party || !strings.Contains(ce.Reason, want) {
		t.Fatalf("got %v, want party %d named for %q", err, party, want)
	}
}

func seedErrorIs(t *testing.T, err error, party int) {
	t.Helper()
	var se *SeedError
	if !errors.As(err, &se) || se.Peer != party {
		t.Fatalf("got %v, want a seed error with party %d", err, party)
	}
}

// Every attack of issue 23 on a 3-of-3 key, each against a fresh signature: the attacker is
// party 3 (or whoever carries the messages), the honest parties 1 and 2.
func TestAttacks(t *testing.T) {
	ks := deal(t, 2, 3)
	set := []int{1, 2, 3}
	digest := sha256.Sum256([]byte("attacked"))
	fresh := func() map[int]map[int]*Seeds { return setup(t, set) }

	t.Run("inconsistent broadcasts", func(t *testing.T) {
		// Party 3 sends party 1 another commitment than party 2: the echo differs.
		_, err := run(t, ks, set, fresh(), digest[:], &attack{round1: func(from, to int, bc *Round1, _ *Round1Private) {
			if from == 3 && to == 1 {
				bc.Commit[0] ^= 1
			}
		}})
		culpritIs(t, err, 2, "view of round one")
	})
	t.Run("inconsistent nonces", func(t *testing.T) {
		_, err := run(t, ks, set, fresh(), digest[:], &attack{round1: func(from, to int, bc *Round1, _ *Round1Private) {
			if from == 3 && to == 2 {
				bc.Nonce[5] ^= 1
			}
		}})
		if err == nil {
			t.Fatal("a nonce changed for one party went unnoticed")
		}
	})
	t.Run("malformed OT extension", func(t *testing.T) {
		// Bits of u flipped in many columns: the receiver's choices differ between columns.
		_, err := run(t, ks, set, fresh(), digest[:], &attack{round1: func(from, to int, _ *Round1, p *Round1Private) {
			if from == 3 && to == 1 {
				for c := range 32 {
					p.Extension[c*((Xi+256)/8)] ^= 1
				}
			}
		}})
		seedErrorIs(t, err, 3)
	})
	t.Run("replayed OT extension", func(t *testing.T) {
		// Party 3 replays its extension message to party 1 from an earlier signature: the
		// extension ID has the old nonce, the check fails under the new one.
		seeds := fresh()
		var old []byte
		record := &attack{round1: func(from, to int, _ *Round1, p *Round1Private) {
			if from == 3 && to == 1 {
				old = bytes.Clone(p.Extension)
			}
		}}
		if _, err := run(t, ks, set, seeds, digest[:], record); err != nil {
			t.Fatal(err)
		}
		_, err := run(t, ks, set, seeds, digest[:], &attack{round1: func(from, to int, _ *Round1, p *Round1Private) {
			if from == 3 && to == 1 {
				copy(p.Extension, old)
			}
		}})
		seedErrorIs(t, err, 3)
	})
	t.Run("other seeds named", func(t *testing.T) {
		_, err := run(t, ks, set, fresh(), digest[:], &attack{round1: func(from, to int, _ *Round1, p *Round1Private) {
			if from == 3 && to == 2 {
				p.SeedsID[0] ^= 1
			}
		}})
		seedErrorIs(t, err, 3)
	})
	t.Run("RVOLE inputs that differ between OTs", func(t *testing.T) {
		_, err := run(t, ks, set, fresh(), digest[:], &attack{round2: func(from, to int, m *Round2Private) {
			if from == 3 && to == 1 {
				m.ATilde[100][0].Add(m.ATilde[100][0], voi.NewScalarFromUint64(1))
			}
		}})
		culpritIs(t, err, 3, "μ")
	})
	t.Run("nonce not the committed one", func(t *testing.T) {
		_, err := run(t, ks, set, fresh(), digest[:], &attack{round2: func(from, to int, m *Round2Private) {
			if from == 3 && to == 2 {
				m.GammaU.Add(m.GammaU, voi.NewGeneratorPoint())
			}
		}})
		culpritIs(t, err, 3, "nonce")
	})
	t.Run("R that does not open the commitment", func(t *testing.T) {
		_, err := run(t, ks, set, fresh(), digest[:], &attack{round2: func(from, to int, m *Round2Private) {
			if from == 3 && to == 2 {
				m.R.Add(m.R, voi.NewGeneratorPoint())
			}
		}})
		culpritIs(t, err, 3, "commitment")
	})
	t.Run("share of another key", func(t *testing.T) {
		// Party 3 brings key B's share into key A's session: its RVOLE input is not the share
		// that key A's public shares say.
		other := deal(t, 2, 3)
		mixed := []*protocol.KeyShare{ks[0], ks[1], {Public: ks[2].Public.Clone(), ID: 3, Secret: other[2].Secret}}
		_, err := run(t, mixed, set, fresh(), digest[:], nil)
		culpritIs(t, err, 3, "key share")
	})
	t.Run("a wrong ψ", func(t *testing.T) {
		// Not caught until the end: the signature does not verify, and none comes out.
		_, err := run(t, ks, set, fresh(), digest[:], &attack{round2: func(from, to int, m *Round2Private) {
			if from == 3 && to == 1 {
				m.Psi.Add(m.Psi, voi.NewScalarFromUint64(1))
			}
		}})
		if err == nil || !strings.Contains(err.Error(), "does not verify") {
			t.Fatalf("a wrong ψ: %v", err)
		}
	})
	t.Run("different digests to different signers", func(t *testing.T) {
		// The nonce is re-randomized by the digest and the tweak: signers told other
		// digests end at other R, which Combine names.
		other := sha256.Sum256([]byte("another"))
		_, err := run(t, ks, set, fresh(), digest[:], &attack{digests: map[int][]byte{2: other[:]}})
		culpritIs(t, err, 2, "another R")
	})
}

// A malicious party's refused extension ends only its own pair's seeds: the honest
// parties go on signing with each other, and with it once the pair is set up again (the
// class of flaws where one party makes an honest party's key unusable).
func TestRefusalLeavesTheKeyUsable(t *testing.T) {
	ks := deal(t, 1, 3)
	seeds := setup(t, []int{1, 2, 3})
	digest := sha256.Sum256([]byte("usable"))
	_, err := run(t, ks, []int{1, 3}, seeds, digest[:], &attack{round1: func(from, to int, _ *Round1, p *Round1Private) {
		if from == 3 {
			for c := range 32 {
				p.Extension[c*((Xi+256)/8)] ^= 1
			}
		}
	}})
	seedErrorIs(t, err, 3)
	delete(seeds[1], 3) // what a party does with a SeedError
	if _, err := run(t, ks, []int{1, 3}, seeds, digest[:], nil); err == nil {
		t.Fatal("signed without seeds")
	}
	if _, err := run(t, ks, []int{1, 2}, seeds, digest[:], nil); err != nil {
		t.Fatalf("the honest pair: %v", err)
	}
	again := setup(t, []int{1, 3})
	seeds[1][3], seeds[3][1] = again[1][3], again[3][1]
	if _, err := run(t, ks, []int{1, 3}, seeds, digest[:], nil); err != nil {
		t.Fatalf("after a new setup: %v", err)
	}
}

// An abort at any round leaves a signer that refuses to go on: its secrets are used for one
// signature at most.
func TestAbortAtEveryRound(t *testing.T) {
	ks := deal(t, 1, 2)
	seeds := setup(t, []int{1, 2})
	session := make([]byte, protocol.SessionLen)
	rand.Read(session)
	start := func(i int) (*Signer, *Round1, map[int]*Round1Private) {
		s, b, p, err := Start(Params{Session: session, Share: ks[i-1], Signers: []int{1, 2}, Seeds: seeds[i]}, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return s, b, p
	}
	s1, b1, p1 := start(1)
	s2, b2, p2 := start(2)
	digest := make([]byte, 32)
	if _, err := s1.Round3(nil, digest, nil); err == nil {
		t.Fatal("round three before round two")
	}
	if _, err := s1.Round2(map[int]*Round1{2: b2}, map[int]*Round1Private{2: p2[1]}, rand.Reader); err == nil {
		t.Fatal("a wiped signer went on")
	}
	// Party 2 aborts after round two (its round two to 1 is lost); it cannot answer again.
	if _, err := s2.Round2(map[int]*Round1{1: b1}, map[int]*Round1Private{1: p1[2]}, rand.Reader); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Round2(map[int]*Round1{1: b1}, map[int]*Round1Private{1: p1[2]}, rand.Reader); err == nil {
		t.Fatal("round two answered twice")
	}
	if _, err := s2.Round3(map[int]*Round2Private{}, digest, nil); err == nil {
		t.Fatal("round three without the peer's round two")
	}
	if _, err := s2.Round3(map[int]*Round2Private{}, digest, nil); err == nil || !strings.Contains(err.Error(), "out of order") {
		t.Fatalf("a signer that failed round three went on: %v", err)
	}
}

func BenchmarkSign3(b *testing.B) {
	ks := deal(b, 2, 3)
	seeds := setup(b, []int{1, 2, 3})
	digest := sha256.Sum256([]byte("bench"))
	for b.Loop() {
		if _, err := run(b, ks, []int{1, 2, 3}, seeds, digest[:], nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSetup3(b *testing.B) {
	for b.Loop() {
		setup(b, []int{1, 2, 3})
	}
}
