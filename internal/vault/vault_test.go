package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/sharevault/sharevault/api"
	"github.com/sharevault/sharevault/internal/blobstore"
	"github.com/sharevault/sharevault/internal/blobstore/pebblestore"
	"github.com/sharevault/sharevault/internal/blobstore/s3store"
	"github.com/sharevault/sharevault/internal/envelope"
	"github.com/sharevault/sharevault/internal/miniotest"
	"github.com/sharevault/sharevault/internal/recovery"
)

// stores gives each test a fresh store of every kind: Pebble, and S3 on a real MinIO.
func stores(t *testing.T) map[string]func(t *testing.T) blobstore.Store {
	var once sync.Once
	var m *miniotest.Server
	return map[string]func(t *testing.T) blobstore.Store{
		"pebble": func(t *testing.T) blobstore.Store {
			s, err := pebblestore.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		"s3": func(t *testing.T) blobstore.Store {
			once.Do(func() { m = miniotest.Start(t) })
			if m == nil {
				t.FailNow()
			}
			s, err := s3store.New(m.Client(), m.NewBucket(t), "vault/")
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
}

// user is a vault owner: words' secret, identity and root key.
type user struct {
	id   *recovery.Identity
	root *recovery.RootKey
}

func newUser(t testing.TB, b byte) *user {
	secret := bytes.Repeat([]byte{b}, 32)
	id, err := recovery.NewIdentity(secret)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := recovery.DeriveRootKey(secret, "", recovery.KDF{})
	return &user{id: id, root: root}
}

func (u *user) vault() string { return u.id.VaultID().String() }

func (u *user) seal(t testing.TB, key string, seq uint64, payload string) []byte {
	env, err := envelope.Seal(u.root, envelope.Header{Scheme: envelope.EdDSA, VaultID: u.id.VaultID(), KeyID: key, Sequence: seq}, []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

type tester struct {
	t      *testing.T
	url    string
	router routers.Router
	store  blobstore.Store
	srv    *Server
}

func newTester(t *testing.T, store blobstore.Store, cfg Config) *tester {
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := NewServer(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h) // a real socket on 127.0.0.1
	t.Cleanup(srv.Close)
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &tester{t: t, url: srv.URL, router: router, store: store, srv: h}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) problem() string {
	var p api.Problem
	json.Unmarshal(r.body, &p)
	return strings.TrimPrefix(p.Type, "urn:sharevault:problem:")
}

// do sends a request signed by u (nil: unsigned), with extra headers, validates the
// response against the OpenAPI document, and returns it.
func (tt *tester) do(u *user, method, path string, body []byte, hdr ...string) response {
	tt.t.Helper()
	return tt.doAt(u, time.Now(), method, path, body, hdr...)
}

// doAt is do with a signature created at created.
func (tt *tester) doAt(u *user, created time.Time, method, path string, body []byte, hdr ...string) response {
	tt.t.Helper()
	req, err := http.NewRequest(method, tt.url+path, bytes.NewReader(body))
	if err != nil {
		tt.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if u != nil {
		api.Sign(req, body, u.id, created)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tt.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tt.t.Fatal(err)
	}
	tt.validate(req, resp, b)
	return response{resp.StatusCode, resp.Header, b}
}

func init() {
	openapi3filter.RegisterBodyDecoder("application/problem+json", openapi3filter.JSONBodyDecoder)
	openapi3filter.RegisterBodyDecoder("application/yaml", openapi3filter.FileBodyDecoder)
}

func (tt *tester) validate(req *http.Request, resp *http.Response, body []byte) {
	tt.t.Helper()
	route, params, err := tt.router.FindRoute(req)
	if err != nil {
		if resp.StatusCode != http.StatusNotFound {
			tt.t.Errorf("%s %s: not in openapi.yaml (%v) but answered %d", req.Method, req.URL.Path, err, resp.StatusCode)
		}
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		tt.t.Errorf("%s %s -> %d does not match openapi.yaml: %v", req.Method, req.URL.Path, resp.StatusCode, err)
	}
}

func want(t *testing.T, what string, r response, status int, problem string) {
	t.Helper()
	if r.status != status || problem != "" && r.problem() != problem {
		t.Fatalf("%s: got %d %s (%s), want %d %s", what, r.status, r.problem(), r.body, status, problem)
	}
}

func quoted(env []byte) string { return `"` + api.ETag(env) + `"` }

// TestCycle is the whole put, get, list, delete cycle with real signatures, on each store.
func TestCycle(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			tt := newTester(t, open(t), Config{})
			u := newUser(t, 1)
			key := "wallet-key_1"
			p := api.KeyPath(u.vault(), key)

			want(t, "GET before any upload", tt.do(u, "GET", p, nil), 404, "not-found")
			want(t, "list of an absent vault", tt.do(u, "GET", api.KeysPath(u.vault()), nil), 404, "not-found")

			v1 := u.seal(t, key, 1, "share backup, epoch 0")
			r := tt.do(u, "PUT", p, v1, "If-None-Match", "*")
			want(t, "first PUT", r, 201, "")
			if r.header.Get("ETag") != quoted(v1) || r.header.Get("Location") != api.VersionPath(u.vault(), key, 1) {
				t.Errorf("PUT headers: %v", r.header)
			}
			got := tt.do(u, "GET", p, nil)
			want(t, "GET latest", got, 200, "")
			if !bytes.Equal(got.body, v1) || got.header.Get("ETag") != quoted(v1) || got.header.Get("Content-Digest") != api.ContentDigest(v1) {
				t.Fatalf("GET latest returned other bytes or headers: %v", got.header)
			}
			want(t, "HEAD latest", tt.do(u, "HEAD", p, nil), 200, "")

			v2 := u.seal(t, key, 2, "share backup, epoch 1")
			want(t, "second PUT", tt.do(u, "PUT", p, v2, "If-Match", quoted(v1)), 201, "")
			want(t, "replayed PUT", tt.do(u, "PUT", p, v2, "If-Match", quoted(v1)), 412, "precondition-failed")
			want(t, "replayed first PUT", tt.do(u, "PUT", p, v1, "If-None-Match", "*"), 412, "precondition-failed")
			old := u.seal(t, key, 2, "a rollback")
			want(t, "PUT of a sequence not above the latest", tt.do(u, "PUT", p, old, "If-Match", quoted(v2)), 409, "conflict")
			want(t, "PUT without a precondition", tt.do(u, "PUT", p, u.seal(t, key, 3, "x")), 428, "precondition-required")

			var keys api.KeyList
			r = tt.do(u, "GET", api.KeysPath(u.vault()), nil)
			want(t, "list keys", r, 200, "")
			json.Unmarshal(r.body, &keys)
			if len(keys.Keys) != 1 || keys.Keys[0].KeyID != key || keys.Keys[0].LatestSequence != 2 || keys.Keys[0].Versions != 2 ||
				keys.Keys[0].ETag != api.ETag(v2) || keys.Keys[0].Bytes != int64(len(v1)+len(v2)) {
				t.Errorf("key list %+v", keys)
			}
			var versions api.VersionList
			r = tt.do(u, "GET", api.VersionsPath(u.vault(), key), nil)
			want(t, "list versions", r, 200, "")
			json.Unmarshal(r.body, &versions)
			if len(versions.Versions) != 2 || versions.Versions[0].Sequence != 1 || versions.Versions[1].Sequence != 2 {
				t.Errorf("version list %+v", versions)
			}

			r = tt.do(u, "GET", api.VersionPath(u.vault(), key, 1), nil)
			want(t, "GET version 1", r, 200, "")
			if !bytes.Equal(r.body, v1) {
				t.Error("version 1 has other bytes")
			}
			want(t, "DELETE version 1", tt.do(u, "DELETE", api.VersionPath(u.vault(), key, 1), nil), 204, "")
			want(t, "replayed DELETE", tt.do(u, "DELETE", api.VersionPath(u.vault(), key, 1), nil), 404, "not-found")
			want(t, "GET deleted version", tt.do(u, "GET", api.VersionPath(u.vault(), key, 1), nil), 404, "not-found")
			if r := tt.do(u, "GET", p, nil); r.status != 200 || !bytes.Equal(r.body, v2) {
				t.Fatalf("latest after deleting version 1: %d", r.status)
			}
			want(t, "DELETE the last version", tt.do(u, "DELETE", api.VersionPath(u.vault(), key, 2), nil), 204, "")
			want(t, "GET after all deleted", tt.do(u, "GET", p, nil), 404, "not-found")
			page, _, err := tt.store.List(context.Background(), "v1/"+u.vault()+"/k/", "", 10)
			if err != nil || len(page) != 0 {
				t.Errorf("blobs left after deleting every version: %v %v", page, err)
			}

			// The deleted key's highest sequence outlives it (a tombstone).
			want(t, "list after all deleted", tt.do(u, "GET", api.KeysPath(u.vault()), nil), 404, "not-found")
			want(t, "replayed first PUT after the key was deleted", tt.do(u, "PUT", p, v1, "If-None-Match", "*"), 409, "conflict")
			want(t, "a sequence below the deleted key's highest", tt.do(u, "PUT", p, u.seal(t, key, 2, "old"), "If-None-Match", "*"), 409, "conflict")
			v3 := u.seal(t, key, 3, "share backup, epoch 2")
			want(t, "a new first version above the highest", tt.do(u, "PUT", p, v3, "If-None-Match", "*"), 201, "")
			if r := tt.do(u, "GET", p, nil); !bytes.Equal(r.body, v3) {
				t.Fatalf("latest after the key came back: %d", r.status)
			}
		})
	}
}

func TestOtherVaultsSignature(t *testing.T) {
	tt := newTester(t, stores(t)["pebble"](t), Config{})
	owner, thief := newUser(t, 1), newUser(t, 2)
	key := "k1"
	env := owner.seal(t, key, 1, "secret")
	want(t, "owner PUT", tt.do(owner, "PUT", api.KeyPath(owner.vault(), key), env, "If-None-Match", "*"), 201, "")
	for _, m := range []string{"GET", "DELETE"} {
		path := api.KeyPath(owner.vault(), key)
		if m == "DELETE" {
			path = api.VersionPath(owner.vault(), key, 1)
		}
		r := tt.do(thief, m, path, nil)
		absent := tt.do(thief, m, strings.Replace(path, owner.vault(), strings.Repeat("ab", 32), 1), nil)
		want(t, m+" with another vault's signature", r, 404, "not-found")
		if !bytes.Equal(r.body, absent.body) {
			t.Errorf("'not yours' (%s) differs from 'absent' (%s)", r.body, absent.body)
		}
	}
	stolen := thief.seal(t, key, 2, "overwrite")
	want(t, "PUT with another vault's signature", tt.do(thief, "PUT", api.KeyPath(owner.vault(), key), stolen, "If-Match", quoted(env)), 404, "not-found")
	if r := tt.do(owner, "GET", api.KeyPath(owner.vault(), key), nil); !bytes.Equal(r.body, env) {
		t.Fatal("the owner's backup changed")
	}
}

func TestRequestChecks(t *testing.T) {
	tt := newTester(t, stores(t)["pebble"](t), Config{MaxBody: 4096})
	u := newUser(t, 1)
	p := api.KeyPath(u.vault(), "k")
	env := u.seal(t, "k", 1, "x")
	tests := []struct {
		name    string
		r       func() response
		status  int
		problem string
	}{
		{"unsigned", func() response { return tt.do(nil, "GET", p, nil) }, 401, "unauthorized"},
		{"body over the limit", func() response {
			return tt.do(u, "PUT", p, u.seal(t, "k", 1, strings.Repeat("x", 5000)), "If-None-Match", "*")
		}, 413, "too-large"},
		{"garbage body", func() response { return tt.do(u, "PUT", p, []byte("not an envelope"), "If-None-Match", "*") }, 422, "invalid-envelope"},
		{"envelope for another key", func() response { return tt.do(u, "PUT", api.KeyPath(u.vault(), "other"), env, "If-None-Match", "*") }, 422, "invalid-envelope"},
		{"envelope of another vault", func() response {
			return tt.do(u, "PUT", p, newUser(t, 3).seal(t, "k", 1, "x"), "If-None-Match", "*")
		}, 422, "invalid-envelope"},
		{"If-Match not quoted", func() response { return tt.do(u, "PUT", p, env, "If-Match", api.ETag(env)) }, 400, "bad-request"},
		{"If-None-Match not *", func() response { return tt.do(u, "PUT", p, env, "If-None-Match", quoted(env)) }, 400, "bad-request"},
		{"bad vault ID", func() response { return tt.do(u, "GET", "/v1/vaults/xyz/keys", nil) }, 404, "not-found"},
		{"bad key ID", func() response { return tt.do(u, "GET", api.KeyPath(u.vault(), "a.b"), nil) }, 404, "not-found"},
		{"sequence with a leading zero", func() response { return tt.do(u, "GET", api.VersionsPath(u.vault(), "k")+"/01", nil) }, 404, "not-found"},
		{"unknown route", func() response { return tt.do(u, "GET", "/v2/whatever", nil) }, 404, "not-found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { want(t, tc.name, tc.r(), tc.status, tc.problem) })
	}
}

// TestRetention: the last 3 versions are kept, on each store, with envelopes inline in the
// manifest and as blobs of their own (whose dropped ones are deleted).
func TestRetention(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			for _, inline := range []int{0, -1} {
				store := open(t) // opened by the store's test, which outlives both runs
				t.Run(fmt.Sprint("inline ", inline >= 0), func(t *testing.T) { retention(t, store, inline) })
			}
		})
	}
}

func retention(t *testing.T, store blobstore.Store, inlineMax int) {
	{
		{
			tt := newTester(t, store, Config{Retention: 3, InlineMax: inlineMax})
			u := newUser(t, 1)
			p := api.KeyPath(u.vault(), "k")
			prev := ""
			for seq := uint64(1); seq <= 6; seq++ {
				env := u.seal(t, "k", seq, fmt.Sprint("v", seq))
				hdr := []string{"If-None-Match", "*"}
				if prev != "" {
					hdr = []string{"If-Match", prev}
				}
				want(t, fmt.Sprint("PUT ", seq), tt.do(u, "PUT", p, env, hdr...), 201, "")
				prev = quoted(env)
			}
			var vl api.VersionList
			json.Unmarshal(tt.do(u, "GET", api.VersionsPath(u.vault(), "k"), nil).body, &vl)
			if len(vl.Versions) != 3 || vl.Versions[0].Sequence != 4 || vl.Versions[2].Sequence != 6 {
				t.Fatalf("after 6 uploads with retention 3: %+v", vl.Versions)
			}
			page, _, _ := tt.store.List(context.Background(), "v1/"+u.vault()+"/k/k/", "", 100)
			if want := map[bool]int{true: 0, false: 3}[inlineMax >= 0]; len(page) != want {
				t.Errorf("%d version blobs stored, want %d", len(page), want)
			}
			for seq := uint64(4); seq <= 6; seq++ {
				if r := tt.do(u, "GET", api.VersionPath(u.vault(), "k", seq), nil); r.status != 200 {
					t.Errorf("version %d: %d", seq, r.status)
				}
			}
		}
	}
}

func TestQuotas(t *testing.T) {
	tt := newTester(t, stores(t)["pebble"](t), Config{QuotaKeys: 2, QuotaBytes: 2000})
	u := newUser(t, 1)
	for i, key := range []string{"a", "b"} {
		want(t, "PUT "+key, tt.do(u, "PUT", api.KeyPath(u.vault(), key), u.seal(t, key, 1, "x"), "If-None-Match", "*"), 201, "")
		_ = i
	}
	want(t, "third key", tt.do(u, "PUT", api.KeyPath(u.vault(), "c"), u.seal(t, "c", 1, "x"), "If-None-Match", "*"), 403, "quota-exceeded")
	env := u.seal(t, "a", 2, strings.Repeat("y", 1800))
	prev := tt.do(u, "HEAD", api.KeyPath(u.vault(), "a"), nil).header.Get("ETag")
	want(t, "over the byte quota", tt.do(u, "PUT", api.KeyPath(u.vault(), "a"), env, "If-Match", prev), 403, "quota-exceeded")
}

func TestRateLimit(t *testing.T) {
	tt := newTester(t, stores(t)["pebble"](t), Config{RateVault: 1, BurstVault: 3})
	u := newUser(t, 1)
	var last response
	for i := range 5 { // five signatures: a repeated one is not charged (TestReplayedRequests)
		last = tt.doAt(u, time.Now().Add(-time.Duration(i)*time.Second), "GET", api.KeysPath(u.vault()), nil)
	}
	want(t, "fifth request in a second", last, 429, "rate-limited")
	if last.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	other := newUser(t, 2)
	want(t, "another vault is not limited", tt.do(other, "GET", api.KeysPath(other.vault()), nil), 404, "not-found")
}

// TestConcurrentKeys: uploads to many keys of one vault at once all land, through the
// manifest's compare-and-swap.
func TestConcurrentKeys(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			tt := newTester(t, open(t), Config{RateVault: 1000, BurstVault: 1000})
			u := newUser(t, 1)
			const n = 12
			var wg sync.WaitGroup
			statuses := make(chan int, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					key := fmt.Sprint("key", i)
					statuses <- tt.do(u, "PUT", api.KeyPath(u.vault(), key), u.seal(t, key, 1, "x"), "If-None-Match", "*").status
				}()
			}
			wg.Wait()
			close(statuses)
			for s := range statuses {
				if s != 201 {
					t.Errorf("a concurrent PUT answered %d", s)
				}
			}
			var kl api.KeyList
			json.Unmarshal(tt.do(u, "GET", api.KeysPath(u.vault()), nil).body, &kl)
			if len(kl.Keys) != n {
				t.Fatalf("%d keys listed after %d concurrent uploads: an update was lost", len(kl.Keys), n)
			}
		})
	}
}

