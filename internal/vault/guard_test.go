package vault

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sharevault/sharevault/api"
	"github.com/sharevault/sharevault/internal/blobstore"
	"github.com/sharevault/sharevault/internal/recovery"
)

// stallingStore holds every Put whose name starts with prefix until release is closed,
// whatever its context says: a store that hangs for one vault on demand, which no real
// store can be made to do.
type stallingStore struct {
	blobstore.Store
	prefix  string
	entered chan struct{}
	release chan struct{}
}

func (s *stallingStore) Put(ctx context.Context, name string, r io.Reader, size int64, cond blobstore.Condition) (blobstore.Attrs, error) {
	if strings.HasPrefix(name, s.prefix) {
		select {
		case s.entered <- struct{}{}:
		default:
		}
		<-s.release
	}
	return s.Store.Put(ctx, name, r, size, cond)
}

// userN is a vault owner from a counter, for searching vault IDs.
func userN(t testing.TB, n int) *user {
	secret := sha256.Sum256([]byte(fmt.Sprint("user ", n)))
	id, err := recovery.NewIdentity(secret[:])
	if err != nil {
		t.Fatal(err)
	}
	root, _ := recovery.DeriveRootKey(secret[:], "", recovery.KDF{})
	return &user{id: id, root: root}
}

// TestLocksHonourDeadlines: a write stuck on one vault holds up neither a vault that the
// old 256 lock slots made share its lock, nor, past the request's deadline, a second write
// to the stuck vault itself (503, not a wait without end).
func TestLocksHonourDeadlines(t *testing.T) {
	stuck := userN(t, 0)
	var victim *user
	for n := 1; n < 100000 && victim == nil; n++ {
		if u := userN(t, n); u.id.VaultID()[7] == stuck.id.VaultID()[7] {
			victim = u // same slot of the old [256]sync.Mutex
		}
	}
	st := &stallingStore{Store: stores(t)["pebble"](t), prefix: "v1/" + stuck.vault() + "/",
		entered: make(chan struct{}, 1), release: make(chan struct{})}
	tt := newTester(t, st, Config{RequestTimeout: time.Second})
	client := &http.Client{Timeout: 5 * time.Second}

	done := make(chan struct{})
	defer func() { close(st.release); <-done }()
	go func() { // the stuck write: its version blob does not land while the test runs
		defer close(done)
		upload1(t, client, tt.url, stuck, 1)
	}()
	select {
	case <-st.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first write never reached the store")
	}

	if code, err := upload1(t, client, tt.url, victim, 1); err != nil || code != 201 {
		t.Errorf("a write to another vault behind the stuck one: %d %v, want 201 at once", code, err)
	}
	if code, err := upload1(t, client, tt.url, stuck, 2); err != nil || code != 503 {
		t.Errorf("a second write to the stuck vault: %d %v, want 503 when its deadline ends", code, err)
	}
}

