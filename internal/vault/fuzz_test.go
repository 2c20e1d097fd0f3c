package vault

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sharevault/sharevault/api"
	"github.com/sharevault/sharevault/internal/blobstore/pebblestore"
)

// FuzzRequest feeds arbitrary paths and signature, digest and precondition headers to
// the whole handler: it must never panic, answer only documented statuses, and never
// succeed for a request whose signature fields were changed.
func FuzzRequest(f *testing.F) {
	store, err := pebblestore.Open(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	defer store.Close()
	h, err := New(store, Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RateIP: 1e9, BurstIP: 1 << 30, RateVault: 1e9, BurstVault: 1 << 30})
	if err != nil {
		f.Fatal(err)
	}
	u := newUser(f, 1)
	seed := httptest.NewRequest("GET", api.KeysPath(u.vault()), nil)
	api.Sign(seed, nil, u.id, time.Now())
	sigInput, sig, digest := seed.Header.Get("Signature-Input"), seed.Header.Get("Signature"), seed.Header.Get("Content-Digest")
	f.Add("GET", seed.URL.Path, sigInput, sig, digest, "", "")
	f.Add("PUT", api.KeyPath(u.vault(), "k"), sigInput, sig, digest, `"`+strings.Repeat("a", 64)+`"`, "")
	f.Add("DELETE", api.VersionPath(u.vault(), "k", 1), "sig1=();created=1", "sig1=:AA==:", "sha-256=:AA==:", "", "*")
	documented := map[int]bool{200: true, 201: true, 204: true, 400: true, 401: true, 403: true, 404: true, 405: true,
		409: true, 412: true, 413: true, 422: true, 428: true, 429: true, 503: true}
	f.Fuzz(func(t *testing.T, method, path, sigInput2, sig2, digest2, ifMatch, ifNoneMatch string) {
		req := &http.Request{Method: method, URL: &url.URL{Path: path}, Header: http.Header{}, Body: http.NoBody, Host: "x", RemoteAddr: "127.0.0.1:1"}
		for k, v := range map[string]string{"Signature-Input": sigInput2, "Signature": sig2, "Content-Digest": digest2, "If-Match": ifMatch, "If-None-Match": ifNoneMatch} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if !documented[rec.Code] {
			t.Fatalf("%s %q answered %d, not a documented status", method, path, rec.Code)
		}
		changed := sigInput2 != sigInput || sig2 != sig || digest2 != digest
		if rec.Code/100 == 2 && strings.HasPrefix(path, "/v1/vaults/") && changed {
			t.Fatalf("a request with altered signature fields succeeded: %d", rec.Code)
		}
	})
}

func FuzzPrecondition(f *testing.F) {
	f.Add("*", "")
	f.Add("", `"`+strings.Repeat("0", 64)+`"`)
	f.Add("", `W/"x"`)
	f.Fuzz(func(t *testing.T, inm, im string) {
		h := http.Header{}
		if inm != "" {
			h.Set("If-None-Match", inm)
		}
		if im != "" {
			h.Set("If-Match", im)
		}
		p, problem := parsePrecondition(h)
		if problem == nil && !p.create && (len(p.etag) != 64 || strings.Trim(p.etag, "0123456789abcdef") != "") {
			t.Fatalf("accepted If-Match %q as %q", im, p.etag)
		}
	})
}
