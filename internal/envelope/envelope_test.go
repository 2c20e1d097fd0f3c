package envelope

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/sharevault/sharevault/internal/recovery"
)

type vector struct {
	Name       string `json:"name"`
	Secret     string `json:"secret"`
	Passphrase string `json:"passphrase"`
	Envelope   string `json:"envelope"`
	Armored    string `json:"armored"`
	Expect     string `json:"expect"`
	Plaintext  string `json:"plaintext"`
}

func loadVectors(t testing.TB) []vector { return loadVectorFile(t, "testdata/v1/vectors.json", 20) }

func loadVectorFile(t testing.TB, path string, least int) []vector {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Vectors []vector }
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) < least {
		t.Fatalf("%d vectors, want at least %d", len(f.Vectors), least)
	}
	return f.Vectors
}

// TestReaderVectors checks the pinned vectors of what a reader must decide
// (testdata/v1/readers.json): passphrases the header does not match, an unknown version
// on a short input, the armor's white space.
func TestReaderVectors(t *testing.T) {
	checkVectors(t, loadVectorFile(t, "testdata/v1/readers.json", 10),
		"ok", "armor", "unsupported", "malformed", "passphrase-required", "no-passphrase-used")
}

// input returns a vector's envelope bytes, or the armor error.
func (v vector) input() ([]byte, error) {
	if v.Armored != "" {
		return Dearmor([]byte(v.Armored))
	}
	return hex.DecodeString(v.Envelope)
}

// openVector opens a vector the way a client does: header first, then the root key
// under the header's KDF, then the envelope. It returns the outcome's name.
func openVector(v vector) (string, []byte) {
	b, err := v.input()
	if err != nil {
		if errors.Is(err, ErrArmor) {
			return "armor", nil
		}
		return "bad vector: " + err.Error(), nil
	}
	outcome := func(err error) string {
		switch {
		case errors.Is(err, ErrDecrypt):
			return "decrypt"
		case errors.Is(err, ErrUnsupportedVersion):
			return "unsupported"
		case errors.Is(err, ErrMalformed):
			return "malformed"
		}
		return "unexpected: " + err.Error()
	}
	h, err := ParseHeader(b)
	if err != nil {
		return outcome(err), nil
	}
	secret, _ := hex.DecodeString(v.Secret)
	root, err := recovery.DeriveRootKey(secret, v.Passphrase, h.KDF)
	switch {
	case errors.Is(err, recovery.ErrPassphraseRequired):
		return "passphrase-required", nil
	case errors.Is(err, recovery.ErrNoPassphraseUsed):
		return "no-passphrase-used", nil
	case err != nil:
		return "root key: " + err.Error(), nil
	}
	_, pt, err := Open(root, b)
	if err != nil {
		return outcome(err), nil
	}
	return "ok", pt
}

// TestVectorsV1 checks that every pinned v1 vector still opens, or fails, as recorded.
func TestVectorsV1(t *testing.T) {
	checkVectors(t, loadVectors(t), "ok", "decrypt", "malformed", "unsupported", "armor")
}

// checkVectors runs vectors and requires that each outcome of want is expected by one.
func checkVectors(t *testing.T, vs []vector, want ...string) {
	t.Helper()
	seen := map[string]bool{}
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			got, pt := openVector(v)
			if got != v.Expect {
				t.Fatalf("got %s, want %s", got, v.Expect)
			}
			if got == "ok" && hex.EncodeToString(pt) != v.Plaintext {
				t.Errorf("plaintext %x, want %s", pt, v.Plaintext)
			}
			seen[v.Expect] = true
		})
	}
	for _, w := range want {
		if !seen[w] {
			t.Errorf("no vector expects %s", w)
		}
	}
}

func testRoot(t testing.TB, secret byte) (*recovery.RootKey, recovery.VaultID) {
	t.Helper()
	s := bytes.Repeat([]byte{secret}, 32)
	root, err := recovery.DeriveRootKey(s, "", recovery.KDF{})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := recovery.NewIdentity(s)
	return root, id.VaultID()
}

