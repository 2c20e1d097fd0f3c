package main

// The suite behind make bench: the vault on its embedded store, the vault on MinIO,
// MinIO directly and the bare handler, all started here on loopback, measured in one run,
// and written up as docs/benchmarks.md with each ratio against its goal.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sharevault/sharevault/internal/miniotest"
	"github.com/sharevault/sharevault/internal/vaultproc"
)

// rssSampler records a process's largest resident set size while it runs.
type rssSampler struct {
	stop chan struct{}
	done chan struct{}
	max  int64 // KiB
}

func sampleRSS(pid int) *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
				for _, l := range strings.Split(string(b), "\n") {
					if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
						if kb, _ := strconv.ParseInt(f[1], 10, 64); kb > s.max {
							s.max = kb
						}
					}
				}
			}
			select {
			case <-s.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return s
}

func (s *rssSampler) maxMiB() float64 { close(s.stop); <-s.done; return float64(s.max) / 1024 }

func suite(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("suite", flag.ContinueOnError)
	out := fs.String("out", "docs/benchmarks.md", "Markdown file to write")
	dur := fs.Duration("duration", 10*time.Second, "each closed-loop run")
	openDur := fs.Duration("open-duration", 60*time.Second, "the open-loop run")
	conc := fs.Int("concurrency", 16, "closed-loop clients")
	size := fs.Int("size", 4096, "payload bytes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "vaultbench: "+format+"\n", a...) }
	tmp, err := os.MkdirTemp("", "vaultbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	logf("building the vault")
	vaultBin, err := vaultproc.Build(tmp)
	if err != nil {
		return err
	}
	minioBin, err := miniotest.Binary()
	if err != nil {
		return fmt.Errorf("no MinIO (make tools builds it): %w", err)
	}
	m, err := miniotest.StartProcess(minioBin, filepath.Join(tmp, "minio"))
	if err != nil {
		return err
	}
	defer m.Stop()
	for _, b := range []string{"bench", "vault"} {
		if err := m.CreateBucket(ctx, b); err != nil {
			return err
		}
	}
	open := []string{"--rate-ip", "1e9", "--burst-ip", "1000000000", "--rate-vault", "1e9", "--burst-vault", "1000000000",
		"--new-vaults-ip", "1e9", "--inflight-ip", "1000000", "--memory-budget", "1073741824",
		"--quota-keys", "100000", "--listen", "127.0.0.1:0"}
	embedded, err := vaultproc.Start(vaultBin, nil, nil, append(open, "--store", filepath.Join(tmp, "pebble"))...)
	if err != nil {
		return err
	}
	defer embedded.Stop()
	onMinIO, err := vaultproc.Start(vaultBin, append(os.Environ(), "AWS_ACCESS_KEY_ID="+m.AccessKey, "AWS_SECRET_ACCESS_KEY="+m.SecretKey), nil,
		append(open, "--store", "s3://vault/v?endpoint="+m.Endpoint+"&region=us-east-1&path_style=true")...)
	if err != nil {
		return err
	}
	defer onMinIO.Stop()
	self, _ := os.Executable()
	bare, err := vaultproc.Start(self, nil, nil, "bare", "--listen", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer bare.Stop()

	stamp := fmt.Sprint(time.Now().UnixNano())
	type namedTarget struct {
		name string
		t    target
		pid  int
	}
	targets := []namedTarget{
		{"vault (embedded)", newVaultTarget(embedded.URL, *size, max(*conc, 256)), embedded.Cmd.Process.Pid},
		{"vault on MinIO", newVaultTarget(onMinIO.URL, *size, max(*conc, 256)), 0},
		{"MinIO direct", &s3Target{client: s3Client(m.Endpoint, m.AccessKey, m.SecretKey), bucket: "bench", payload: make([]byte, *size), run: stamp}, 0},
		{"bare net/http", &bareTarget{base: bare.URL, payload: make([]byte, *size), run: stamp}, 0},
	}
	if bin := os.Getenv("SHAREVAULT_RESTSERVER"); bin != "" {
		rs, err := startRestServer(bin, filepath.Join(tmp, "rest"))
		if err != nil {
			return err
		}
		defer rs.Stop()
		targets = append(targets, namedTarget{"rest-server", &restTarget{base: rs.URL, payload: make([]byte, *size), run: stamp}, 0})
	} else {
		logf("SHAREVAULT_RESTSERVER is not set (make bench sets it): no rest-server rows this run")
	}
	results := map[string]Result{}
	var order []string
	rss := 0.0
	for _, tg := range targets {
		if err := tg.t.prepare(ctx); err != nil {
			return fmt.Errorf("%s: %w", tg.name, err)
		}
		for _, mode := range []string{"PUT", "GET"} {
			do := tg.t.putOp
			if mode == "GET" {
				do = tg.t.getOp
			}
			var s *rssSampler
			if tg.pid != 0 {
				s = sampleRSS(tg.pid)
			}
			logf("%s %s, %d clients, %s", tg.name, mode, *conc, *dur)
			r := closedLoop(ctx, tg.name+" "+mode, *conc, *dur, do)
			r.Size = *size
			if s != nil {
				rss = max(rss, s.maxMiB())
			}
			results[r.Name] = r
			order = append(order, r.Name)
		}
	}

	logf("open loop on the embedded vault: 200 PUT/s and 2000 GET/s for %s", *openDur)
	vt := targets[0].t.(*vaultTarget)
	var wg sync.WaitGroup
	var putR, getR Result
	s := sampleRSS(targets[0].pid)
	wg.Add(2)
	go func() { defer wg.Done(); putR = openLoop(ctx, "open PUT", 200, *openDur, vt.putOp) }()
	go func() { defer wg.Done(); getR = openLoop(ctx, "open GET", 2000, *openDur, vt.getOp) }()
	wg.Wait()
	rss = max(rss, s.maxMiB())
	putR.Size, getR.Size = *size, *size
	results[putR.Name], results[getR.Name] = putR, getR
	order = append(order, putR.Name, getR.Name)

	md := report(results, order, rss, *conc, *size, *dur, *openDur)
	if err := os.WriteFile(*out, []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Fprint(stdout, md)
	logf("wrote %s", *out)
	return nil
}

// startRestServer runs rest-server --no-auth on a free loopback port over dir.
func startRestServer(bin, dir string) (*vaultproc.Process, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "--no-auth", "--path", dir, "--listen", addr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &vaultproc.Process{Cmd: cmd, URL: "http://" + addr}
	for range 100 { // it says nothing on stdout: wait for its port
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return p, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.Kill()
	return nil, errors.New("rest-server did not start")
}

func machine() string {
	model, mem := "unknown CPU", ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0]); len(f) >= 2 {
			kb, _ := strconv.ParseFloat(f[1], 64)
			mem = fmt.Sprintf(", %.0f GiB", kb/1024/1024)
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("%d cores (%s)%s, Linux %s, %s", runtime.NumCPU(), model, mem, strings.TrimSpace(string(kernel)), runtime.Version())
}

func report(r map[string]Result, order []string, rss float64, conc, size int, dur, openDur time.Duration) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("# Benchmarks")
	w("")
	w("Written by `make bench` (`go run ./cmd/vaultbench suite`), which starts every target on loopback and")
	w("measures them in one run on one machine; compare the ratios, not the absolute numbers. The load")
	w("generator shares the machine with the servers. CI does not gate on these figures.")
	w("")
	w("- Machine: %s", machine())
	w("- Run: %s, %d-byte payloads; closed loop %d clients for %s each; open loop for %s", time.Now().UTC().Format(time.RFC3339), size, conc, dur, openDur)
	w("- The vault's requests are real: RFC 9421-signed, with sealed envelopes; one vault (user) per client.")
	w("  MinIO direct is aws-sdk-go-v2 PutObject with If-None-Match: * and GetObject. rest-server is")
	w("  restic's, pinned v0.14.0, --no-auth, POST/GET /data/<sha256> (it hashes and fsyncs every blob).")
	w("  The bare handler is net/http with a map: the ceiling for an HTTP server on this machine.")
	w("")
	w("| run | req/s | p50 ms | p99 ms | p99.9 ms | errors |")
	w("| --- | ---: | ---: | ---: | ---: | ---: |")
	for _, n := range order {
		x := r[n]
		w("| %s | %.0f | %.2f | %.2f | %.2f | %d |", n, x.RPS, x.P50, x.P99, x.P999, x.Errors)
	}
	w("")
	// A ratio with a run missing (no MinIO or rest-server this time) is NaN: not measured.
	ratio := func(a, b string) float64 {
		x, okA := r[a]
		y, okB := r[b]
		if !okA || !okB || y.RPS == 0 {
			return math.NaN()
		}
		return x.RPS / y.RPS
	}
	check := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**not met**"
	}
	type goal struct {
		what  string
		value float64
		want  string
		ok    bool
	}
	rssLimit := 64 + float64(conc)*2*1
	// The goals of the storage-path issue (docs/performance.md explains those not met).
	goals := []goal{
		{"vault on MinIO PUT / MinIO PUT", ratio("vault on MinIO PUT", "MinIO direct PUT"), ">= 0.9x", ratio("vault on MinIO PUT", "MinIO direct PUT") >= 0.9},
		{"vault on MinIO GET / MinIO GET", ratio("vault on MinIO GET", "MinIO direct GET"), ">= 0.9x", ratio("vault on MinIO GET", "MinIO direct GET") >= 0.9},
		{"vault durable PUT / rest-server PUT", ratio("vault (embedded) PUT", "rest-server PUT"), ">= 2x", ratio("vault (embedded) PUT", "rest-server PUT") >= 2},
		{"vault GET / bare GET", ratio("vault (embedded) GET", "bare net/http GET"), ">= 0.4x", ratio("vault (embedded) GET", "bare net/http GET") >= 0.4},
		{"vault durable PUT / MinIO PUT (for reference)", ratio("vault (embedded) PUT", "MinIO direct PUT"), "", true},
		{"vault GET / rest-server GET (for reference)", ratio("vault (embedded) GET", "rest-server GET"), "", true},
	}
	w("| ratio (same run) | measured | goal | |")
	w("| --- | ---: | --- | --- |")
	for _, g := range goals {
		if math.IsNaN(g.value) {
			w("| %s | not measured | %s | |", g.what, g.want)
			continue
		}
		if g.want == "" {
			w("| %s | %.2fx | | |", g.what, g.value)
			continue
		}
		w("| %s | %.2fx | %s | %s |", g.what, g.value, g.want, check(g.ok))
	}
	op, og := r["open PUT"], r["open GET"]
	w("| open loop PUT p99 (200/s) | %.2f ms | <= 10 ms | %s |", op.P99, check(op.P99 <= 10 && op.Errors == 0))
	w("| open loop GET p99 (2000/s) | %.2f ms | <= 3 ms | %s |", og.P99, check(og.P99 <= 3 && og.Errors == 0))
	w("| open loop errors | %d | 0 | %s |", op.Errors+og.Errors, check(op.Errors+og.Errors == 0))
	w("| vault RSS under load (max) | %.1f MiB | <= %.0f MiB (64 + c x 2 x 1 MiB) | %s |", rss, rssLimit, check(rss <= rssLimit))
	w("")
	w("## Raw results")
	w("")
	w("```json")
	var list []Result
	for _, n := range order {
		list = append(list, r[n])
	}
	j, _ := json.MarshalIndent(list, "", "  ")
	w("%s", j)
	w("```")
	return b.String()
}
