package recovery

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

type keyVector struct {
	Secret     string `json:"secret"`
	Passphrase string `json:"passphrase"`
	KDF        struct {
		Algorithm string `json:"algorithm"`
		T         uint32 `json:"t"`
		M         uint32 `json:"m_kib"`
		P         uint8  `json:"p"`
	} `json:"kdf"`
	PublicKey string `json:"signing_public_key"`
	VaultID   string `json:"vault_id"`
	RootKey   string `json:"root_key"`
}

// TestPinnedVectors checks the derivations against keys-v1.json, which never changes.
func TestPinnedVectors(t *testing.T) {
	b, err := os.ReadFile("testdata/keys-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Vectors []keyVector }
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) < 5 {
		t.Fatalf("%d vectors, want at least 5", len(f.Vectors))
	}
	for i, v := range f.Vectors {
		secret, _ := hex.DecodeString(v.Secret)
		id, err := NewIdentity(secret)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(id.PublicKey()); got != v.PublicKey {
			t.Errorf("vector %d: public key %s, want %s", i, got, v.PublicKey)
		}
		if got := id.VaultID().String(); got != v.VaultID {
			t.Errorf("vector %d: vault ID %s, want %s", i, got, v.VaultID)
		}
		kdf := KDF{}
		if v.KDF.Algorithm == "argon2id" {
			kdf = KDF{KDFArgon2id, v.KDF.T, v.KDF.M, v.KDF.P}
		}
		root, err := DeriveRootKey(secret, v.Passphrase, kdf)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(root.Bytes()); got != v.RootKey {
			t.Errorf("vector %d: root key %s, want %s", i, got, v.RootKey)
		}
	}
}

func TestPassphraseNormalizedAndDistinct(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, 32)
	kdf := KDF{KDFArgon2id, 1, 64, 1}
	derive := func(pass string) []byte {
		t.Helper()
		r, err := DeriveRootKey(secret, pass, kdf)
		if err != nil {
			t.Fatal(err)
		}
		return r.Bytes()
	}
	none, err := DeriveRootKey(secret, "", KDF{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(derive("p\u00e1ss"), derive("pa\u0301ss")) {
		t.Error("composed and decomposed passphrases differ")
	}
	if bytes.Equal(derive("pass"), derive("Pass")) || bytes.Equal(derive("pass"), none.Bytes()) {
		t.Error("different passphrases give the same root key")
	}
	other, _ := DeriveRootKey(secret, "pass", KDF{KDFArgon2id, 2, 64, 1})
	if bytes.Equal(derive("pass"), other.Bytes()) {
		t.Error("different Argon2id parameters give the same root key")
	}
}

func TestDeriveRootKeyErrors(t *testing.T) {
	secret := make([]byte, 16)
	tests := []struct {
		name   string
		secret []byte
		pass   string
		kdf    KDF
		want   error
	}{
		{"passphrase missing", secret, "", DefaultArgon2id, ErrPassphraseRequired},
		{"passphrase not used", secret, "x", KDF{}, ErrNoPassphraseUsed},
		{"short secret", make([]byte, 15), "", KDF{}, nil},
		{"long secret", make([]byte, 33), "", KDF{}, nil},
		{"time 0", secret, "x", KDF{KDFArgon2id, 0, 64, 1}, nil},
		{"time 17", secret, "x", KDF{KDFArgon2id, 17, 64, 1}, nil},
		{"memory below 8p", secret, "x", KDF{KDFArgon2id, 1, 31, 4}, nil},
		{"memory over 1 GiB", secret, "x", KDF{KDFArgon2id, 1, 1<<20 + 1, 1}, nil},
		{"threads 0", secret, "x", KDF{KDFArgon2id, 1, 64, 0}, nil},
		{"threads 17", secret, "x", KDF{KDFArgon2id, 1, 1024, 17}, nil},
		{"unknown algorithm", secret, "x", KDF{Algorithm: 2}, nil},
		{"none with parameters", secret, "", KDF{Time: 1}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DeriveRootKey(tc.secret, tc.pass, tc.kdf)
			if err == nil {
				t.Fatal("succeeded, want an error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestVaultIDOwnership(t *testing.T) {
	a, _ := NewIdentity(bytes.Repeat([]byte{1}, 16))
	b, _ := NewIdentity(bytes.Repeat([]byte{2}, 16))
	if !Owns(a.VaultID(), a.PublicKey()) {
		t.Error("a does not own its vault")
	}
	if Owns(a.VaultID(), b.PublicKey()) || Owns(a.VaultID(), a.PublicKey()[:31]) {
		t.Error("b (or a short key) owns a's vault")
	}
	msg := []byte("request")
	if !ed25519.Verify(a.PublicKey(), msg, a.Sign(msg)) {
		t.Error("signature does not verify")
	}
	id, err := ParseVaultID(a.VaultID().String())
	if err != nil || id != a.VaultID() {
		t.Errorf("ParseVaultID(String()) = %v, %v", id, err)
	}
	for _, bad := range []string{"", strings.ToUpper(a.VaultID().String()), a.VaultID().String()[1:], a.VaultID().String() + "0", strings.Repeat("g", 64), "../" + a.VaultID().String()[3:]} {
		if _, err := ParseVaultID(bad); err == nil {
			t.Errorf("ParseVaultID(%q) succeeded", bad)
		}
	}
}

func TestKeysDoNotPrint(t *testing.T) {
	secret := bytes.Repeat([]byte{0x5a}, 16)
	id, _ := NewIdentity(secret)
	root, _ := DeriveRootKey(secret, "", KDF{})
	s := fmt.Sprintf("%v %+v %#v %s %x", id, id, root, root, root)
	if strings.Contains(s, hex.EncodeToString(root.Bytes())[:8]) || strings.Contains(s, hex.EncodeToString(id.priv.Seed())[:8]) {
		t.Errorf("a key printed: %s", s)
	}
	root.Wipe()
	id.Wipe()
	if !bytes.Equal(root.Bytes(), make([]byte, 32)) || !bytes.Equal(id.priv, make([]byte, 64)) {
		t.Error("Wipe left key bytes")
	}
}

// BenchmarkDerive is the cost of going from the words' secret to every key, with and
// without a passphrase at the default Argon2id parameters.
func BenchmarkDerive(b *testing.B) {
	secret := bytes.Repeat([]byte{9}, 32)
	b.Run("no-passphrase", func(b *testing.B) {
		for b.Loop() {
			NewIdentity(secret)
			DeriveRootKey(secret, "", KDF{})
		}
	})
	b.Run("argon2id-default", func(b *testing.B) {
		for b.Loop() {
			NewIdentity(secret)
			DeriveRootKey(secret, "correct horse", DefaultArgon2id)
		}
	})
}

func FuzzParseVaultID(f *testing.F) {
	id, _ := NewIdentity(bytes.Repeat([]byte{1}, 16))
	f.Add(id.VaultID().String())
	f.Add(strings.ToUpper(id.VaultID().String()))
	f.Add("../../etc/passwd")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVaultID(s)
		if err == nil && v.String() != s {
			t.Fatalf("ParseVaultID(%q) accepted a non-canonical form of %s", s, v)
		}
	})
}
