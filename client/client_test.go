package client_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sharevault/sharevault/api"
	"github.com/sharevault/sharevault/client"
	"github.com/sharevault/sharevault/internal/blobstore/pebblestore"
	"github.com/sharevault/sharevault/internal/vault"
)

// tamper is how the proxy damages a download of an envelope.
var tamper atomic.Value // string: "", "flip", "flip+digest", "truncate+digest"

// world is a vault on loopback, a proxy in front of it that can damage downloads, and a
// phone with two server nodes that made and backed up a key.
type world struct {
	dir, direct, proxied string
	keys                 *client.Keys
	keyID                string
}

func newWorld(t *testing.T) *world {
	store, err := pebblestore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	h, err := vault.New(store, vault.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RateIP: 1e6, BurstIP: 1e6})
	if err != nil {
		t.Fatal(err)
	}
	v := httptest.NewServer(h)
	t.Cleanup(v.Close)
	target, _ := url.Parse(v.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(r *http.Response) error {
		mode, _ := tamper.Load().(string)
		if mode == "put-lost" && r.Request.Method == "PUT" { // stored, then the phone is told otherwise
			r.StatusCode = http.StatusInternalServerError
			r.Body = io.NopCloser(strings.NewReader(`{"type":"urn:sharevault:problem:internal","title":"x","status":500}`))
			r.ContentLength = -1
			r.Header.Del("Content-Length")
			return nil
		}
		if mode == "" || r.Request.Method != "GET" || r.Header.Get("Content-Type") != "application/octet-stream" {
			return nil
		}
		b, _ := io.ReadAll(r.Body)
		switch {
		case strings.HasPrefix(mode, "flip"):
			b[len(b)/2] ^= 0x01
		case strings.HasPrefix(mode, "truncate"):
			b = b[:len(b)-20]
		}
		if strings.HasSuffix(mode, "+digest") { // a careful attacker fixes the digest too
			r.Header.Set("Content-Digest", api.ContentDigest(b))
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.ContentLength = int64(len(b))
		r.Header.Set("Content-Length", strconv.Itoa(len(b)))
		return nil
	}
	p := httptest.NewServer(rp)
	t.Cleanup(p.Close)
	tamper.Store("")

	w := &world{dir: t.TempDir(), direct: v.URL, proxied: p.URL}
	phone := w.phone(t, "old.db", v.URL)
	if w.keyID, err = phone.KeyGen("eddsa", "t"); err != nil {
		t.Fatal(err)
	}
	words, _ := client.NewWords(12)
	w.keys, _ = words.Keys("")
	if _, err := phone.Backup(w.keys, w.keyID); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) phone(t *testing.T, db, url string) *client.Phone {
	p, err := client.OpenPhone(filepath.Join(w.dir, db), client.NewVault(url))
	if err != nil {
		t.Fatal(err)
	}
	p.AddServerNode(filepath.Join(w.dir, "s1.db"))
	p.AddServerNode(filepath.Join(w.dir, "s2.db"))
	t.Cleanup(func() { p.Close() })
	return p
}

func fileHash(t *testing.T, path string) [32]byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestDamagedDownloadsChangeNothing: a corrupted or truncated download gives a clear
// error and leaves the new phone's TSM database untouched.
func TestDamagedDownloadsChangeNothing(t *testing.T) {
	w := newWorld(t)
	tests := []struct {
		mode string
		want string
	}{
		{"flip", "does not match the vault's Content-Digest"},
		{"flip+digest", client.ErrCannotOpen.Error()},
		{"truncate+digest", "does not open"},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			fresh := w.phone(t, tc.mode+".db", w.proxied)
			before := fileHash(t, filepath.Join(w.dir, tc.mode+".db"))
			tamper.Store(tc.mode)
			defer tamper.Store("")
			_, err := fresh.Restore(w.keys, w.keyID)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("restore of a %s download: got %v, want %q", tc.mode, err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if fileHash(t, filepath.Join(w.dir, tc.mode+".db")) != before {
				t.Error("the TSM database changed after a failed restore")
			}
			if _, err := fresh.Verify(w.keys, w.keyID); err == nil {
				t.Error("verify accepted a damaged download")
			}
		})
	}
	// The same phone restores once the download is intact.
	tamper.Store("")
	if info, err := w.phone(t, "flip.db", w.proxied).Restore(w.keys, w.keyID); err != nil || info.KeyID != w.keyID {
		t.Fatalf("intact restore: %v", err)
	}
}

func TestWrongWordsChangeNothing(t *testing.T) {
	w := newWorld(t)
	fresh := w.phone(t, "new.db", w.direct)
	before := fileHash(t, filepath.Join(w.dir, "new.db"))
	other, _ := client.NewWords(12)
	_, err := client.FindKeys(client.NewVault(w.direct), other.Phrase(), "")
	if !errors.Is(err, client.ErrWrongWords) {
		t.Fatalf("other words: got %v, want ErrWrongWords", err)
	}
	otherKeys, _ := other.Keys("")
	if _, err := fresh.Restore(otherKeys, w.keyID); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("restore with other words: got %v, want ErrNotFound", err)
	}
	if fileHash(t, filepath.Join(w.dir, "new.db")) != before {
		t.Error("the TSM database changed")
	}
}

type steps struct{ lines []string }

func (s *steps) Step(m string) { s.lines = append(s.lines, m) }

