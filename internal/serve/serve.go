// Package serve runs an HTTP server until its context ends, then shuts it down gracefully,
// with the limits of docs/operations.md: the one way cmd/vault and cmd/tsmnode serve.
package serve

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"
)

// Config is what a listener of a server takes: timeouts, the size of a request's head and
// the connections it holds.
type Config struct {
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's head: its request line and header fields together
	// (net/http's own MaxHeaderBytes lets 4 KiB more through; Server takes that off). At
	// least MinHeaderBytes.
	MaxHeaderBytes int
	Limits         Limits
}

// MinHeaderBytes is the smallest Config.MaxHeaderBytes.
const MinHeaderBytes = 8 << 10

// headerSlack is what net/http reads past its MaxHeaderBytes (its bufio slop).
const headerSlack = 4096

// Listen listens on addr with c's limits and returns an http.Server for h that keeps c.
func (c Config) Listen(addr string, h http.Handler, log *slog.Logger) (*http.Server, *Listener, error) {
	if c.MaxHeaderBytes < MinHeaderBytes {
		return nil, nil, fmt.Errorf("the header limit must be at least %d bytes", MinHeaderBytes)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	l := Limit(ln, c.Limits)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: c.ReadHeaderTimeout, ReadTimeout: c.ReadTimeout,
		WriteTimeout: c.WriteTimeout, IdleTimeout: c.IdleTimeout, MaxHeaderBytes: c.MaxHeaderBytes - headerSlack,
		ConnContext: l.ConnContext, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	return srv, l, nil
}

// Metrics serves g's Prometheus metrics at /metrics on a listener of their own at addr,
// with c's limits and at most ten scrapes a second (burst 20; past it 429 and close),
// and returns what stops it.
func Metrics(addr string, g prometheus.Gatherer, c Config, log *slog.Logger) (stop func() error, err error) {
	scrapes := rate.NewLimiter(10, 20)
	metrics := promhttp.HandlerFor(g, promhttp.HandlerOpts{})
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		if !scrapes.Allow() {
			CloseAfter(w, r)
			w.Header().Set("Retry-After", "1")
			http.Error(w, "too many scrapes", http.StatusTooManyRequests)
			return
		}
		metrics.ServeHTTP(w, r)
	})
	noBody := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
			CloseAfter(w, r)
			http.Error(w, "a scrape has no body", http.StatusBadRequest)
			return
		}
		mux.ServeHTTP(w, r)
	})
	srv, ln, err := c.Listen(addr, noBody, log)
	if err != nil {
		return nil, err
	}
	go srv.Serve(ln)
	log.Info("serving metrics", "address", "http://"+ln.Addr().String()+"/metrics")
	return srv.Close, nil
}

// Until serves srv on ln (TLS when tlsCert is set) until ctx ends, then gives requests in
// progress 30 s to finish. It returns the server's error, or Shutdown's.
func Until(ctx context.Context, srv *http.Server, ln net.Listener, tlsCert, tlsKey string, log *slog.Logger) error {
	errc := make(chan error, 1)
	go func() {
		if tlsCert != "" {
			errc <- srv.ServeTLS(ln, tlsCert, tlsKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
