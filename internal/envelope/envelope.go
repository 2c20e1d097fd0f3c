// Package envelope seals a TSM share backup for the vault: format v1 of docs/envelope.md.
//
// An envelope is a public header (vault ID, key ID, scheme, epoch, sequence, creation
// time, KDF parameters, salt, key commitment) followed by the AES-256-GCM encryption of
// the backup under a key derived from the recovery root key and the salt. The whole header
// is authenticated.
//
// # Use
//
//	sealed, err := envelope.Seal(root, envelope.Header{VaultID: id, KeyID: k, ...}, backup)
//	h, err := envelope.ParseHeader(sealed)          // public: what the vault checks
//	root, err := recovery.DeriveRootKey(secret, passphrase, h.KDF)
//	h, backup, err := envelope.Open(root, sealed)
//
// # Errors
//
// Every failure to open a well-formed envelope is ErrDecrypt, with no hint of the cause.
// A malformed input wraps ErrMalformed; a newer format is ErrUnsupportedVersion.
package envelope

import (
	"errors"
	"time"

	"github.com/sharevault/sharevault/internal/recovery"
)

// Scheme is the signature scheme of the TSM key inside.
type Scheme uint8

const (
	ECDSA Scheme = 1 // ECDSA on secp256k1
	EdDSA Scheme = 2 // EdDSA on Ed25519
)

func (s Scheme) String() string {
	switch s {
	case ECDSA:
		return "ECDSA"
	case EdDSA:
		return "EdDSA"
	}
	return "unknown"
}

// Limits of format v1.
const (
	MaxKeyIDLen  = 64
	MaxPlaintext = 4 << 20
	TagSize      = 16
	SaltSize     = 32
)

var (
	// ErrDecrypt is the one error for an envelope that does not open: wrong words or
	// passphrase, or a damaged or tampered backup.
	ErrDecrypt = errors.New("cannot open the backup: wrong words or passphrase, or the backup is damaged")
	// ErrMalformed is wrapped by every format error.
	ErrMalformed = errors.New("not a valid sharevault backup")
	// ErrUnsupportedVersion is returned for an envelope of a version this code does not know.
	ErrUnsupportedVersion = errors.New("backup format version is not supported by this version of sharevault")
)

// Header is the public part of an envelope.
type Header struct {
	Scheme     Scheme
	KDF        recovery.KDF // set by Seal from the root key
	VaultID    recovery.VaultID
	Epoch      uint32    // the TSM key's reshare counter
	Sequence   uint64    // at least 1; the vault keeps it rising
	Created    time.Time // whole seconds, UTC
	KeyID      string
	Salt       [SaltSize]byte // set by Seal
	Commitment [32]byte       // set by Seal
}

// Seal encrypts plaintext under root. It fills h.KDF, h.Salt and h.Commitment, truncates
// h.Created to seconds (the zero time means now), and checks every field.
func Seal(root *recovery.RootKey, h Header, plaintext []byte) ([]byte, error) {
	if len(plaintext) > MaxPlaintext {
		return nil, errors.New("backup is larger than the 4 MiB an envelope holds")
	}
	if h.Created.IsZero() {
		h.Created = time.Now()
	}
	h.Created = h.Created.Truncate(time.Second).UTC()
	h.KDF = root.KDF()
	if err := h.validate(); err != nil {
		return nil, err
	}
	return seal(root, &h, plaintext)
}

// Open checks and decrypts an envelope. root must be derived with the header's KDF (see
// ParseHeader). It returns the header and the backup.
func Open(root *recovery.RootKey, envelope []byte) (*Header, []byte, error) {
	e, err := Parse(envelope)
	if err != nil {
		return nil, nil, err
	}
	pt, err := open(root, e)
	if err != nil {
		return nil, nil, err
	}
	return &e.Header, pt, nil
}

// ParseHeader parses and checks an envelope's public header, without any key.
func ParseHeader(envelope []byte) (*Header, error) {
	e, err := Parse(envelope)
	if err != nil {
		return nil, err
	}
	return &e.Header, nil
}
