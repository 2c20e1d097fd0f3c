package api

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/yaronf/httpsign"
)

type testKey struct{ priv ed25519.PrivateKey }

func (k testKey) PublicKey() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }
func (k testKey) Sign(msg []byte) []byte       { return ed25519.Sign(k.priv, msg) }

func newKey(b byte) testKey { return testKey{ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, 32))} }

const vaultPath = "/v1/vaults/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef/keys/k1"

func signed(t *testing.T, method string, body []byte, hdr ...string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "http://127.0.0.1:8080"+vaultPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	Sign(req, body, newKey(1), time.Now())
	return req
}

// TestSignIsRFC9421 checks what Sign writes with an independent RFC 9421 implementation,
// for every shape of request the API has.
func TestSignIsRFC9421(t *testing.T) {
	tests := []struct {
		name   string
		method string
		body   []byte
		hdr    []string
	}{
		{"GET", "GET", nil, nil},
		{"DELETE", "DELETE", nil, nil},
		{"PUT create", "PUT", []byte("envelope"), []string{"If-None-Match", "*"}},
		{"PUT replace", "PUT", []byte("envelope"), []string{"If-Match", `"` + strings.Repeat("ab", 32) + `"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := signed(t, tc.method, tc.body, tc.hdr...)
			cfg := httpsign.NewVerifyConfig().SetKeyID(keyHex(newKey(1))).SetVerifyCreated(true).
				SetNotOlderThan(time.Minute).SetNotNewerThan(time.Minute).SetAllowedAlgs([]string{"ed25519"})
			v, err := httpsign.NewEd25519Verifier(newKey(1).PublicKey(), cfg, httpsign.Headers(CoveredComponents(req.Header)...))
			if err != nil {
				t.Fatal(err)
			}
			if err := httpsign.VerifyRequest(SignatureLabel, *v, req); err != nil {
				t.Fatalf("httpsign rejects Sign's signature: %v", err)
			}
			sig, err := ParseSignature(req.Header)
			if err != nil {
				t.Fatalf("ParseSignature: %v", err)
			}
			if err := sig.Verify(req); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

func keyHex(k testKey) string { return hex.EncodeToString(k.PublicKey()) }

// TestParseSignatureRefuses: anything but the exact form the API defines is refused
// before a signature is checked, whatever RFC 9421 would allow.
func TestParseSignatureRefuses(t *testing.T) {
	edit := func(field, old, new string) func(*http.Request) {
		return func(r *http.Request) {
			v := r.Header.Get(field)
			if !strings.Contains(v, old) {
				t.Fatalf("%s has no %q", field, old)
			}
			r.Header.Set(field, strings.Replace(v, old, new, 1))
		}
	}
	tests := []struct {
		name   string
		method string
		hdr    []string
		change func(*http.Request)
	}{
		{"no Signature", "GET", nil, func(r *http.Request) { r.Header.Del("Signature") }},
		{"no Signature-Input", "GET", nil, func(r *http.Request) { r.Header.Del("Signature-Input") }},
		{"two Signature-Input fields", "GET", nil, func(r *http.Request) { r.Header.Add("Signature-Input", r.Header.Get("Signature-Input")) }},
		{"two signatures", "GET", nil, edit("Signature-Input", `alg="ed25519"`, `alg="ed25519", sig2=("@method");created=1`)},
		{"other label", "GET", nil, edit("Signature-Input", "sig1=", "sig2=")},
		{"reordered components", "GET", nil, edit("Signature-Input", `"@method" "@path"`, `"@path" "@method"`)},
		{"extra component", "GET", nil, edit("Signature-Input", `"content-digest"`, `"content-digest" "host"`)},
		{"missing component", "GET", nil, edit("Signature-Input", ` "@query"`, "")},
		{"trailer parameter", "GET", nil, edit("Signature-Input", `"content-digest"`, `"content-digest";tr`)},
		{"precondition not covered", "PUT", []string{"If-Match", `"aa"`}, edit("Signature-Input", ` "if-match"`, "")},
		{"the other precondition covered", "PUT", []string{"If-None-Match", "*"}, edit("Signature-Input", `"if-none-match"`, `"if-match"`)},
		{"extra parameter", "GET", nil, edit("Signature-Input", `alg="ed25519"`, `alg="ed25519";expires=99999999999`)},
		{"parameters reordered", "GET", nil, edit("Signature-Input", `;alg="ed25519"`, ``)},
		{"other alg", "GET", nil, edit("Signature-Input", `alg="ed25519"`, `alg="hmac-sha256"`)},
		{"created with a sign", "GET", nil, edit("Signature-Input", "created=", "created=+")},
		{"created negative", "GET", nil, edit("Signature-Input", "created=", "created=-")},
		{"keyid upper case", "GET", nil, edit("Signature-Input", `keyid="`+keyHex(newKey(1))[:4], `keyid="`+strings.ToUpper(keyHex(newKey(1))[:4]))},
		{"keyid short", "GET", nil, edit("Signature-Input", keyHex(newKey(1)), keyHex(newKey(1))[:62])},
		{"space in the list", "GET", nil, edit("Signature-Input", `"@method" `, `"@method"  `)},
		{"signature not base64", "GET", nil, edit("Signature", "sig1=:", "sig1=:*")},
		{"signature with a line break", "GET", nil, func(r *http.Request) {
			v := r.Header.Get("Signature")
			r.Header["Signature"] = []string{v[:20] + "\n" + v[20:]}
		}},
		{"signature with a parameter", "GET", nil, func(r *http.Request) { r.Header.Set("Signature", r.Header.Get("Signature")+";x=1") }},
		{"signature short", "GET", nil, func(r *http.Request) { r.Header.Set("Signature", "sig1=:AAAA:") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := signed(t, tc.method, nil, tc.hdr...)
			tc.change(req)
			if _, err := ParseSignature(req.Header); err == nil {
				t.Errorf("ParseSignature accepted Signature-Input %q, Signature %q", req.Header.Get("Signature-Input"), req.Header.Get("Signature"))
			}
		})
	}
}

// TestVerifyRefuses: a well-formed signature over other bytes than the request's.
func TestVerifyRefuses(t *testing.T) {
	tests := []struct {
		name   string
		change func(*http.Request)
	}{
		{"method changed", func(r *http.Request) { r.Method = "DELETE" }},
		{"path changed", func(r *http.Request) { r.URL.Path += "x" }},
		{"query added", func(r *http.Request) { r.URL.RawQuery = "a=1" }},
		{"digest changed", func(r *http.Request) { r.Header.Set("Content-Digest", ContentDigest([]byte("other"))) }},
		{"If-Match changed", func(r *http.Request) { r.Header.Set("If-Match", `"bb"`) }},
		{"If-Match doubled", func(r *http.Request) { r.Header.Add("If-Match", `"aa"`) }},
		{"another key", func(r *http.Request) {
			r.Header.Set("Signature-Input", strings.Replace(r.Header.Get("Signature-Input"), keyHex(newKey(1)), keyHex(newKey(2)), 1))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := signed(t, "PUT", []byte("x"), "If-Match", `"aa"`)
			tc.change(req)
			sig, err := ParseSignature(req.Header)
			if err != nil {
				return // refused earlier: fine too
			}
			if err := sig.Verify(req); err == nil {
				t.Error("a changed request verified")
			}
		})
	}
}

// TestPreconditionRewrite: the attack of issue 15: a captured upload cannot be turned from
// one precondition into the other.
func TestPreconditionRewrite(t *testing.T) {
	req := signed(t, "PUT", []byte("x"), "If-Match", `"aa"`)
	req.Header.Del("If-Match")
	req.Header.Set("If-None-Match", "*")
	if sig, err := ParseSignature(req.Header); err == nil && sig.Verify(req) == nil {
		t.Fatal("an If-Match upload rewritten to If-None-Match still verifies")
	}
}

// TestSignatureVectors: the pinned vectors of docs/api.md (api/testdata/signatures-v1.json,
// made once by internal/genvectors): each valid request verifies with its exact signature
// base, and each altered one is refused in the way it names.
func TestSignatureVectors(t *testing.T) {
	b, err := os.ReadFile("testdata/signatures-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Vectors []struct {
			Name, Secret, Method, Path, Query, Body string
			Headers                                 map[string]string
			SignatureInput                          string `json:"signature_input"`
			Signature                               string
			SignatureBase                           string `json:"signature_base"`
			Expect                                  string
		}
	}
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, v := range file.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			body, _ := hex.DecodeString(v.Body)
			u := "http://127.0.0.1" + v.Path
			if v.Query != "" {
				u += "?" + v.Query
			}
			req, err := http.NewRequest(v.Method, u, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			for k, x := range v.Headers {
				req.Header.Set(k, x)
			}
			req.Header.Set("Signature-Input", v.SignatureInput)
			req.Header.Set("Signature", v.Signature)
			got := "ok"
			if sig, err := ParseSignature(req.Header); err != nil {
				got = "malformed"
			} else if err := sig.Verify(req); err != nil {
				got = "invalid"
			}
			if got != v.Expect {
				t.Fatalf("got %s, want %s", got, v.Expect)
			}
			seen[got]++
			if got == "ok" {
				if base, _ := SignatureBase(req); string(base) != v.SignatureBase {
					t.Errorf("signature base\n%s\nwant\n%s", base, v.SignatureBase)
				}
				if v.Headers["content-digest"] != ContentDigest(body) {
					t.Error("the vector's Content-Digest is not its body's")
				}
			}
		})
	}
	if seen["ok"] < 5 || seen["malformed"] < 5 || seen["invalid"] < 5 {
		t.Errorf("vectors by outcome: %v; want every outcome", seen)
	}
}

// FuzzParseSignature: ParseSignature never panics, and what it accepts is exactly the one
// form Sign writes: the fields rebuild byte for byte from what it parsed. Seeded from the
// vectors.
func FuzzParseSignature(f *testing.F) {
	b, err := os.ReadFile("testdata/signatures-v1.json")
	if err != nil {
		f.Fatal(err)
	}
	var file struct {
		Vectors []struct {
			Headers        map[string]string
			SignatureInput string `json:"signature_input"`
			Signature      string
		}
	}
	if err := json.Unmarshal(b, &file); err != nil || len(file.Vectors) == 0 {
		f.Fatalf("no seeds: %v", err)
	}
	for _, v := range file.Vectors {
		_, precondition := v.Headers["if-match"]
		f.Add(v.SignatureInput, v.Signature, precondition)
	}
	f.Fuzz(func(t *testing.T, input, signature string, precondition bool) {
		h := http.Header{}
		h.Set("Signature-Input", input)
		h.Set("Signature", signature)
		if precondition {
			h.Set("If-Match", `"x"`)
		}
		s, err := ParseSignature(h)
		if err != nil {
			return
		}
		if got := SignatureLabel + "=" + signatureParams(CoveredComponents(h), s.Created.Unix(), hex.EncodeToString(s.KeyID)); got != input {
			t.Fatalf("accepted %q, which is not the canonical %q", input, got)
		}
		if got := SignatureLabel + "=:" + base64.StdEncoding.EncodeToString(s.sig) + ":"; got != signature {
			t.Fatalf("accepted Signature %q, canonical %q", signature, got)
		}
	})
}
