package vault

// What keeps one client from taking what others need (docs/api.md, "Limits"): a budget of
// bytes for request bodies in flight, a count of requests in flight per client address,
// locks per vault that give up when the request's deadline ends, the admission of new
// vaults (per address, and against the store's budget), and a store probe shared by
// /readyz and that admission so that neither costs a store call per request.

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sharevault/sharevault/internal/recovery"
)

// budget is a semaphore counted in bytes that never waits: a request takes its share at
// once or is refused.
type budget struct {
	mu        sync.Mutex
	max, used int64
}

func (b *budget) TryAcquire(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max {
		return false
	}
	b.used += n
	return true
}

func (b *budget) Release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// clientKey is the address limits are kept by: the client's IPv4 address, or the /64 of
// its IPv6 address (one host is commonly given a whole /64).
func clientKey(c *gin.Context) string { return clientPrefix(c, 64) }

// clientPrefix is clientKey with IPv6 addresses cut to their first bits.
func clientPrefix(c *gin.Context, bits int) string {
	ip := net.ParseIP(c.ClientIP())
	if ip == nil {
		return c.ClientIP()
	}
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String()
	}
	return fmt.Sprintf("%s/%d", ip.Mask(net.CIDRMask(bits, 128)), bits)
}

// inflight counts the requests in flight per client address; an address's entry lives
// only while it has one, so the map is no larger than the requests being served.
type inflight struct {
	mu sync.Mutex
	n  map[string]int
}

func (s *Server) limitInflight(c *gin.Context) {
	key := clientKey(c)
	f := s.inflight
	f.mu.Lock()
	if f.n[key] >= s.cfg.InflightIP {
		f.mu.Unlock()
		s.metrics.refused.WithLabelValues("inflight").Inc()
		p := newProblem(http.StatusTooManyRequests, "rate-limited", "too many requests in flight from this address; retry after 1s")
		p.retryAfter = 1
		abort(c, p)
		return
	}
	f.n[key]++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		if f.n[key]--; f.n[key] == 0 {
			delete(f.n, key)
		}
		f.mu.Unlock()
	}()
	c.Next()
}

// vaultLocks serializes the changes to each vault within this process, so concurrent
// requests queue instead of racing the compare-and-swap (across replicas the CAS alone
// keeps every update). One lock a vault, so no vault waits behind another; a waiter gives
// up when its request's context ends.
type vaultLocks struct {
	mu sync.Mutex
	m  map[recovery.VaultID]*vaultLock
}

type vaultLock struct {
	ch   chan struct{} // holds a token while locked
	refs int           // holders and waiters; the entry goes when none is left
}

func (l *vaultLocks) lock(ctx context.Context, vault recovery.VaultID) (unlock func(), err error) {
	l.mu.Lock()
	vl := l.m[vault]
	if vl == nil {
		vl = &vaultLock{ch: make(chan struct{}, 1)}
		l.m[vault] = vl
	}
	vl.refs++
	l.mu.Unlock()
	if ctx.Err() != nil { // a request already out of time does not race the free lock
		l.mu.Lock()
		if vl.refs--; vl.refs == 0 {
			delete(l.m, vault)
		}
		l.mu.Unlock()
		return nil, errBusy
	}
	release := func() {
		l.mu.Lock()
		if vl.refs--; vl.refs == 0 {
			delete(l.m, vault)
		}
		l.mu.Unlock()
	}
	select {
	case vl.ch <- struct{}{}:
		return func() { <-vl.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, errBusy
	}
}

// storeProbe is the store's state as last probed: whether it answers a listing, and how
// much it holds and has free (when Config.Capacity can say). It is probed at most once a
// second, however many requests ask.
type storeProbe struct {
	mu sync.Mutex
	at time.Time
	st probed
}

type probed struct {
	err        error
	known      bool // used and free are known
	used, free int64
}

func (p *storeProbe) get(s *Server) probed {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.at) < time.Second {
		return p.st
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st := probed{}
	_, _, st.err = s.store.List(ctx, "readyz/", "", 1)
	if st.err == nil && s.cfg.Capacity != nil {
		s.pending.mu.Lock()
		written := s.pending.written // stored before the probe: in its figures
		s.pending.mu.Unlock()
		used, free, err := s.cfg.Capacity.Capacity(ctx)
		if f, ok := s.cfg.Capacity.(flusher); ok && err == nil && s.cfg.StorageBudget > 0 && used >= s.cfg.StorageBudget {
			// The embedded store's log holds what its memory holds until a flush, which only
			// more writes would bring: flush, so that a log of writes already made does
			// not keep every upload refused while the store is idle.
			if f.Flush() == nil {
				used, free, err = s.cfg.Capacity.Capacity(ctx)
			}
		}
		if err == nil {
			s.pending.mu.Lock()
			s.pending.written -= written
			s.pending.mu.Unlock()
			st.known, st.used, st.free = true, used, free
			s.metrics.storeUsed.Set(float64(used))
			s.metrics.storeFree.Set(float64(free))
		} else {
			s.log.Warn("store capacity unknown", "error", err)
		}
	}
	if st.err != nil {
		s.log.Warn("not ready", "error", st.err)
	}
	p.at, p.st = time.Now(), st
	return st
}

// failed records that a request found the store not answering, so /readyz says so at once
// rather than from a probe up to a second old.
func (p *storeProbe) failed(err error) {
	p.mu.Lock()
	p.at, p.st = time.Now(), probed{err: err}
	p.mu.Unlock()
}

// flusher is a store that can write what it holds in memory to its files (pebblestore).
type flusher interface{ Flush() error }

// storeBytes counts what the store is taking that its last probe may not have seen:
// uploads admitted and in flight, and those stored since the probe began.
type storeBytes struct {
	mu                sync.Mutex
	inflight, written int64
}

// takeStorage admits an upload of n bytes (its envelope, and the manifest it rewrites:
// the old one is garbage until a compaction) against the store's budget and free space
// (when Config.Capacity can say): the last probe's figures and the bytes it has not seen,
// this upload's included, must stay within them. It says why not ("budget" or "disk"),
// or returns what the upload calls when it is answered, saying whether it stored.
func (s *Server) takeStorage(n int64) (done func(stored bool), why string) {
	st := s.probe.get(s)
	b := &s.pending
	b.mu.Lock()
	defer b.mu.Unlock()
	extra := b.inflight + b.written + n
	switch {
	case st.known && s.cfg.StorageBudget > 0 && st.used+extra > s.cfg.StorageBudget:
		return nil, "budget"
	case st.known && s.cfg.MinFree >= 0 && st.free-extra < s.cfg.MinFree:
		return nil, "disk"
	}
	b.inflight += n
	return func(stored bool) {
		b.mu.Lock()
		b.inflight -= n
		if stored {
			b.written += n
		}
		b.mu.Unlock()
	}, ""
}

// admitVault decides whether client may create a new vault: the address (an IPv6 client
// by its /48, which one holder commonly has whole) must be within its rate of new vaults
// (429). (The store's room is takeStorage's, for every upload.)
func (s *Server) admitVault(client string) error {
	if ok, wait := s.createLimit.allow(client); !ok {
		s.metrics.refusedVaults.WithLabelValues("rate").Inc()
		p := newProblem(http.StatusTooManyRequests, "rate-limited", "too many new vaults from this address; retry after %s", wait.Round(time.Second))
		p.retryAfter = int(math.Ceil(wait.Seconds()))
		return p
	}
	return nil
}