func TestServiceEndpoints(t *testing.T) {
	tt := newTester(t, stores(t)["pebble"](t), Config{MetricsRoute: true})
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/v1/openapi.yaml"} {
		if r := tt.do(nil, "GET", p, nil); r.status != 200 {
			t.Errorf("GET %s: %d", p, r.status)
		}
	}
	u := newUser(t, 1)
	tt.do(u, "GET", api.KeysPath(u.vault()), nil)
	m := tt.do(nil, "GET", "/metrics", nil)
	for _, name := range []string{"sharevault_http_requests_total", "sharevault_http_request_duration_seconds"} {
		if !bytes.Contains(m.body, []byte(name)) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

// TestLayoutMigration: a store written with every envelope a blob of its own (the layout
// before envelopes moved into the manifest) keeps working as it is: its versions read, new
// ones go inline beside them, deleting and retention remove the old blobs.
func TestLayoutMigration(t *testing.T) {
	store := stores(t)["pebble"](t)
	u := newUser(t, 1)
	p := api.KeyPath(u.vault(), "k")
	old := newTester(t, store, Config{InlineMax: -1, Retention: 3})
	v1, v2 := u.seal(t, "k", 1, "old 1"), u.seal(t, "k", 2, "old 2")
	want(t, "old PUT 1", old.do(u, "PUT", p, v1, "If-None-Match", "*"), 201, "")
	want(t, "old PUT 2", old.do(u, "PUT", p, v2, "If-Match", quoted(v1)), 201, "")
	blobs := func() int {
		page, _, _ := store.List(context.Background(), "v1/"+u.vault()+"/k/k/", "", 100)
		return len(page)
	}
	if blobs() != 2 {
		t.Fatalf("the old layout stored %d blobs, want 2", blobs())
	}

	now := newTester(t, store, Config{Retention: 3})
	if r := now.do(u, "GET", api.VersionPath(u.vault(), "k", 1), nil); r.status != 200 || !bytes.Equal(r.body, v1) {
		t.Fatalf("an old version does not read: %d", r.status)
	}
	prev := v2
	for seq := uint64(3); seq <= 5; seq++ {
		env := u.seal(t, "k", seq, "new")
		want(t, fmt.Sprint("new PUT ", seq), now.do(u, "PUT", p, env, "If-Match", quoted(prev)), 201, "")
		prev = env
	}
	if blobs() != 0 {
		t.Errorf("%d old blobs left after retention dropped their versions, want 0", blobs())
	}
	if r := now.do(u, "GET", p, nil); r.status != 200 || !bytes.Equal(r.body, prev) {
		t.Fatalf("the latest (inline) version: %d", r.status)
	}
}

// TestReplicasShareStore: two vault processes' worth of servers on one store, writing in
// turn: each starts from the manifest it last wrote, and when the other changed it, the
// store refuses the write and the change reads afresh: no update is lost.
func TestReplicasShareStore(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			store := open(t)
			a, b := newTester(t, store, Config{}), newTester(t, store, Config{})
			u := newUser(t, 1)
			p := api.KeyPath(u.vault(), "k")
			prev := []byte(nil)
			for seq := uint64(1); seq <= 6; seq++ {
				tt := a
				if seq%2 == 0 {
					tt = b
				}
				env := u.seal(t, "k", seq, "v")
				hdr := []string{"If-None-Match", "*"}
				if prev != nil {
					hdr = []string{"If-Match", quoted(prev)}
				}
				want(t, fmt.Sprint("PUT ", seq), tt.do(u, "PUT", p, env, hdr...), 201, "")
				prev = env
			}
			for _, tt := range []*tester{a, b} {
				var vl api.VersionList
				json.Unmarshal(tt.do(u, "GET", api.VersionsPath(u.vault(), "k"), nil).body, &vl)
				if len(vl.Versions) != 6 {
					t.Fatalf("%d versions after 6 uploads through two replicas", len(vl.Versions))
				}
				if r := tt.do(u, "GET", p, nil); !bytes.Equal(r.body, prev) {
					t.Fatal("a replica serves another latest version")
				}
			}
		})
	}
}

