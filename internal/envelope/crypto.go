package envelope

// This file is all of the package's cryptography (docs/envelope.md, "Keys").

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"

	"github.com/sharevault/sharevault/internal/recovery"
)

const (
	labelPayload    = "sharevault v1 payload key"
	labelCommitment = "sharevault v1 key commitment"
)

// A fixed nonce is safe because each payload key seals one message only: the key comes
// from a fresh 32-byte random salt, and nothing is ever sealed twice under one salt.
var zeroNonce [12]byte

// backupKeys derives the payload key and the key commitment of one envelope from the
// root key and the envelope's salt. Two outputs of one HKDF-Expand PRK, distinct labels.
func backupKeys(root *recovery.RootKey, salt []byte) (cipher.AEAD, [32]byte, error) {
	var commit [32]byte
	prk, err := hkdf.Extract(sha256.New, root.Bytes(), salt)
	if err != nil {
		return nil, commit, err
	}
	defer clear(prk)
	key, err := hkdf.Expand(sha256.New, prk, labelPayload, 32)
	if err != nil {
		return nil, commit, err
	}
	defer clear(key)
	c, err := hkdf.Expand(sha256.New, prk, labelCommitment, 32)
	if err != nil {
		return nil, commit, err
	}
	copy(commit[:], c)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, commit, err
	}
	aead, err := cipher.NewGCM(block)
	return aead, commit, err
}

// seal fills the salt and commitment of a valid header and returns the envelope. The
// output is allocated once: header, then ciphertext sealed in place after it.
func seal(root *recovery.RootKey, h *Header, plaintext []byte) ([]byte, error) {
	rand.Read(h.Salt[:]) // crypto/rand.Read never fails (Go 1.24)
	aead, commit, err := backupKeys(root, h.Salt[:])
	if err != nil {
		return nil, err
	}
	h.Commitment = commit
	out := h.appendHeader(make([]byte, 0, h.encodedLen()+len(plaintext)+TagSize))
	return aead.Seal(out, zeroNonce[:], plaintext, out), nil
}

// open checks the commitment in constant time and then opens the ciphertext with the
// header as additional data. Every failure is ErrDecrypt.
func open(root *recovery.RootKey, e *Envelope) ([]byte, error) {
	aead, commit, err := backupKeys(root, e.Header.Salt[:])
	if err != nil {
		return nil, ErrDecrypt
	}
	if subtle.ConstantTimeCompare(commit[:], e.Header.Commitment[:]) != 1 {
		return nil, ErrDecrypt
	}
	header := e.Header.appendHeader(make([]byte, 0, e.headerLen))
	pt, err := aead.Open(nil, zeroNonce[:], e.Ciphertext, header)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}
