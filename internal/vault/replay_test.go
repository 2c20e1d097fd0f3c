package vault

import (
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
	tt := newTester(t, stores(t)["pebble"](t), Config{RateVault: 1, BurstVault: 3})
	u := newUser(t, 1)
	want(t, "PUT", tt.do(u, "PUT", api.KeyPath(u.vault(), "k"), u.seal(t, "k", 1, "x"), "If-None-Match", "*"), 201, "")
	at := time.Now().Add(-time.Second)
	// One signature, 40 times: one token of the vault's; its repeats have a bucket of their
	// own (ten times the vault's burst: 30), past which they are refused.
	codes := map[int]int{}
	for range 40 {
		codes[tt.doAt(u, at, "GET", api.KeyPath(u.vault(), "k"), nil).status]++
	}
	if codes[200] != 31 || codes[429] != 9 {
		t.Errorf("40 uses of one signature: %v, want 31 answered (the first and 30 repeats) and 9 refused", codes)
	}
	want(t, "a new request after 40 uses of another", tt.doAt(u, at.Add(-time.Second), "GET", api.KeysPath(u.vault()), nil), 200, "")
	before := tt.srv.seen.total
	for b := range 50 {
		o := newUser(t, byte(100+b))
		want(t, "a vault that does not exist", tt.do(o, "GET", api.KeysPath(o.vault()), nil), 404, "not-found")
	}
	if tt.srv.seen.total != before {
		t.Errorf("signatures for vaults that do not exist were remembered: %d, then %d", before, tt.srv.seen.total)
	}
}

// TestSeenKeepsAVictimsSignatures: filling the set far past its bound from other vaults,
// each with more signatures than the victim's, forgets none of the victim's. It also
// measures what an entry costs.
func TestSeenKeepsAVictimsSignatures(t *testing.T) {
	s := &seen{perVault: 8000}
	now := time.Now()
	exp := now.Add(time.Minute)
	victim := recovery.VaultID{1}
	for i := range 45 {
		s.record(victim, uint64(i), exp, now)
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	for v := range 2 * maxSeen / 6000 {
		id := recovery.VaultID{2, byte(v), byte(v >> 8)}
		for i := range 6000 {
			s.record(id, uint64(v)<<32|uint64(i), exp, now)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	t.Logf("%d signatures remembered: %d bytes of heap, %.0f per signature", s.total, m1.HeapAlloc-m0.HeapAlloc, float64(m1.HeapAlloc-m0.HeapAlloc)/float64(s.total))
	if s.total > maxSeen {
		t.Errorf("%d signatures remembered, over the bound %d", s.total, maxSeen)
	}
	for i := range 45 {
		if !s.repeated(victim, uint64(i), now) {
			t.Fatalf("the victim's signature %d was pushed out", i)
		}
	}
	if s.repeated(victim, 99, now) || s.repeated(victim, 1, exp.Add(time.Second)) {
		t.Error("an unseen or expired signature counts as seen")
	}
}