// TestOneWordCorrectionIsQuick: restoring with one valid but wrong word, against a vault
// with default limits, finds the vault in one existence query (not a request per
// candidate), with no retry or error line: for 12 and 24 words. The time is logged (the
// closing note quotes it); it is not asserted.
func TestOneWordCorrectionIsQuick(t *testing.T) {
	store, err := pebblestore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	h, err := vault.New(store, vault.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}) // default limits
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	for _, n := range []int{12, 24} {
		t.Run(strconv.Itoa(n)+" words", func(t *testing.T) {
			dir := t.TempDir()
			p, err := client.OpenPhone(filepath.Join(dir, "phone.db"), client.NewVault(srv.URL))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			p.AddServerNode(filepath.Join(dir, "s1.db"))
			p.AddServerNode(filepath.Join(dir, "s2.db"))
			keyID, err := p.KeyGen("eddsa", "")
			if err != nil {
				t.Fatal(err)
			}
			words, _ := client.NewWords(n)
			keys, _ := words.Keys("")
			if _, err := p.Backup(keys, keyID); err != nil {
				t.Fatal(err)
			}
			typed := strings.Fields(words.Phrase())
			pos := n / 2
			wrong := "zoo"
			if typed[pos] == "zoo" {
				wrong = "zone"
			}
			typed[pos] = wrong // a real word, but not the one written down
			v := client.NewVault(srv.URL)
			var log steps
			v.SetProgress(&log)
			start := time.Now()
			found, err := client.FindKeys(v, strings.Join(typed, " "), "")
			took := time.Since(start)
			if err != nil {
				t.Fatalf("%v (progress: %q)", err, log.lines)
			}
			if found.Position != pos+1 || found.Word != strings.Fields(words.Phrase())[pos] {
				t.Errorf("corrected word %d to %q, want word %d", found.Position, found.Word, pos+1)
			}
			for _, l := range log.lines {
				if strings.Contains(l, "retry") || strings.Contains(l, "429") || strings.Contains(l, "unreachable") {
					t.Errorf("a retry or error line: %q", l)
				}
			}
			t.Logf("%d words, one wrong word: found in %s", n, took.Round(time.Millisecond))
		})
	}
}

// TestReshareEndsWithABackup: a reshare uploads the new share before any node switches,
// and deletes the older versions once every node has; a reshare whose upload is not
// acknowledged is undone everywhere, and a restore then skips the version it left (the
// nodes do not accept its share) for the one before, which signs.
func TestReshareEndsWithABackup(t *testing.T) {
	w := newWorld(t)
	old := w.phone(t, "old.db", w.proxied)
	if _, err := old.Reshare(nil, w.keyID); err == nil {
		t.Fatal("a reshare without the vault's keys ran")
	}

	tamper.Store("put-lost")
	_, err := old.Reshare(w.keys, w.keyID)
	tamper.Store("")
	if err == nil || !strings.Contains(err.Error(), "undone") {
		t.Fatalf("reshare with its upload lost: %v", err)
	}
	if _, err := old.Sign(w.keyID, "still at epoch 0"); err != nil {
		t.Fatal(err)
	}
	got := versions(t, old, w)
	if len(got) != 2 || got[0] != 0 || got[1] != 1 {
		t.Fatalf("vault holds epochs %v, want [0 1] (the undone refresh's upload kept)", got)
	}
	if v, err := old.Verify(w.keys, w.keyID); err != nil || v.Epoch != 0 || v.Sequence != 1 {
		t.Fatalf("the drill past an undone refresh's version: %+v, %v", v, err)
	}
	armored, err := old.Export(w.keys, w.keyID)
	if err != nil {
		t.Fatal(err)
	}
	imported, err := w.phone(t, "new0.db", w.direct).Import(w.keys, armored)
	if err != nil || imported.Epoch != 0 {
		t.Fatalf("an export past an undone refresh's version, imported: %+v, %v", imported, err)
	}
	restored, err := w.phone(t, "new1.db", w.direct).Restore(w.keys, w.keyID)
	if err != nil || restored.Epoch != 0 || restored.Sequence != 1 {
		t.Fatalf("restore past an undone refresh's version: %+v, %v", restored, err)
	}

	info, err := old.Reshare(w.keys, w.keyID)
	if err != nil || info.Epoch != 1 || info.Sequence != 3 {
		t.Fatalf("reshare: %+v, %v", info, err)
	}
	if got := versions(t, old, w); len(got) != 1 || got[0] != 1 {
		t.Fatalf("after the reshare the vault holds epochs %v, want [1]", got)
	}
	fresh := w.phone(t, "new2.db", w.direct)
	restored, err = fresh.Restore(w.keys, w.keyID)
	if err != nil || restored.Epoch != 1 {
		t.Fatalf("restore after the reshare: %+v, %v", restored, err)
	}
	if _, err := fresh.Sign(w.keyID, "restored after a reshare"); err != nil {
		t.Fatal(err)
	}

	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	v := client.NewVault(down.URL)
	v.SetAttempts(1)
	vaultDown, err := client.OpenPhone(filepath.Join(w.dir, "new2.db"), v)
	if err != nil {
		t.Fatal(err)
	}
	defer vaultDown.Close()
	vaultDown.AddServerNode(filepath.Join(w.dir, "s1.db"))
	vaultDown.AddServerNode(filepath.Join(w.dir, "s2.db"))
	if _, err := vaultDown.Reshare(w.keys, w.keyID); err == nil || !strings.Contains(err.Error(), "undone") {
		t.Fatalf("reshare with the vault down: %v", err)
	}
	if _, err := fresh.Sign(w.keyID, "the failed reshare changed nothing"); err != nil {
		t.Fatal(err)
	}
}

// versions returns the epoch of every version of the world's key in the vault, in order.
func versions(t *testing.T, p *client.Phone, w *world) []int64 {
	t.Helper()
	l, err := p.Versions(w.keys, w.keyID)
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for i := 0; i < l.Len(); i++ {
		out = append(out, l.At(i).Epoch)
	}
	return out
}