// TestSweep: blobs no manifest names (what a crash between an upload's two writes leaves)
// are removed once older than the grace period; named versions, manifests and names that
// are not a vault's are not touched.
func TestSweep(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			store := open(t)
			ctx := context.Background()
			tt := newTester(t, store, Config{InlineMax: -1})
			u, stranger := newUser(t, 1), newUser(t, 2)
			p := api.KeyPath(u.vault(), "k")
			v1, v2 := u.seal(t, "k", 1, "one"), u.seal(t, "k", 2, "two")
			want(t, "PUT 1", tt.do(u, "PUT", p, v1, "If-None-Match", "*"), 201, "")
			want(t, "PUT 2", tt.do(u, "PUT", p, v2, "If-Match", quoted(v1)), 201, "")
			orphans := []string{
				"v1/" + u.vault() + "/k/k/00000000000000000003.00aa",        // a lost upload beside named ones
				"v1/" + stranger.vault() + "/k/x/00000000000000000001.00bb", // a first upload whose manifest never came
			}
			kept := "v1/not-a-vault/k/x/1"
			for _, n := range append(orphans, kept) {
				if _, err := store.Put(ctx, n, strings.NewReader("x"), 1, blobstore.Condition{}); err != nil {
					t.Fatal(err)
				}
			}
			if n, err := tt.srv.Sweep(ctx, time.Hour); err != nil || n != 0 {
				t.Fatalf("sweep with an hour's grace removed %d (%v), want 0: the orphans are new", n, err)
			}
			if n, err := tt.srv.Sweep(ctx, 0); err != nil || n != len(orphans) {
				t.Fatalf("sweep removed %d (%v), want %d", n, err, len(orphans))
			}
			for _, n := range orphans {
				if _, err := store.Stat(ctx, n); !errors.Is(err, blobstore.ErrNotFound) {
					t.Errorf("orphan %s: %v, want not found", n, err)
				}
			}
			if _, err := store.Stat(ctx, kept); err != nil {
				t.Errorf("a name that is not a vault's was touched: %v", err)
			}
			for seq, env := range map[uint64][]byte{1: v1, 2: v2} {
				if r := tt.do(u, "GET", api.VersionPath(u.vault(), "k", seq), nil); r.status != 200 || !bytes.Equal(r.body, env) {
					t.Errorf("version %d after the sweep: %d", seq, r.status)
				}
			}
			if n, err := tt.srv.Sweep(ctx, 0); err != nil || n != 0 {
				t.Errorf("a second sweep removed %d (%v), want 0", n, err)
			}
		})
	}
}

