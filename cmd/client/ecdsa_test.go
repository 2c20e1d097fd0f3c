package main

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	"github.com/rogpeppe/go-internal/testscript"
	bip32 "github.com/tyler-smith/go-bip32"

	"github.com/sharevault/sharevault/internal/ethereum"
)

// ecrecover sha256|digest|eth INPUT SIG ADDRESS checks a signature as a wallet would: the
// digest (SHA-256 of the message, given, or EIP-191 of it), s low, and the public key that
// decred recovers from r, s and v is the address printed.
func ecrecover(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 4 {
		ts.Fatalf("usage: ecrecover sha256|digest|eth INPUT SIG ADDRESS")
	}
	var digest []byte
	switch args[0] {
	case "sha256":
		d := sha256.Sum256([]byte(args[1]))
		digest = d[:]
	case "digest":
		var err error
		digest, err = hex.DecodeString(args[1])
		ts.Check(err)
	case "eth":
		digest = ethereum.PersonalMessageHash([]byte(args[1]))
	}
	sig, err := hex.DecodeString(args[2])
	ts.Check(err)
	if len(sig) != 65 {
		ts.Fatalf("a signature of %d bytes", len(sig))
	}
	v := sig[64]
	if args[0] == "eth" {
		v -= 27 // personal_sign's v
	}
	if sig[32]&0x80 != 0 { // s above n/2 starts with a set bit; low-S is checked by decred below
		ts.Fatalf("s is not low")
	}
	pub, compressed, err := ecdsa.RecoverCompact(append([]byte{27 + 4 + v}, sig[:64]...), digest)
	if err != nil || !compressed {
		ts.Fatalf("recover: %v", err)
	}
	addr, err := ethereum.Address(pub.SerializeCompressed())
	ts.Check(err)
	if (addr == args[3]) == neg {
		ts.Fatalf("the signature recovers to %s, want %s", addr, args[3])
	}
}

// xpubChild XPUB PATH NAME derives the child at PATH (non-hardened, m/a/b) from XPUB with
// an independent BIP-32 implementation and sets NAME to its Ethereum address.
func xpubChild(ts *testscript.TestScript, neg bool, args []string) {
	k, err := bip32.B58Deserialize(args[0])
	ts.Check(err)
	for _, p := range strings.Split(strings.TrimPrefix(args[1], "m/"), "/") {
		var i uint32
		for _, c := range p {
			i = i*10 + uint32(c-'0')
		}
		k, err = k.NewChildKey(i)
		ts.Check(err)
	}
	addr, err := ethereum.Address(k.Key)
	ts.Check(err)
	ts.Setenv(args[2], addr)
}
