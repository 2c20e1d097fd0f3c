package vault

import (
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/sharevault/sharevault/internal/recovery"
)

// maxLimiterKeys bounds the keys a limiter keeps: past it, new keys share one bucket.
const maxLimiterKeys = 1 << 16

// overflowKey names the bucket that keys past the bound share.
const overflowKey = "\x00overflow"

// limiter is a token bucket per key (client address or vault). A bucket that has been idle
// long enough to be full again is the same as a new one and is forgotten, so the map holds
// only the keys active within the last burst/rate seconds, and never more than max: an
// address rotating its key once the map is full shares the overflow bucket.
type limiter struct {
	mu       sync.Mutex
	r        rate.Limit
	burst    int
	max      int
	fullIdle time.Duration // idle time after which a bucket is full
	keys     map[string]*bucket
	swept    time.Time
}

type bucket struct {
	l    *rate.Limiter
	seen time.Time
}

func newLimiter(perSecond float64, burst int) *limiter {
	return &limiter{r: rate.Limit(perSecond), burst: burst, max: maxLimiterKeys, keys: map[string]*bucket{}, swept: time.Now(),
		fullIdle: time.Duration(math.Ceil(float64(burst) / perSecond * float64(time.Second)))}
}

// allow takes a token for key, or says how long until one is there.
func (l *limiter) allow(key string) (bool, time.Duration) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	full := len(l.keys) >= l.max
	if full && now.Sub(l.swept) > time.Second || now.Sub(l.swept) > time.Minute {
		for k, b := range l.keys {
			if now.Sub(b.seen) >= l.fullIdle {
				delete(l.keys, k)
			}
		}
		l.swept = now
	}
	b := l.keys[key]
	if b == nil && len(l.keys) >= l.max {
		key = overflowKey
		b = l.keys[key]
	}
	if b == nil {
		b = &bucket{l: rate.NewLimiter(l.r, l.burst)}
		l.keys[key] = b
	}
	b.seen = now
	res := b.l.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

func (s *Server) limit(c *gin.Context, l *limiter, key string) {
	if ok, wait := l.allow(key); !ok {
		p := newProblem(http.StatusTooManyRequests, "rate-limited", "too many requests; retry after %s", wait.Round(time.Millisecond))
		p.retryAfter = int(math.Ceil(wait.Seconds()))
		abort(c, p)
		return
	}
	c.Next()
}

// limitIP limits by client address (clientKey): the socket's, unless a trusted proxy says
// otherwise.
func (s *Server) limitIP(c *gin.Context) { s.limit(c, s.ipLimit, clientKey(c)) }

// limitVault limits an authenticated vault, so nobody else can use up its budget.
// A repeat of a signature already charged goes to the vault's repeat bucket instead
// (replay.go): it cannot spend the owner's budget.
func (s *Server) limitVault(c *gin.Context) {
	v := c.MustGet(ctxVault).(recovery.VaultID).String()
	if c.GetBool(ctxRepeat) {
		s.limit(c, s.repeatLimit, v)
		return
	}
	s.limit(c, s.vaultLimit, v)
}
