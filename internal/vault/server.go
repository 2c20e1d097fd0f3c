// Package vault is the sharevault storage server (docs/api.md): signed requests, versioned
// backups with anti-rollback and retention, quotas and rate limits, over a blobstore.Store.
// It never sees a key: it checks only the public header of what it stores.
package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sharevault/sharevault/api"
	"github.com/sharevault/sharevault/internal/blobstore"
	"github.com/sharevault/sharevault/internal/recovery"
	"github.com/sharevault/sharevault/internal/serve"
)

// Config holds the server's limits. Zero fields take the defaults of docs/api.md.
type Config struct {
	MaxBody        int64              // request body limit in bytes (1 MiB)
	MemoryBudget   int64              // bytes of request bodies in flight, all requests together (64 MiB)
	Retention      int                // versions kept per key (10)
	Skew           time.Duration      // how old a signature's created time may be (5m)
	FutureSkew     time.Duration      // how far ahead of the vault's clock created may be (60s)
	RateIP         float64            // requests per second per client address (50)
	BurstIP        int                // (100)
	InflightIP     int                // requests in flight per client address (16)
	RateVault      float64            // requests per second per vault (20)
	BurstVault     int                // (40)
	NewVaultsIP    float64            // new vaults per hour per client address (10; burst as many)
	QuotaKeys      int                // keys per vault (100)
	QuotaBytes     int64              // stored bytes per vault (64 MiB)
	InlineMax      int                // envelopes up to this size live in the vault's manifest, not a blob of their own (1024; <0: never)
	StorageBudget  int64              // bytes the store may hold before new vaults are refused (0: no budget)
	MinFree        int64              // free bytes the store's disk keeps before new vaults are refused (1 GiB; <0: no check)
	Capacity       blobstore.Capacity // how much the store holds and has left; nil: budgets are not checked
	TrustedProxies []string           // addresses whose X-Forwarded-For is believed; none by default
	RequestTimeout time.Duration      // deadline for a request's store calls (20s): a hung store gives 503
	Logger         *slog.Logger       // access and error logs (slog.Default())
	Registerer     prometheus.Registerer
	Gatherer       prometheus.Gatherer // served at /metrics if MetricsRoute
	MetricsRoute   bool                // serve /metrics on the API too (off by default: its counts show when users are active)
}

func (c *Config) setDefaults() {
	def := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MaxBody, 1<<20)
	def(&c.MemoryBudget, 64<<20)
	def(&c.QuotaBytes, 64<<20)
	def(&c.MinFree, 1<<30)
	for _, p := range []struct {
		v *int
		d int
	}{{&c.Retention, 10}, {&c.BurstIP, 100}, {&c.InflightIP, 16}, {&c.BurstVault, 40}, {&c.QuotaKeys, 100}} {
		if *p.v == 0 {
			*p.v = p.d
		}
	}
	if c.Skew == 0 {
		c.Skew = 5 * time.Minute
	}
	if c.InlineMax == 0 {
		c.InlineMax = 1024
	}
	if c.FutureSkew == 0 {
		c.FutureSkew = time.Minute
	}
	if c.NewVaultsIP == 0 {
		c.NewVaultsIP = 10
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
	store       blobstore.Store
	cfg         Config
	log         *slog.Logger
	ipLimit     *limiter
	vaultLimit  *limiter
	repeatLimit *limiter // repeats of signatures already charged, per vault (replay.go)
	createLimit *limiter
	existsLimit *limiter // batch existence queries per client address
	inflight    *inflight
	bodies      *budget   // bytes of request bodies (and their store copies) in flight
	addrBytes   *inflight // the same, per client address
	metrics     *metrics
	locks       vaultLocks
	probe       storeProbe
	cache       manifestCache
	seen        seen       // signatures used within their window
	pending     storeBytes // what the store is taking that its last probe did not see
	handler     http.Handler
}

