// Package tsmnodetest runs TSM node processes (cmd/tsmnode) on loopback for tests: each
// with its own database and node key, configured to accept the others as peers.
package tsmnodetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sharevault/sharevault/internal/tsm"
	"github.com/sharevault/sharevault/internal/vaultproc"
)

var (
	once    sync.Once
	binPath string
	binErr  error
)

// Binary builds cmd/tsmnode once per test process.
func Binary() (string, error) {
	once.Do(func() {
		dir, err := os.MkdirTemp("", "sharevault-tsmnode-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath, binErr = vaultproc.BuildCmd(dir, "tsmnode")
	})
	return binPath, binErr
}

// Node is one running node.
type Node struct {
	Dir, Config string
	ID          tsm.NodeID
	URL         string
	proc        *vaultproc.Process
	log         *os.File
}

// Cluster is n nodes that accept each other.
type Cluster struct {
	Nodes    []*Node   // each node's (first) process
	Replicas [][]*Node // every process of each node: Replicas[i][0] is Nodes[i]
}

// Options are how a cluster's nodes run.
type Options struct {
	// Databases are the nodes' databases (PostgreSQL URLs); nil: a SQLite file each.
	Databases []string
	// Replicas is how many processes serve each node, over its database (0: one).
	Replicas int
}

// Start runs n nodes under dir (dir/node1, …), each listening on a free loopback port.
func Start(dir string, n int) (*Cluster, error) { return StartWith(dir, n, Options{}) }

// StartWith runs n nodes under dir as opts says: each replica of node i has its own
// directory (dir/node1, dir/node1-r2, …), port and log, and node i's key and database.
func StartWith(dir string, n int, opts Options) (*Cluster, error) {
	c := &Cluster{}
	for i := range n {
		nd := &Node{Dir: filepath.Join(dir, fmt.Sprint("node", i+1))}
		if err := os.MkdirAll(nd.Dir, 0o700); err != nil {
			return nil, err
		}
		key, err := tsm.LoadNodeKey(filepath.Join(nd.Dir, "node.key"))
		if err != nil {
			return nil, err
		}
		nd.ID = key.ID()
		c.Nodes = append(c.Nodes, nd)
	}
	for i, nd := range c.Nodes {
		var peers []string
		for j, o := range c.Nodes {
			if j != i {
				peers = append(peers, o.ID.String())
			}
		}
		db := filepath.Join(nd.Dir, "node.db")
		if opts.Databases != nil {
			db = opts.Databases[i]
		}
		replicas := []*Node{nd}
		for r := 2; r <= opts.Replicas; r++ {
			rd := &Node{Dir: fmt.Sprintf("%s-r%d", nd.Dir, r), ID: nd.ID}
			if err := os.MkdirAll(rd.Dir, 0o700); err != nil {
				return nil, err
			}
			replicas = append(replicas, rd)
		}
		c.Replicas = append(c.Replicas, replicas)
		for _, rd := range replicas {
			cfg := map[string]any{"listen": "127.0.0.1:0", "database": db,
				"node_key": filepath.Join(nd.Dir, "node.key"), "peers": peers, "rate_ip": 1e6, "burst_ip": 1000000, "keygens_ip": 1e6}
			b, _ := json.Marshal(cfg)
			rd.Config = filepath.Join(rd.Dir, "config.json")
			if err := os.WriteFile(rd.Config, b, 0o600); err != nil {
				return nil, err
			}
			if err := rd.Start(); err != nil {
				c.Stop()
				return nil, err
			}
			// Restarts keep the port, so clients keep the URL.
			cfg["listen"] = strings.TrimPrefix(rd.URL, "http://")
			b, _ = json.Marshal(cfg)
			if err := os.WriteFile(rd.Config, b, 0o600); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// Phone is the phone's setting for the cluster's nodes (SHAREVAULT_NODES, client
// --nodes): each node's replicas' URLs joined by "|", then "#" and its node ID.
func (c *Cluster) Phone() string {
	var nodes []string
	for i, rs := range c.Replicas {
		var urls []string
		for _, r := range rs {
			urls = append(urls, r.URL)
		}
		nodes = append(nodes, strings.Join(urls, "|")+"#"+c.Nodes[i].ID.String())
	}
	return strings.Join(nodes, ",")
}

// Start (re)starts the node on its configuration.
func (nd *Node) Start() error { return nd.StartWith(nil) }

// StartWith (re)starts the node with extra environment variables (NAME=VALUE).
func (nd *Node) StartWith(env []string) error {
	bin, err := Binary()
	if err != nil {
		return err
	}
	if nd.log == nil {
		if nd.log, err = os.Create(filepath.Join(nd.Dir, "node.log")); err != nil {
			return err
		}
	}
	var full []string
	if env != nil {
		full = append(os.Environ(), env...)
	}
	p, err := vaultproc.Start(bin, full, nd.log, "--config", nd.Config)
	if err != nil {
		return err
	}
	nd.proc, nd.URL = p, p.URL
	return nil
}

// Kill ends the node with SIGKILL.
func (nd *Node) Kill() {
	if nd.proc != nil {
		nd.proc.Kill()
		nd.proc = nil
	}
}

// Stop ends every node.
func (c *Cluster) Stop() {
	for _, rs := range c.Replicas {
		for _, nd := range rs {
			if nd.proc != nil {
				nd.proc.Stop()
				nd.proc = nil
			}
		}
	}
}

// Log returns what a node logged, for a failing test.
func (nd *Node) Log() string {
	b, _ := os.ReadFile(filepath.Join(nd.Dir, "node.log"))
	return strings.TrimSpace(string(b))
}

// Must starts a cluster for t and stops it when t ends.
func Must(t testing.TB, n int) *Cluster {
	t.Helper()
	c, err := Start(t.TempDir(), n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// CPU returns the CPU time (user and system) the node's process has used so far.
func (n *Node) CPU() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n.proc.Cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	if len(f) < 13 {
		return 0, errors.New("tsmnodetest: a /proc stat line too short")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(u+s) * time.Second / 100, nil // USER_HZ is 100 on Linux
}
