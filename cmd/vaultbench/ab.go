package main

// The A/B mode: two vault builds measured in one run, alternating, so that the machine's
// drift between runs does not pass for a difference between the builds.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/sharevault/sharevault/internal/vaultproc"
)

func ab(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ab", flag.ContinueOnError)
	a := fs.String("a", "", "the first vault binary (the baseline)")
	b := fs.String("b", "", "the second vault binary")
	rounds := fs.Int("rounds", 3, "alternations; the median of each is reported")
	dur := fs.Duration("duration", 5*time.Second, "each closed-loop run")
	conc := fs.Int("concurrency", 16, "closed-loop clients")
	size := fs.Int("size", 4096, "payload bytes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *a == "" || *b == "" || *rounds < 1 {
		return fmt.Errorf("usage: vaultbench ab --a BIN --b BIN [--rounds N] [--duration D]")
	}
	tmp, err := os.MkdirTemp("", "vaultbench-ab")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	open := []string{"--rate-ip", "1e9", "--burst-ip", "1000000000", "--rate-vault", "1e9", "--burst-vault", "1000000000",
		"--new-vaults-ip", "1e9", "--inflight-ip", "1000000", "--memory-budget", "1073741824", "--quota-keys", "100000", "--listen", "127.0.0.1:0"}
	rps := map[string][]float64{}
	names := []string{"A", "B"}
	var targets []*vaultTarget
	for i, bin := range []string{*a, *b} {
		p, err := vaultproc.Start(bin, nil, nil, append(open, "--store", filepath.Join(tmp, names[i]))...)
		if err != nil {
			return fmt.Errorf("%s: %w", names[i], err)
		}
		defer p.Stop()
		t := newVaultTarget(p.URL, *size, max(*conc, 256))
		if err := t.prepare(ctx); err != nil {
			return err
		}
		targets = append(targets, t)
	}
	for r := range *rounds {
		for i, t := range targets {
			for _, mode := range []string{"PUT", "GET"} {
				do := t.putOp
				if mode == "GET" {
					do = t.getOp
				}
				fmt.Fprintf(stderr, "vaultbench: round %d, %s %s\n", r+1, names[i], mode)
				res := closedLoop(ctx, mode, *conc, *dur, do)
				key := names[i] + " " + mode
				rps[key] = append(rps[key], res.RPS)
			}
		}
	}
	median := func(xs []float64) float64 { s := slices.Clone(xs); slices.Sort(s); return s[len(s)/2] }
	fmt.Fprintf(stdout, "| mode | A req/s | B req/s | B / A |\n| --- | ---: | ---: | ---: |\n")
	for _, mode := range []string{"PUT", "GET"} {
		ma, mb := median(rps["A "+mode]), median(rps["B "+mode])
		fmt.Fprintf(stdout, "| %s | %.0f | %.0f | %.2fx |\n", mode, ma, mb, mb/ma)
	}
	fmt.Fprintf(stdout, "\nA: %s\nB: %s\n(medians of %d alternating rounds of %s, %d clients, %d-byte payloads)\n", *a, *b, *rounds, *dur, *conc, *size)
	return nil
}
