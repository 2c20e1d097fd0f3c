package main

// The load generator: closed loop (N workers, each waiting for its answer: the peak) and
// open loop (requests started at a constant rate whatever the answers do: latency without
// coordinated omission, measured from when each request was due).

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// op is one request; worker is stable within a closed loop, n counts every request.
type op func(ctx context.Context, worker int, n int64) error

// Result is what one run measured. Latencies are in milliseconds.
type Result struct {
	Name        string  `json:"name"`
	Loop        string  `json:"loop"` // closed or open
	Concurrency int     `json:"concurrency,omitempty"`
	Rate        float64 `json:"rate,omitempty"` // requests per second asked for (open loop)
	Size        int     `json:"size"`
	Seconds     float64 `json:"seconds"`
	Requests    int64   `json:"requests"`
	Errors      int64   `json:"errors"`
	RPS         float64 `json:"rps"`
	P50         float64 `json:"p50_ms"`
	P99         float64 `json:"p99_ms"`
	P999        float64 `json:"p999_ms"`
	Max         float64 `json:"max_ms"`
	FirstError  string  `json:"first_error,omitempty"`
}

type recorder struct {
	mu       sync.Mutex
	h        *hdrhistogram.Histogram
	requests int64
	errors   int64
	firstErr string
}

func newRecorder() *recorder {
	return &recorder{h: hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 3)}
}

func (r *recorder) record(d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if err != nil {
		r.errors++
		if r.firstErr == "" {
			r.firstErr = err.Error()
		}
		return
	}
	r.h.RecordValue(max(1, d.Microseconds()))
}

func (r *recorder) result(name, loop string, elapsed time.Duration) Result {
	ms := func(q float64) float64 { return math.Round(float64(r.h.ValueAtQuantile(q))) / 1000 }
	return Result{Name: name, Loop: loop, Seconds: elapsed.Seconds(), Requests: r.requests, Errors: r.errors,
		RPS: float64(r.requests-r.errors) / elapsed.Seconds(), P50: ms(50), P99: ms(99), P999: ms(99.9),
		Max: float64(r.h.Max()) / 1000, FirstError: r.firstErr}
}

// closedLoop runs concurrency workers back to back for d. At the end no new request
// starts, and the ones under way finish: cancelling them would leave requests whose
// outcome the client never learns (a PUT the vault applied, say).
func closedLoop(ctx context.Context, name string, concurrency int, d time.Duration, do op) Result {
	rec := newRecorder()
	end := time.Now().Add(d)
	var n int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for w := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) && ctx.Err() == nil {
				mu.Lock()
				n++
				i := n
				mu.Unlock()
				t := time.Now()
				err := do(ctx, w, i)
				rec.record(time.Since(t), err)
			}
		}()
	}
	wg.Wait()
	res := rec.result(name, "closed", time.Since(start))
	res.Concurrency = concurrency
	return res
}

// openLoop starts requests at rate per second for d, each measured from when it was due,
// with at most 4096 outstanding (more count as errors: the target is not keeping up).
func openLoop(ctx context.Context, name string, rate float64, d time.Duration, do op) Result {
	rec := newRecorder()
	sem := make(chan struct{}, 4096)
	var wg sync.WaitGroup
	start := time.Now()
	var issued int64
	for {
		now := time.Now()
		if now.Sub(start) >= d || ctx.Err() != nil {
			break
		}
		for due := dueBy(now.Sub(start), rate); issued < due; issued++ {
			intended := start.Add(time.Duration(float64(issued) / rate * float64(time.Second)))
			select {
			case sem <- struct{}{}:
			default:
				rec.record(0, errOverload)
				continue
			}
			wg.Add(1)
			go func(i int64) {
				defer func() { <-sem; wg.Done() }()
				err := do(ctx, int(i), i)
				rec.record(time.Since(intended), err)
			}(issued)
		}
		time.Sleep(200 * time.Microsecond)
	}
	wg.Wait()
	res := rec.result(name, "open", d)
	res.Rate = rate
	return res
}

// dueBy is how many requests are due after elapsed at rate: request i is due at i/rate,
// the first at once. (Counting floor(elapsed*rate) instead started each request one
// period late, and counted that period in every latency: 5 ms at 200/s.)
func dueBy(elapsed time.Duration, rate float64) int64 {
	return int64(elapsed.Seconds()*rate) + 1
}

type benchError string

func (e benchError) Error() string { return string(e) }

const errOverload = benchError("over 4096 requests outstanding")
