package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sharevault/sharevault/api"
	"github.com/sharevault/sharevault/internal/envelope"
	"github.com/sharevault/sharevault/internal/recovery"
)

type owner struct {
	id   *recovery.Identity
	root *recovery.RootKey
}

// newOwner returns the owner numbered n: a secret of its own, so a vault of its own.
func newOwner(n int) *owner {
	s := make([]byte, 32)
	s[0], s[1], s[2], s[31] = byte(n), byte(n>>8), byte(n>>16), 0xc7
	id, _ := recovery.NewIdentity(s)
	root, _ := recovery.DeriveRootKey(s, "", recovery.KDF{})
	return &owner{id, root}
}

func (o *owner) vault() string { return o.id.VaultID().String() }

func (o *owner) seal(key string, seq uint64) []byte {
	env, _ := envelope.Seal(o.root, envelope.Header{Scheme: envelope.ECDSA, VaultID: o.id.VaultID(), KeyID: key, Sequence: seq}, []byte("share"))
	return env
}

// signWith signs like api.Sign but with chosen components and parameters, for forgeries.
func signWith(req *http.Request, o *owner, components []string, created time.Time, alg string) {
	var base strings.Builder
	quoted := make([]string, len(components))
	for i, c := range components {
		quoted[i] = `"` + c + `"`
		switch c {
		case "@method":
			fmt.Fprintf(&base, "\"@method\": %s\n", req.Method)
		case "@path":
			fmt.Fprintf(&base, "\"@path\": %s\n", req.URL.EscapedPath())
		case "@query":
			fmt.Fprintf(&base, "\"@query\": ?%s\n", req.URL.RawQuery)
		case "@authority":
			fmt.Fprintf(&base, "\"@authority\": %s\n", req.URL.Host)
		case "content-digest", "if-match", "if-none-match":
			fmt.Fprintf(&base, "%q: %s\n", c, req.Header.Get(c))
		}
	}
	params := fmt.Sprintf(`(%s);created=%d;keyid="%s";alg="%s"`, strings.Join(quoted, " "), created.Unix(), hex.EncodeToString(o.id.PublicKey()), alg)
	fmt.Fprintf(&base, "\"@signature-params\": %s", params)
	req.Header.Set("Signature-Input", "sig1="+params)
	req.Header.Set("Signature", "sig1=:"+base64.StdEncoding.EncodeToString(o.id.Sign([]byte(base.String())))+":")
}

type result struct {
	status  int
	problem string
}