// upload1 uploads version seq of u's key "k" as its first version and returns the status.
func upload1(t *testing.T, client *http.Client, base string, u *user, seq uint64) (int, error) {
	body := u.seal(t, "k", seq, "y")
	req, _ := http.NewRequest("PUT", base+api.KeyPath(u.vault(), "k"), strings.NewReader(string(body)))
	req.Header.Set("If-None-Match", "*")
	api.Sign(req, body, u.id, time.Now())
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestLimiterBounded: rotating the key (a client rotating addresses) cannot grow a
// limiter past its bound, and the keys past it share one bucket, which limits them.
func TestLimiterBounded(t *testing.T) {
	l := newLimiter(1, 2)
	l.max = 100
	refused := 0
	for i := range 10000 {
		if ok, _ := l.allow(fmt.Sprint("10.0.", i/256, ".", i%256)); !ok {
			refused++
		}
	}
	if n := len(l.keys); n > l.max+1 {
		t.Errorf("limiter holds %d keys, bound %d", n, l.max)
	}
	if refused < 9000 {
		t.Errorf("only %d of 10000 requests from rotating keys refused past the bound", refused)
	}
	// A bucket idle long enough to be full again is forgotten.
	l.fullIdle = 0
	l.swept = time.Time{}
	l.allow("fresh")
	if n := len(l.keys); n != 1 {
		t.Errorf("%d keys kept after they all went idle, want 1", n)
	}
}

// TestClientKey: limits are kept per IPv4 address and per IPv6 /64, since one IPv6 host is
// commonly given a whole /64 to rotate through.
func TestClientKey(t *testing.T) {
	for remote, want := range map[string]string{
		"192.0.2.7:1234":              "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:1234": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:1":    "2001:db8:1:2::/64",
		"[::ffff:192.0.2.7]:1":        "192.0.2.7",
	} {
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = httptest.NewRequest("GET", "/", nil)
		c.Request.RemoteAddr = remote
		if got := clientKey(c); got != want {
			t.Errorf("clientKey(%s) = %q, want %q", remote, got, want)
		}
	}
}

// fullAfter is a store capacity that reports the disk full once full is set: a disk
// filling up on demand, which no real disk in a test does.
type fullAfter struct{ full atomic.Bool }

func (f *fullAfter) Capacity(context.Context) (int64, int64, error) {
	if f.full.Load() {
		return 1 << 40, 0, nil
	}
	return 0, 1 << 40, nil
}

// TestStorageFull: once the store is short of room, uploads to existing vaults are refused
// too (507), not only new vaults, while reads still work.
func TestStorageFull(t *testing.T) {
	capacity := &fullAfter{}
	tt := newTester(t, stores(t)["pebble"](t), Config{Capacity: capacity})
	u := newUser(t, 1)
	p := api.KeyPath(u.vault(), "k")
	v1 := u.seal(t, "k", 1, "x")
	want(t, "first upload", tt.do(u, "PUT", p, v1, "If-None-Match", "*"), 201, "")
	capacity.full.Store(true)
	time.Sleep(1100 * time.Millisecond) // the probe is at most a second old
	want(t, "upload to a full store", tt.do(u, "PUT", p, u.seal(t, "k", 2, "y"), "If-Match", quoted(v1)), 507, "storage-full")
	want(t, "a read of a full store", tt.do(u, "GET", p, nil), 200, "")
}

// TestExists: the batch existence query names exactly the IDs that have a vault, refuses
// malformed and oversize queries, and is rate-limited per address on its own.
func TestExists(t *testing.T) {
	tt := newTester(t, stores(t)["pebble"](t), Config{})
	u, other := newUser(t, 1), newUser(t, 2)
	want(t, "upload", tt.do(u, "PUT", api.KeyPath(u.vault(), "k"), u.seal(t, "k", 1, "x"), "If-None-Match", "*"), 201, "")
	query := func(ids ...string) response {
		b, _ := json.Marshal(api.ExistsQuery{VaultIDs: ids})
		return tt.do(nil, "POST", "/v1/exists", b, "Content-Type", "application/json")
	}
	r := query(other.vault(), u.vault())
	want(t, "query", r, 200, "")
	var res api.ExistsResult
	json.Unmarshal(r.body, &res)
	if len(res.VaultIDs) != 1 || res.VaultIDs[0] != u.vault() {
		t.Fatalf("exists answered %v, want only %s", res.VaultIDs, u.vault())
	}
	want(t, "an ID that is not hex", query("zz"), 400, "bad-request")
	many := make([]string, api.MaxExistsIDs+1)
	for i := range many {
		many[i] = other.vault()
	}
	want(t, "too many IDs", query(many...), 400, "bad-request")
	want(t, "not JSON", tt.do(nil, "POST", "/v1/exists", []byte("{"), "Content-Type", "application/json"), 400, "bad-request")
	limited := false
	for range 12 {
		limited = limited || query(u.vault()).status == 429
	}
	if !limited {
		t.Error("12 existence queries at once, none refused at 1 a second (burst 10)")
	}
}
