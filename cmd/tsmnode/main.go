// Command tsmnode is one TSM node as a service: its own SQLite database and long-term node
// key, serving the protocol steps of docs/tsm-api.md to the phones whose keys it holds a
// share of. A node serves key K only to a party of K, which proves it by possession of its
// share; it takes part in keys only with the peer nodes its configuration names.
//
//	tsmnode --config node.json            # serve
//	tsmnode --config node.json --print-id # print this node's ID (for the peers' configurations)
//	tsmnode init --dir nodes --count 2    # a key and a configuration for each of 2 nodes that
//	                                      # know each other (127.0.0.1:9001, :9002, …); it keeps
//	                                      # keys that exist, so running it again is harmless
//	tsmnode move --from node.db --to postgres://…  # a stopped node's SQLite file into an
//	                                      # empty PostgreSQL database (docs/operations.md)
//	tsmnode behind --config node.json --clear KEY  # serve KEY again after the node refused
//	                                      # it as behind its peers (docs/operations.md)
//
// The database is a SQLite file, or a PostgreSQL URL (postgres://user@host/db), which
// several processes with the same node key serve as one node: its replicas.
//
// The configuration is JSON (docs/operations.md, "TSM nodes"):
//
//	{"listen": "127.0.0.1:9001", "database": "node1.db", "node_key": "node1.key",
//	 "tls_cert": "", "tls_key": "", "peers": ["<node ID>"],
//	 "ecdsa": {"enable_share_backup": false}, "eddsa": {"enable_share_backup": false},
//	 "rate_ip": 50, "burst_ip": 100, "keygens_ip": 20}
//
// Every field can also be set as an environment variable: TSMNODE_LISTEN, TSMNODE_DATABASE,
// TSMNODE_NODE_KEY, TSMNODE_TLS_CERT, TSMNODE_TLS_KEY, TSMNODE_METRICS_LISTEN, TSMNODE_PEERS
// (comma-separated).
package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sharevault/sharevault/internal/nodestore"
	"github.com/sharevault/sharevault/internal/nodestore/postgres"
	"github.com/sharevault/sharevault/internal/nodestore/sqlite"
	"github.com/sharevault/sharevault/internal/nodestore/sqlstore"
	"github.com/sharevault/sharevault/internal/serve"
	"github.com/sharevault/sharevault/internal/tsm"
	"github.com/sharevault/sharevault/internal/tsmnode"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "tsmnode:", err)
		os.Exit(1)
	}
}

// config is the configuration file.
type config struct {
	Listen   string         `json:"listen"`
	Database string         `json:"database"`
	NodeKey  string         `json:"node_key"`
	TLSCert  string         `json:"tls_cert"`
	TLSKey   string         `json:"tls_key"`
	Peers    []string       `json:"peers"`
	ECDSA    protocolConfig `json:"ecdsa"`
	EdDSA    protocolConfig `json:"eddsa"`
	RateIP   float64        `json:"rate_ip"`
	BurstIP  int            `json:"burst_ip"`
	// KeyGensIP is how many key generations one client address may start an hour.
	KeyGensIP float64 `json:"keygens_ip"`
	// MetricsListen, if set, serves /metrics there and not on the API's listener.
	MetricsListen string `json:"metrics_listen"`
}

type protocolConfig struct {
	EnableShareBackup bool `json:"enable_share_backup"`
}

// load reads the file (if any), then the environment over it, and checks the result.
func load(path string) (*config, error) {
	c := &config{Listen: "127.0.0.1:9001"}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		d := json.NewDecoder(bytes.NewReader(b))
		d.DisallowUnknownFields()
		if err := d.Decode(c); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	for name, p := range map[string]*string{"LISTEN": &c.Listen, "DATABASE": &c.Database, "NODE_KEY": &c.NodeKey,
		"TLS_CERT": &c.TLSCert, "TLS_KEY": &c.TLSKey, "METRICS_LISTEN": &c.MetricsListen} {
		if v, ok := os.LookupEnv("TSMNODE_" + name); ok {
			*p = v
		}
	}
	if v, ok := os.LookupEnv("TSMNODE_PEERS"); ok {
		c.Peers = nil
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				c.Peers = append(c.Peers, p)
			}
		}
	}
	switch {
	case path == "" && c.Database == "" && c.NodeKey == "":
		return nil, errors.New("no configuration: give --config FILE (tsmnode init --dir DIR --count N writes one per node)")
	case c.Database == "" || c.NodeKey == "":
		return nil, errors.New("the configuration needs a database and a node_key file")
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return nil, errors.New("tls_cert and tls_key go together")
	}
	return c, nil
}

