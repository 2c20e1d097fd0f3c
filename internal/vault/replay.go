package vault

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sharevault/sharevault/internal/recovery"
)

// Replays (docs/api.md, "Replayed requests"). A signed request can be captured and sent
// again, from any address, for as long as its created time is in the window. Its repeats
// are served, as the owner's own resent request would be (Ed25519 is deterministic: a
// request signed twice in one second is the same bytes), but only a signature's first use
// is charged to the vault's rate limit, so a capture cannot spend the owner's budget.
// Repeats are charged to a bucket of their own per vault (repeatFactor times the vault's
// rate), which bounds what they cost the store, and to the address they come from.
//
// The signatures are remembered per vault, and only those of requests that found their
// vault: a signature is marked when its request arrives (so copies that arrive while it is
// served are repeats) and forgotten after it if the vault does not exist. A vault holds no
// more than its rate limit lets in within a window. Past maxSeen in all, a vault that holds
// seenFloor or more gets no new ones (their replays are then charged as new), but one that
// holds fewer always does: others' signatures, from vaults of their own, never push a
// vault's out, and a phone's few requests in a window are always remembered. Entries leave
// in the order they came, when their window ends.

// maxSeen is the bound past which only vaults under seenFloor get new signatures, and
// hardMaxSeen the bound past which none do (what the set may cost: about 117 bytes a
// signature when vaults hold many: 8 MB; about 220 when each holds one: 29 MB at most).
const (
	maxSeen     = 1 << 16
	hardMaxSeen = 1 << 17
)

// seenFloor is what every vault may hold until the set is at hardMaxSeen.
const seenFloor = 64

// repeatFactor is how many times the vault's rate (and burst) its repeats may use.
const repeatFactor = 10

// sigHash is a signature's key in the set: 64 bits of the SHA-256 of the vault and the
// signature. A collision makes a new request pass as a repeat, which only spares the vault
// a token.
func sigHash(vault recovery.VaultID, sig string) uint64 {
	h := sha256.New()
	h.Write(vault[:])
	h.Write([]byte(sig))
	return binary.BigEndian.Uint64(h.Sum(nil)[:8])
}

type seenEntry struct {
	key     uint64
	seq     uint64 // which marking of key this is
	expires int64  // unix nanoseconds
	count   *int32 // its vault's
	vault   recovery.VaultID
}

type seenVal struct{ expires, seq int64 }

// seen is the set: expiry by key, the entries in the order they came, and each vault's count.
type seen struct {
	mu       sync.Mutex
	exp      map[uint64]seenVal
	order    []seenEntry
	seq      int64
	count    map[recovery.VaultID]*int32
	total    int
	perVault int // what a vault's rate limit lets in within a window
}

// mark reports whether sig (its sigHash) was seen for vault within its window and, if not,
// remembers it until expires (if there is room for it).
func (s *seen) mark(vault recovery.VaultID, key uint64, expires, now time.Time) (repeat bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exp == nil {
		s.exp, s.count = map[uint64]seenVal{}, map[recovery.VaultID]*int32{}
	}
	for len(s.order) > 0 && s.order[0].expires <= now.UnixNano() { // expired, oldest first
		s.forgetLocked(s.order[0])
		s.order = s.order[1:]
	}
	if e, ok := s.exp[key]; ok && now.UnixNano() < e.expires {
		return true
	}
	c := s.count[vault]
	n := 0
	if c != nil {
		n = int(*c)
	}
	if n >= s.perVault || s.total >= hardMaxSeen || s.total >= maxSeen && n >= seenFloor {
		return false
	}
	if c == nil {
		c = new(int32)
		s.count[vault] = c
	}
	s.seq++
	e := seenEntry{key, uint64(s.seq), expires.UnixNano(), c, vault}
	s.exp[key] = seenVal{e.expires, s.seq}
	s.order = append(s.order, e)
	*c++
	s.total++
	return false
}

// forget drops a signature of vault (its request did not find the vault).
func (s *seen) forget(vault recovery.VaultID, key uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.exp[key]; ok {
		s.forgetLocked(seenEntry{key, uint64(e.seq), e.expires, s.count[vault], vault})
	}
}

// forgetLocked drops e if it is still the set's marking of its key (an entry forgotten
// early stays in order until its time, and is skipped then, even if its key was marked
// again since).
func (s *seen) forgetLocked(e seenEntry) {
	if x, ok := s.exp[e.key]; !ok || x.seq != int64(e.seq) || e.count == nil {
		return
	}
	delete(s.exp, e.key)
	if *e.count--; *e.count <= 0 {
		delete(s.count, e.vault)
	}
	s.total--
	if len(s.order) > 2*s.total+1024 { // mostly forgotten entries: keep the live ones
		live := make([]seenEntry, 0, 2*s.total)
		for _, o := range s.order {
			if x, ok := s.exp[o.key]; ok && x.seq == int64(o.seq) {
				live = append(live, o)
			}
		}
		s.order = live
	}
}

const (
	ctxRepeat     = "sharevault.repeat"
	ctxVaultFound = "sharevault.vault_found" // a handler found the vault's manifest (or made it)
)

// replays marks an authenticated request's signature: a repeat goes to the vault's repeat
// bucket (limitVault); a new one is remembered unless its request did not find its vault.
func (s *Server) replays(c *gin.Context, vault recovery.VaultID, created time.Time) {
	h := sigHash(vault, c.Request.Header.Get("Signature"))
	repeat := s.seen.mark(vault, h, created.Add(s.cfg.Skew+time.Second), time.Now())
	if repeat {
		s.metrics.repeats.Inc()
	}
	c.Set(ctxRepeat, repeat)
	c.Next()
	if !repeat && !c.GetBool(ctxVaultFound) {
		s.seen.forget(vault, h)
	}
}
