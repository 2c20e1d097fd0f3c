package vault

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"net/http"
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
// vault (not 404) and were not refused: a vault's entries are no more than its rate limit
// lets in within a window. Past maxSeen in all, entries go from the vault that has the
// most, so one cannot push another vault's signatures out with signatures of its own
// vaults unless each of those holds fewer than the victim's.

// maxSeen bounds the signatures remembered in all (about 65 bytes each: 8.5 MB).
const maxSeen = 1 << 17

// repeatFactor is how many times the vault's rate (and burst) its repeats may use.
const repeatFactor = 10

// sigHash is a signature's key in the set: 64 bits of its SHA-256. A collision makes a new
// request pass as a repeat, which only spares the vault a token.
func sigHash(sig string) uint64 {
	h := sha256.Sum256([]byte(sig))
	return binary.BigEndian.Uint64(h[:8])
}

type seen struct {
	mu       sync.Mutex
	parts    map[recovery.VaultID]*seenPart
	total    int
	perVault int // what a vault's rate limit lets in within a window
}

// seenPart is one vault's signatures: expiry by hash, and the hashes oldest first.
type seenPart struct {
	exp   map[uint64]int64 // unix nanoseconds
	order []uint64
}

// repeated reports whether sig was seen for vault within its window.
func (s *seen) repeated(vault recovery.VaultID, sig uint64, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.parts[vault]
	if p == nil {
		return false
	}
	e, ok := p.exp[sig]
	return ok && now.UnixNano() < e
}

// record remembers sig for vault until expires.
func (s *seen) record(vault recovery.VaultID, sig uint64, expires, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.parts == nil {
		s.parts = map[recovery.VaultID]*seenPart{}
	}
	p := s.parts[vault]
	if p == nil {
		p = &seenPart{exp: map[uint64]int64{}}
		s.parts[vault] = p
	}
	if _, ok := p.exp[sig]; ok {
		return
	}
	for len(p.order) > 0 && (len(p.order) >= s.perVault || p.exp[p.order[0]] <= now.UnixNano()) {
		s.drop(p, 1)
	}
	if s.total >= maxSeen {
		s.evict(now)
	}
	p.exp[sig] = expires.UnixNano()
	p.order = append(p.order, sig)
	s.total++
}

// drop forgets p's n oldest signatures.
func (s *seen) drop(p *seenPart, n int) {
	for _, h := range p.order[:n] {
		delete(p.exp, h)
	}
	p.order = p.order[n:]
	s.total -= n
}

// evict makes room: expired entries first, then an eighth of the largest vault's.
func (s *seen) evict(now time.Time) {
	var largest *seenPart
	for v, p := range s.parts {
		for len(p.order) > 0 && p.exp[p.order[0]] <= now.UnixNano() {
			s.drop(p, 1)
		}
		if len(p.order) == 0 {
			delete(s.parts, v)
			continue
		}
		if largest == nil || len(p.order) > len(largest.order) {
			largest = p
		}
	}
	if s.total >= maxSeen && largest != nil {
		s.drop(largest, max(1, len(largest.order)/8))
	}
}

const (
	ctxRepeat = "sharevault.repeat"
)

// replays marks an authenticated request whose signature was seen (limitVault charges it
// to the vault's repeat bucket), serves it, and then remembers a new signature whose
// request found its vault and was not refused by a limit.
func (s *Server) replays(c *gin.Context, vault recovery.VaultID, created time.Time) {
	h := sigHash(c.Request.Header.Get("Signature"))
	repeat := s.seen.repeated(vault, h, time.Now())
	if repeat {
		s.metrics.repeats.Inc()
	}
	c.Set(ctxRepeat, repeat)
	c.Next()
	if !repeat && recordable(c) {
		s.seen.record(vault, h, created.Add(s.cfg.Skew+time.Second), time.Now())
	}
}

// recordable: the request found its vault and no limit refused it (its answer, which the
// problems middleware writes later, is not 404, 429 or 503).
func recordable(c *gin.Context) bool {
	if len(c.Errors) == 0 {
		return true
	}
	var p *problem
	if !errors.As(c.Errors.Last().Err, &p) {
		return false
	}
	return p.status != http.StatusNotFound && p.status != http.StatusTooManyRequests && p.status != http.StatusServiceUnavailable
}