// New builds the HTTP handler: gin with explicit middleware, and the routes of docs/api.md.
func New(store blobstore.Store, cfg Config) (http.Handler, error) {
	s, err := NewServer(store, cfg)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// NewServer is New, returning the Server itself, whose Sweep its owner may run.
func NewServer(store blobstore.Store, cfg Config) (*Server, error) {
	cfg.setDefaults()
	if cfg.Retention < 1 || cfg.MaxBody < 1 || cfg.InflightIP < 1 {
		return nil, errors.New("vault: retention, body limit and requests in flight must be positive")
	}
	if cfg.MemoryBudget < storeCopies*(cfg.MaxBody+1) {
		return nil, fmt.Errorf("vault: the memory budget must hold at least one upload of the largest size (%d bytes)", storeCopies*(cfg.MaxBody+1))
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Server{store: store, cfg: cfg, log: cfg.Logger, metrics: m,
		ipLimit: newLimiter(cfg.RateIP, cfg.BurstIP), vaultLimit: newLimiter(cfg.RateVault, cfg.BurstVault),
		repeatLimit: newLimiter(repeatFactor*cfg.RateVault, repeatFactor*cfg.BurstVault),
		createLimit: newLimiter(cfg.NewVaultsIP/3600, int(math.Ceil(cfg.NewVaultsIP))),
		existsLimit: newLimiter(1, 10),
		inflight:    &inflight{n: map[string]int{}}, bodies: &budget{max: cfg.MemoryBudget}, addrBytes: &inflight{n: map[string]int{}}}
	s.locks.m = map[recovery.VaultID]*vaultLock{}
	// A vault's new signatures in a window are no more than its limit lets in then.
	s.seen.perVault = int(min(float64(cfg.BurstVault)+cfg.RateVault*(cfg.Skew+cfg.FutureSkew+time.Second).Seconds(), maxSeen))
	m.budget.Set(float64(cfg.StorageBudget))

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	if err := r.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, err
	}
	// Only X-Forwarded-For, and only from a trusted proxy: gin takes its rightmost address
	// that is not a trusted proxy. (gin's default also believes X-Real-IP.)
	r.RemoteIPHeaders = []string{"X-Forwarded-For"}
	// Every request, signed or not, is limited by its client address before anything else.
	r.Use(s.requestID, s.accessLog, s.measure, gin.CustomRecovery(s.panicked), s.problems, s.bound, s.limitIP, s.limitInflight)
	r.NoRoute(func(c *gin.Context) { c.Error(errNotFound) })

	r.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok\n") })
	r.GET("/readyz", s.ready)
	if cfg.MetricsRoute {
		r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{})))
	}
	r.GET("/v1/openapi.yaml", func(c *gin.Context) { c.Data(http.StatusOK, "application/yaml", api.OpenAPI) })
	r.POST("/v1/exists", s.limitExists, s.exists)

	v := r.Group("/v1/vaults/:vault", s.authenticate, s.limitVault, s.readBody, s.deadline)
	v.GET("/keys", s.listKeys)
	v.PUT("/keys/:key", s.putVersion)
	v.GET("/keys/:key", s.getLatest)
	v.HEAD("/keys/:key", s.getLatest)
	v.GET("/keys/:key/versions", s.listVersions)
	v.GET("/keys/:key/versions/:seq", s.getVersion)
	v.HEAD("/keys/:key/versions/:seq", s.getVersion)
	v.DELETE("/keys/:key/versions/:seq", s.deleteVersion)
	s.handler = r
	return s, nil
}

// deadline bounds the store work of a request whose body is read: the store calls run
// under the server's deadline alone, not the client's connection, so a client that goes
// away between an upload's two writes cannot leave half of it (and a client that sends
// its body slowly cannot spend the store's time).
func (s *Server) deadline(c *gin.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), s.cfg.RequestTimeout)
	defer cancel()
	c.Request = c.Request.WithContext(ctx)
	c.Next()
}

// bound caps what any request can make the server read from its body at MaxBody+1
// bytes, before any handler sees it, and decides whether its connection stays open.
//
// The bound reader goes on a shallow copy of the request: net/http's own request keeps
// its body, so that net/http sees after the handler how much of it is unread. A request
// whose body was not read to its end (every refusal before readBody) closes its
// connection without reading another byte (serve.CloseAfter), instead of net/http reading
// up to 256 KiB of it first. A request with a Transfer-Encoding closes it too (RFC 9112
// §6.1: with a Content-Length beside, it must), and so does one whose address holds more
// than its share of connections (serve.Crowded). A body on a request that takes none (any
// but PUT and POST) is refused here, before a handler's answer could go out ahead of the
// refusal's Connection: close.
func (s *Server) bound(c *gin.Context) {
	r := c.Request
	c.Request = r.WithContext(r.Context())
	c.Request.Body = http.MaxBytesReader(c.Writer, r.Body, s.cfg.MaxBody+1)
	if len(r.TransferEncoding) > 0 || serve.Crowded(r) {
		c.Header("Connection", "close")
	}
	hasBody := r.ContentLength != 0 || len(r.TransferEncoding) > 0
	if hasBody && r.Method != http.MethodPut && r.Method != http.MethodPost {
		// Refused before any handler can answer (and so write its header) first.
		abort(c, newProblem(http.StatusBadRequest, "bad-request", "a %s request has no body", r.Method))
	} else {
		c.Next()
	}
	if hasBody && !c.GetBool(ctxBodyRead) {
		serve.CloseAfter(c.Writer, r)
	}
}

// ready answers 200 when the store answered its last probe (at most a second old).
func (s *Server) ready(c *gin.Context) {
	if st := s.probe.get(s); st.err != nil {
		c.String(http.StatusServiceUnavailable, "store unavailable\n")
		return
	}
	c.String(http.StatusOK, "ok\n")
}
