// Command genvectors made the pinned test vectors of docs/keys.md and docs/envelope.md:
//
//	internal/recovery/testdata/keys-v1.json
//	internal/envelope/testdata/v1/vectors.json
//	api/testdata/signatures-v1.json (docs/api.md, "Signed requests")
//	internal/envelope/testdata/v1/readers.json (docs/envelope.md, "What a reader must decide")
//
// It was run once, from the repository root, and refuses to overwrite a file: pinned
// vectors are never regenerated. A format change is a new version with new files.
package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sharevault/sharevault/api"
	"github.com/sharevault/sharevault/internal/envelope"
	"github.com/sharevault/sharevault/internal/recovery"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "genvectors:", err)
		os.Exit(1)
	}
}

func run() error {
	if err := writeNew("internal/recovery/testdata/keys-v1.json", keyVectors); err != nil {
		return err
	}
	if err := writeNew("internal/envelope/testdata/v1/vectors.json", envelopeVectors); err != nil {
		return err
	}
	if err := writeNew("api/testdata/signatures-v1.json", signatureVectors); err != nil {
		return err
	}
	return writeNew("internal/envelope/testdata/v1/readers.json", readerVectors)
}

// readerVectors pins what an independent reader had to guess (docs/envelope.md, "What a
// reader must decide"): a passphrase where the header names none and the reverse, the
// precedence of an unknown version over a short input, and the white space the armor takes.
func readerVectors() (any, error) {
	created := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	seal := func(secret []byte, pass string, kdf recovery.KDF) ([]byte, error) {
		return sealVector(secret, pass, kdf, envelope.Header{Scheme: envelope.EdDSA, KeyID: "reader", Sequence: 1, Created: created}, []byte("a backup"))
	}
	plain, err := seal(secret16, "", recovery.KDF{})
	if err != nil {
		return nil, err
	}
	withPass, err := seal(secret16, "TREZOR", smallKDF)
	if err != nil {
		return nil, err
	}
	s16, x := hex.EncodeToString(secret16), hex.EncodeToString
	pt := hex.EncodeToString([]byte("a backup"))
	armored := string(envelope.Armor(plain))
	crlf := strings.ReplaceAll(armored, "\n", "\r\n")
	firstLF := strings.Index(armored, "\n")
	mixed := armored[:firstLF] + "\r" + armored[firstLF:] // one CRLF, the rest LF
	body := firstLF + 1
	return map[string]any{"vectors": []envVector{
		{"a passphrase given, the header names none", s16, "TREZOR", x(plain), "", "no-passphrase-used", ""},
		{"the header names Argon2id, no passphrase given", s16, "", x(withPass), "", "passphrase-required", ""},
		{"an unknown version on a 5-byte input", s16, "", x([]byte("SVBK\x02")), "", "unsupported", ""},
		{"an unknown version on a 4-byte input is too short to have one", s16, "", x([]byte("SVBK")), "", "malformed", ""},
		{"armor: CRLF line ends", s16, "", "", crlf, "ok", pt},
		{"armor: mixed CRLF and LF line ends", s16, "", "", mixed, "ok", pt},
		{"armor: blank lines and spaces around it", s16, "", "", "\n\n  " + armored + "\n \t\n", "ok", pt},
		{"armor: a lone CR as a line end", s16, "", "", strings.Replace(armored, "\n", "\r", 1), "armor", ""},
		{"armor: a tab inside a line", s16, "", "", armored[:body+10] + "\t" + armored[body+10:], "armor", ""},
		{"armor: a blank line inside", s16, "", "", armored[:body] + "\n" + armored[body:], "armor", ""},
		{"armor: a space at the end of a line", s16, "", "", armored[:body+64] + " " + armored[body+64:], "armor", ""},
	}}, nil
}

