// Package tsmnode serves one TSM node over HTTP (docs/tsm-api.md): POST /v1/step runs a
// protocol step that a remote coordinator authorized (tsm.Node.Serve), GET /v1/node tells
// the node's identity, and /healthz, /readyz and /metrics are for operators. Requests are
// bounded, rate-limited per client address and logged as JSON lines without their bodies;
// errors are RFC 9457 problems.
package tsmnode

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/sharevault/sharevault/internal/tsm"
	"github.com/sharevault/sharevault/internal/tsm/protocol"
)

// Config holds the server's limits. Zero fields take the defaults.
type Config struct {
	RateIP     float64       // requests per second per client address (50)
	BurstIP    int           // (100)
	KeyGensIP  float64       // key generations started per hour per client address (20, burst as many)
	Timeout    time.Duration // deadline of one step (30s)
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// StallOp, for tests only, makes the node wait StallFor before running steps of this op,
	// so that a test can kill it in the middle of a protocol.
	StallOp  string
	StallFor time.Duration
	// NoMetricsRoute: /metrics is served elsewhere (its own listener), not here.
	NoMetricsRoute bool
	// BodyBudget bounds the bytes of step bodies being read and handled at once, before any
	// is authenticated (64 MiB): past it a step is refused with 503 and Retry-After.
	BodyBudget int64
}

type server struct {
	node    *tsm.Node
	cfg     Config
	log     *slog.Logger
	steps   *prometheus.CounterVec
	latency *prometheus.HistogramVec

	bodies atomic.Int64 // bytes of step bodies in flight, against cfg.BodyBudget

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
	keygens map[string]*rate.Limiter
	swept   time.Time
}

// New builds the node's HTTP handler.
func New(node *tsm.Node, cfg Config) (http.Handler, error) {
	if cfg.RateIP == 0 {
		cfg.RateIP = 50
	}
	if cfg.BurstIP == 0 {
		cfg.BurstIP = 100
	}
	if cfg.KeyGensIP == 0 {
		cfg.KeyGensIP = 20
	}
	if cfg.BodyBudget == 0 {
		cfg.BodyBudget = 64 << 20
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registerer == nil {
		reg := prometheus.NewRegistry()
		cfg.Registerer, cfg.Gatherer = reg, reg
	}
	s := &server{node: node, cfg: cfg, log: cfg.Logger, buckets: map[string]*rate.Limiter{}, keygens: map[string]*rate.Limiter{}, swept: time.Now(),
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sharevault_tsm_steps_total",
			Help: "Protocol steps by operation and outcome (a problem type, or ok)."}, []string{"op", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sharevault_tsm_step_duration_seconds",
			Help: "Protocol step latency by operation.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"op"}),
	}
	for _, c := range []prometheus.Collector{s.steps, s.latency} {
		if err := cfg.Registerer.Register(c); err != nil {
			return nil, err
		}
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	if err := r.SetTrustedProxies(nil); err != nil {
		return nil, err
	}
	r.Use(s.accessLog, gin.CustomRecovery(func(c *gin.Context, v any) {
		s.log.Error("panic", "panic", fmt.Sprint(v))
		problem(c, http.StatusInternalServerError, "internal", "internal error")
	}), s.limit)
	r.NoRoute(func(c *gin.Context) { problem(c, http.StatusNotFound, "not-found", "no such resource") })
	r.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok\n") })
	r.GET("/readyz", func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		defer cancel()
		if err := node.Ready(ctx); err != nil {
			c.Header("Retry-After", "1")
			c.String(http.StatusServiceUnavailable, "database unavailable\n")
			return
		}
		c.String(http.StatusOK, "ok\n")
	})
	if !cfg.NoMetricsRoute {
		r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{})))
	}
	r.GET("/v1/node", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"node_id": node.ID().String()}) })
	r.POST("/v1/step", s.step)
	return r, nil
}

// problem answers an RFC 9457 problem.
func problem(c *gin.Context, status int, name, detail string) {
	c.Header("Content-Type", "application/problem+json")
	c.JSON(status, gin.H{"type": "urn:sharevault:tsm:problem:" + name, "title": http.StatusText(status), "status": status, "detail": detail})
	c.Abort()
}

// classify maps a step's error to its status and problem type (docs/tsm-api.md, "Errors").
func classify(err error) (int, string) {
	var culprit *protocol.CulpritError
	switch {
	case errors.Is(err, tsm.ErrNodeBehind):
		return http.StatusConflict, "node-behind"
	case errors.Is(err, tsm.ErrStaleEpoch):
		return http.StatusConflict, "stale-epoch"
	case errors.Is(err, tsm.ErrKeyNotFound):
		return http.StatusNotFound, "key-not-found"
	case errors.Is(err, tsm.ErrNoSeeds):
		return http.StatusConflict, "no-seeds"
	case errors.Is(err, tsm.ErrNoCommitment):
		return http.StatusConflict, "no-commitment"
	case errors.Is(err, tsm.ErrNoSession):
		return http.StatusConflict, "no-session"
	case errors.Is(err, tsm.ErrForbidden):
		return http.StatusForbidden, "forbidden"
	case errors.Is(err, tsm.ErrNotAParty):
		return http.StatusForbidden, "not-a-party"
	case errors.Is(err, tsm.ErrUnauthorized):
		return http.StatusUnauthorized, "unauthorized"
	case errors.As(err, &culprit):
		return http.StatusUnprocessableEntity, "culprit"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, tsm.ErrStore), errors.Is(err, tsm.ErrBusy):
		return http.StatusServiceUnavailable, "unavailable"
	}
	return http.StatusUnprocessableEntity, "step-refused"
}