func TestSealOpenRoundTrip(t *testing.T) {
	root, vault := testRoot(t, 1)
	other, _ := testRoot(t, 2)
	created := time.Date(2030, 1, 2, 3, 4, 5, 600, time.FixedZone("x", 3600))
	for _, size := range []int{0, 1, 100, 64 << 10, MaxPlaintext} {
		pt := bytes.Repeat([]byte{0xa5}, size)
		h := Header{Scheme: EdDSA, VaultID: vault, KeyID: "key-1", Epoch: 2, Sequence: 9, Created: created}
		env, err := Seal(root, h, pt)
		if err != nil {
			t.Fatalf("Seal(%d bytes): %v", size, err)
		}
		got, back, err := Open(root, env)
		if err != nil {
			t.Fatalf("Open(%d bytes): %v", size, err)
		}
		if !bytes.Equal(back, pt) {
			t.Fatalf("Open(%d bytes) gave other bytes", size)
		}
		if got.KeyID != "key-1" || got.Epoch != 2 || got.Sequence != 9 || got.VaultID != vault || got.Scheme != EdDSA ||
			!got.Created.Equal(created.Truncate(time.Second)) {
			t.Errorf("header %+v does not match what was sealed", got)
		}
		if _, _, err := Open(other, env); !errors.Is(err, ErrDecrypt) {
			t.Errorf("Open with another key: got %v, want ErrDecrypt", err)
		}
		again, _ := Seal(root, h, pt)
		if bytes.Equal(again[:len(again)-len(pt)-TagSize], env[:len(env)-len(pt)-TagSize]) {
			t.Error("two seals share a header: the salt is not fresh")
		}
		if a, err := Dearmor(Armor(env)); err != nil || !bytes.Equal(a, env) {
			t.Errorf("armor round trip: %v", err)
		}
	}
}

func TestSealRejects(t *testing.T) {
	root, vault := testRoot(t, 1)
	ok := Header{Scheme: ECDSA, VaultID: vault, KeyID: "k", Sequence: 1}
	tests := []struct {
		name string
		edit func(h *Header)
		size int
	}{
		{"too large", func(h *Header) {}, MaxPlaintext + 1},
		{"no scheme", func(h *Header) { h.Scheme = 0 }, 1},
		{"sequence 0", func(h *Header) { h.Sequence = 0 }, 1},
		{"empty key ID", func(h *Header) { h.KeyID = "" }, 1},
		{"key ID with dot", func(h *Header) { h.KeyID = ".." }, 1},
		{"key ID too long", func(h *Header) { h.KeyID = string(bytes.Repeat([]byte{'a'}, 65)) }, 1},
		{"before 1970", func(h *Header) { h.Created = time.Unix(-5, 0) }, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := ok
			tc.edit(&h)
			if _, err := Seal(root, h, make([]byte, tc.size)); err == nil {
				t.Error("Seal succeeded")
			}
		})
	}
	if _, err := Seal(root, ok, nil); err != nil {
		t.Fatalf("the valid header was refused: %v", err)
	}
}

// TestKeyCommitment shows the commitment is checked: a header whose commitment was
// replaced by the one of another key does not open, even under that key.
func TestKeyCommitment(t *testing.T) {
	root, vault := testRoot(t, 1)
	env, _ := Seal(root, Header{Scheme: ECDSA, VaultID: vault, KeyID: "k", Sequence: 1}, []byte("x"))
	e, _ := Parse(env)
	e.Header.Commitment[0] ^= 1
	if _, _, err := Open(root, e.Marshal()); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("got %v, want ErrDecrypt", err)
	}
}

func FuzzParse(f *testing.F) {
	seeds := 0
	for _, v := range loadVectors(f) {
		if b, err := v.input(); err == nil {
			f.Add(b)
			seeds++
		}
	}
	if seeds == 0 {
		f.Fatal("no seeds from the vectors")
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Parse(b)
		if err != nil {
			return
		}
		if got := e.Marshal(); !bytes.Equal(got, b) {
			t.Fatalf("Parse then Marshal changed the bytes:\n in  %x\n out %x", b, got)
		}
	})
}

func FuzzOpen(f *testing.F) {
	root, _ := testRoot(f, 0x7f)
	seeds := 0
	for _, v := range loadVectors(f) {
		if b, err := v.input(); err == nil && v.Passphrase == "" {
			f.Add(b)
			seeds++
		}
	}
	if seeds == 0 {
		f.Fatal("no seeds from the vectors")
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// None of the inputs was sealed under this root key, so none may open.
		if _, _, err := Open(root, b); err == nil {
			t.Fatal("opened an envelope without its key")
		}
	})
}

