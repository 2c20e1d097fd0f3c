package bip32

import (
	"bytes"
	"crypto/rand"
	"testing"

	ref "github.com/tyler-smith/go-bip32"
	secp256k1 "gitlab.com/yawning/secp256k1-voi"
)

// Against an independent BIP-32 implementation: the public keys, chain codes and xpubs of
// a path, and the tweak, which added to the parent's secret gives the child's.
func TestAgainstReference(t *testing.T) {
	seed := make([]byte, 32)
	rand.Read(seed)
	master, err := ref.NewMasterKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	path := []uint32{0, 7, 1 << 30}
	d, err := Derive(master.PublicKey().Key, master.ChainCode, path)
	if err != nil {
		t.Fatal(err)
	}
	priv, pub := master, master.PublicKey()
	for _, i := range path {
		if priv, err = priv.NewChildKey(i); err != nil {
			t.Fatal(err)
		}
		if pub, err = pub.NewChildKey(i); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(d.PublicKey, pub.Key) || !bytes.Equal(d.ChainCode, pub.ChainCode) {
		t.Fatal("the child public key or chain code differs from the reference's")
	}
	if d.XPub() != pub.String() {
		t.Fatalf("xpub %s, the reference says %s", d.XPub(), pub.String())
	}
	root, _ := Derive(master.PublicKey().Key, master.ChainCode, nil)
	if root.XPub() != master.PublicKey().String() {
		t.Fatalf("root xpub %s, the reference says %s", root.XPub(), master.PublicKey().String())
	}
	s, _ := secp256k1.NewScalarFromCanonicalBytes((*[32]byte)(master.Key))
	s.Add(s, d.Tweak)
	if !bytes.Equal(s.Bytes(), priv.Key) {
		t.Fatal("parent secret + tweak is not the child's secret")
	}
}

func TestParsePath(t *testing.T) {
	for in, want := range map[string][]uint32{"m": nil, "m/0/7": {0, 7}, "0/7": {0, 7}, "m/2147483647": {1<<31 - 1}} {
		got, err := ParsePath(in)
		if err != nil || len(got) != len(want) {
			t.Fatalf("%q: %v %v", in, got, err)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%q: %v", in, got)
			}
		}
	}
	for _, in := range []string{"m/0'", "m/1h", "m/2147483648", "m/x", "m//1", "m/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0"} {
		if _, err := ParsePath(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
