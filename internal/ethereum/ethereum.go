// Package ethereum is what an Ethereum wallet needs of a secp256k1 key and its signatures:
// the account address of a public key (EIP-55 mixed-case checksum) and the digest of a
// personal message (EIP-191, version 0x45, as personal_sign and eth_sign compute it).
package ethereum

import (
	"encoding/hex"
	"errors"
	"strconv"

	secp256k1 "gitlab.com/yawning/secp256k1-voi"
	"golang.org/x/crypto/sha3"
)

func keccak256(parts ...[]byte) []byte {
	h := sha3.NewLegacyKeccak256()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

// Address returns the EIP-55 address of a public key (SEC 1, compressed or not): the last
// 20 bytes of Keccak-256 of its uncompressed X || Y.
func Address(pub []byte) (string, error) {
	p, err := secp256k1.NewIdentityPoint().SetBytes(pub)
	if err != nil || p.IsIdentity() == 1 {
		return "", errors.New("ethereum: not a secp256k1 public key")
	}
	return Checksum(keccak256(p.UncompressedBytes()[1:])[12:]), nil
}

// Checksum is the EIP-55 encoding of a 20-byte address: a hex digit is upper case where
// the matching nibble of Keccak-256 of the lower-case hex is 8 or more.
func Checksum(addr []byte) string {
	lower := []byte(hex.EncodeToString(addr))
	h := keccak256(lower)
	for i, c := range lower {
		if c >= 'a' && (h[i/2]>>(4*(1-uint(i%2))))&0xf >= 8 {
			lower[i] = c - 'a' + 'A'
		}
	}
	return "0x" + string(lower)
}

// PersonalMessageHash is Keccak-256("\x19Ethereum Signed Message:\n" || len(msg) || msg).
func PersonalMessageHash(msg []byte) []byte {
	return keccak256([]byte("\x19Ethereum Signed Message:\n"+strconv.Itoa(len(msg))), msg)
}