// pausing is a store whose first manifest write waits for release: an upload held between
// its blob and its manifest, as a slow replica holds it.
type pausing struct {
	blobstore.Store
	once            sync.Once
	paused, release chan struct{}
}

func newPausing(s blobstore.Store) *pausing {
	return &pausing{Store: s, paused: make(chan struct{}), release: make(chan struct{})}
}

func (p *pausing) Put(ctx context.Context, name string, r io.Reader, size int64, cond blobstore.Condition) (blobstore.Attrs, error) {
	if strings.HasSuffix(name, "/manifest") {
		p.once.Do(func() { close(p.paused); <-p.release })
	}
	return p.Store.Put(ctx, name, r, size, cond)
}

// TestSweepBesideUpload: a replica sweeps while another replica's upload is between its two
// writes, and an old unnamed blob holds the very bytes being uploaded (a retried upload whose
// first try crashed). The sweep removes the old blob; the upload, which wrote a blob of its
// own, still serves its version. (With one name per content the upload named the old blob
// and the sweep deleted it under it.)
func TestSweepBesideUpload(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			store := open(t)
			ctx := context.Background()
			slow := newPausing(store)
			const grace = time.Second // the old blob is older, the upload's own is not
			a := newTester(t, slow, Config{InlineMax: -1})
			b := newTester(t, store, Config{InlineMax: -1})
			u := newUser(t, 1)
			env := u.seal(t, "k", 1, "one")
			id := u.id.VaultID()
			old := versionName(id, "k", &version{Seq: 1, SHA256: api.ETag(env)})
			if _, err := store.Put(ctx, old, bytes.NewReader(env), int64(len(env)), blobstore.Condition{}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(grace + 200*time.Millisecond)

			done := make(chan response, 1)
			go func() { done <- a.do(u, "PUT", api.KeyPath(u.vault(), "k"), env, "If-None-Match", "*") }()
			<-slow.paused
			n, err := b.srv.Sweep(ctx, grace)
			close(slow.release)
			if r := <-done; r.status != 201 {
				t.Fatalf("PUT: %d %s", r.status, r.body)
			}
			if err != nil || n != 1 {
				t.Errorf("sweep removed %d (%v), want the old blob", n, err)
			}
			if r := b.do(u, "GET", api.KeyPath(u.vault(), "k"), nil); r.status != 200 || !bytes.Equal(r.body, env) {
				t.Fatalf("the uploaded version after the sweep: %d %s", r.status, r.body)
			}
		})
	}
}

