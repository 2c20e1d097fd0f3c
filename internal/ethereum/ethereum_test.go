package ethereum

import (
	"encoding/hex"
	"strings"
	"testing"

	secp256k1 "gitlab.com/yawning/secp256k1-voi"
)

// The checksum examples of EIP-55 itself.
func TestChecksum(t *testing.T) {
	for _, want := range []string{"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
		"0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB", "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb"} {
		b, _ := hex.DecodeString(strings.ToLower(want[2:]))
		if got := Checksum(b); got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}

// The address of private key 1 (the generator), well known.
func TestAddress(t *testing.T) {
	g := secp256k1.NewGeneratorPoint()
	for _, enc := range [][]byte{g.CompressedBytes(), g.UncompressedBytes()} {
		if a, err := Address(enc); err != nil || a != "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf" {
			t.Fatalf("%s %v", a, err)
		}
	}
	if _, err := Address([]byte{2, 1}); err == nil {
		t.Fatal("a short key was accepted")
	}
}

func TestPersonalMessageHash(t *testing.T) {
	got := hex.EncodeToString(PersonalMessageHash([]byte("hello")))
	if got != "50b2c43fd39106bafbba0da34fc430e1f91e3c96ea2acee2bc34119f92b37750" {
		t.Fatalf("EIP-191 of \"hello\": %s", got)
	}
}
