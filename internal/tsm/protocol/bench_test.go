package protocol

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"
)

// The cost of the protocols' cryptography for 3 parties in one process, beside a plain
// Ed25519 signature (the baseline of the same run). Storage and transport are not in
// these; internal/tsm's benchmarks add SQLite.

func BenchmarkEd25519Sign(b *testing.B) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := []byte("pay 1 coin to bob")
	for b.Loop() {
		ed25519.Sign(priv, msg)
	}
}

func benchDKG(b *testing.B, t, n int, refresh bool) []*KeyShare {
	tb := &testing.T{}
	var rs []*Result
	for b.Loop() {
		var err error
		if rs, err = runDKG(tb, Ed25519, t, n, refresh, nil); err != nil {
			b.Fatal(err)
		}
	}
	return keyShares(rs)
}

func BenchmarkKeyGen3of3(b *testing.B) { benchDKG(b, 2, 3, false) }

func BenchmarkRefresh3of3(b *testing.B) { benchDKG(b, 2, 3, true) }

func BenchmarkSign3of3(b *testing.B) {
	rs, err := runDKG(&testing.T{}, Ed25519, 2, 3, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	ks := keyShares(rs)
	msg := []byte("pay 1 coin to bob")
	for b.Loop() {
		if _, err := sign(&testing.T{}, ks, []int{1, 2, 3}, msg, 0); err != nil {
			b.Fatal(err)
		}
	}
}