// counting counts a store's calls by kind; it is Ordered when its store is.
type counting struct {
	blobstore.Store
	mu sync.Mutex
	n  map[string]int
}

func (c *counting) add(kind string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[kind]++
}

func (c *counting) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = nil
	return n
}

func (c *counting) Put(ctx context.Context, name string, r io.Reader, size int64, cond blobstore.Condition) (blobstore.Attrs, error) {
	c.add("put")
	return c.Store.Put(ctx, name, r, size, cond)
}

func (c *counting) PutLazy(ctx context.Context, name string, r io.Reader, size int64, cond blobstore.Condition) (blobstore.Attrs, error) {
	c.add("lazy")
	return c.Store.(blobstore.Ordered).PutLazy(ctx, name, r, size, cond)
}

func (c *counting) Get(ctx context.Context, name string) (*blobstore.Reader, error) {
	c.add("get")
	return c.Store.Get(ctx, name)
}

// TestStoreOperationsPerRequest: on the embedded store an upload is one synced write (a
// large envelope's blob goes unsynced before it, made durable by it), once the process
// holds the vault's manifest; a read of an inline version is one store read.
func TestStoreOperationsPerRequest(t *testing.T) {
	store := &counting{Store: stores(t)["pebble"](t)}
	tt := newTester(t, store, Config{})
	u := newUser(t, 1)
	p := api.KeyPath(u.vault(), "k")
	small, large := u.seal(t, "k", 1, "backup"), u.seal(t, "k", 2, strings.Repeat("x", 4096))
	want(t, "PUT small", tt.do(u, "PUT", p, small, "If-None-Match", "*"), 201, "")
	store.take() // the vault's first write reads that there is no manifest yet
	want(t, "PUT large", tt.do(u, "PUT", p, large, "If-Match", quoted(small)), 201, "")
	if n := store.take(); n["put"] != 1 || n["lazy"] != 1 || n["get"] != 0 {
		t.Errorf("a large upload: %v, want one synced put after one lazy put", n)
	}
	small3 := u.seal(t, "k", 3, "backup")
	want(t, "PUT small again", tt.do(u, "PUT", p, small3, "If-Match", quoted(large)), 201, "")
	if n := store.take(); n["put"] != 1 || n["lazy"] != 0 || n["get"] != 0 {
		t.Errorf("a small upload: %v, want one synced put", n)
	}
	if r := tt.do(u, "GET", p, nil); r.status != 200 || !bytes.Equal(r.body, small3) {
		t.Fatalf("GET: %d", r.status)
	}
	if n := store.take(); n["get"] != 1 || len(n) != 1 {
		t.Errorf("a read of an inline version: %v, want one get", n)
	}
	if r := tt.do(u, "GET", api.VersionPath(u.vault(), "k", 2), nil); r.status != 200 || !bytes.Equal(r.body, large) {
		t.Fatalf("GET the large version: %d", r.status)
	}
}

