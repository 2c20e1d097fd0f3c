package dkls23

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	decred "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	voi "gitlab.com/yawning/secp256k1-voi"

	"github.com/sharevault/sharevault/internal/tsm/protocol"
	"github.com/sharevault/sharevault/internal/tsm/protocol/ot"
)

// deal makes a t-of-n key by a trusted dealer (the DKG is package protocol's, tested there):
// f random of degree t, s_i = f(i).
func deal(t testing.TB, threshold, n int) []*protocol.KeyShare {
	g := protocol.GroupOf(protocol.Secp256k1)
	coeffs := make([][]byte, threshold+1)
	for i := range coeffs {
		coeffs[i], _ = g.RandomScalar(rand.Reader)
	}
	pub := protocol.Public{Curve: protocol.Secp256k1, Threshold: threshold, PublicKey: g.BaseMult(coeffs[0])}
	var secrets [][]byte
	for i := 1; i <= n; i++ {
		x, s := g.ScalarFromInt(i), g.ScalarFromInt(0)
		for k := len(coeffs) - 1; k >= 0; k-- {
			s = g.AddScalars(g.MulScalars(s, x), coeffs[k])
		}
		secrets = append(secrets, s)
		pub.Shares = append(pub.Shares, g.BaseMult(s))
	}
	var out []*protocol.KeyShare
	for i, s := range secrets {
		k := &protocol.KeyShare{Public: pub.Clone(), ID: i + 1, Secret: s}
		if err := k.Check(); err != nil {
			t.Fatal(err)
		}
		out = append(out, k)
	}
	return out
}

