// Package vault is the sharevault storage server (docs/api.md): signed requests, versioned
// backups with anti-rollback and retention, quotas and rate limits, over a blobstore.Store.
// It never sees a key: it checks only the public header of what it stores.
package vault

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sharevault/sharevault/api"
	"github.com/sharevault/sharevault/internal/blobstore"
)

// Config holds the server's limits. Zero fields take the defaults of docs/api.md.
type Config struct {
	MaxBody        int64         // request body limit in bytes (1 MiB)
	Retention      int           // versions kept per key (10)
	Skew           time.Duration // allowed distance of a signature's created time (5m)
	RateIP         float64       // requests per second per client address (50)
	BurstIP        int           // (100)
	RateVault      float64       // requests per second per vault (20)
	BurstVault     int           // (40)
	QuotaKeys      int           // keys per vault (100)
	QuotaBytes     int64         // stored bytes per vault (64 MiB)
	TrustedProxies []string      // addresses whose X-Forwarded-For is believed; none by default
	RequestTimeout time.Duration // deadline for a request's store calls (20s): a hung store gives 503
	Logger         *slog.Logger  // access and error logs (slog.Default())
	Registerer     prometheus.Registerer
	Gatherer       prometheus.Gatherer // served at /metrics
}

func (c *Config) setDefaults() {
	def := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MaxBody, 1<<20)
	def(&c.QuotaBytes, 64<<20)
	for _, p := range []struct {
		v *int
		d int
	}{{&c.Retention, 10}, {&c.BurstIP, 100}, {&c.BurstVault, 40}, {&c.QuotaKeys, 100}} {
		if *p.v == 0 {
			*p.v = p.d
		}
	}
	if c.Skew == 0 {
		c.Skew = 5 * time.Minute
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 20 * time.Second
	}
	if c.RateIP == 0 {
		c.RateIP = 50
	}
	if c.RateVault == 0 {
		c.RateVault = 20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registerer == nil {
		reg := prometheus.NewRegistry()
		c.Registerer, c.Gatherer = reg, reg
	}
}

// Server serves the API from a store: the one interface its handlers use.
type Server struct {
	store      blobstore.Store
	cfg        Config
	log        *slog.Logger
	ipLimit    *limiter
	vaultLimit *limiter
	metrics    *metrics
	vaultLocks [256]sync.Mutex
}

// New builds the HTTP handler: gin with explicit middleware, and the routes of docs/api.md.
func New(store blobstore.Store, cfg Config) (http.Handler, error) {
	cfg.setDefaults()
	if cfg.Retention < 1 || cfg.MaxBody < 1 {
		return nil, errors.New("vault: retention and body limit must be positive")
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Server{store: store, cfg: cfg, log: cfg.Logger, metrics: m,
		ipLimit: newLimiter(cfg.RateIP, cfg.BurstIP), vaultLimit: newLimiter(cfg.RateVault, cfg.BurstVault)}

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	if err := r.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, err
	}
	r.Use(s.requestID, s.accessLog, s.measure, gin.CustomRecovery(s.panicked), s.problems)
	r.NoRoute(func(c *gin.Context) { c.Error(errNotFound) })

	r.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok\n") })
	r.GET("/readyz", s.ready)
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{})))
	r.GET("/v1/openapi.yaml", func(c *gin.Context) { c.Data(http.StatusOK, "application/yaml", api.OpenAPI) })

	v := r.Group("/v1/vaults/:vault", s.limitIP, s.deadline, s.authenticate, s.limitVault)
	v.GET("/keys", s.listKeys)
	v.PUT("/keys/:key", s.putVersion)
	v.GET("/keys/:key", s.getLatest)
	v.HEAD("/keys/:key", s.getLatest)
	v.GET("/keys/:key/versions", s.listVersions)
	v.GET("/keys/:key/versions/:seq", s.getVersion)
	v.HEAD("/keys/:key/versions/:seq", s.getVersion)
	v.DELETE("/keys/:key/versions/:seq", s.deleteVersion)
	return r, nil
}

// deadline bounds the request's context, and so every store call it makes.
func (s *Server) deadline(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.RequestTimeout)
	defer cancel()
	c.Request = c.Request.WithContext(ctx)
	c.Next()
}

// ready answers 200 when the store answers a listing within two seconds.
func (s *Server) ready(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if _, _, err := s.store.List(ctx, "readyz/", "", 1); err != nil {
		s.log.Warn("not ready", "error", err)
		c.String(http.StatusServiceUnavailable, "store unavailable\n")
		return
	}
	c.String(http.StatusOK, "ok\n")
}