// TestSweepFencesStalledUpload: an upload stalls between its blob and its manifest for
// longer than any grace (here the grace is 0), and a sweep on another replica removes its
// blob meanwhile. The upload's compare-and-swap then fails on the sweep's commit, it sees
// the higher gen, writes its blob again and names that: no time bound is needed. (Trusting
// the request timeout instead lost the version: the manifest named a deleted blob.)
func TestSweepFencesStalledUpload(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			store := open(t)
			ctx := context.Background()
			slow := newPausing(store)
			a := newTester(t, slow, Config{InlineMax: -1})
			b := newTester(t, store, Config{InlineMax: -1})
			u := newUser(t, 1)
			env := u.seal(t, "k", 1, "one")
			done := make(chan response, 1)
			go func() { done <- a.do(u, "PUT", api.KeyPath(u.vault(), "k"), env, "If-None-Match", "*") }()
			<-slow.paused
			n, err := b.srv.Sweep(ctx, 0)
			close(slow.release)
			if err != nil || n != 1 {
				t.Errorf("sweep removed %d (%v), want the stalled upload's blob", n, err)
			}
			if r := <-done; r.status != 201 {
				t.Fatalf("PUT: %d %s", r.status, r.body)
			}
			if r := b.do(u, "GET", api.KeyPath(u.vault(), "k"), nil); r.status != 200 || !bytes.Equal(r.body, env) {
				t.Fatalf("the uploaded version after the sweep: %d %s", r.status, r.body)
			}
			if n, err := b.srv.Sweep(ctx, 0); err != nil || n != 0 {
				t.Errorf("a second sweep removed %d (%v), want 0: the version's blob is named", n, err)
			}
		})
	}
}

