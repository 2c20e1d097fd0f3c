package protocol

import (
	"crypto/rand"
	"testing"

	"filippo.io/edwards25519"
)

// TestEdPointCanonical: edPoint accepts exactly the encodings that decode and encode back
// to themselves (RFC 8032's canonical ones): every y of p or more with either sign bit,
// x zero with the sign bit set, valid points with the sign bit flipped, and random bytes.
func TestEdPointCanonical(t *testing.T) {
	reference := func(p []byte) bool {
		q, err := new(edwards25519.Point).SetBytes(p)
		return err == nil && string(q.Bytes()) == string(p)
	}
	var cases [][]byte
	for k := 0; k < 19; k++ { // y = p + k, p = 2^255 − 19
		for _, sign := range []byte{0, 0x80} {
			b := make([]byte, 32)
			for i := range b {
				b[i] = 0xff
			}
			b[0] = 0xed + byte(k)
			b[31] = 0x7f | sign
			cases = append(cases, b)
		}
	}
	for _, y := range []byte{0, 1} { // y = 0 (order 4), y = 1 (x = 0: the identity)
		for _, sign := range []byte{0, 0x80} {
			b := make([]byte, 32)
			b[0], b[31] = y, sign
			cases = append(cases, b)
		}
	}
	orderTwo := make([]byte, 32) // y = p − 1: x = 0
	orderTwo[0], orderTwo[31] = 0xec, 0xff
	for i := 1; i < 31; i++ {
		orderTwo[i] = 0xff
	}
	cases = append(cases, orderTwo)
	for range 2000 {
		s, _ := edw{}.RandomScalar(rand.Reader)
		p := edw{}.BaseMult(s)
		flipped := append([]byte(nil), p...)
		flipped[31] ^= 0x80
		random := make([]byte, 32)
		rand.Read(random)
		cases = append(cases, p, flipped, random)
	}
	accepted := 0
	for _, b := range cases {
		_, err := edPoint(b)
		if (err == nil) != reference(b) {
			t.Fatalf("edPoint(%x): accepted %v, the reference says %v", b, err == nil, reference(b))
		}
		if err == nil {
			accepted++
		}
	}
	if accepted < 2000 {
		t.Fatalf("only %d encodings accepted: the cases do not exercise the valid path", accepted)
	}
}

// TestSchnorrHolds: on both curves, SchnorrHolds agrees with the check it replaces (r a
// valid point, and z·G = r + c·y) on good proofs, on proofs for another key or challenge,
// and, on Ed25519, on an r with a torsion component, the identity, and a non-canonical r.
func TestSchnorrHolds(t *testing.T) {
	reference := func(g Group, z, c, y, r []byte) bool {
		if !g.ValidPoint(r) {
			return false
		}
		cy, err := g.ScalarMult(c, y)
		if err != nil {
			return false
		}
		rhs, err := g.AddPoints(r, cy)
		return err == nil && string(g.BaseMult(z)) == string(rhs)
	}
	orderTwo := make([]byte, 32) // (0, −1): y = p − 1
	orderTwo[0], orderTwo[31] = 0xec, 0x7f
	for i := 1; i < 31; i++ {
		orderTwo[i] = 0xff
	}
	for _, g := range []Group{edw{}, secp{}} {
		good, bad := 0, 0
		for i := range 300 {
			s, _ := g.RandomScalar(rand.Reader)
			k, _ := g.RandomScalar(rand.Reader)
			y, r := g.BaseMult(s), g.BaseMult(k)
			c := g.Challenge("test", y, r, []byte{byte(i)})
			z := g.AddScalars(k, g.MulScalars(c, s))
			other, _ := g.RandomScalar(rand.Reader)
			cases := [][4][]byte{{z, c, y, r}, {z, c, g.BaseMult(other), r}, {z, other, y, r}, {other, c, y, r}}
			if e, ok := g.(edw); ok {
				torsion, _ := e.AddPoints(r, orderTwo)
				// r the identity holds for z = c·s: refused as ValidPoint refuses it.
				identity := make([]byte, 32)
				identity[0] = 1
				nonCanonical := append([]byte(nil), r...)
				nonCanonical[31] ^= 0x80
				cases = append(cases, [4][]byte{z, c, y, torsion}, [4][]byte{g.MulScalars(c, s), c, y, identity}, [4][]byte{z, c, y, nonCanonical})
			}
			for _, tc := range cases {
				got, want := g.SchnorrHolds(tc[0], tc[1], tc[2], tc[3]), reference(g, tc[0], tc[1], tc[2], tc[3])
				if got != want {
					t.Fatalf("%T: SchnorrHolds %v, the reference %v", g, got, want)
				}
				if got {
					good++
				} else {
					bad++
				}
			}
		}
		if good != 300 || bad == 0 {
			t.Fatalf("%T: %d proofs held, %d refused: want exactly the 300 good ones to hold", g, good, bad)
		}
	}
}