// writeNew writes the output of gen to path, only if path does not exist yet.
func writeNew(path string, gen func() (any, error)) error {
	if _, err := os.Stat(path); err == nil {
		fmt.Fprintf(os.Stderr, "genvectors: %s exists; pinned vectors are never regenerated\n", path)
		return nil
	}
	v, err := gen()
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Secrets of the BIP-39 reference vectors, so the words can be typed in by hand.
var (
	secret16 = mustHex("7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f")
	secret32 = mustHex("8080808080808080808080808080808080808080808080808080808080808080")
	secret24 = mustHex("0ce452419635c1a5faf44d60f2029f73fdc43419b4de1f03")
	smallKDF = recovery.KDF{Algorithm: recovery.KDFArgon2id, Time: 1, MemoryKiB: 256, Threads: 1}
)

type kdfJSON struct {
	Algorithm string `json:"algorithm"`
	Time      uint32 `json:"t"`
	MemoryKiB uint32 `json:"m_kib"`
	Threads   uint8  `json:"p"`
}

type keyVector struct {
	Secret     string  `json:"secret"`
	Passphrase string  `json:"passphrase"`
	KDF        kdfJSON `json:"kdf"`
	PublicKey  string  `json:"signing_public_key"`
	VaultID    string  `json:"vault_id"`
	RootKey    string  `json:"root_key"`
}

func keyVectors() (any, error) {
	cases := []struct {
		secret []byte
		pass   string
		kdf    recovery.KDF
	}{
		{secret16, "", recovery.KDF{}},
		{secret24, "", recovery.KDF{}},
		{secret32, "", recovery.KDF{}},
		{secret16, "TREZOR", smallKDF},
		{secret32, "correct horse battery staple", recovery.DefaultArgon2id},
		{secret32, "pa\u0301ssphrase", smallKDF}, // decomposed accent: NFKD leaves it as is
		{secret32, "pássphrase", smallKDF},       // composed: NFKD makes it equal to the one above
	}
	var out []keyVector
	for _, c := range cases {
		id, err := recovery.NewIdentity(c.secret)
		if err != nil {
			return nil, err
		}
		root, err := recovery.DeriveRootKey(c.secret, c.pass, c.kdf)
		if err != nil {
			return nil, err
		}
		kdf := kdfJSON{"none", 0, 0, 0}
		if c.kdf.Algorithm == recovery.KDFArgon2id {
			kdf = kdfJSON{"argon2id", c.kdf.Time, c.kdf.MemoryKiB, c.kdf.Threads}
		}
		out = append(out, keyVector{hex.EncodeToString(c.secret), c.pass, kdf,
			hex.EncodeToString(id.PublicKey()), id.VaultID().String(), hex.EncodeToString(root.Bytes())})
	}
	return map[string]any{"vectors": out}, nil
}

type envVector struct {
	Name       string `json:"name"`
	Secret     string `json:"secret"`
	Passphrase string `json:"passphrase"`
	Envelope   string `json:"envelope,omitempty"`
	Armored    string `json:"armored,omitempty"`
	Expect     string `json:"expect"`
	Plaintext  string `json:"plaintext,omitempty"`
}

// sealVector seals pt as the owner of secret (with pass and kdf) would: h's vault ID is
// the one secret derives.
func sealVector(secret []byte, pass string, kdf recovery.KDF, h envelope.Header, pt []byte) ([]byte, error) {
	id, err := recovery.NewIdentity(secret)
	if err != nil {
		return nil, err
	}
	root, err := recovery.DeriveRootKey(secret, pass, kdf)
	if err != nil {
		return nil, err
	}
	h.VaultID = id.VaultID()
	return envelope.Seal(root, h, pt)
}

func envelopeVectors() (any, error) {
	created := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	backup := []byte("sharevault test vector: this stands where a TSM share backup would be")
	sealWith := func(secret []byte, pass string, kdf recovery.KDF, h envelope.Header, pt []byte) ([]byte, error) {
		h.Created = created
		return sealVector(secret, pass, kdf, h, pt)
	}
	plain, err := sealWith(secret16, "", recovery.KDF{}, envelope.Header{Scheme: envelope.ECDSA, KeyID: "k7Qz3vXb9T1mN0pLr5sYw2", Epoch: 0, Sequence: 1}, backup)
	if err != nil {
		return nil, err
	}
	withPass, err := sealWith(secret32, "TREZOR", smallKDF, envelope.Header{Scheme: envelope.EdDSA, KeyID: "ed-key_01", Epoch: 3, Sequence: 42}, backup)
	if err != nil {
		return nil, err
	}
	defaultKDF, err := sealWith(secret24, "correct horse battery staple", recovery.DefaultArgon2id, envelope.Header{Scheme: envelope.ECDSA, KeyID: "default-kdf", Epoch: 1, Sequence: 7}, backup)
	if err != nil {
		return nil, err
	}
	empty, err := sealWith(secret16, "", recovery.KDF{}, envelope.Header{Scheme: envelope.EdDSA, KeyID: "e", Sequence: 1 << 40}, nil)
	if err != nil {
		return nil, err
	}
	hl := len(plain) - len(backup) - envelope.TagSize // header length of `plain`
	flip := func(b []byte, i int) []byte { c := bytes.Clone(b); c[i] ^= 0x01; return c }
	set := func(b []byte, i int, v byte) []byte { c := bytes.Clone(b); c[i] = v; return c }
	s16, s32, s24 := hex.EncodeToString(secret16), hex.EncodeToString(secret32), hex.EncodeToString(secret24)
	bk := hex.EncodeToString(backup)
	x := hex.EncodeToString
	armored := string(envelope.Armor(plain))
	body := len("-----BEGIN SHAREVAULT BACKUP-----\n") // offset of the first base64 line
	badChar := armored[:body+5] + "*" + armored[body+6:]
	longLine := armored[:body+64] + armored[body+65:] // first two base64 lines joined
	return map[string]any{"vectors": []envVector{
		{"ok: ECDSA, no passphrase", s16, "", x(plain), "", "ok", bk},
		{"ok: EdDSA, Argon2id passphrase", s32, "TREZOR", x(withPass), "", "ok", bk},
		{"ok: default Argon2id parameters", s24, "correct horse battery staple", x(defaultKDF), "", "ok", bk},
		{"ok: empty backup", s16, "", x(empty), "", "ok", ""},
		{"wrong key: other words", s32, "", x(plain), "", "decrypt", ""},
		{"wrong key: other passphrase", s32, "TREZOR!", x(withPass), "", "decrypt", ""},
		{"tampered header: sequence", s16, "", x(flip(plain, 58)), "", "decrypt", ""},
		{"tampered header: epoch", s16, "", x(flip(plain, 51)), "", "decrypt", ""},
		{"tampered header: vault ID", s16, "", x(flip(plain, 20)), "", "decrypt", ""},
		{"tampered header: key ID", s16, "", x(flip(plain, 70)), "", "decrypt", ""},
		{"tampered header: salt", s16, "", x(flip(plain, hl-40)), "", "decrypt", ""},
		{"tampered header: commitment", s16, "", x(flip(plain, hl-1)), "", "decrypt", ""},
		{"tampered ciphertext", s16, "", x(flip(plain, hl+3)), "", "decrypt", ""},
		{"tampered tag", s16, "", x(flip(plain, len(plain)-1)), "", "decrypt", ""},
		{"truncated: last byte", s16, "", x(plain[:len(plain)-1]), "", "decrypt", ""},
		{"extended: one more byte", s16, "", x(append(bytes.Clone(plain), 0)), "", "decrypt", ""},
		{"truncated: ciphertext shorter than a tag", s16, "", x(plain[:hl+15]), "", "malformed", ""},
		{"truncated: inside the header", s16, "", x(plain[:40]), "", "malformed", ""},
		{"empty input", s16, "", "", "", "malformed", ""},
		{"bad magic", s16, "", x(set(plain, 0, 'X')), "", "malformed", ""},
		{"version 2", s16, "", x(set(plain, 4, 2)), "", "unsupported", ""},
		{"unknown scheme", s16, "", x(set(plain, 5, 3)), "", "malformed", ""},
		{"kdf parameters without a kdf", s16, "", x(set(plain, 7, 1)), "", "malformed", ""},
		{"sequence 0", s16, "", x(set(plain, 59, 0)), "", "malformed", ""},
		{"key ID with a slash", s16, "", x(set(plain, 70, '/')), "", "malformed", ""},
		{"key ID length 0", s16, "", x(set(plain, 68, 0)), "", "malformed", ""},
		{"key ID length 65", s16, "", x(set(plain, 68, 65)), "", "malformed", ""},
		{"ok: armored", s16, "", "", armored, "ok", bk},
		{"ok: armored with CRLF and surrounding space", s16, "", "", "\n  " + string(bytes.ReplaceAll([]byte(armored), []byte("\n"), []byte("\r\n"))) + "\n\n", "ok", bk},
		{"armor: bad base64", s16, "", "", badChar, "armor", ""},
		{"armor: long line", s16, "", "", longLine, "armor", ""},
		{"armor: missing END", s16, "", "", armored[:len(armored)-32], "armor", ""},
		{"armor: text before BEGIN", s16, "", "", "hello\n" + armored, "armor", ""},
	}}, nil
}

type signatureVector struct {
	Name           string            `json:"name"`
	Secret         string            `json:"secret"`
	Method         string            `json:"method"`
	Path           string            `json:"path"`
	Query          string            `json:"query"`
	Headers        map[string]string `json:"headers"`
	Body           string            `json:"body"`
	SignatureInput string            `json:"signature_input"`
	Signature      string            `json:"signature"`
	SignatureBase  string            `json:"signature_base,omitempty"`
	Expect         string            `json:"expect"` // ok, malformed (refused by the parser), invalid (does not verify)
}

// signatureVectors signs requests of every shape with the identity of secret32 at a fixed
// created time, then alters copies of them into requests the vault must refuse.
func signatureVectors() (any, error) {
	id, err := recovery.NewIdentity(secret32)
	if err != nil {
		return nil, err
	}
	vault := id.VaultID().String()
	created := time.Unix(1764000000, 0)
	etag := api.ETag([]byte("the previous envelope"))
	sign := func(name, method, path, query string, body []byte, hdr ...string) signatureVector {
		u := "http://127.0.0.1" + path
		if query != "" {
			u += "?" + query
		}
		req, err := http.NewRequest(method, u, bytes.NewReader(body))
		if err != nil {
			panic(err)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		api.Sign(req, body, id, created)
		v := signatureVector{Name: name, Secret: hex.EncodeToString(secret32), Method: method, Path: path, Query: query,
			Headers: map[string]string{}, Body: hex.EncodeToString(body), Expect: "ok",
			SignatureInput: req.Header.Get("Signature-Input"), Signature: req.Header.Get("Signature")}
		for _, c := range api.CoveredComponents(req.Header) {
			if c[0] != '@' {
				v.Headers[c] = req.Header.Get(c)
			}
		}
		base, err := api.SignatureBase(req)
		if err != nil {
			panic(err)
		}
		v.SignatureBase = string(base)
		return v
	}
	get := sign("GET the latest version", "GET", api.KeyPath(vault, "key-1"), "", nil)
	create := sign("PUT a key's first version (If-None-Match)", "PUT", api.KeyPath(vault, "key-1"), "", []byte("envelope bytes"), "If-None-Match", "*")
	replace := sign("PUT a new version (If-Match)", "PUT", api.KeyPath(vault, "key-1"), "", []byte("envelope bytes 2"), "If-Match", `"`+etag+`"`)
	out := []signatureVector{get, create, replace,
		sign("DELETE a version", "DELETE", api.VersionPath(vault, "key-1", 7), "", nil),
		sign("GET with a query", "GET", api.KeysPath(vault), "a=1&b=two", nil),
	}
	bad := func(name, expect string, v signatureVector, change func(v *signatureVector)) {
		v.Name, v.Expect, v.SignatureBase = name, expect, ""
		v.Headers = maps.Clone(v.Headers)
		change(&v)
		out = append(out, v)
	}
	in := func(old, new string) func(v *signatureVector) {
		return func(v *signatureVector) {
			if !strings.Contains(v.SignatureInput, old) {
				panic(old)
			}
			v.SignatureInput = strings.Replace(v.SignatureInput, old, new, 1)
		}
	}
	bad("components reordered", "malformed", get, in(`"@method" "@path"`, `"@path" "@method"`))
	bad("an extra component", "malformed", get, in(`"content-digest"`, `"content-digest" "host"`))
	bad("trailer parameter on a component", "malformed", get, in(`"content-digest"`, `"content-digest";tr`))
	bad("precondition not covered", "malformed", replace, in(` "if-match"`, ""))
	bad("parameters in another order", "malformed", get, in(`;keyid=`, `;alg="ed25519";keyid=`))
	bad("an extra parameter", "malformed", get, in(`alg="ed25519"`, `alg="ed25519";nonce="x"`))
	bad("keyid in upper case", "malformed", get, in(`keyid="`, `keyid="`+strings.ToUpper(hex.EncodeToString(id.PublicKey())[:2])+`x`))
	bad("a second signature", "malformed", get, in(`alg="ed25519"`, `alg="ed25519", sig2=("@method");created=1764000000`))
	bad("precondition rewritten from If-Match to If-None-Match", "malformed", replace, func(v *signatureVector) {
		delete(v.Headers, "if-match")
		v.Headers["if-none-match"] = "*"
	})
	bad("precondition rewritten, coverage renamed", "invalid", replace, func(v *signatureVector) {
		delete(v.Headers, "if-match")
		v.Headers["if-none-match"] = "*"
		in(`"if-match"`, `"if-none-match"`)(v)
	})
	bad("another ETag in If-Match", "invalid", replace, func(v *signatureVector) { v.Headers["if-match"] = `"` + strings.Repeat("0", 64) + `"` })
	bad("another method", "invalid", get, func(v *signatureVector) { v.Method = "DELETE" })
	bad("another path", "invalid", get, func(v *signatureVector) { v.Path = api.KeyPath(vault, "key-2") })
	bad("another body digest", "invalid", create, func(v *signatureVector) { v.Headers["content-digest"] = api.ContentDigest([]byte("other")) })
	bad("created changed", "invalid", get, in("created=1764000000", "created=1764000001"))
	return struct {
		Vectors []signatureVector `json:"vectors"`
	}{out}, nil
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