// TestConcurrentSweeps: two replicas sweeping one store at once remove every unnamed blob
// between them, and neither fails on the other's deletes. (A blob both delete may count
// twice on S3, whose delete does not say whether the name was there.)
func TestConcurrentSweeps(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			store := open(t)
			ctx := context.Background()
			a, b := newTester(t, store, Config{}), newTester(t, store, Config{})
			u := newUser(t, 1)
			for i := range 5 {
				n := fmt.Sprintf("v1/%s/k/k/%020d.00aa", u.vault(), i+1)
				if _, err := store.Put(ctx, n, strings.NewReader("x"), 1, blobstore.Condition{}); err != nil {
					t.Fatal(err)
				}
			}
			var na, nb int
			var ea, eb error
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); na, ea = a.srv.Sweep(ctx, 0) }()
			go func() { defer wg.Done(); nb, eb = b.srv.Sweep(ctx, 0) }()
			wg.Wait()
			if ea != nil || eb != nil || na+nb < 5 {
				t.Errorf("sweeps removed %d and %d (%v, %v), want 5 in all", na, nb, ea, eb)
			}
			if page, _, err := store.List(ctx, "v1/"+u.vault()+"/k/", "", 10); err != nil || len(page) != 0 {
				t.Errorf("%d unnamed blobs left (%v)", len(page), err)
			}
		})
	}
}

