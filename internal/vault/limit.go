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

// limiter is a token bucket per key (client address or vault), forgotten after ten
// idle minutes.
type limiter struct {
	mu    sync.Mutex
	r     rate.Limit
	burst int
	keys  map[string]*bucket
	swept time.Time
}

type bucket struct {
	l    *rate.Limiter
	seen time.Time
}

func newLimiter(perSecond float64, burst int) *limiter {
	return &limiter{r: rate.Limit(perSecond), burst: burst, keys: map[string]*bucket{}, swept: time.Now()}
}

// allow takes a token for key, or says how long until one is there.
func (l *limiter) allow(key string) (bool, time.Duration) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		for k, b := range l.keys {
			if now.Sub(b.seen) > 10*time.Minute {
				delete(l.keys, k)
			}
		}
		l.swept = now
	}
	b := l.keys[key]
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

// limitIP limits by client address: the socket's, unless a trusted proxy says otherwise.
func (s *Server) limitIP(c *gin.Context) { s.limit(c, s.ipLimit, c.ClientIP()) }

// limitVault limits an authenticated vault, so nobody else can use up its budget.
func (s *Server) limitVault(c *gin.Context) {
	s.limit(c, s.vaultLimit, c.MustGet(ctxVault).(recovery.VaultID).String())
}
