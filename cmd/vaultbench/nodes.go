package main

// vaultbench nodes: TSM server nodes on PostgreSQL, with replicas (issue figures: a node's
// signatures per second with one replica and with two, over one PostgreSQL holding 10,000
// keys; the p99 of a signature across the phone and two nodes of two replicas each, beside
// two nodes of one process on SQLite; the database's size per key, on both stores).

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sharevault/sharevault/internal/nodestore"
	"github.com/sharevault/sharevault/internal/nodestore/postgres"
	"github.com/sharevault/sharevault/internal/nodestore/sqlite"
	"github.com/sharevault/sharevault/internal/pgtest"
	"github.com/sharevault/sharevault/internal/tsm"
	"github.com/sharevault/sharevault/internal/tsmnode/tsmnodetest"
)

func nodesBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("nodes", flag.ContinueOnError)
	out := fs.String("out", "docs/benchmarks-nodes.md", "Markdown file to write")
	keys := fs.Int("keys", 10000, "keys in each node's store")
	conc := fs.Int("concurrency", 8, "phones signing at once in the throughput runs")
	dur := fs.Duration("duration", 10*time.Second, "each throughput run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "vaultbench: "+format+"\n", a...) }
	tmp, err := os.MkdirTemp("", "vaultbench-nodes")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	logf("starting PostgreSQL and two nodes of two replicas each on it")
	pg, err := pgtest.Start(tmp)
	if err != nil {
		return err
	}
	defer pg.Stop()
	var dbs []string
	for range 2 {
		dsn, err := pg.NewDatabase()
		if err != nil {
			return err
		}
		dbs = append(dbs, dsn)
	}
	c, err := tsmnodetest.StartWith(filepath.Join(tmp, "pg"), 2, tsmnodetest.Options{Databases: dbs, Replicas: 2})
	if err != nil {
		return err
	}
	defer c.Stop()
	lite, err := tsmnodetest.Start(filepath.Join(tmp, "sqlite"), 2)
	if err != nil {
		return err
	}
	defer lite.Stop()

	// Keys that sign: 2-of-3, so that the phone and node 1 alone sign (node 1's figures);
	// each phone (a device of its own: its own database and node key) has keysPerPhone, which
	// it signs with in turn (a node serves one key a few dozen requests a minute: Node.fresh);
	// the rest of the store is filled to --keys with keys of the same shape.
	phoneDB := func(p int) string { return filepath.Join(tmp, fmt.Sprintf("phone%d.db", p)) }
	var ids []string
	for p := range *conc {
		all, err := phoneClient(phoneDB(p), c.Phone())
		if err != nil {
			return err
		}
		for range keysPerPhone {
			id, err := tsm.NewEDDSAClient(all).GenerateKeyThreshold("bench", 1)
			if err != nil {
				all.Close()
				return err
			}
			ids = append(ids, id)
		}
		all.Close()
	}
	size := map[string]float64{}
	for i, dsn := range dbs {
		s, err := postgres.Open(ctx, dsn)
		if err != nil {
			return err
		}
		before, err := pgSize(s.DB())
		if err == nil {
			err = fill(s, s, ids[0], *keys-len(ids))
		}
		after, err2 := pgSize(s.DB())
		s.Close()
		if err = errors.Join(err, err2); err != nil {
			return err
		}
		if i == 0 {
			size["PostgreSQL"] = float64(after-before) / float64(*keys-len(ids))
		}
	}
	logf("filled each node's database to %d keys", *keys)
	if size["SQLite"], err = sqliteSizePerKey(filepath.Join(tmp, "size.db"), dbs[0], ids[0], *keys); err != nil {
		return err
	}

	// Throughput of node 1: the phones sign with it alone, on one replica, then spread over
	// both (half of the phones name replica 1 first, half replica 2), in turn, twice.
	r1, r2 := c.Replicas[0][0].URL, c.Replicas[0][1].URL
	id1 := c.Nodes[0].ID.String()
	res := map[int][]tput{}
	for round := range 2 {
		for _, replicas := range []int{1, 2} {
			nodeOf := func(p int) string {
				if replicas == 2 && p%2 == 1 {
					return r2 + "|" + r1 + "#" + id1
				}
				if replicas == 2 {
					return r1 + "|" + r2 + "#" + id1
				}
				return r1 + "#" + id1
			}
			cpu0, self0 := replicaCPU(c.Replicas[0]), tsmnodetest.SelfCPU()
			n, err := signFor(ctx, phoneDB, ids, nodeOf, *dur)
			if err != nil {
				return err
			}
			cpu, self := replicaCPU(c.Replicas[0])-cpu0, tsmnodetest.SelfCPU()-self0
			per := time.Duration(max(n, 1))
			res[replicas] = append(res[replicas], tput{float64(n) / dur.Seconds(), cpu / per, self / per})
			logf("round %d, %d replica(s): %.0f signatures/s", round+1, replicas, float64(n)/dur.Seconds())
		}
	}

	// The p99 of a 3-of-3 signature: the phone and two nodes of two replicas each on
	// PostgreSQL, beside two nodes of one process each on SQLite, one of each in turn.
	logf("signing %d times across each setup", signSamples)
	pgLat, liteLat, err := twoLatencies(filepath.Join(tmp, "lat"), c.Phone(), lite.Phone())
	if err != nil {
		return err
	}
	rep := nodesReport(*keys, *conc, *dur, res[1], res[2], pgLat, liteLat, size)
	if err := os.WriteFile(*out, []byte(rep), 0o644); err != nil {
		return err
	}
	fmt.Fprint(stdout, rep)
	return nil
}