// initNodes writes, for count nodes under dir, a node key and a configuration that names
// the other nodes as peers: a local setup in one command.
func initNodes(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tsmnode init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "nodes", "where the nodes' directories go")
	count := fs.Int("count", 2, "how many nodes")
	port := fs.Int("port", 9001, "the first node's port; the others follow")
	host := fs.String("host", "127.0.0.1", "the address the nodes listen on (0.0.0.0 in a container)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *count < 1 || *count > 31 {
		return errors.New("--count is 1 to 31")
	}
	ids := make([]string, *count)
	for i := range *count {
		d := filepath.Join(*dir, fmt.Sprint("node", i+1))
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		k, err := tsm.LoadNodeKey(filepath.Join(d, "node.key"))
		if err != nil {
			return err
		}
		ids[i] = k.ID().String()
	}
	var pinned []string
	for i := range *count {
		d := filepath.Join(*dir, fmt.Sprint("node", i+1))
		c := config{Listen: net.JoinHostPort(*host, fmt.Sprint(*port+i)), Database: filepath.Join(d, "node.db"), NodeKey: filepath.Join(d, "node.key")}
		for j, id := range ids {
			if j != i {
				c.Peers = append(c.Peers, id)
			}
		}
		b, _ := json.MarshalIndent(c, "", "  ")
		path := filepath.Join(d, "config.json")
		if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "node %d: %s, http://%s, node ID %s\n", i+1, path, c.Listen, ids[i])
		pinned = append(pinned, "http://"+c.Listen+"#"+ids[i])
	}
	// The phone's setting, each URL with the ID it must answer with (client --nodes).
	fmt.Fprintf(stdout, "export SHAREVAULT_NODES=%s\n", strings.Join(pinned, ","))
	return nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "init" {
		return initNodes(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "move" {
		return move(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "behind" {
		return behind(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("tsmnode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: tsmnode --config FILE [--print-id]
       tsmnode init --dir DIR --count N   (a node key and a configuration for each of N nodes)

The configuration is JSON (docs/operations.md, "TSM nodes"); TSMNODE_CONFIG names it, and
TSMNODE_LISTEN, TSMNODE_DATABASE, TSMNODE_NODE_KEY, TSMNODE_TLS_CERT, TSMNODE_TLS_KEY,
TSMNODE_METRICS_LISTEN and TSMNODE_PEERS set its fields.

`)
		fs.PrintDefaults()
	}
	path := fs.String("config", os.Getenv("TSMNODE_CONFIG"), "configuration file (JSON)")
	printID := fs.Bool("print-id", false, "print this node's ID and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := load(*path)
	if err != nil {
		return err
	}
	key, err := tsm.LoadNodeKey(cfg.NodeKey)
	if err != nil {
		return err
	}
	if *printID {
		fmt.Fprintln(stdout, key.ID())
		return nil
	}
	var peers []tsm.NodeID
	for _, p := range cfg.Peers {
		id, err := tsm.ParseNodeID(p)
		if err != nil {
			return fmt.Errorf("peer %q: %w", p, err)
		}
		peers = append(peers, id)
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	if cfg.ECDSA.EnableShareBackup || cfg.EdDSA.EnableShareBackup {
		log.Warn("enable_share_backup is set, but a node service has no backup step: back up its database (docs/operations.md)")
	}
	sc := tsm.ServiceConfig{Database: cfg.Database, Key: key, Peers: peers}
	if postgres.IsURL(cfg.Database) {
		if sc.Store, err = postgres.Open(ctx, cfg.Database); err != nil {
			return err
		}
	}
	node, err := tsm.OpenNode(sc)
	if err != nil {
		if sc.Store != nil {
			sc.Store.Close()
		}
		return err
	}
	defer node.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// TSMNODE_TEST_STALL=OP (tests only) holds every step of OP for 3 s, so a test can kill
	// the node in the middle of a protocol.
	stall := os.Getenv("TSMNODE_TEST_STALL")
	handler, err := tsmnode.New(node, tsmnode.Config{RateIP: cfg.RateIP, BurstIP: cfg.BurstIP, KeyGensIP: cfg.KeyGensIP, Logger: log, Registerer: reg, Gatherer: reg,
		StallOp: stall, StallFor: 3 * time.Second, NoMetricsRoute: cfg.MetricsListen != ""})
	if err != nil {
		return err
	}
	srvc := serve.Config{ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10,
		Limits: serve.Limits{Total: serve.DefaultTotal(4096, 512), PerIP: 64}}
	srv, ln, err := srvc.Listen(cfg.Listen, handler, log)
	if err != nil {
		return err
	}
	if cfg.MetricsListen != "" {
		stop, err := serve.Metrics(cfg.MetricsListen, reg, srvc, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	scheme := "http"
	if cfg.TLSCert != "" {
		scheme = "https"
	}
	fmt.Fprintf(stdout, "sharevault tsmnode %s serving %s://%s\n", node.ID(), scheme, ln.Addr())
	return serve.Until(ctx, srv, ln, cfg.TLSCert, cfg.TLSKey, log)
}

// move copies a node's SQLite file into an empty PostgreSQL database, in one transaction,
// while it holds the file's "serve" lease (so no node serves the file meanwhile). The file
// is brought to this release's schema first, as the node would at its next start, and is
// otherwise left as it was: once the node runs on PostgreSQL, delete it (docs/operations.md).
func move(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tsmnode move", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "the node's SQLite file")
	to := fs.String("to", "", "the PostgreSQL database (postgres://user@host:port/db)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *from == "" || !postgres.IsURL(*to) {
		return errors.New("usage: tsmnode move --from FILE --to postgres://USER@HOST:PORT/DB")
	}
	if _, err := os.Stat(*from); err != nil {
		return err
	}
	src, err := tsm.OpenStore(*from) // its "serve" lease first
	if errors.Is(err, sqlite.ErrServed) {
		return fmt.Errorf("%s is being served: stop its tsmnode first", *from)
	}
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := postgres.Open(ctx, *to)
	if err != nil {
		return err
	}
	defer dst.Close()
	rtx, err := src.DB().BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer rtx.Rollback()
	wtx, err := dst.DB().BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable})
	if err != nil {
		return err
	}
	defer wtx.Rollback()
	n, err := sqlstore.Copy(ctx, rtx, wtx)
	if err != nil {
		return err
	}
	if err := wtx.Commit(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "moved %d keys from %s to PostgreSQL (schema version %d): serve it with \"database\": the URL, then delete %s\n",
		n, *from, dst.Version(), *from)
	return nil
}

// behind forgets that the node's state of a key is behind its peers' (docs/operations.md, "A
// node's database restored from before a refresh"), so that the node serves the key again at
// the epoch its database holds: the operator's call, once that state is current again, or
// when a dishonest peer's word put the key there.
func behind(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tsmnode behind", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", os.Getenv("TSMNODE_CONFIG"), "configuration file (JSON)")
	key := fs.String("clear", "", "the key to serve again")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := load(*path)
	if err != nil {
		return err
	}
	if *key == "" {
		return errors.New("usage: tsmnode behind --config FILE --clear KEY")
	}
	var store nodestore.Store
	if postgres.IsURL(cfg.Database) {
		store, err = postgres.Open(ctx, cfg.Database)
	} else {
		store, err = sqlite.Open(cfg.Database, sqlite.Options{})
	}
	if err != nil {
		return err
	}
	defer store.Close()
	var was uint32
	var marked bool
	err = store.Write(ctx, func(tx nodestore.Tx) (err error) {
		if was, _, marked, err = tx.Behind(*key); err != nil || !marked {
			return err
		}
		return tx.ClearBehind(*key)
	})
	switch {
	case err != nil:
		return err
	case !marked:
		fmt.Fprintf(stdout, "key %s is not kept as behind: nothing to do\n", *key)
	default:
		fmt.Fprintf(stdout, "key %s: no longer kept as behind (its peers had it at epoch %d): this node serves it again\n", *key, was)
	}
	return nil
}