func (s *server) step(c *gin.Context) {
	start := time.Now()
	// A body counts for what it says it is, or the most a step may be.
	n := c.Request.ContentLength
	if n < 0 || n > tsm.MaxStepBody {
		n = tsm.MaxStepBody
	}
	// Decoded, a step's messages take as much again.
	if s.bodies.Add(2*n) > s.cfg.BodyBudget {
		s.bodies.Add(-2 * n)
		c.Header("Retry-After", "1")
		problem(c, http.StatusServiceUnavailable, "unavailable", "the node is reading too many steps at once; retry after 1s")
		return
	}
	defer s.bodies.Add(-2 * n)
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, tsm.MaxStepBody))
	if err != nil {
		s.steps.WithLabelValues("unparsed", "too-large").Inc()
		problem(c, http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("a step is at most %d bytes", tsm.MaxStepBody))
		return
	}
	st, err := tsm.DecodeStep(bytes.NewReader(body))
	if err != nil {
		status, name := http.StatusBadRequest, "bad-request"
		if errors.Is(err, tsm.ErrUnauthorized) {
			status, name = http.StatusUnauthorized, "unauthorized"
		}
		s.steps.WithLabelValues("unparsed", name).Inc()
		problem(c, status, name, err.Error())
		return
	}
	op := string(st.Op)
	if st.Op == tsm.OpKeyGenStart && !s.allow(s.keygens, clientKey(c), rate.Limit(s.cfg.KeyGensIP/3600), int(math.Ceil(s.cfg.KeyGensIP))) {
		s.steps.WithLabelValues(op, "rate-limited").Inc()
		c.Header("Retry-After", "60")
		problem(c, http.StatusTooManyRequests, "rate-limited", "too many new keys from this address; retry later")
		return
	}
	if op == s.cfg.StallOp {
		time.Sleep(s.cfg.StallFor)
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.Timeout)
	defer cancel()
	res, err := s.node.Serve(ctx, st)
	s.latency.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil {
		status, name := classify(err)
		s.steps.WithLabelValues(op, name).Inc()
		c.Set("step_error", err.Error())
		detail := err.Error()
		if errors.Is(err, tsm.ErrStore) {
			detail = tsm.ErrStore.Error() // the database's own words stay in the log
		}
		if status == http.StatusServiceUnavailable {
			c.Header("Retry-After", "1")
		}
		problem(c, status, name, detail)
		return
	}
	out, err := tsm.EncodeResult(res)
	if err != nil {
		problem(c, http.StatusInternalServerError, "internal", "internal error")
		return
	}
	s.steps.WithLabelValues(op, "ok").Inc()
	c.Data(http.StatusOK, "application/json", out)
}

// clientKey is the address limits are kept by: an IPv4 address, or an IPv6 address's /64
// (one host commonly has a whole /64).
func clientKey(c *gin.Context) string {
	ip := net.ParseIP(c.ClientIP())
	if ip == nil || ip.To4() != nil {
		return c.ClientIP()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// allow takes a token from key's bucket of m; buckets idle long enough to be full again are
// forgotten, so the maps stay as small as the active clients.
func (s *server) allow(m map[string]*rate.Limiter, key string, r rate.Limit, burst int) bool {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.swept) > time.Minute || len(s.buckets)+len(s.keygens) > 1<<16 {
		for _, mm := range []map[string]*rate.Limiter{s.buckets, s.keygens} {
			for k, b := range mm {
				if b.TokensAt(now) >= float64(b.Burst()) {
					delete(mm, k)
				}
			}
		}
		s.swept = now
	}
	b := m[key]
	if b == nil {
		b = rate.NewLimiter(r, burst)
		m[key] = b
	}
	return b.AllowN(now, 1)
}

// limit is a token bucket per client address for every request.
func (s *server) limit(c *gin.Context) {
	if !s.allow(s.buckets, clientKey(c), rate.Limit(s.cfg.RateIP), s.cfg.BurstIP) {
		c.Header("Retry-After", "1")
		problem(c, http.StatusTooManyRequests, "rate-limited", "too many requests from this address; retry after 1s")
		return
	}
	c.Next()
}

// accessLog writes one JSON line a request: never a body, a share or a message.
func (s *server) accessLog(c *gin.Context) {
	start := time.Now()
	var id [8]byte
	rand.Read(id[:])
	c.Header("X-Request-ID", hex.EncodeToString(id[:]))
	c.Next()
	attrs := []any{"request_id", hex.EncodeToString(id[:]), "method", c.Request.Method, "route", c.FullPath(),
		"status", c.Writer.Status(), "duration_ms", float64(time.Since(start).Microseconds()) / 1000, "client", c.ClientIP()}
	if e := c.GetString("step_error"); e != "" {
		attrs = append(attrs, "error", e)
	}
	s.log.Info("request", attrs...)
}