// TestInlineKeepsOnlyTheEnvelope: a chunked upload is read into a buffer the size of the
// body limit; the manifest (and the write cache) keep the envelope's bytes, not that buffer.
func TestInlineKeepsOnlyTheEnvelope(t *testing.T) {
	tt := newTester(t, stores(t)["pebble"](t), Config{})
	u := newUser(t, 1)
	env := u.seal(t, "k", 1, "backup")
	req, _ := http.NewRequest("PUT", tt.url+api.KeyPath(u.vault(), "k"), io.MultiReader(bytes.NewReader(env)))
	req.Header.Set("If-None-Match", "*")
	api.Sign(req, env, u.id, time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 || req.ContentLength != 0 {
		t.Fatalf("chunked PUT: %d (content length %d)", resp.StatusCode, req.ContentLength)
	}
	m, _, ok := tt.srv.cache.get(u.id.VaultID())
	if !ok {
		t.Fatal("the upload left no manifest in the cache")
	}
	if d := m.Keys["k"].Versions[0].Data; !bytes.Equal(d, env) || cap(d) > 2*len(env) {
		t.Errorf("inline envelope: %d bytes in a buffer of %d", len(d), cap(d))
	}
}

// refusing is a store that answers a version blob's create-only write with a failed
// precondition without writing it (S3's 409 for a conflicting request does that).
type refusing struct{ blobstore.Store }

func (r refusing) Put(ctx context.Context, name string, body io.Reader, size int64, cond blobstore.Condition) (blobstore.Attrs, error) {
	if strings.Contains(name, "/k/") && cond.IfNoneMatch {
		return blobstore.Attrs{}, blobstore.ErrPreconditionFailed
	}
	return r.Store.Put(ctx, name, body, size, cond)
}

// TestBlobPreconditionChecked: a failed precondition on a version blob counts as written
// only if the blob there holds the upload's bytes; otherwise the upload fails, naming
// nothing.
func TestBlobPreconditionChecked(t *testing.T) {
	tt := newTester(t, refusing{stores(t)["pebble"](t)}, Config{InlineMax: -1})
	u := newUser(t, 1)
	p := api.KeyPath(u.vault(), "k")
	if r := tt.do(u, "PUT", p, u.seal(t, "k", 1, "one"), "If-None-Match", "*"); r.status < 500 {
		t.Fatalf("PUT whose blob was not written: %d, want a server error", r.status)
	}
	if r := tt.do(u, "GET", p, nil); r.status != 404 {
		t.Errorf("GET after the failed upload: %d, want 404", r.status)
	}
}

// TestSweepLeavesNamedVaults: a vault whose blobs are all named costs the sweep one look
// at its manifest, and no write: the next upload still starts from the kept manifest.
func TestSweepLeavesNamedVaults(t *testing.T) {
	store := &counting{Store: stores(t)["pebble"](t)}
	tt := newTester(t, store, Config{InlineMax: -1})
	u := newUser(t, 1)
	p := api.KeyPath(u.vault(), "k")
	v1, v2 := u.seal(t, "k", 1, "one"), u.seal(t, "k", 2, "two")
	want(t, "PUT 1", tt.do(u, "PUT", p, v1, "If-None-Match", "*"), 201, "")
	if n, err := tt.srv.Sweep(context.Background(), 0); err != nil || n != 0 {
		t.Fatalf("sweep removed %d (%v), want 0", n, err)
	}
	store.take()
	want(t, "PUT 2", tt.do(u, "PUT", p, v2, "If-Match", quoted(v1)), 201, "")
	if n := store.take(); n["get"] != 0 || n["put"] != 1 {
		t.Errorf("the upload after a sweep that removed nothing: %v, want one write and no read", n)
	}
}