func FuzzDearmor(f *testing.F) {
	for _, v := range loadVectors(f) {
		if v.Armored != "" {
			f.Add([]byte(v.Armored))
		}
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		b, err := Dearmor(text)
		if err != nil {
			return
		}
		if c, err := Dearmor(Armor(b)); err != nil || !bytes.Equal(c, b) {
			t.Fatalf("armor does not round-trip: %v", err)
		}
	})
}

func ExampleSeal() {
	secret := bytes.Repeat([]byte{0x42}, 32) // in real use: the secret the words encode
	id, _ := recovery.NewIdentity(secret)
	root, _ := recovery.DeriveRootKey(secret, "", recovery.KDF{})
	sealed, err := Seal(root, Header{Scheme: ECDSA, VaultID: id.VaultID(), KeyID: "my-key", Sequence: 1}, []byte("share backup"))
	if err != nil {
		panic(err)
	}
	h, _ := ParseHeader(sealed) // what the vault sees
	fmt.Println(h.KeyID, h.Sequence, h.Scheme, len(sealed)-len("share backup"))
	// Output: my-key 1 ECDSA 155
}

func ExampleOpen() {
	secret := bytes.Repeat([]byte{0x42}, 32)
	root, _ := recovery.DeriveRootKey(secret, "", recovery.KDF{})
	sealed, _ := Seal(root, Header{Scheme: EdDSA, KeyID: "my-key", Sequence: 1}, []byte("share backup"))

	h, _ := ParseHeader(sealed)
	root, _ = recovery.DeriveRootKey(secret, "", h.KDF) // the header names the KDF
	_, backup, err := Open(root, sealed)
	fmt.Printf("%s %v\n", backup, err)

	wrong, _ := recovery.DeriveRootKey(bytes.Repeat([]byte{0x43}, 32), "", h.KDF)
	_, _, err = Open(wrong, sealed)
	fmt.Println(err)
	// Output:
	// share backup <nil>
	// cannot open the backup: wrong words or passphrase, or the backup is damaged
}

func ExampleArmor() {
	secret := bytes.Repeat([]byte{0x42}, 32)
	root, _ := recovery.DeriveRootKey(secret, "", recovery.KDF{})
	sealed, _ := Seal(root, Header{Scheme: EdDSA, KeyID: "k", Sequence: 1}, nil)
	text := Armor(sealed)
	back, err := Dearmor(text)
	fmt.Println(bytes.Equal(back, sealed), err, string(text[:33]))
	// Output: true <nil> -----BEGIN SHAREVAULT BACKUP-----
}

var sizes = []struct {
	name string
	n    int
}{{"4KiB", 4 << 10}, {"64KiB", 64 << 10}, {"1MiB", 1 << 20}}

// BenchmarkSeal runs Seal beside raw AES-256-GCM (one AEAD, key set up once, fixed
// nonce) at each size, in the same run, so the ratio is what counts.
func BenchmarkSeal(b *testing.B) {
	root, vault := testRoot(b, 1)
	h := Header{Scheme: ECDSA, VaultID: vault, KeyID: "bench-key-0001", Sequence: 1, Created: time.Unix(1e9, 0)}
	for _, s := range sizes {
		pt := make([]byte, s.n)
		b.Run("raw-aes-gcm/"+s.name, func(b *testing.B) {
			aead := rawAEAD(b)
			var nonce [12]byte
			b.SetBytes(int64(s.n))
			for b.Loop() {
				aead.Seal(nil, nonce[:], pt, nil)
			}
		})
		b.Run("envelope/"+s.name, func(b *testing.B) {
			b.SetBytes(int64(s.n))
			for b.Loop() {
				if _, err := Seal(root, h, pt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	root, vault := testRoot(b, 1)
	for _, s := range sizes {
		pt := make([]byte, s.n)
		env, _ := Seal(root, Header{Scheme: ECDSA, VaultID: vault, KeyID: "bench-key-0001", Sequence: 1}, pt)
		b.Run("raw-aes-gcm/"+s.name, func(b *testing.B) {
			aead := rawAEAD(b)
			var nonce [12]byte
			ct := aead.Seal(nil, nonce[:], pt, nil)
			b.SetBytes(int64(s.n))
			for b.Loop() {
				if _, err := aead.Open(nil, nonce[:], ct, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("envelope/"+s.name, func(b *testing.B) {
			b.SetBytes(int64(s.n))
			for b.Loop() {
				if _, _, err := Open(root, env); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func rawAEAD(b *testing.B) cipher.AEAD {
	block, err := aes.NewCipher(make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	return aead
}
