// Package recovery derives every key sharevault uses from the recovery secret (the
// entropy of the BIP-39 words, not the BIP-39 PBKDF2 seed).
//
// # Keys
//
//	signing seed = HKDF-SHA256(ikm = secret, salt = "", info = "sharevault v1 vault signing key", 32)
//	signing key  = Ed25519 private key from the signing seed (RFC 8032)
//	vault ID     = SHA-256("sharevault v1 vault id" || signing public key)
//	root key     = HKDF-SHA256(ikm = secret || P, salt = "", info = "sharevault v1 aead root key", 32)
//
// P is empty without a passphrase. With one, P is Argon2id(passphrase, salt, t, m, p, 32),
// where the passphrase is NFKD-normalized UTF-8 and
//
//	salt = HKDF-SHA256(ikm = secret, salt = "", info = "sharevault v1 argon2id salt", 16)
//
// The vault ID and signing key come from the words alone, so a client finds its vault
// before it knows the Argon2id parameters, which it then reads from a backup's header.
// The parameters can therefore be raised for new backups without moving the vault.
// docs/keys.md is the specification; this file is all of the package's cryptography.
package recovery

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"
)

// Labels: each derived value has its own, so no two can collide.
const (
	labelSigning  = "sharevault v1 vault signing key"
	labelVaultID  = "sharevault v1 vault id"
	labelArgon2   = "sharevault v1 argon2id salt"
	labelRootKey  = "sharevault v1 aead root key"
	rootKeySize   = 32
	argon2SaltLen = 16
)

// VaultIDSize is the length of a vault ID in bytes.
const VaultIDSize = sha256.Size

// VaultID names a vault. It is the hash of the vault's signing public key, so a server
// can check that a signer owns a vault without having stored anything first.
type VaultID [VaultIDSize]byte

// String returns the ID as 64 lower-case hex digits, its only text form.
func (id VaultID) String() string { return hex.EncodeToString(id[:]) }

// ParseVaultID parses the text form: exactly 64 lower-case hex digits.
func ParseVaultID(s string) (VaultID, error) {
	var id VaultID
	if len(s) != 2*VaultIDSize {
		return id, fmt.Errorf("vault ID has %d characters, want %d", len(s), 2*VaultIDSize)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return id, errors.New("vault ID must be lower-case hex")
		}
	}
	hex.Decode(id[:], []byte(s))
	return id, nil
}

// VaultIDFor returns the vault ID owned by an Ed25519 public key.
func VaultIDFor(pub ed25519.PublicKey) VaultID {
	h := sha256.New()
	h.Write([]byte(labelVaultID))
	h.Write(pub)
	var id VaultID
	h.Sum(id[:0])
	return id
}

// Owns reports, in constant time, whether pub is the signing key of vault id.
func Owns(id VaultID, pub ed25519.PublicKey) bool {
	if len(pub) != ed25519.PublicKeySize {
		return false
	}
	want := VaultIDFor(pub)
	return subtle.ConstantTimeCompare(want[:], id[:]) == 1
}

// Identity is the vault signing key and the vault ID it owns. It does not print.
type Identity struct {
	priv ed25519.PrivateKey
	id   VaultID
}

