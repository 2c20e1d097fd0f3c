package vault

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	bytesIn       prometheus.Counter
	bytesOut      prometheus.Counter
	refused       *prometheus.CounterVec // requests refused at once, by the limit that refused them
	bodyBytes     prometheus.Gauge       // bytes of the memory budget held by bodies in flight
	vaultsCreated prometheus.Counter
	refusedVaults *prometheus.CounterVec // new vaults refused, by reason
	storeUsed     prometheus.Gauge
	storeFree     prometheus.Gauge
	budget        prometheus.Gauge
	swept         prometheus.Counter // unnamed version blobs removed by Sweep
	repeats       prometheus.Counter // signed requests whose signature was used before
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sharevault_http_requests_total", Help: "HTTP requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sharevault_http_request_duration_seconds", Help: "HTTP request latency by route and method.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}, []string{"route", "method"}),
		bytesIn:  prometheus.NewCounter(prometheus.CounterOpts{Name: "sharevault_http_request_bytes_total", Help: "Request body bytes read."}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{Name: "sharevault_http_response_bytes_total", Help: "Response body bytes written."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sharevault_requests_refused_total", Help: "Requests refused at once by a limit: memory (the budget), memory-address (an address's share of it), inflight (per address), storage-budget or storage-disk (uploads to a full store).",
		}, []string{"limit"}),
		bodyBytes:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "sharevault_body_budget_used_bytes", Help: "Bytes of the memory budget held by request bodies in flight."}),
		vaultsCreated: prometheus.NewCounter(prometheus.CounterOpts{Name: "sharevault_vaults_created_total", Help: "Vaults created (first upload to a new vault)."}),
		refusedVaults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sharevault_vaults_refused_total", Help: "New vaults refused: rate (per address), budget (storage budget spent) or disk (free space low).",
		}, []string{"reason"}),
		storeUsed: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sharevault_store_used_bytes", Help: "Bytes the store holds, as last probed (embedded store only)."}),
		storeFree: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sharevault_store_free_bytes", Help: "Free bytes on the store's disk, as last probed (embedded store only)."}),
		budget:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "sharevault_storage_budget_bytes", Help: "The storage budget (0: none)."}),
		swept:     prometheus.NewCounter(prometheus.CounterOpts{Name: "sharevault_swept_blobs_total", Help: "Version blobs no manifest named, removed by the sweep."}),
		repeats:   prometheus.NewCounter(prometheus.CounterOpts{Name: "sharevault_repeated_signatures_total", Help: "Signed requests whose signature was used before in its window (resent or replayed); not charged to the vault's rate limit."}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.bytesIn, m.bytesOut, m.refused, m.bodyBytes,
		m.vaultsCreated, m.refusedVaults, m.storeUsed, m.storeFree, m.budget, m.swept, m.repeats} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func route(c *gin.Context) string {
	if r := c.FullPath(); r != "" {
		return r
	}
	return "unmatched"
}

// methodLabel bounds the method label to the methods the API has, so a client cannot
// grow the metrics without end (or break them with bytes that are not UTF-8).
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodPost:
		return m
	}
	return "other"
}

func (s *Server) measure(c *gin.Context) {
	start := time.Now()
	c.Next()
	r, m := route(c), methodLabel(c.Request.Method)
	s.metrics.requests.WithLabelValues(r, m, strconv.Itoa(c.Writer.Status())).Inc()
	s.metrics.duration.WithLabelValues(r, m).Observe(time.Since(start).Seconds())
	if b, ok := c.Get(ctxBody); ok {
		s.metrics.bytesIn.Add(float64(len(b.([]byte))))
	}
	if n := c.Writer.Size(); n > 0 {
		s.metrics.bytesOut.Add(float64(n))
	}
}

// requestID gives every request an ID, echoed in X-Request-ID and logged with it.
func (s *Server) requestID(c *gin.Context) {
	var b [8]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	c.Set(ctxRequestID, id)
	c.Header("X-Request-ID", id)
	c.Next()
}

// accessLog writes one JSON line a request: the route template, never the headers or
// the body, so no signature or envelope reaches a log.
func (s *Server) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	s.log.Info("request", "request_id", c.GetString(ctxRequestID), "method", c.Request.Method, "route", route(c),
		"status", c.Writer.Status(), "duration_ms", float64(time.Since(start).Microseconds())/1000,
		"bytes_out", max(c.Writer.Size(), 0), "client", c.ClientIP())
}
