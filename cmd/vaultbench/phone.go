package main

// vaultbench phone: the phone's flows against a real vault and two tsmnode processes, each
// behind toxiproxy (as a library, on loopback) with a mobile link's latency and bandwidth,
// counting the flow's sequential round trips (docs/benchmarks-phone.md).

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/collectors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/sharevault/sharevault/client"
	"github.com/sharevault/sharevault/internal/tsm"
	"github.com/sharevault/sharevault/internal/tsmnode/tsmnodetest"
	"github.com/sharevault/sharevault/internal/vaultproc"
)

// waves counts what a flow costs a phone: HTTP requests, and round trips, where requests
// in flight together (a step sent to both nodes at once) are one round trip.
type waves struct {
	mu       sync.Mutex
	inflight int
	trips    atomic.Int64
	requests atomic.Int64
	trace    io.Writer // each request's round trip, method and path, when not nil
}

// waveLeg is one transport (the vault's, or the nodes') counted by w.
type waveLeg struct {
	w    *waves
	base http.RoundTripper
}

func (l *waveLeg) RoundTrip(req *http.Request) (*http.Response, error) {
	return l.w.roundTrip(l.base, req)
}

func (w *waves) roundTrip(base http.RoundTripper, req *http.Request) (*http.Response, error) {
	w.mu.Lock()
	if w.inflight == 0 {
		w.trips.Add(1)
	}
	w.inflight++
	if w.trace != nil {
		fmt.Fprintf(w.trace, "  trip %d: %s %s%s\n", w.trips.Load(), req.Method, req.URL.Host, req.URL.Path)
	}
	w.mu.Unlock()
	w.requests.Add(1)
	resp, err := base.RoundTrip(req)
	if err == nil {
		b, rerr := io.ReadAll(resp.Body) // the trip ends when the answer is in
		resp.Body.Close()
		resp.Body = io.NopCloser(strings.NewReader(string(b)))
		err = rerr
	}
	w.mu.Lock()
	w.inflight--
	w.mu.Unlock()
	return resp, err
}

func (w *waves) count() (int64, int64) { return w.trips.Load(), w.requests.Load() }

