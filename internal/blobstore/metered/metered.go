// Package metered decorates a blobstore.Store with Prometheus metrics: operations by
// kind and outcome, and their latency.
package metered

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sharevault/sharevault/internal/blobstore"
)

// Store is a blobstore.Store that counts and times every call of the one it wraps.
type Store struct {
	next     blobstore.Store
	ops      *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

var _ blobstore.Store = (*Store)(nil)

// New wraps next, registering its metrics with reg.
func New(next blobstore.Store, reg prometheus.Registerer) (*Store, error) {
	s := &Store{
		next: next,
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sharevault_store_operations_total",
			Help: "Blob store operations by kind and outcome.",
		}, []string{"op", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sharevault_store_operation_duration_seconds",
			Help:    "Blob store operation latency.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"op"}),
	}
	for _, c := range []prometheus.Collector{s.ops, s.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Store) observe(op string, start time.Time, err error) {
	s.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	outcome := "ok"
	switch {
	case err == nil:
	case errors.Is(err, blobstore.ErrNotFound):
		outcome = "not_found"
	case errors.Is(err, blobstore.ErrPreconditionFailed):
		outcome = "precondition_failed"
	case errors.Is(err, blobstore.ErrUnavailable):
		outcome = "unavailable"
	default:
		outcome = "error"
	}
	s.ops.WithLabelValues(op, outcome).Inc()
}

func (s *Store) Put(ctx context.Context, name string, r io.Reader, size int64, cond blobstore.Condition) (blobstore.Attrs, error) {
	start := time.Now()
	a, err := s.next.Put(ctx, name, r, size, cond)
	s.observe("put", start, err)
	return a, err
}

// PutLazy implements blobstore.Ordered: the next store's PutLazy if it has one, else its
// Put (durable at once is durable in order too).
func (s *Store) PutLazy(ctx context.Context, name string, r io.Reader, size int64, cond blobstore.Condition) (blobstore.Attrs, error) {
	o, ok := s.next.(blobstore.Ordered)
	if !ok {
		return s.Put(ctx, name, r, size, cond)
	}
	start := time.Now()
	a, err := o.PutLazy(ctx, name, r, size, cond)
	s.observe("put", start, err)
	return a, err
}

func (s *Store) Get(ctx context.Context, name string) (*blobstore.Reader, error) {
	start := time.Now()
	r, err := s.next.Get(ctx, name)
	s.observe("get", start, err)
	return r, err
}

func (s *Store) Stat(ctx context.Context, name string) (blobstore.Attrs, error) {
	start := time.Now()
	a, err := s.next.Stat(ctx, name)
	s.observe("stat", start, err)
	return a, err
}

func (s *Store) List(ctx context.Context, prefix, after string, limit int) ([]blobstore.Attrs, bool, error) {
	start := time.Now()
	p, more, err := s.next.List(ctx, prefix, after, limit)
	s.observe("list", start, err)
	return p, more, err
}

func (s *Store) Delete(ctx context.Context, name string) error {
	start := time.Now()
	err := s.next.Delete(ctx, name)
	s.observe("delete", start, err)
	return err
}

func (s *Store) Close() error { return s.next.Close() }
