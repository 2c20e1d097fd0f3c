package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sharevault/sharevault/internal/miniotest"
	"github.com/sharevault/sharevault/internal/vaultproc"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "bare" { // the suite starts itself as the bare handler
		if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestClosedLoop(t *testing.T) {
	var calls atomic.Int64
	r := closedLoop(context.Background(), "x", 4, 200*time.Millisecond, func(ctx context.Context, w int, n int64) error {
		calls.Add(1)
		time.Sleep(time.Millisecond)
		if n%10 == 0 {
			return errors.New("every tenth fails")
		}
		return nil
	})
	if r.Requests == 0 || r.Requests > calls.Load() || r.Errors == 0 || r.Errors > r.Requests/5 {
		t.Fatalf("result %+v after %d calls", r, calls.Load())
	}
	if r.P50 < 1 || r.P50 > 50 {
		t.Errorf("p50 %.2f ms for 1 ms requests", r.P50)
	}
}

func TestOpenLoopMeasuresFromDueTime(t *testing.T) {
	// A target that takes 20 ms at 100/s with unbounded concurrency: latency stays ~20 ms,
	// and the number of requests follows the rate, not the answers.
	r := openLoop(context.Background(), "x", 100, 500*time.Millisecond, func(ctx context.Context, w int, n int64) error {
		time.Sleep(20 * time.Millisecond)
		return nil
	})
	if r.Requests < 40 || r.Requests > 55 || r.Errors != 0 {
		t.Fatalf("%d requests (%d errors) at 100/s for 0.5 s", r.Requests, r.Errors)
	}
	if r.P50 < 19 || r.P99 > 200 {
		t.Errorf("p50 %.2f ms, p99 %.2f ms for 20 ms requests", r.P50, r.P99)
	}
}

// TestDueBy: the open loop's schedule starts request i at i/rate, the first at once.
func TestDueBy(t *testing.T) {
	for _, c := range []struct {
		elapsed time.Duration
		rate    float64
		want    int64
	}{{0, 200, 1}, {4999 * time.Microsecond, 200, 1}, {5 * time.Millisecond, 200, 2}, {time.Second, 200, 201}, {time.Second, 2000, 2001}} {
		if got := dueBy(c.elapsed, c.rate); got != c.want {
			t.Errorf("dueBy(%v, %v) = %d, want %d", c.elapsed, c.rate, got, c.want)
		}
	}
}

// TestSuiteRuns runs the whole suite briefly against real processes: the tool works and
// writes its report; the figures themselves are not judged.
func TestSuiteRuns(t *testing.T) {
	if _, err := miniotest.Binary(); err != nil && os.Getenv("SHAREVAULT_REQUIRE_MINIO") != "1" {
		t.Skip("SKIPPED: no MinIO for the bench suite (make tools)")
	}
	out := filepath.Join(t.TempDir(), "bench.md")
	err := run(context.Background(), []string{"suite", "--out", out, "--duration", "300ms", "--open-duration", "1s"}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	wants := []string{"vault (embedded) PUT", "vault on MinIO GET", "MinIO direct PUT", "bare net/http GET", "open loop PUT p99", "vault RSS"}
	if os.Getenv("SHAREVAULT_RESTSERVER") != "" {
		wants = append(wants, "rest-server PUT", "rest-server GET", "vault durable PUT / rest-server PUT")
	} else if os.Getenv("SHAREVAULT_REQUIRE_MINIO") == "1" {
		t.Error("make test sets SHAREVAULT_RESTSERVER: the rest-server rows must run")
	}
	for _, want := range wants {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "| vault") || strings.HasPrefix(line, "| MinIO") || strings.HasPrefix(line, "| bare") || strings.HasPrefix(line, "| rest-server") {
			if f := strings.Split(line, "|"); len(f) == 8 && strings.TrimSpace(f[6]) != "0" {
				t.Errorf("errors in %s", line)
			}
		}
	}
}

// TestAB compares a vault build with itself, briefly: the mode runs and reports a ratio.
func TestAB(t *testing.T) {
	bin, err := vaultproc.Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := run(context.Background(), []string{"ab", "--a", bin, "--b", bin, "--rounds", "1", "--duration", "200ms"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| PUT |", "| GET |", "x |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the A/B report lacks %q:\n%s", want, out.String())
		}
	}
}

// TestReportMissingRun: a ratio whose run did not happen is "not measured", never met.
func TestReportMissingRun(t *testing.T) {
	r := map[string]Result{
		"vault (embedded) PUT": {RPS: 3000}, "vault (embedded) GET": {RPS: 5000},
		"bare net/http GET": {RPS: 30000}, "MinIO direct PUT": {RPS: 1000},
	}
	md := report(r, nil, 70, 16, 512, time.Second, time.Second)
	if !strings.Contains(md, "| vault durable PUT / rest-server PUT | not measured | >= 2x | |") {
		t.Errorf("a ratio without rest-server is not reported as not measured:\n%s", md)
	}
	if strings.Contains(md, "Inf") || strings.Contains(md, "NaN") {
		t.Errorf("the report prints Inf or NaN:\n%s", md)
	}
	if !strings.Contains(md, "| vault durable PUT / MinIO PUT (for reference) | 3.00x |") {
		t.Errorf("a measured ratio is missing:\n%s", md)
	}
}
