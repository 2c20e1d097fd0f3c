package vault

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/sharevault/sharevault/api"
	"github.com/sharevault/sharevault/internal/recovery"
)

// TestReplaysRemembered: a signature is remembered only for a request that found its
// vault; its repeats are charged to the vault's repeat bucket, never to its rate limit;
// signatures for vaults that do not exist are not remembered at all (so they cannot push
// a vault's out).
func TestReplaysRemembered(t *testing.T) {
	tt := newTester(t, stores(t)["pebble"](t), Config{RateVault: 0.01, BurstVault: 5, RateIP: 1e6, BurstIP: 1 << 20})
	u := newUser(t, 1)
	want(t, "PUT", tt.do(u, "PUT", api.KeyPath(u.vault(), "k"), u.seal(t, "k", 1, "x"), "If-None-Match", "*"), 201, "")
	// A missing key in a vault that exists is a 404 like any other answer: its repeats are
	// not charged to the vault either.
	missing := time.Now().Add(-3 * time.Second)
	for range 5 {
		want(t, "a missing key, repeated", tt.doAt(u, missing, "GET", api.KeyPath(u.vault(), "missing"), nil), 404, "not-found")
	}
	want(t, "a new request after them", tt.doAt(u, missing.Add(-time.Second), "GET", api.KeysPath(u.vault()), nil), 200, "")
	at := time.Now().Add(-time.Second)
	// One signature, 60 times: one token of the vault's; its repeats have a bucket of their
	// own (ten times the vault's burst: 50, of which the missing key's 4 repeats took 4),
	// past which they are refused.
	codes := map[int]int{}
	for range 60 {
		codes[tt.doAt(u, at, "GET", api.KeyPath(u.vault(), "k"), nil).status]++
	}
	if codes[200] != 47 || codes[429] != 13 {
		t.Errorf("60 uses of one signature: %v, want 47 answered (the first and 46 repeats) and 13 refused", codes)
	}
	want(t, "a new request after 60 uses of another", tt.doAt(u, at.Add(-time.Second), "GET", api.KeysPath(u.vault()), nil), 200, "")
	before := tt.srv.seen.total
	for b := range 50 {
		o := newUser(t, byte(100+b))
		want(t, "a vault that does not exist", tt.do(o, "GET", api.KeysPath(o.vault()), nil), 404, "not-found")
		req := tt.do(o, "PUT", api.KeyPath(o.vault(), "k"), []byte("x"), "If-Match", `"x"`)
		if req.status != 400 && req.status != 422 && req.status != 412 {
			t.Fatalf("a PUT to a vault that does not exist: %d", req.status)
		}
	}
	if tt.srv.seen.total != before {
		t.Errorf("signatures for vaults that do not exist were remembered: %d, then %d", before, tt.srv.seen.total)
	}
}

// TestSeenKeepsAVictimsSignatures: filling the set far past its bound from other vaults,
// with many signatures each or one each, forgets none of the victim's, and a vault's
// signatures within its floor are remembered even then; marking stays cheap when full.
// It also measures what an entry costs.
func TestSeenKeepsAVictimsSignatures(t *testing.T) {
	for _, each := range []int{6000, 1} {
		t.Run(fmt.Sprintf("%d a vault", each), func(t *testing.T) {
			s := &seen{perVault: 8000}
			now := time.Now()
			exp := now.Add(time.Minute)
			victim := recovery.VaultID{1}
			for i := range 45 {
				s.mark(victim, uint64(i), exp, now)
			}
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			start := time.Now()
			n := 2 * maxSeen
			for i := range n {
				v := i / each
				s.mark(recovery.VaultID{2, byte(v), byte(v >> 8), byte(v >> 16)}, uint64(i), exp, now)
			}
			took := time.Since(start)
			runtime.GC()
			runtime.ReadMemStats(&m1)
			t.Logf("%d signatures remembered of %d marked: %d bytes of heap, %.0f a signature; %v a mark", s.total, n, m1.HeapAlloc-m0.HeapAlloc, float64(m1.HeapAlloc-m0.HeapAlloc)/float64(s.total), took/time.Duration(n))
			if s.total > hardMaxSeen {
				t.Errorf("%d signatures remembered, over the bound %d", s.total, hardMaxSeen)
			}
			for i := range 45 {
				if !s.mark(victim, uint64(i), exp, now) {
					t.Fatalf("the victim's signature %d was pushed out", i)
				}
			}
			if s.mark(victim, 99, exp, now); !s.mark(victim, 99, exp, now) {
				t.Error("a vault under its floor got no new signature in a full set")
			}
			if s.mark(victim, 1, exp, exp.Add(time.Second)) {
				t.Error("an expired signature counts as seen")
			}
		})
	}
}