func send(t *testing.T, req *http.Request) result {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return result{status: -1, problem: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var p api.Problem
	json.Unmarshal(b, &p)
	return result{resp.StatusCode, strings.TrimPrefix(p.Type, "urn:sharevault:problem:")}
}

// TestHostileMatrix sends every kind of bad request the threat model names to a real
// server (run, with its http.Server limits). Each gets its documented status, none
// succeeds, and the server stays up with the owner's data intact.
func TestHostileMatrix(t *testing.T) {
	base := start(t, "--store", t.TempDir(), "--max-body", "4096", "--max-header-bytes", "8192", "--read-header-timeout", "1s")
	o, thief := newOwner(1), newOwner(2)
	key := "victim-key"
	env1 := o.seal(key, 1)
	env2 := o.seal(key, 2)
	keyURL := base + api.KeyPath(o.vault(), key)

	signed := func(method, url string, body []byte, hdr ...string) *http.Request {
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		api.Sign(req, body, o.id, time.Now())
		return req
	}
	if r := send(t, signed("PUT", keyURL, env1, "If-None-Match", "*")); r.status != 201 {
		t.Fatalf("setup PUT: %+v", r)
	}
	put2 := func() *http.Request { return signed("PUT", keyURL, env2, "If-Match", `"`+api.ETag(env1)+`"`) }
	if r := send(t, put2()); r.status != 201 {
		t.Fatalf("setup PUT 2: %+v", r)
	}

	forged := func(components []string, created time.Time, alg string) func() *http.Request {
		return func() *http.Request {
			req, _ := http.NewRequest("GET", keyURL, nil)
			req.Header.Set("Content-Digest", api.ContentDigest(nil))
			signWith(req, o, components, created, alg)
			return req
		}
	}
	all := api.Components
	tests := []struct {
		name    string
		req     func() *http.Request
		status  int
		problem string
	}{
		{"signature by another vault's key", func() *http.Request {
			req, _ := http.NewRequest("GET", keyURL, nil)
			api.Sign(req, nil, thief.id, time.Now())
			return req
		}, 404, "not-found"},
		{"expired created time", forged(all, time.Now().Add(-10*time.Minute), "ed25519"), 401, "unauthorized"},
		{"future created time", forged(all, time.Now().Add(10*time.Minute), "ed25519"), 401, "unauthorized"},
		{"created two minutes ahead", forged(all, time.Now().Add(2*time.Minute), "ed25519"), 401, "unauthorized"},
		{"components reordered", forged([]string{"@path", "@method", "@query", "content-digest"}, time.Now(), "ed25519"), 401, "unauthorized"},
		{"an extra component", forged([]string{"@method", "@path", "@query", "content-digest", "@authority"}, time.Now(), "ed25519"), 401, "unauthorized"},
		{"trailer parameter", func() *http.Request {
			req := forged(all, time.Now(), "ed25519")()
			req.Header.Set("Signature-Input", strings.Replace(req.Header.Get("Signature-Input"), `"content-digest"`, `"content-digest";tr`, 1))
			return req
		}, 401, "unauthorized"},
		{"precondition not covered", func() *http.Request {
			fresh := o.seal("fresh-key", 1)
			req, _ := http.NewRequest("PUT", base+api.KeyPath(o.vault(), "fresh-key"), bytes.NewReader(fresh))
			req.Header.Set("Content-Digest", api.ContentDigest(fresh))
			req.Header.Set("If-None-Match", "*")
			signWith(req, o, all, time.Now(), "ed25519")
			return req
		}, 401, "unauthorized"},
		{"precondition rewritten from If-Match to If-None-Match", func() *http.Request {
			fresh := o.seal("fresh-key", 1)
			req := signed("PUT", base+api.KeyPath(o.vault(), "fresh-key"), fresh, "If-Match", `"`+api.ETag(env2)+`"`)
			req.Header.Del("If-Match")
			req.Header.Set("If-None-Match", "*")
			return req
		}, 401, "unauthorized"},
		{"content-digest not covered", forged([]string{"@method", "@path", "@query"}, time.Now(), "ed25519"), 401, "unauthorized"},
		{"path not covered", forged([]string{"@method", "content-digest"}, time.Now(), "ed25519"), 401, "unauthorized"},
		{"wrong alg", forged(all, time.Now(), "hmac-sha256"), 401, "unauthorized"},
		{"replayed PUT", put2, 412, "precondition-failed"},
		{"replayed DELETE", func() *http.Request {
			return signed("DELETE", base+api.VersionPath(o.vault(), key, 99), nil)
		}, 404, "not-found"},
		{"body does not match Content-Digest", func() *http.Request {
			req := signed("PUT", keyURL, o.seal(key, 3), "If-Match", `"`+api.ETag(env2)+`"`)
			req.Body = io.NopCloser(bytes.NewReader(o.seal(key, 4)))
			return req
		}, 400, "bad-request"},
		{"body over the limit", func() *http.Request {
			return signed("PUT", keyURL, bytes.Repeat([]byte("x"), 5000), "If-Match", `"`+api.ETag(env2)+`"`)
		}, 413, "too-large"},
		{"body over the limit, chunked", func() *http.Request {
			body := bytes.Repeat([]byte("x"), 50000)
			req := signed("PUT", keyURL, body, "If-Match", `"`+api.ETag(env2)+`"`)
			req.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body))) // no Content-Length
			req.ContentLength = -1
			return req
		}, 413, "too-large"},
		{"garbage envelope", func() *http.Request {
			return signed("PUT", keyURL, []byte("SVBK\x01garbage"), "If-Match", `"`+api.ETag(env2)+`"`)
		}, 422, "invalid-envelope"},
		{"path traversal in the key", func() *http.Request {
			return signed("GET", base+"/v1/vaults/"+o.vault()+"/keys/..%2F..%2Fmanifest", nil)
		}, 404, "not-found"},
		{"dot-dot segment", func() *http.Request { return signed("GET", base+"/v1/vaults/"+o.vault()+"/keys/..", nil) }, 404, "not-found"},
		{"NUL byte in the key", func() *http.Request { return signed("GET", base+"/v1/vaults/"+o.vault()+"/keys/a%00b", nil) }, 404, "not-found"},
		{"non-ASCII key", func() *http.Request { return signed("GET", base+"/v1/vaults/"+o.vault()+"/keys/%C3%A9", nil) }, 404, "not-found"},
		{"upper-case vault ID", func() *http.Request {
			return signed("GET", base+"/v1/vaults/"+strings.ToUpper(o.vault())+"/keys", nil)
		}, 404, "not-found"},
		{"huge headers", func() *http.Request {
			req := signed("GET", keyURL, nil)
			req.Header.Set("X-Padding", strings.Repeat("a", 64<<10)) // far past MaxHeaderBytes and Go's 4 KiB slack
			return req
		}, 431, ""},
		{"no Signature header", func() *http.Request {
			req := signed("PUT", keyURL, o.seal(key, 3), "If-Match", `"`+api.ETag(env2)+`"`)
			req.Header.Del("Signature")
			return req
		}, 401, "unauthorized"},
		{"Signature-Input not a dictionary", func() *http.Request {
			req := signed("GET", keyURL, nil)
			req.Header.Set("Signature-Input", "((((")
			return req
		}, 401, "unauthorized"},
		{"keyid not hex", func() *http.Request {
			req := signed("GET", keyURL, nil)
			req.Header.Set("Signature-Input", strings.Replace(req.Header.Get("Signature-Input"), `keyid="`, `keyid="zz`, 1))
			return req
		}, 401, "unauthorized"},
		{"signature bytes altered", func() *http.Request {
			req := signed("GET", keyURL, nil)
			sig := req.Header.Get("Signature")
			c := "A"
			if sig[10] == 'A' { // always a different character
				c = "B"
			}
			req.Header.Set("Signature", sig[:10]+c+sig[11:])
			return req
		}, 401, "unauthorized"},
		{"GET with a chunked body", func() *http.Request {
			req := signed("GET", keyURL, nil)
			req.Body = io.NopCloser(strings.NewReader("a body the vault must not hold"))
			req.ContentLength = -1
			return req
		}, 400, "bad-request"},
		{"no Content-Digest", func() *http.Request {
			req := signed("GET", keyURL, nil)
			req.Header.Del("Content-Digest")
			return req
		}, 401, "unauthorized"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := send(t, tc.req())
			if r.status != tc.status || tc.problem != "" && r.problem != tc.problem {
				t.Errorf("got %d %s, want %d %s", r.status, r.problem, tc.status, tc.problem)
			}
		})
	}

	t.Run("slowloris", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprint(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
		start := time.Now()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			if _, err := fmt.Fprint(conn, "X-Slow: 1\r\n"); err != nil {
				break
			}
			if _, err := conn.Read(make([]byte, 1)); err != nil {
				break // closed by the server
			}
			time.Sleep(200 * time.Millisecond)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("a slow client held the connection for %s; ReadHeaderTimeout is 1s", d)
		}
	})

	if code := get(t, base+"/healthz"); code != 200 {
		t.Fatalf("server down after the matrix: %d", code)
	}
	if _, got := getSigned(t, keyURL, o); sha256.Sum256(got) != sha256.Sum256(env2) {
		t.Fatal("the owner's latest backup changed")
	}
}
