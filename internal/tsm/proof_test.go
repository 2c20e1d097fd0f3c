package tsm

import (
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/sharevault/sharevault/internal/tsm/protocol"
)

// proofCase is a key state and a request proving a share of it (good), or one whose proof
// names another share (the refusal an outsider gets).
func proofCase(tb testing.TB, curve Curve) (*keyState, *Auth, []byte, *Auth) {
	tb.Helper()
	g := protocol.GroupOf(protocol.Curve(curve))
	share, _ := g.RandomScalar(rand.Reader)
	other, _ := g.RandomScalar(rand.Reader)
	k := &keyState{KeyInfo: KeyInfo{Curve: curve, NodeIndex: 0, Players: 2, Epoch: 3}, share: share,
		publicShares: [][]byte{g.BaseMult(share), g.BaseMult(other)}}
	req := GenerateNodeKey()
	digest := (&Step{Op: OpInfo, KeyID: "k"}).digest()
	mk := func(secret []byte) *Auth {
		a := newAuth(req.ID(), GenerateNodeKey().ID())
		if err := proveShare(digest, a, &keyState{KeyInfo: k.KeyInfo, share: secret, publicShares: k.publicShares}); err != nil {
			tb.Fatal(err)
		}
		req.signAuth(digest, a)
		return a
	}
	return k, mk(share), digest, mk(other)
}

// TestRefusalsLookAlike: a proof checked against a key's share, against no key, against
// another epoch and for a party the key has not: each refused one is ErrNotAParty, and a
// good one passes.
func TestRefusalsLookAlike(t *testing.T) {
	for _, curve := range []Curve{Ed25519, Secp256k1} {
		k, good, digest, bad := proofCase(t, curve)
		if err := verifyAuth(digest, good, k, nil); err != nil {
			t.Fatalf("%v: a good proof: %v", curve, err)
		}
		none := &keyState{KeyInfo: KeyInfo{Curve: curve}}
		for name, err := range map[string]error{
			"another share's proof": verifyAuth(digest, bad, k, nil),
			"no such key":           verifyAuth(digest, good, none, nil),
			"another epoch":         verifyAuth(digest, good, &keyState{KeyInfo: KeyInfo{Curve: curve, Players: 2, Epoch: 2}, publicShares: k.publicShares}, nil),
			"no such party":         verifyAuth(digest, good, &keyState{KeyInfo: KeyInfo{Curve: curve, Players: 2, Epoch: 3}, publicShares: k.publicShares[:0]}, nil),
		} {
			if !errors.Is(err, ErrNotAParty) {
				t.Errorf("%v: %s: %v, want ErrNotAParty", curve, name, err)
			}
		}
	}
}

// BenchmarkRefusals: how long a node takes to refuse a proof of a key it holds (a proof of
// another share), of a key it does not hold, and at another epoch; the ratios to the first
// are near 1 when the refusal does not tell whether the key exists, or its epoch.
func BenchmarkRefusals(b *testing.B) {
	for _, curve := range []Curve{Ed25519, Secp256k1} {
		b.Run(curve.String(), func(b *testing.B) {
			k, good, digest, bad := proofCase(b, curve)
			none := &keyState{KeyInfo: KeyInfo{Curve: curve}}
			other := &keyState{KeyInfo: KeyInfo{Curve: curve, Players: 2, Epoch: 9}, publicShares: k.publicShares}
			var held, missing, epoch time.Duration
			for b.Loop() {
				t0 := time.Now()
				verifyAuth(digest, bad, k, nil)
				t1 := time.Now()
				verifyAuth(digest, good, none, nil)
				t2 := time.Now()
				verifyAuth(digest, good, other, nil)
				held, missing, epoch = held+t1.Sub(t0), missing+t2.Sub(t1), epoch+time.Since(t2)
			}
			n := float64(b.N)
			b.ReportMetric(float64(held.Microseconds())/n, "held-µs")
			b.ReportMetric(float64(missing)/float64(held), "missing/held")
			b.ReportMetric(float64(epoch)/float64(held), "epoch/held")
		})
	}
}
