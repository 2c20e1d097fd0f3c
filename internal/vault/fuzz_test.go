package vault

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
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

// FuzzManifestDecode: whatever encoding/json (which writes manifests) reads as a manifest,
// decodeManifest reads the same.
func FuzzManifestDecode(f *testing.F) {
	for _, n := range []int{0, 1, 3} {
		f.Add(testManifest(n, 600))
		f.Add(testManifest(n, 0))
	}
	for _, s := range []string{ // where two JSON decoders could part ways
		`{"format":1,"keys":{"k":{"high":3,"versions":null,"deleted":"2026-11-25T01:02:03Z"}}}`,
		"{\"format\":2,\"keys\":{\"k\xff\":{\"high\":1}}}",
		`{"format":2,"keys":{"\ud800":{"high":1}}}`,
		`{"FORMAT":2,"Keys":{"k":{"HIGH":1}}}`,
		`{"format":2,"format":1,"keys":{}}`,
		`{"format":2,"keys":{"k":{"high":1,"versions":[{"seq":1,"data":null},{"seq":2,"data":""}]}}}`,
		`{"format":2,"keys":{"k":null}}`,
		`{"format":2,"keys":{"k":{"versions":[{"seq":1,"created":"2026-11-25T01:02:03.123456789123Z"}]}}}`,
		`{"format":2,"gen":18446744073709551615,"keys":{},"extra":[1,{"a":"b"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"format":2,"gen":7,"keys":{"k":{"high":1,"versions":[{"seq":1,"size":2,"sha256":"ab","created":"2026-11-25T01:02:03.5+01:00","data":"AAE="}]}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var want, got manifest
		if json.Unmarshal(b, &want) != nil {
			return
		}
		if err := decodeManifest(b, &got); err != nil {
			t.Fatalf("encoding/json reads %q, decodeManifest fails: %v", b, err)
		}
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("%q: encoding/json reads %+v, decodeManifest %+v", b, want, got)
		}
	})
}

// testManifest is the JSON of a manifest with one key of n versions of size bytes inline
// (none: blobs).
func testManifest(n, size int) []byte {
	k := &keyState{High: uint64(n)}
	for i := range n {
		v := version{Seq: uint64(i + 1), Size: int64(max(size, 4096)), SHA256: fmt.Sprintf("%064x", i), Created: time.Date(2026, 11, 25, 1, 2, i, 0, time.UTC)}
		if size > 0 {
			v.Data = bytes.Repeat([]byte{byte(i)}, size)
		} else {
			v.Blob = fmt.Sprintf("%016x", i)
		}
		k.Versions = append(k.Versions, v)
	}
	b, _ := json.Marshal(&manifest{Format: manifestFormat, Gen: 1, Keys: map[string]*keyState{"k": k}})
	return b
}
