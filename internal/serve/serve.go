// Package serve runs an HTTP server until its context ends, then shuts it down gracefully:
// the one way cmd/vault and cmd/tsmnode serve.
package serve

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics serves g's Prometheus metrics at /metrics on a listener of their own at addr, and
// returns what stops it.
func Metrics(addr string, g prometheus.Gatherer, log *slog.Logger) (stop func() error, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
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