// phoneClient opens a phone client of the phone's database and the nodes as the phone's
// setting names them (URL|URL#ID,…).
func phoneClient(phoneDB, nodes string) (*tsm.Client, error) {
	cfg := tsm.Config{Nodes: []tsm.NodeConfig{{Database: phoneDB}}}
	for _, n := range strings.Split(nodes, ",") {
		u, id, _ := strings.Cut(n, "#")
		cfg.Nodes = append(cfg.Nodes, tsm.NodeConfig{URL: u, ID: id})
	}
	return tsm.NewClient(cfg)
}

// shape is a key of a store as fill copies it: its row and its owner row.
type shape struct {
	k      *nodestore.Key
	owner  int
	roster string
}

func shapeOf(s nodestore.Store, id string) (sh shape, err error) {
	err = s.Read(context.Background(), func(tx nodestore.Tx) (err error) {
		if sh.k, err = tx.Key(id); err != nil {
			return err
		}
		sh.owner, sh.roster, _, err = tx.Owner(id)
		return err
	})
	return sh, err
}

// fill adds n keys shaped as key id of from (its share, public shares and owner row) to s,
// through the store's interface, 500 to a transaction.
func fill(s nodestore.Store, from nodestore.Store, id string, n int) error {
	sh, err := shapeOf(from, id)
	if err != nil {
		return err
	}
	k, owner, roster := sh.k, sh.owner, sh.roster
	for done := 0; done < n; {
		batch := min(500, n-done)
		err := s.Write(context.Background(), func(tx nodestore.Tx) error {
			for i := range batch {
				f := *k
				f.ID = fmt.Sprintf("fill%06d%s", done+i, id[:8])
				if err := tx.InsertKey(&f); err != nil {
					return err
				}
				if err := tx.SetOwner(f.ID, owner, roster); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		done += batch
	}
	return nil
}

func pgSize(db *sql.DB) (int64, error) {
	if _, err := db.Exec(`VACUUM`); err != nil { // the free space map is current, so size is rows and indexes
		return 0, err
	}
	var n int64
	err := db.QueryRow(`SELECT pg_database_size(current_database())`).Scan(&n)
	return n, err
}

// sqliteSizePerKey is the size per key of a SQLite node store holding keys keys shaped as
// node 1's key id (read from its PostgreSQL database).
func sqliteSizePerKey(path string, dsn, id string, keys int) (float64, error) {
	src, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	s, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		return 0, err
	}
	defer s.Close()
	fi0, err := sizeOf(s, path)
	if err != nil {
		return 0, err
	}
	if err := fill(s, src, id, keys); err != nil {
		return 0, err
	}
	fi1, err := sizeOf(s, path)
	return float64(fi1-fi0) / float64(keys), err
}

func sizeOf(s *sqlite.Store, path string) (int64, error) {
	if err := s.Scrub(context.Background()); err != nil {
		return 0, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func replicaCPU(rs []*tsmnodetest.Node) time.Duration {
	var sum time.Duration
	for _, r := range rs {
		d, _ := r.CPU()
		sum += d
	}
	return sum
}

// keysPerPhone is how many keys each phone of a throughput run signs with, in turn.
const keysPerPhone = 8

// signFor has len(ids)/keysPerPhone phones sign at once for d, phone p with its keys
// ids[p*keysPerPhone:…] in turn through nodeOf(p) (node 1 only), and returns how many
// signatures they made.
func signFor(ctx context.Context, phoneDB func(p int) string, ids []string, nodeOf func(p int) string, d time.Duration) (int64, error) {
	var n atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for p := range len(ids) / keysPerPhone {
		mine := ids[p*keysPerPhone : (p+1)*keysPerPhone]
		cl, err := phoneClient(phoneDB(p), nodeOf(p))
		if err != nil {
			return 0, err
		}
		e := tsm.NewEDDSAClient(cl)
		for _, id := range mine { // their kept state and commitments
			if _, err := e.Sign(id, []byte("warm")); err != nil {
				cl.Close()
				return 0, err
			}
		}
		wg.Go(func() {
			defer cl.Close()
			for i := 0; time.Now().Before(end) && ctx.Err() == nil; i++ {
				if _, err := e.Sign(mine[i%len(mine)], []byte("m")); err != nil {
					once.Do(func() { first = err })
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	return n.Load(), first
}

// twoLatencies signs signSamples times (after 5 to warm up) with a 3-of-3 key on each of
// two sets of nodes, one of each in turn.
func twoLatencies(dir string, a, b string) (la, lb latencies, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return la, lb, err
	}
	signer := func(db, nodes string) (func() (time.Duration, error), func(), error) {
		cl, err := phoneClient(filepath.Join(dir, db), nodes)
		if err != nil {
			return nil, nil, err
		}
		e := tsm.NewEDDSAClient(cl)
		id, err := e.GenerateKey("latency")
		if err != nil {
			cl.Close()
			return nil, nil, err
		}
		return func() (time.Duration, error) {
			start := time.Now()
			_, err := e.Sign(id, []byte("m"))
			return time.Since(start), err
		}, func() { cl.Close() }, nil
	}
	sa, ca, err := signer("a.db", a)
	if err != nil {
		return la, lb, err
	}
	defer ca()
	sb, cb, err := signer("b.db", b)
	if err != nil {
		return la, lb, err
	}
	defer cb()
	var da, db []time.Duration
	for i := range signSamples + 5 {
		first, second := sa, sb
		if i%2 == 1 {
			first, second = sb, sa
		}
		x, err1 := first()
		y, err2 := second()
		if err := errors.Join(err1, err2); err != nil {
			return la, lb, err
		}
		if i%2 == 1 {
			x, y = y, x
		}
		if i >= 5 {
			da, db = append(da, x), append(db, y)
		}
	}
	la.p50, la.p99 = percentiles(da)
	lb.p50, lb.p99 = percentiles(db)
	return la, lb, nil
}

// tput is a throughput run's signatures per second and CPU per signature.
type tput struct {
	rate   float64
	cpu    time.Duration // node 1's replicas'
	phones time.Duration // the bench process's: the phones
}

func nodesReport(keys, conc int, dur time.Duration, one, two []tput, pgLat, liteLat latencies, size map[string]float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# TSM nodes on PostgreSQL, with replicas\n\n")
	fmt.Fprintf(&b, "`go run ./cmd/vaultbench nodes` (the nodes line of `make bench`), %s, one run: a real\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&b, "PostgreSQL (Debian's, started by the bench on loopback), two `tsmnode` nodes of two replicas\n")
	fmt.Fprintf(&b, "each over their own database on it, and the phones in the bench's process, all on one machine.\n\n")
	fmt.Fprintf(&b, "Machine: %s.\n\n", machine())
	fmt.Fprintf(&b, "## Signatures per second of one node\n\n")
	fmt.Fprintf(&b, "%d phones (each its own database and node key) sign at once for %s, each with %d 2-of-3 EdDSA\n", conc, dur, keysPerPhone)
	fmt.Fprintf(&b, "keys of its own in turn (the phone and node 1 sign; node 2\n")
	fmt.Fprintf(&b, "is not asked), in one round trip each (commitments handed out ahead). Node 1's database holds\n")
	fmt.Fprintf(&b, "%d keys. With one replica, every phone names replica 1; with two, half name replica 1 first and\n", keys)
	fmt.Fprintf(&b, "half replica 2. The runs alternate, twice. CPU (user and system) per signature: node 1's\n")
	fmt.Fprintf(&b, "replicas', and the phones' (this process's); PostgreSQL's comes on top.\n\n")
	fmt.Fprintf(&b, "| node 1 | run 1 | run 2 | node 1's CPU per signature | the phones' CPU per signature |\n| --- | ---: | ---: | ---: | ---: |\n")
	for _, r := range []struct {
		name string
		t    []tput
	}{{"one replica", one}, {"two replicas", two}} {
		fmt.Fprintf(&b, "| %s | %.0f/s | %.0f/s | %.2f ms, %.2f ms | %.2f ms, %.2f ms |\n", r.name, r.t[0].rate, r.t[1].rate,
			ms(r.t[0].cpu), ms(r.t[1].cpu), ms(r.t[0].phones), ms(r.t[1].phones))
	}
	fmt.Fprintf(&b, "\nratio, two replicas to one: %.2fx, %.2fx.\n\n", two[0].rate/one[0].rate, two[1].rate/one[1].rate)
	cores := float64(runtime.NumCPU())
	ceiling := func(t tput) float64 { return cores / (t.cpu + t.phones).Seconds() }
	fmt.Fprintf(&b, "Every process here shares the machine's %.0f cores: the phones' and node 1's CPU per signature alone\n", cores)
	fmt.Fprintf(&b, "allow at most %.0f/s and %.0f/s (one replica), %.0f/s and %.0f/s (two), before PostgreSQL's share. So on\n",
		ceiling(one[0]), ceiling(one[1]), ceiling(two[0]), ceiling(two[1]))
	fmt.Fprintf(&b, "this machine a second replica cannot add signatures: it adds a second process for the same cores.\n")
	fmt.Fprintf(&b, "What it adds is a node that survives losing a process or a machine; on machines of their own,\n")
	fmt.Fprintf(&b, "each replica brings its cores: node 1's CPU per signature is what one core of it serves.\n\n")
	fmt.Fprintf(&b, "## The p99 of a signature\n\n")
	fmt.Fprintf(&b, "A 3-of-3 EdDSA key, %d signatures each, one of each setup in turn, after its first:\n\n", signSamples)
	fmt.Fprintf(&b, "| nodes | p50 | p99 |\n| --- | ---: | ---: |\n")
	fmt.Fprintf(&b, "| two nodes of two replicas each, on PostgreSQL | %.2f ms | %.2f ms |\n", ms(pgLat.p50), ms(pgLat.p99))
	fmt.Fprintf(&b, "| two nodes of one process each, on SQLite (the baseline) | %.2f ms | %.2f ms |\n", ms(liteLat.p50), ms(liteLat.p99))
	fmt.Fprintf(&b, "| ratio | %.2fx | %.2fx |\n\n", ms(pgLat.p50)/ms(liteLat.p50), ms(pgLat.p99)/ms(liteLat.p99))
	fmt.Fprintf(&b, "## The database's size per key\n\n")
	fmt.Fprintf(&b, "A server node's EdDSA key at epoch 0 with its owner row, measured over %d keys (PostgreSQL:\n", keys)
	fmt.Fprintf(&b, "`pg_database_size` after `VACUUM`, rows and indexes; SQLite: the file after a checkpoint). A\n")
	fmt.Fprintf(&b, "refresh adds its epoch's public shares to the history; the record of served requests\n")
	fmt.Fprintf(&b, "(`served`) is by request, not by key, and is swept two minutes after its request's window.\n\n")
	fmt.Fprintf(&b, "| store | bytes per key |\n| --- | ---: |\n")
	fmt.Fprintf(&b, "| PostgreSQL | %.0f |\n| SQLite | %.0f |\n", size["PostgreSQL"], size["SQLite"])
	return b.String()
}
