package tsmnode_test

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sharevault/sharevault/internal/tsm"
	"github.com/sharevault/sharevault/internal/tsmnode/tsmnodetest"
)

// benchSign signs in a loop and reports the p50 and p99 of one signature's latency.
func benchSign(b *testing.B, cl *tsm.EDDSAClient) {
	keyID, err := cl.GenerateKey("bench")
	if err != nil {
		b.Fatal(err)
	}
	msg := []byte("pay bob 1 coin")
	var ds []time.Duration
	for b.Loop() {
		start := time.Now()
		if _, err := cl.Sign(keyID, msg); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkSignInProcess: the phone and two server nodes in one process (the baseline).
func BenchmarkSignInProcess(b *testing.B) {
	dir := b.TempDir()
	var cfg tsm.Config
	for _, n := range []string{"phone.db", "s1.db", "s2.db"} {
		cfg.Nodes = append(cfg.Nodes, tsm.NodeConfig{Database: filepath.Join(dir, n)})
	}
	cl, err := tsm.NewClient(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	benchSign(b, tsm.NewEDDSAClient(cl))
}

// BenchmarkSignAcrossProcesses: the phone here, two tsmnode processes over loopback.
func BenchmarkSignAcrossProcesses(b *testing.B) {
	c := tsmnodetest.Must(b, 2)
	benchSign(b, tsm.NewEDDSAClient(phone(b, filepath.Join(b.TempDir(), "phone.db"), c, 0, 1)))
}