// link is a toxiproxy in front of addr with latency each way and a bandwidth each way.
func link(srv *toxiproxy.ApiServer, name, addr string, latency time.Duration, kbps int64) (*toxiproxy.Proxy, error) {
	p := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", addr)
	if err := p.Start(); err != nil {
		return nil, err
	}
	for _, dir := range []string{"upstream", "downstream"} {
		if latency > 0 {
			if _, err := p.Toxics.AddToxicJson(toxicJSON(name+"-lat-"+dir, "latency", dir, fmt.Sprintf(`{"latency": %d}`, latency.Milliseconds()))); err != nil {
				return nil, err
			}
		}
		if kbps > 0 {
			if _, err := p.Toxics.AddToxicJson(toxicJSON(name+"-bw-"+dir, "bandwidth", dir, fmt.Sprintf(`{"rate": %d}`, kbps/8))); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

func toxicJSON(name, typ, stream, attrs string) io.Reader {
	return strings.NewReader(fmt.Sprintf(`{"name": %q, "type": %q, "stream": %q, "toxicity": 1, "attributes": %s}`, name, typ, stream, attrs))
}

// flowResult is one flow's measurement.
type flowResult struct {
	Name     string  `json:"name"`
	Trips    int64   `json:"round_trips"`
	Requests int64   `json:"requests"`
	WallMS   float64 `json:"wall_ms"`
	Floor    int     `json:"floor"`
	Why      string  `json:"floor_is"`
}

func phoneBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("phone", flag.ContinueOnError)
	out := fs.String("out", "docs/benchmarks-phone.md", "Markdown file to write")
	latency := fs.Duration("latency", 40*time.Millisecond, "one-way latency of the phone's link")
	kbps := fs.Int64("kbps", 10000, "bandwidth of the phone's link each way, kbit/s")
	trace := fs.Bool("trace", false, "print each request of the flows, with its round trip, on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "vaultbench: "+format+"\n", a...) }
	tmp, err := os.MkdirTemp("", "vaultbench-phone")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	logf("building the vault and tsmnode")
	vaultBin, err := vaultproc.Build(tmp)
	if err != nil {
		return err
	}
	v, err := vaultproc.Start(vaultBin, nil, nil, "--store", filepath.Join(tmp, "pebble"), "--listen", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer v.Stop()
	nodes, err := tsmnodetest.Start(filepath.Join(tmp, "nodes"), 2)
	if err != nil {
		return err
	}
	defer nodes.Stop()

	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	srv.Metrics.ProxyMetrics = collectors.NewProxyMetricCollectors()
	hostOf := func(u string) string { return strings.TrimPrefix(u, "http://") }
	vp, err := link(srv, "vault", hostOf(v.URL), *latency, *kbps)
	if err != nil {
		return err
	}
	defer vp.Stop()
	var nodeURLs []string
	for i, n := range nodes.Nodes {
		p, err := link(srv, fmt.Sprint("node", i+1), hostOf(n.URL), *latency, *kbps)
		if err != nil {
			return err
		}
		defer p.Stop()
		nodeURLs = append(nodeURLs, "http://"+p.Listen+"#"+n.ID.String())
	}

	var w *waves
	client.WrapTransport(func(rt http.RoundTripper) http.RoundTripper {
		if w == nil {
			w = &waves{}
			if *trace {
				w.trace = stderr
			}
		}
		// One counter for both: the vault's and the nodes' requests are the same link's.
		return &waveLeg{w: w, base: rt}
	})
	var results []flowResult
	measure := func(name string, floor int, why string, fn func() error) error {
		t0, r0 := w.count()
		start := time.Now()
		if err := fn(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		t1, r1 := w.count()
		results = append(results, flowResult{name, t1 - t0, r1 - r0, float64(time.Since(start).Microseconds()) / 1000, floor, why})
		logf("%s: %d round trips, %.0f ms", name, t1-t0, results[len(results)-1].WallMS)
		return nil
	}
	vault := client.NewVault("http://" + vp.Listen)
	open := func(dir string) (*client.Phone, error) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		p, err := client.OpenPhone(filepath.Join(dir, "phone.db"), vault)
		if err != nil {
			return nil, err
		}
		for _, n := range nodeURLs {
			url, id, _ := strings.Cut(n, "#")
			p.AddRemoteNode(url, id)
		}
		return p, nil
	}
	p, err := open(filepath.Join(tmp, "phone"))
	if err != nil {
		return err
	}
	defer p.Close()
	words, err := client.NewWords(24)
	if err != nil {
		return err
	}
	keys, err := words.Keys("")
	if err != nil {
		return err
	}
	var ed, ec string
	digest := sha256.Sum256([]byte("pay bob 1 coin"))
	steps := []struct {
		name  string
		floor int
		why   string
		fn    func() error
	}{
		{"keygen (EdDSA, 3-of-3)", 3, "the DKG's three steps, to both nodes at once", func() (err error) { ed, err = p.KeyGen("eddsa", "bench"); return }},
		{"backup", 2, "the nodes' epoch with the vault's listing, then the upload: its sequence and compare-and-swap come from the listing, and a share goes up only once the nodes confirmed its epoch", func() error { _, err := p.Backup(keys, ed); return err }},
		{"sign (EdDSA), the key's first", 1, "one request to each node, on the commitments the backup's epoch check brought", func() error { _, err := p.Sign(ed, "pay bob 1 coin"); return err }},
		{"sign (EdDSA), on commitments handed out ahead", 1, "one request to each node, at once", func() error { _, err := p.Sign(ed, "pay bob 2 coins"); return err }},
		{"keygen (ECDSA, 3-of-3)", 3, "the DKG's three steps", func() (err error) { ec, err = p.KeyGen("ecdsa", "bench"); return }},
		{"first ECDSA signature (sets the pairs up)", 6, "setup's three steps, then DKLs23's three rounds", func() error {
			_, err := p.SignDigest(ec, hex.EncodeToString(digest[:]), "")
			return err
		}},
		{"sign (ECDSA)", 3, "DKLs23's three rounds", func() error {
			_, err := p.SignDigest(ec, hex.EncodeToString(digest[:]), "")
			return err
		}},
		{"ECDSA presignature, ahead (no digest)", 2, "DKLs23's rounds one and two", func() error { return p.PresignECDSA(ec) }},
		{"sign (ECDSA) on a presignature", 1, "round three, to each node at once", func() error {
			_, err := p.SignDigest(ec, hex.EncodeToString(digest[:]), "")
			return err
		}},
		{"reshare with its backup", 6, "refresh start, round two, prepare, the upload, the decider's switch, the others'", func() error {
			_, err := p.Reshare(keys, ed)
			return err
		}},
	}
	for _, s := range steps {
		if err := measure(s.name, s.floor, s.why, s.fn); err != nil {
			return err
		}
	}
	// A new phone: the words typed with word 5 wrong, the restore, the first signature.
	var sheet []string
	for i := 1; i <= words.Count(); i++ {
		wd := words.Word(i)
		if i == 5 {
			wd += "x"
		}
		sheet = append(sheet, wd)
	}
	p2, err := open(filepath.Join(tmp, "phone2"))
	if err != nil {
		return err
	}
	defer p2.Close()
	if err := measure("restore, one word mistyped, to the first signature", 5, "the typo query, the key list, the download, the nodes' epoch (which brings commitments), one signing round", func() error {
		found, err := client.FindKeys(vault, strings.Join(sheet, " "), "")
		if err != nil {
			return err
		}
		if _, err := p2.Restore(found.Keys, ed); err != nil {
			return err
		}
		_, err = p2.Sign(ed, "after the restore")
		return err
	}); err != nil {
		return err
	}

	// The loopback figures of the same run: three processes (the phone here), and the three
	// nodes in one process, one signature of each in turn.
	loop, inproc, err := signLatencies(nodes, filepath.Join(tmp, "loop"))
	if err != nil {
		return err
	}
	md := phoneReport(results, *latency, *kbps, loop, inproc)
	if err := os.WriteFile(*out, []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Fprint(stdout, md)
	return nil
}

// latencies are the loopback figures of signSamples EdDSA signatures: p50, p99, and with
// all nodes in this process, the CPU per signature and per run of its floor
// (tsmnodetest.FROSTFloor), run after every signature.
type latencies struct{ p50, p99, cpu, floor time.Duration }

const signSamples = 1000

// signLatencies signs signSamples times with an EdDSA key (after 5 to warm up) across
// processes (the phone here, the nodes' processes) and with all three nodes in this process,
// one of each in turn, so that both see the machine as it is at the time.
func signLatencies(c *tsmnodetest.Cluster, dir string) (across, inProcess latencies, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return latencies{}, latencies{}, err
	}
	open := func(nodes ...tsm.NodeConfig) (*tsm.Client, func() error, error) {
		cl, err := tsm.NewClient(tsm.Config{Nodes: nodes})
		if err != nil {
			return nil, nil, err
		}
		e := tsm.NewEDDSAClient(cl)
		keyID, err := e.GenerateKey("latency")
		if err != nil {
			cl.Close()
			return nil, nil, err
		}
		return cl, func() error { _, err := e.Sign(keyID, []byte("m")); return err }, nil
	}
	remote := []tsm.NodeConfig{{Database: filepath.Join(dir, "phone.db")}}
	for _, n := range c.Nodes {
		remote = append(remote, tsm.NodeConfig{URL: n.URL, ID: n.ID.String()})
	}
	cl1, signAcross, err := open(remote...)
	if err != nil {
		return latencies{}, latencies{}, err
	}
	defer cl1.Close()
	cl2, signHere, err := open(tsm.NodeConfig{Database: filepath.Join(dir, "in-phone.db")},
		tsm.NodeConfig{Database: filepath.Join(dir, "s1.db")}, tsm.NodeConfig{Database: filepath.Join(dir, "s2.db")})
	if err != nil {
		return latencies{}, latencies{}, err
	}
	defer cl2.Close()
	floor := tsmnodetest.FROSTFloor(3)
	var da, dh []time.Duration
	across1 := func() (time.Duration, error) {
		start := time.Now()
		err := signAcross()
		return time.Since(start), err
	}
	here1 := func() (d, cpu, fl time.Duration, err error) {
		c0 := tsmnodetest.SelfCPU()
		start := time.Now()
		if err = signHere(); err != nil {
			return
		}
		d = time.Since(start)
		c1 := tsmnodetest.SelfCPU()
		err = floor()
		return d, c1 - c0, tsmnodetest.SelfCPU() - c1, err
	}
	for i := range signSamples + 5 {
		// Each goes first every other time, so that neither always follows the other's
		// after-work (the nodes' processes, the floor's computation).
		var a, h, cpu, fl time.Duration
		var err, err2 error
		if i%2 == 0 {
			a, err = across1()
			h, cpu, fl, err2 = here1()
		} else {
			h, cpu, fl, err2 = here1()
			a, err = across1()
		}
		if err = errors.Join(err, err2); err != nil {
			return latencies{}, latencies{}, err
		}
		if i < 5 {
			continue
		}
		da, dh = append(da, a), append(dh, h)
		inProcess.cpu += cpu
		inProcess.floor += fl
	}
	across.p50, across.p99 = percentiles(da)
	inProcess.p50, inProcess.p99 = percentiles(dh)
	inProcess.cpu /= signSamples
	inProcess.floor /= signSamples
	return across, inProcess, nil
}

// percentiles sorts ds and returns its p50 and p99.
func percentiles(ds []time.Duration) (p50, p99 time.Duration) {
	slices.Sort(ds)
	return ds[len(ds)/2], ds[len(ds)*99/100]
}

func phoneReport(rs []flowResult, latency time.Duration, kbps int64, loop, inproc latencies) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# The phone's flows over a mobile link\n\n")
	fmt.Fprintf(&b, "`make bench` (`go run ./cmd/vaultbench phone`), %s, one run: a real vault (embedded store) and two\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&b, "`tsmnode` processes, each behind toxiproxy with %s of latency each way (%s round trip)\n", latency, 2*latency)
	fmt.Fprintf(&b, "and %d kbit/s each way; the phone (the `client` package) in the bench's process. A round\n", kbps)
	fmt.Fprintf(&b, "trip is counted, not estimated: the phone's HTTP transport counts one each time a request\n")
	fmt.Fprintf(&b, "starts with none in flight (a step sent to both nodes at once is one round trip). The\n")
	fmt.Fprintf(&b, "floor is the fewest round trips the flow's protocol allows.\n\n")
	fmt.Fprintf(&b, "Machine: %s.\n\n", machine())
	fmt.Fprintf(&b, "| flow | round trips | floor | requests | wall time | the floor is |\n| --- | ---: | ---: | ---: | ---: | --- |\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %.0f ms | %s |\n", r.Name, r.Trips, r.Floor, r.Requests, r.WallMS, r.Why)
	}
	fmt.Fprintf(&b, "\nOn loopback, in the same run, an EdDSA signature of the phone and two nodes (%d of each, in turn):\n\n", signSamples)
	fmt.Fprintf(&b, "| | p50 | p99 |\n| --- | ---: | ---: |\n")
	fmt.Fprintf(&b, "| across three processes | %.2f ms | %.2f ms |\n", ms(loop.p50), ms(loop.p99))
	fmt.Fprintf(&b, "| in one process | %.2f ms | %.2f ms |\n", ms(inproc.p50), ms(inproc.p99))
	fmt.Fprintf(&b, "| ratio | %.2fx | %.2fx |\n", ms(loop.p50)/ms(inproc.p50), ms(loop.p99)/ms(inproc.p99))
	fmt.Fprintf(&b, "\nThe CPU of the in-process signature (this process: the phone, both nodes and the coordinator),\n")
	fmt.Fprintf(&b, "beside its floor: the scalar multiplications FROST needs for three signers and a coordinator\n")
	fmt.Fprintf(&b, "(6 base multiplications, 4 three-term multi-scalar multiplications, 1 Ed25519 verification,\n")
	fmt.Fprintf(&b, "18 subgroup checks; docs/tsm-protocol.md, \"Cost\"), run after every signature:\n\n")
	fmt.Fprintf(&b, "| CPU per signature | floor | ratio |\n| ---: | ---: | ---: |\n")
	fmt.Fprintf(&b, "| %.2f ms | %.2f ms | %.2fx |\n", ms(inproc.cpu), ms(inproc.floor), float64(inproc.cpu)/float64(inproc.floor))
	return b.String()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
