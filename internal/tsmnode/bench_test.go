package tsmnode_test

import (
	"crypto/sha256"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sharevault/sharevault/internal/tsm"
	"github.com/sharevault/sharevault/internal/tsmnode/tsmnodetest"
)

// counting is an HTTP transport that counts the bytes of requests and answers.
type counting struct{ n atomic.Int64 }

type countReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (r countReader) Read(p []byte) (int, error) {
	k, err := r.ReadCloser.Read(p)
	r.n.Add(int64(k))
	return k, err
}

func (c *counting) RoundTrip(req *http.Request) (*http.Response, error) {
	c.n.Add(req.ContentLength)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil {
		resp.Body = countReader{resp.Body, &c.n}
	}
	return resp, err
}

// benchSign runs sign in a loop and reports the p50 and p99 of its latency; with a
// cluster, the CPU of each node process and of this one (the phone) per signature, and the
// HTTP bytes both ways per signature. beside, if not nil, runs after each signature, apart
// from its timing: benchSign returns this process's CPU per signature and per run of beside.
func benchSign(b *testing.B, sign func() error, c *tsmnodetest.Cluster, bytes *counting, beside func()) (time.Duration, time.Duration) {
	if err := sign(); err != nil { // the first one sets ECDSA's pairs up
		b.Fatal(err)
	}
	var ds []time.Duration
	cpu := func() []time.Duration {
		out := []time.Duration{tsmnodetest.SelfCPU()}
		if c != nil {
			for _, n := range c.Nodes {
				d, err := n.CPU()
				if err != nil {
					b.Fatal(err)
				}
				out = append(out, d)
			}
		}
		return out
	}
	var sent int64
	if bytes != nil {
		sent = bytes.n.Load()
	}
	var besides time.Duration
	before := cpu()
	for b.Loop() {
		start := time.Now()
		if err := sign(); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
		if beside != nil {
			b.StopTimer()
			t := tsmnodetest.SelfCPU()
			beside()
			besides += tsmnodetest.SelfCPU() - t
			b.StartTimer()
		}
	}
	after := cpu()
	after[0] -= besides
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds()), "p99-µs")
	if c != nil {
		n := float64(len(ds))
		b.ReportMetric(float64((after[0]-before[0]).Microseconds())/n, "phone-cpu-µs")
		for i := 1; i < len(after); i++ {
			b.ReportMetric(float64((after[i]-before[i]).Microseconds())/n, "node"+string(rune('0'+i))+"-cpu-µs")
		}
		b.ReportMetric(float64(bytes.n.Load()-sent)/n, "http-bytes")
	}
	return (after[0] - before[0]) / time.Duration(len(ds)), besides / time.Duration(len(ds))
}

func inProcess(b *testing.B) *tsm.Client {
	dir := b.TempDir()
	var cfg tsm.Config
	for _, n := range []string{"phone.db", "s1.db", "s2.db"} {
		cfg.Nodes = append(cfg.Nodes, tsm.NodeConfig{Database: filepath.Join(dir, n)})
	}
	cl, err := tsm.NewClient(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cl.Close() })
	return cl
}

func acrossProcesses(b *testing.B) (*tsm.Client, *tsmnodetest.Cluster, *counting) {
	c := tsmnodetest.Must(b, 2)
	bytes := &counting{}
	return through(b, c, bytes), c, bytes
}

// through is a phone (a new embedded node) with the cluster's nodes, reached over rt.
func through(t testing.TB, c *tsmnodetest.Cluster, rt http.RoundTripper) *tsm.Client {
	return throughAt(t, filepath.Join(t.TempDir(), "phone.db"), c, rt)
}

// throughAt is through with the phone's database at db.
func throughAt(t testing.TB, db string, c *tsmnodetest.Cluster, rt http.RoundTripper) *tsm.Client {
	cfg := tsm.Config{Nodes: []tsm.NodeConfig{{Database: db}},
		HTTPClient: &http.Client{Transport: rt, Timeout: 30 * time.Second}}
	for _, n := range c.Nodes {
		cfg.Nodes = append(cfg.Nodes, tsm.NodeConfig{URL: n.URL, ID: n.ID.String()})
	}
	cl, err := tsm.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func eddsa(b *testing.B, cl *tsm.Client) func() error {
	e := tsm.NewEDDSAClient(cl)
	keyID, err := e.GenerateKey("bench")
	if err != nil {
		b.Fatal(err)
	}
	return func() error { _, err := e.Sign(keyID, []byte("pay bob 1 coin")); return err }
}

func ecdsaSign(b *testing.B, cl *tsm.Client) func() error {
	e := tsm.NewECDSAClient(cl)
	keyID, err := e.GenerateKey("bench")
	if err != nil {
		b.Fatal(err)
	}
	digest := sha256.Sum256([]byte("pay bob 1 coin"))
	return func() error { _, err := e.Sign(keyID, digest[:], nil); return err }
}

// BenchmarkSignInProcess: the phone and two server nodes in one process (the baseline).
// It reports the CPU of a signature beside its floor, run after every signature
// (tsmnodetest.FROSTFloor).
func BenchmarkSignInProcess(b *testing.B) {
	floor := tsmnodetest.FROSTFloor(3)
	cpu, floorCPU := benchSign(b, eddsa(b, inProcess(b)), nil, nil, func() {
		if err := floor(); err != nil {
			b.Fatal(err)
		}
	})
	b.ReportMetric(float64(cpu.Microseconds()), "cpu-µs")
	b.ReportMetric(float64(floorCPU.Microseconds()), "floor-µs")
	b.ReportMetric(float64(cpu)/float64(floorCPU), "cpu/floor")
}

// BenchmarkSignAcrossProcesses: the phone here, two tsmnode processes over loopback.
func BenchmarkSignAcrossProcesses(b *testing.B) {
	cl, c, n := acrossProcesses(b)
	benchSign(b, eddsa(b, cl), c, n, nil)
}

// BenchmarkECDSASignInProcess and BenchmarkECDSASignAcrossProcesses: the same for a
// threshold ECDSA signature (DKLs23) of a 3-of-3 secp256k1 key.
func BenchmarkECDSASignInProcess(b *testing.B) {
	benchSign(b, ecdsaSign(b, inProcess(b)), nil, nil, nil)
}

func BenchmarkECDSASignAcrossProcesses(b *testing.B) {
	cl, c, n := acrossProcesses(b)
	benchSign(b, ecdsaSign(b, cl), c, n, nil)
}
