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
