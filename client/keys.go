package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/sharevault/sharevault/internal/mnemonic"
	"github.com/sharevault/sharevault/internal/recovery"
)

// Words is a fresh recovery secret, to show the user once. It never prints by accident:
// only Phrase, Word and SeedQR reveal it.
type Words struct{ s mnemonic.Secret }

// NewWords draws a new secret of count words (12, 15, 18, 21 or 24; 0 means 24).
func NewWords(count int) (*Words, error) {
	if count == 0 {
		count = mnemonic.DefaultWords
	}
	s, err := mnemonic.Generate(count)
	if err != nil {
		return nil, err
	}
	return &Words{s}, nil
}

// Count is the number of words.
func (w *Words) Count() int { return len(w.s.Words()) }

// Word returns word i (1-based).
func (w *Words) Word(i int) string { return w.s.Words()[i-1] }

// Phrase returns the words, separated by spaces.
func (w *Words) Phrase() string { return strings.Join(w.s.Words(), " ") }

// Keys derives the keys the app keeps from the words and an optional passphrase.
func (w *Words) Keys(passphrase string) (*Keys, error) { return newKeys(w.s, passphrase) }

// Wipe zeroes the secret.
func (w *Words) Wipe() { w.s.Wipe() }

func (w *Words) String() string { return "[redacted]" }

// Keys are what the app needs to find its vault and seal or open backups: the vault
// signing key, the root key, and (only right after the words were typed) the secret, to
// derive root keys for backups sealed under other KDF parameters. The words themselves
// are never kept.
type Keys struct {
	id     *recovery.Identity
	root   *recovery.RootKey
	secret mnemonic.Secret // zero once loaded from a key store
	pass   string
}

// testKDF, when set (by tests through SHAREVAULT_TEST_CHEAP_KDF=1), replaces the default
// Argon2id cost so that scripts with a passphrase run fast. Never set it in production.
var testKDF = os.Getenv("SHAREVAULT_TEST_CHEAP_KDF") == "1"

func sealKDF(passphrase string) recovery.KDF {
	switch {
	case passphrase == "":
		return recovery.KDF{}
	case testKDF:
		return recovery.KDF{Algorithm: recovery.KDFArgon2id, Time: 1, MemoryKiB: 64, Threads: 1}
	}
	return recovery.DefaultArgon2id
}

func newKeys(s mnemonic.Secret, passphrase string) (*Keys, error) {
	id, err := recovery.NewIdentity(s.Bytes())
	if err != nil {
		return nil, err
	}
	root, err := recovery.DeriveRootKey(s.Bytes(), passphrase, sealKDF(passphrase))
	if err != nil {
		return nil, err
	}
	return &Keys{id: id, root: root, secret: s, pass: passphrase}, nil
}

// KeysFromWords parses typed words (see internal/mnemonic for what is tolerated) and
// derives the keys. It does not ask the vault anything; FindKeys does.
func KeysFromWords(typed, passphrase string) (*Keys, error) {
	s, err := mnemonic.Parse(typed)
	if err != nil {
		return nil, err
	}
	return newKeys(s, passphrase)
}

// VaultID is the vault these keys own.
func (k *Keys) VaultID() string { return k.id.VaultID().String() }

// rootFor returns the root key for a backup sealed under kdf.
func (k *Keys) rootFor(kdf recovery.KDF) (*recovery.RootKey, error) {
	if k.root != nil && k.root.KDF() == kdf {
		return k.root, nil
	}
	if k.secret.IsZero() {
		return nil, errors.New("this backup was sealed with other passphrase settings: restore with the words")
	}
	return recovery.DeriveRootKey(k.secret.Bytes(), k.pass, kdf)
}

// Forget wipes the keys from memory.
func (k *Keys) Forget() {
	k.id.Wipe()
	k.root.Wipe()
	k.secret.Wipe()
}

func (k *Keys) String() string { return "client.Keys{vault " + k.VaultID() + "}" }

type storedKeys struct {
	Format  int          `json:"format"`
	Seed    []byte       `json:"signing_seed"`
	Root    []byte       `json:"root_key"`
	KDF     recovery.KDF `json:"kdf"`
	VaultID string       `json:"vault_id"`
}

// Marshal encodes the keys for the app's key store (on a phone: the Keychain or Keystore).
// It holds the signing and root keys, never the words; keep it as secret as they are.
func (k *Keys) Marshal() ([]byte, error) {
	return json.Marshal(storedKeys{1, k.id.Seed(), k.root.Bytes(), k.root.KDF(), k.VaultID()})
}

// UnmarshalKeys decodes what Marshal returned.
func UnmarshalKeys(b []byte) (*Keys, error) {
	var s storedKeys
	if err := json.Unmarshal(b, &s); err != nil || s.Format != 1 {
		return nil, errors.New("the key store is not readable")
	}
	id, err := recovery.IdentityFromSeed(s.Seed)
	if err != nil {
		return nil, err
	}
	if id.VaultID().String() != s.VaultID {
		return nil, errors.New("the key store is damaged: its vault ID does not match its key")
	}
	root, err := recovery.RootKeyFromBytes(s.Root, s.KDF)
	if err != nil {
		return nil, fmt.Errorf("the key store is damaged: %w", err)
	}
	return &Keys{id: id, root: root}, nil
}
