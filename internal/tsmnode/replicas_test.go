package tsmnode_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sharevault/sharevault/internal/pgtest"
	"github.com/sharevault/sharevault/internal/tsm"
	"github.com/sharevault/sharevault/internal/tsmnode/tsmnodetest"
)

// replicated starts two nodes on one real PostgreSQL, each served by replicas processes.
func replicated(t *testing.T, replicas int) (*pgtest.Server, *tsmnodetest.Cluster) {
	pg := pgtest.Must(t)
	c, err := tsmnodetest.StartWith(t.TempDir(), 2, tsmnodetest.Options{Databases: []string{pg.Database(t), pg.Database(t)}, Replicas: replicas})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return pg, c
}

// phoneOf is a phone client of c's nodes, every replica of each (as the phone's setting
// names them), through rt if it is not nil.
func phoneOf(t *testing.T, db string, c *tsmnodetest.Cluster, rt http.RoundTripper) *tsm.EDDSAClient {
	t.Helper()
	cfg := tsm.Config{Nodes: []tsm.NodeConfig{{Database: db}}, EdDSA: tsm.ProtocolConfig{EnableShareBackup: true}}
	if rt != nil {
		cfg.HTTPClient = &http.Client{Transport: rt, Timeout: 30 * time.Second}
	}
	for _, n := range strings.Split(c.Phone(), ",") {
		u, id, _ := strings.Cut(n, "#")
		cfg.Nodes = append(cfg.Nodes, tsm.NodeConfig{URL: u, ID: id})
	}
	cl, err := tsm.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return tsm.NewEDDSAClient(cl)
}

// roundRobin sends each request for node 1 to its replicas in turn, as a load balancer
// that does not keep a phone on one replica would, and keeps the last step body it sent.
type roundRobin struct {
	replicas []string // node 1's replicas' hosts
	n        atomic.Int64
	mu       sync.Mutex
	last     []byte
}

func (rr *roundRobin) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == rr.replicas[0] || r.URL.Host == rr.replicas[1] {
		u := *r.URL
		u.Host = rr.replicas[rr.n.Add(1)%2]
		r = r.Clone(r.Context())
		r.URL = &u
		if r.Body != nil {
			b, _ := io.ReadAll(r.Body)
			rr.mu.Lock()
			rr.last = b
			rr.mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestReplicas: two nodes of two replicas each over one PostgreSQL are the phone's two
// nodes. A step that reaches the replica that does not hold its session is refused as
// no-session; a request one replica served is refused by the other as a replay; a key
// made through one replica signs and refreshes through the other, and both tell one epoch.
func TestReplicas(t *testing.T) {
	_, c := replicated(t, 2)
	host := func(s string) string { u, _ := url.Parse(s); return u.Host }
	rr := &roundRobin{replicas: []string{host(c.Replicas[0][0].URL), host(c.Replicas[0][1].URL)}}
	db := filepath.Join(t.TempDir(), "phone.db")
	all := phoneOf(t, db, c, nil)
	keyID, err := all.GenerateKey("replicated")
	if err != nil {
		t.Fatalf("%v\n%s", err, c.Nodes[0].Log())
	}
	if _, err := all.Sign(keyID, []byte("one replica")); err != nil {
		t.Fatal(err)
	}
	// Round robin over node 1's replicas: the second round lands where the first was not.
	lb := phoneOf(t, db, c, rr)
	_, err = lb.Sign(keyID, []byte("round robin"))
	if !errors.Is(err, tsm.ErrNoSession) && !errors.Is(err, tsm.ErrNoCommitment) || !strings.Contains(err.Error(), "another replica") {
		t.Fatalf("a signature whose rounds go to different replicas: %v, want no-session or no-commitment", err)
	}
	// The last step node 1 got, replayed to the replica that did not serve it.
	rr.mu.Lock()
	body := rr.last
	rr.mu.Unlock()
	served := rr.replicas[rr.n.Load()%2]
	other := c.Replicas[0][0].URL
	if host(other) == served {
		other = c.Replicas[0][1].URL
	}
	resp, err := http.Post(other+"/v1/step", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), "a replica of this node has served it") {
		t.Fatalf("a step replayed to another replica: %d %s", resp.StatusCode, b)
	}
	// Refreshed through replicas 1, signed through replicas 2: one state.
	if err := all.Reshare(keyID); err != nil {
		t.Fatal(err)
	}
	second := phoneOf(t, db, &tsmnodetest.Cluster{Nodes: c.Nodes, Replicas: [][]*tsmnodetest.Node{{c.Replicas[0][1]}, {c.Replicas[1][1]}}}, nil)
	if _, err := second.Sign(keyID, []byte("the other replicas")); err != nil {
		t.Fatal(err)
	}
	info, _ := second.KeyInfo(keyID)
	if info.Epoch != 1 {
		t.Fatalf("epoch %d after one refresh", info.Epoch)
	}
}

// TestPostgresRestartUnderLoad: PostgreSQL killed and started again while a phone makes
// keys and signs: while it is down, steps are answered 503 with Retry-After (never
// another failure), and after, every key whose generation was acknowledged signs.
func TestPostgresRestartUnderLoad(t *testing.T) {
	pg, c := replicated(t, 1)
	var bad atomic.Value
	watch := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err == nil && resp.StatusCode >= 500 && (resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "") {
			bad.Store(resp.Status + " without Retry-After")
		}
		return resp, err
	})
	all := phoneOf(t, filepath.Join(t.TempDir(), "phone.db"), c, watch)
	var mu sync.Mutex
	var acked []string
	var failed atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			id, err := all.GenerateKey("load")
			if err == nil {
				_, err = all.Sign(id, []byte("m"))
			}
			if err != nil {
				failed.Add(1)
				if !errors.Is(err, tsm.ErrNodeUnreachable) {
					bad.Store("a failure other than unreachable: " + err.Error())
				}
				time.Sleep(20 * time.Millisecond)
				continue
			}
			mu.Lock()
			acked = append(acked, id)
			mu.Unlock()
		}
	}()
	time.Sleep(time.Second)
	pg.Kill()
	time.Sleep(time.Second)
	resp, err := http.Get(c.Nodes[0].URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("readyz with PostgreSQL down: %s, Retry-After %q", resp.Status, resp.Header.Get("Retry-After"))
	}
	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	close(stop)
	<-done
	if v := bad.Load(); v != nil {
		t.Fatal(v)
	}
	if failed.Load() == 0 {
		t.Fatal("no operation failed while PostgreSQL was down: the test did not test it")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(acked) < 2 {
		t.Fatalf("%d keys acknowledged", len(acked))
	}
	for _, id := range acked {
		if _, err := all.Sign(id, []byte("after the restart")); err != nil {
			t.Fatalf("key %s, acknowledged before or during the outage: %v", id, err)
		}
	}
	t.Logf("%d keys acknowledged, %d operations refused while PostgreSQL was down", len(acked), failed.Load())
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