// setup runs the base OTs among the parties, as the coordinator routes them.
func setup(t testing.TB, ids []int) map[int]map[int]*Seeds {
	session := make([]byte, protocol.SessionLen)
	rand.Read(session)
	st, m1 := map[int]*Setup{}, map[int]map[int][]byte{}
	for _, i := range ids {
		s, out, err := NewSetup(session, i, others(ids, i), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		st[i], m1[i] = s, out
	}
	m2 := map[int]map[int][]byte{}
	for _, i := range ids {
		out, err := st[i].Answer(inbox(m1, i), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		m2[i] = out
	}
	seeds := map[int]map[int]*Seeds{}
	for _, i := range ids {
		s, err := st[i].Finish(inbox(m2, i))
		if err != nil {
			t.Fatal(err)
		}
		seeds[i] = s
	}
	return seeds
}

func others(ids []int, i int) []int {
	return slices.DeleteFunc(slices.Clone(ids), func(j int) bool { return j == i })
}

// inbox gathers what every sender addressed to i: out[from][to].
func inbox[M any](out map[int]map[int]M, i int) map[int]M {
	in := map[int]M{}
	for from, ms := range out {
		if m, ok := ms[i]; ok {
			in[from] = m
		}
	}
	return in
}

// attack changes messages in flight (nil: an honest run).
type attack struct {
	round1  func(from, to int, bc *Round1, p *Round1Private)
	round2  func(from, to int, m *Round2Private)
	digests map[int][]byte
	tweak   *voi.Scalar // a BIP-32 derivation's; the signature is checked under Y + τ·G
}

// run signs digest with the signers of ks, through the wire encodings, and verifies.
func run(t testing.TB, ks []*protocol.KeyShare, signers []int, seeds map[int]map[int]*Seeds, digest []byte, a *attack) (*Signature, error) {
	session := make([]byte, protocol.SessionLen)
	rand.Read(session)
	ss, bc, p1 := map[int]*Signer{}, map[int]map[int]*Round1{}, map[int]map[int]*Round1Private{}
	for _, i := range signers {
		s, b, priv, err := Start(Params{Session: session, Share: ks[i-1], Signers: signers, Seeds: seeds[i]}, rand.Reader)
		if err != nil {
			return nil, err
		}
		ss[i], p1[i], bc[i] = s, priv, map[int]*Round1{}
		for _, j := range others(signers, i) {
			c := *b
			bc[i][j] = &c
		}
	}
	p2 := map[int]map[int]*Round2Private{}
	for _, i := range signers {
		in, inp := map[int]*Round1{}, map[int]*Round1Private{}
		for from, m := range inbox(bc, i) {
			p := inbox(p1, i)[from]
			if a != nil && a.round1 != nil {
				a.round1(from, i, m, p)
			}
			var err error
			if in[from], err = ParseRound1(m.Bytes()); err != nil {
				t.Fatal(err)
			}
			if inp[from], err = ParseRound1Private(p.Bytes()); err != nil {
				t.Fatal(err)
			}
		}
		out, err := ss[i].Round2(in, inp, rand.Reader)
		if err != nil {
			return nil, err
		}
		p2[i] = out
	}
	var parts []*Partial
	for _, i := range signers {
		in := map[int]*Round2Private{}
		for from, m := range inbox(p2, i) {
			if a != nil && a.round2 != nil {
				a.round2(from, i, m)
			}
			var err error
			if in[from], err = ParseRound2Private(m.Bytes()); err != nil {
				t.Fatal(err)
			}
		}
		d := digest
		if a != nil && a.digests[i] != nil {
			d = a.digests[i]
		}
		var tw *voi.Scalar
		if a != nil {
			tw = a.tweak
		}
		p, err := ss[i].Round3(in, d, tw)
		if err != nil {
			return nil, err
		}
		p, err = ParsePartial(i, p.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, p)
	}
	sig, err := Combine(parts)
	if err != nil {
		return nil, err
	}
	pub := ks[0].PublicKey
	if a != nil && a.tweak != nil {
		Y, _ := voi.NewIdentityPoint().SetCompressedBytes(pub)
		pub = Y.Add(Y, voi.NewIdentityPoint().ScalarBaseMult(a.tweak)).CompressedBytes()
	}
	return sig, verify(pub, digest, sig)
}

// verify checks sig with decred: the signature, low-S, and that the recovery ID gives back
// the public key.
func verify(pub, digest []byte, sig *Signature) error {
	pk, err := secp256k1.ParsePubKey(pub)
	if err != nil {
		return err
	}
	var r, s secp256k1.ModNScalar
	r.SetBytes(&sig.R)
	s.SetBytes(&sig.S)
	if s.IsOverHalfOrder() {
		return errors.New("not low-S")
	}
	if !decred.NewSignature(&r, &s).Verify(digest, pk) {
		return errors.New("the signature does not verify with decred")
	}
	compact := append([]byte{27 + sig.RecoveryID + 4}, append(sig.R[:], sig.S[:]...)...)
	got, compressed, err := decred.RecoverCompact(compact, digest)
	if err != nil || !compressed || !got.IsEqual(pk) {
		return fmt.Errorf("the recovery ID %d does not give back the key: %v", sig.RecoveryID, err)
	}
	return nil
}

func subsets(n, k int) [][]int {
	var out [][]int
	var rec func(start int, cur []int)
	rec = func(start int, cur []int) {
		if len(cur) == k {
			out = append(out, slices.Clone(cur))
			return
		}
		for i := start; i <= n; i++ {
			rec(i+1, append(cur, i))
		}
	}
	rec(1, nil)
	return out
}

func TestSign(t *testing.T) {
	for _, c := range []struct{ t, n int }{{2, 3}, {1, 3}, {1, 2}} {
		ks := deal(t, c.t, c.n)
		all := make([]int, c.n)
		for i := range all {
			all[i] = i + 1
		}
		seeds := setup(t, all)
		for _, set := range subsets(c.n, c.t+1) {
			for k := range 2 {
				digest := sha256.Sum256(fmt.Appendf(nil, "message %d of %v", k, set))
				if _, err := run(t, ks, set, seeds, digest[:], nil); err != nil {
					t.Fatalf("%d-of-%d, signers %v: %v", c.t+1, c.n, set, err)
				}
			}
		}
		if c.t == 1 && c.n == 3 { // all three of a 2-of-3 sign too
			digest := sha256.Sum256([]byte("all three"))
			if _, err := run(t, ks, all, seeds, digest[:], nil); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// A signer with fewer than t+1, without itself, or unsorted is refused before anything.
func TestSigningSets(t *testing.T) {
	ks := deal(t, 2, 3)
	seeds := setup(t, []int{1, 2, 3})
	session := make([]byte, protocol.SessionLen)
	for _, set := range [][]int{{1, 2}, {2, 3, 3}, {3, 2, 1}, {2, 3, 4}, {0, 1, 2}} {
		if _, _, _, err := Start(Params{Session: session, Share: ks[0], Signers: set, Seeds: seeds[1]}, rand.Reader); err == nil {
			t.Errorf("signing set %v accepted", set)
		}
	}
	var se *SeedError
	if _, _, _, err := Start(Params{Session: session, Share: ks[0], Signers: []int{1, 2, 3}, Seeds: map[int]*Seeds{2: seeds[1][2]}}, rand.Reader); !errors.As(err, &se) || se.Peer != 3 {
		t.Errorf("no seeds with party 3: %v", err)
	}
}

// A tweak τ signs for the child key Y + τ·G, each signer adding τ·φ_i in round three only.
func TestTweak(t *testing.T) {
	ks := deal(t, 1, 3)
	seeds := setup(t, []int{1, 2, 3})
	tw, _ := voi.NewScalarFromCanonicalBytes(&[32]byte{0: 1, 31: 7})
	digest := sha256.Sum256([]byte("child"))
	if _, err := run(t, ks, []int{1, 3}, seeds, digest[:], &attack{tweak: tw}); err != nil {
		t.Fatal(err)
	}
}

// The header parser's fixed lengths are this package's.
func TestBodyLengths(t *testing.T) {
	for typ, want := range map[protocol.MsgType]int{protocol.MsgOTSetup1: ot.Msg1Len, protocol.MsgOTSetup2: ot.Msg2Len,
		protocol.MsgECDSARound1: Round1Len, protocol.MsgECDSAExtend: Round1PrivateLen, protocol.MsgECDSARound2: Round2PrivateLen,
		protocol.MsgECDSAPartial: PartialLen} {
		if got := protocol.ECDSABodyLen(typ); got != want {
			t.Errorf("type %d: the header parser says %d bytes, this package %d", typ, got, want)
		}
	}
}
