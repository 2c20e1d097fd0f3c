package vault

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// Replays (docs/api.md, "Replayed requests"). A signed request can be captured and sent
// again, from any address, for as long as its created time is in the window. Its repeats
// are served, as the owner's own resent request would be (Ed25519 is deterministic: a
// request signed twice in one second is the same bytes), but only a signature's first use
// is charged to the vault's rate limit, so a capture cannot spend the owner's budget.
// A repeat is charged to the address it comes from, like any request: it gets an attacker
// nothing that requests of its own vault would not.

// maxSeen bounds the signatures remembered (about 6 MB). Past it the oldest is forgotten:
// its next use counts as new, so a capture costs the owner one token per 2^17 signatures
// the attacker makes (at its own addresses' rate) in between.
const maxSeen = 1 << 17

type seenSig struct {
	uses    int   // at most 255
	expires int64 // unix nanoseconds
}

// seen remembers signatures until their window ends, in a map and a ring of its keys in
// the order first seen, which bounds it.
type seen struct {
	mu   sync.Mutex
	m    map[[16]byte]seenSig
	ring [][16]byte
	next int
}

// use counts a use of the signature header value sig, whose window ends at expires, and
// returns how many uses it has had, this one included (at most 255 are counted).
func (s *seen) use(sig string, expires, now time.Time) int {
	h := sha256.Sum256([]byte(sig))
	k := [16]byte(h[:16])
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[k]; ok && now.UnixNano() < e.expires {
		e.uses = min(e.uses+1, 255)
		s.m[k] = e
		return e.uses
	}
	if s.m == nil {
		s.m = map[[16]byte]seenSig{}
	}
	if len(s.ring) < maxSeen {
		s.ring = append(s.ring, k)
	} else {
		delete(s.m, s.ring[s.next])
		s.ring[s.next] = k
		s.next = (s.next + 1) % maxSeen
	}
	s.m[k] = seenSig{uses: 1, expires: expires.UnixNano()}
	return 1
}

const ctxRepeat = "sharevault.repeat"

// replays counts the use of an authenticated request's signature: a repeat skips the
// vault's rate limit.
func (s *Server) replays(c *gin.Context, created time.Time) {
	n := s.seen.use(c.Request.Header.Get("Signature"), created.Add(s.cfg.Skew+time.Second), time.Now())
	if n > 1 {
		s.metrics.repeats.Inc()
	}
	c.Set(ctxRepeat, n > 1)
}