// NewIdentity derives the vault identity from the recovery secret.
func NewIdentity(secret []byte) (*Identity, error) {
	if err := checkSecret(secret); err != nil {
		return nil, err
	}
	seed, err := hkdf.Key(sha256.New, secret, nil, labelSigning, ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	priv := ed25519.NewKeyFromSeed(seed)
	clear(seed)
	return &Identity{priv: priv, id: VaultIDFor(priv.Public().(ed25519.PublicKey))}, nil
}

// VaultID returns the ID of the vault this identity owns.
func (i *Identity) VaultID() VaultID { return i.id }

// PublicKey returns the Ed25519 public key.
func (i *Identity) PublicKey() ed25519.PublicKey { return i.priv.Public().(ed25519.PublicKey) }

// Sign signs msg with the vault signing key (pure Ed25519).
func (i *Identity) Sign(msg []byte) []byte { return ed25519.Sign(i.priv, msg) }

// Wipe zeroes the private key.
func (i *Identity) Wipe() { clear(i.priv) }

func (i *Identity) String() string             { return "recovery.Identity{vault " + i.id.String() + "}" }
func (i *Identity) Format(f fmt.State, _ rune) { io.WriteString(f, i.String()) }
func (i *Identity) LogValue() slog.Value       { return slog.StringValue(i.String()) }

// KDFAlgorithm says how a passphrase is stretched.
type KDFAlgorithm uint8

const (
	KDFNone     KDFAlgorithm = 0 // no passphrase
	KDFArgon2id KDFAlgorithm = 1 // RFC 9106 Argon2id
)

// KDF names the passphrase stretching and its cost. The zero value means no passphrase.
type KDF struct {
	Algorithm KDFAlgorithm
	Time      uint32 // Argon2id passes
	MemoryKiB uint32 // Argon2id memory in KiB
	Threads   uint8  // Argon2id lanes
}

// DefaultArgon2id is the second recommendation of RFC 9106, section 4, with 64 MiB: a
// cost a phone pays in about a second.
var DefaultArgon2id = KDF{Algorithm: KDFArgon2id, Time: 3, MemoryKiB: 64 * 1024, Threads: 4}

// Bounds on Argon2id parameters that a reader accepts, so a hostile header cannot make a
// phone spend more than a gibibyte or a minute.
const (
	MaxArgon2Time      = 16
	MaxArgon2MemoryKiB = 1 << 20
	MaxArgon2Threads   = 16
)

// Validate checks that k is a KDF this version can run within its bounds.
func (k KDF) Validate() error {
	switch k.Algorithm {
	case KDFNone:
		if k != (KDF{}) {
			return errors.New("kdf none must have zero parameters")
		}
		return nil
	case KDFArgon2id:
		switch {
		case k.Time < 1 || k.Time > MaxArgon2Time:
			return fmt.Errorf("argon2id time %d out of range 1..%d", k.Time, MaxArgon2Time)
		case k.Threads < 1 || k.Threads > MaxArgon2Threads:
			return fmt.Errorf("argon2id threads %d out of range 1..%d", k.Threads, MaxArgon2Threads)
		case k.MemoryKiB < 8*uint32(k.Threads) || k.MemoryKiB > MaxArgon2MemoryKiB:
			return fmt.Errorf("argon2id memory %d KiB out of range %d..%d", k.MemoryKiB, 8*uint32(k.Threads), MaxArgon2MemoryKiB)
		}
		return nil
	}
	return fmt.Errorf("unknown kdf %d", k.Algorithm)
}

var (
	// ErrPassphraseRequired means a backup was made with a passphrase and none was given.
	ErrPassphraseRequired = errors.New("this backup is protected by a passphrase: enter it with the words")
	// ErrNoPassphraseUsed means a passphrase was given for a backup made without one.
	ErrNoPassphraseUsed = errors.New("this backup was made without a passphrase: leave the passphrase empty")
)

// RootKey is the AEAD root key from which each backup's key is derived (see
// internal/envelope), with the KDF it was derived under. It does not print.
type RootKey struct {
	key [rootKeySize]byte
	kdf KDF
}

// DeriveRootKey derives the root key from the secret and an optional passphrase. An
// empty passphrase needs KDF{}; a non-empty one needs an Argon2id KDF, for which
// DefaultArgon2id is the choice for new backups and a backup's header holds the one to
// open it with.
func DeriveRootKey(secret []byte, passphrase string, kdf KDF) (*RootKey, error) {
	if err := checkSecret(secret); err != nil {
		return nil, err
	}
	if err := kdf.Validate(); err != nil {
		return nil, err
	}
	switch {
	case passphrase == "" && kdf.Algorithm != KDFNone:
		return nil, ErrPassphraseRequired
	case passphrase != "" && kdf.Algorithm == KDFNone:
		return nil, ErrNoPassphraseUsed
	}
	ikm := make([]byte, 0, len(secret)+32)
	ikm = append(ikm, secret...)
	if kdf.Algorithm == KDFArgon2id {
		salt, err := hkdf.Key(sha256.New, secret, nil, labelArgon2, argon2SaltLen)
		if err != nil {
			return nil, err
		}
		pass := []byte(norm.NFKD.String(passphrase))
		ikm = append(ikm, argon2.IDKey(pass, salt, kdf.Time, kdf.MemoryKiB, kdf.Threads, 32)...)
		clear(pass)
	}
	defer clear(ikm)
	key, err := hkdf.Key(sha256.New, ikm, nil, labelRootKey, rootKeySize)
	if err != nil {
		return nil, err
	}
	r := &RootKey{kdf: kdf}
	copy(r.key[:], key)
	clear(key)
	return r, nil
}

// KDF returns the KDF the key was derived under; a backup sealed with it records it.
func (r *RootKey) KDF() KDF { return r.kdf }

// Bytes returns the key itself, for internal/envelope's per-backup derivation only.
func (r *RootKey) Bytes() []byte { return r.key[:] }

// Wipe zeroes the key.
func (r *RootKey) Wipe() { clear(r.key[:]) }

func (r *RootKey) String() string             { return "recovery.RootKey([redacted])" }
func (r *RootKey) Format(f fmt.State, _ rune) { io.WriteString(f, r.String()) }
func (r *RootKey) LogValue() slog.Value       { return slog.StringValue(r.String()) }

func checkSecret(secret []byte) error {
	if n := len(secret); n < 16 || n > 32 {
		return fmt.Errorf("recovery secret is %d bytes, want 16 to 32", n)
	}
	return nil
}

// Seed returns the 32-byte Ed25519 seed of the signing key, for an app's key store (so it
// can back up again without the words). It is as secret as the key.
func (i *Identity) Seed() []byte { return i.priv.Seed() }

// IdentityFromSeed rebuilds an identity from Seed's output.
func IdentityFromSeed(seed []byte) (*Identity, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("signing seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	return &Identity{priv: priv, id: VaultIDFor(priv.Public().(ed25519.PublicKey))}, nil
}

// RootKeyFromBytes rebuilds a root key from Bytes' output and the KDF it was derived under.
func RootKeyFromBytes(key []byte, kdf KDF) (*RootKey, error) {
	if len(key) != rootKeySize {
		return nil, fmt.Errorf("root key is %d bytes, want %d", len(key), rootKeySize)
	}
	if err := kdf.Validate(); err != nil {
		return nil, err
	}
	r := &RootKey{kdf: kdf}
	copy(r.key[:], key)
	return r, nil
}
