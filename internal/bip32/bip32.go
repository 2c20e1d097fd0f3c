// Package bip32 is the public half of BIP-32 on secp256k1: a key's extended public key
// (xpub) and the non-hardened derivation of child public keys, with the tweak that signs for
// a child (the child's key is the parent's plus tweak·G; a threshold signature for the child
// adds the tweak, docs/tsm-protocol.md "Derived keys"). Everything here is on public values;
// there is no private derivation, and hardened indices are refused.
package bip32

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	secp256k1 "gitlab.com/yawning/secp256k1-voi"
	"golang.org/x/crypto/ripemd160" //nolint:staticcheck // BIP-32 fingerprints are HASH160
)

// Hardened is the first hardened index.
const Hardened = 1 << 31

// MaxDepth bounds a path (the TSM's signing requests carry at most this many indices).
const MaxDepth = 16

// ParsePath parses "m/0/7" (or "0/7", or "m") into its indices; hardened ones ("0'", "0h")
// are refused: the nodes derive public keys only.
func ParsePath(s string) ([]uint32, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "m"), "/")
	if s == "" {
		return nil, nil
	}
	var out []uint32
	for _, p := range strings.Split(s, "/") {
		if strings.HasSuffix(p, "'") || strings.HasSuffix(p, "h") || strings.HasSuffix(p, "H") {
			return nil, fmt.Errorf("path %q: %s is hardened, and only non-hardened paths derive from a public key", s, p)
		}
		i, err := strconv.ParseUint(p, 10, 32)
		if err != nil || i >= Hardened {
			return nil, fmt.Errorf("path %q: %q is not an index below 2^31", s, p)
		}
		out = append(out, uint32(i))
	}
	if len(out) > MaxDepth {
		return nil, fmt.Errorf("path %q is deeper than %d", s, MaxDepth)
	}
	return out, nil
}

// Derived is a child key: its public key (SEC 1 compressed), chain code, the tweak whose
// sum with the parent's secret is the child's, the parent's fingerprint and its index.
type Derived struct {
	PublicKey   []byte
	ChainCode   []byte
	Tweak       *secp256k1.Scalar
	Depth       int
	Parent      [4]byte
	ChildNumber uint32
}

// Derive follows path from the public key pub (compressed) and chain code chain.
func Derive(pub, chain []byte, path []uint32) (*Derived, error) {
	if len(chain) != 32 {
		return nil, errors.New("bip32: a chain code is 32 bytes")
	}
	P, err := secp256k1.NewIdentityPoint().SetCompressedBytes(pub)
	if err != nil || P.IsIdentity() == 1 {
		return nil, errors.New("bip32: not a public key")
	}
	d := &Derived{PublicKey: P.CompressedBytes(), ChainCode: append([]byte(nil), chain...), Tweak: secp256k1.NewScalar()}
	for _, i := range path {
		if i >= Hardened {
			return nil, errors.New("bip32: a hardened index needs the private key")
		}
		mac := hmac.New(sha512.New, d.ChainCode)
		mac.Write(d.PublicKey)
		mac.Write(binary.BigEndian.AppendUint32(nil, i))
		I := mac.Sum(nil)
		il, err := secp256k1.NewScalarFromCanonicalBytes((*[32]byte)(I[:32]))
		if err != nil {
			return nil, fmt.Errorf("bip32: index %d gives an invalid key (BIP-32: use the next index)", i)
		}
		child := secp256k1.NewIdentityPoint().ScalarBaseMult(il)
		child.Add(child, P)
		if child.IsIdentity() == 1 {
			return nil, fmt.Errorf("bip32: index %d gives an invalid key (BIP-32: use the next index)", i)
		}
		copy(d.Parent[:], hash160(d.PublicKey))
		d.Tweak.Add(d.Tweak, il)
		P, d.PublicKey, d.ChainCode, d.ChildNumber = child, child.CompressedBytes(), I[32:], i
		d.Depth++
	}
	return d, nil
}

func hash160(b []byte) []byte {
	s := sha256.Sum256(b)
	r := ripemd160.New()
	r.Write(s[:])
	return r.Sum(nil)
}

// XPub is the extended public key of d in Base58Check (version bytes of mainnet, "xpub").
func (d *Derived) XPub() string {
	b := []byte{0x04, 0x88, 0xb2, 0x1e, byte(d.Depth)}
	b = append(b, d.Parent[:]...)
	b = binary.BigEndian.AppendUint32(b, d.ChildNumber)
	b = append(append(b, d.ChainCode...), d.PublicKey...)
	c1 := sha256.Sum256(b)
	c2 := sha256.Sum256(c1[:])
	return base58(append(b, c2[:4]...))
}

const alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

func base58(b []byte) string {
	x := new(big.Int).SetBytes(b)
	var out []byte
	mod, radix := new(big.Int), big.NewInt(58)
	for x.Sign() > 0 {
		x.DivMod(x, radix, mod)
		out = append(out, alphabet[mod.Int64()])
	}
	for _, c := range b {
		if c != 0 {
			break
		}
		out = append(out, '1')
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return string(out)
}
