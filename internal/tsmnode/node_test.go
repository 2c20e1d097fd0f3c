package tsmnode_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/sharevault/sharevault/api"
	"github.com/sharevault/sharevault/internal/tsm"
	"github.com/sharevault/sharevault/internal/tsmnode"
	"github.com/sharevault/sharevault/internal/tsmnode/tsmnodetest"
)

// phone opens a client of the phone's embedded node and the cluster's nodes by URL.
func phone(t testing.TB, db string, c *tsmnodetest.Cluster, servers ...int) *tsm.Client {
	t.Helper()
	cfg := tsm.Config{Nodes: []tsm.NodeConfig{{Database: db}}, EdDSA: tsm.ProtocolConfig{EnableShareBackup: true},
		ECDSA: tsm.ProtocolConfig{EnableShareBackup: true}}
	for _, i := range servers {
		cfg.Nodes = append(cfg.Nodes, tsm.NodeConfig{URL: c.Nodes[i].URL, ID: c.Nodes[i].ID.String()})
	}
	cl, err := tsm.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// TestAcrossProcesses: a key made, used, refreshed, backed up and restored by a phone
// with two tsmnode processes, which never learn the phone's share.
func TestAcrossProcesses(t *testing.T) {
	c := tsmnodetest.Must(t, 2)
	dir := t.TempDir()
	db := filepath.Join(dir, "phone.db")
	all := tsm.NewEDDSAClient(phone(t, db, c, 0, 1))
	keyID, err := all.GenerateKey("wallet")
	if err != nil {
		t.Fatalf("%v\n%s", err, c.Nodes[0].Log())
	}
	pub, _ := all.PublicKey(keyID)
	sig, err := all.Sign(keyID, []byte("pay bob"))
	if err != nil || !ed25519.Verify(pub, []byte("pay bob"), sig) {
		t.Fatalf("sign: %v", err)
	}
	if err := all.Reshare(keyID); err != nil {
		t.Fatal(err)
	}
	if err := all.VerifyShare(keyID); err != nil {
		t.Fatal(err)
	}
	alone := tsm.NewEDDSAClient(phone(t, db, c))
	backup, err := alone.BackupShare(keyID)
	if err != nil {
		t.Fatal(err)
	}

	// The phone is lost; a new one restores the backup, after asking the nodes its epoch.
	fresh := filepath.Join(dir, "new-phone.db")
	ask := tsm.NewEDDSAClient(phone(t, fresh, c, 0, 1))
	if e, err := ask.CurrentEpoch(backup); err != nil || e != 1 {
		t.Fatalf("current epoch: %d, %v", e, err)
	}
	if _, err := tsm.NewEDDSAClient(phone(t, fresh, c)).RestoreShare(backup); err != nil {
		t.Fatal(err)
	}
	again := tsm.NewEDDSAClient(phone(t, fresh, c, 0, 1))
	if sig, err := again.Sign(keyID, []byte("again")); err != nil || !ed25519.Verify(pub, []byte("again"), sig) {
		t.Fatalf("sign after restore: %v", err)
	}
	// A backup from before a refresh is stale, on the nodes' word.
	if err := again.Reshare(keyID); err != nil {
		t.Fatal(err)
	}
	if _, err := ask.CurrentEpoch(backup); !errors.Is(err, tsm.ErrStaleEpoch) {
		t.Fatalf("a pre-refresh backup: %v, want ErrStaleEpoch", err)
	}

	// A 2-of-3 key signs with the phone and either node.
	k2, err := all.GenerateKeyThreshold("2-of-3", 1)
	if err != nil {
		t.Fatal(err)
	}
	pub2, _ := all.PublicKey(k2)
	for _, server := range []int{0, 1} {
		cl := tsm.NewEDDSAClient(phone(t, db, c, server))
		if sig, err := cl.Sign(k2, []byte("m")); err != nil || !ed25519.Verify(pub2, []byte("m"), sig) {
			t.Fatalf("2-of-3 with node %d: %v", server, err)
		}
	}
}

// TestNodeKilledMidOperation kills a node (SIGKILL) at a random moment while the phone
// generates keys, signs or refreshes in a loop: the phone gets one clear line, and once
// the node restarts every key is usable again, at one epoch on every node.
func TestNodeKilledMidOperation(t *testing.T) {
	c := tsmnodetest.Must(t, 2)
	db := filepath.Join(t.TempDir(), "phone.db")
	pc := phone(t, db, c, 0, 1)
	cl, ec := tsm.NewEDDSAClient(pc), tsm.NewECDSAClient(pc)
	keyID, err := cl.GenerateKey("kept")
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ec.GenerateKey("kept, ECDSA")
	if err != nil {
		t.Fatal(err)
	}
	digest := make([]byte, 32)
	ops := map[string]func() error{
		"keygen":     func() error { _, err := cl.GenerateKey("more"); return err },
		"sign":       func() error { _, err := cl.Sign(keyID, []byte("m")); return err },
		"refresh":    func() error { return cl.Reshare(keyID) },
		"ecdsa sign": func() error { _, err := ec.Sign(ecKey, digest, nil); return err },
	}
	for name, op := range ops {
		for round := range 4 {
			done := make(chan error, 1)
			go func() {
				for {
					if err := op(); err != nil {
						done <- err
						return
					}
				}
			}()
			time.Sleep(time.Duration(5+mrand.IntN(40)) * time.Millisecond)
			c.Nodes[1].Kill()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("%s %d: the phone hung on a dead node", name, round)
			}
			t.Logf("%s %d: %v", name, round, err)
			if strings.Contains(err.Error(), "\n") || !errors.Is(err, tsm.ErrNodeUnreachable) && !strings.Contains(err.Error(), "node 2") {
				t.Errorf("%s %d: %q is not one line naming the node", name, round, err)
			}
			if err := c.Nodes[1].Start(); err != nil {
				t.Fatal(err)
			}
			if _, err := cl.Sign(keyID, []byte("after")); err != nil {
				t.Fatalf("%s %d: sign after the node restarted: %v", name, round, err)
			}
			if err := cl.VerifyShare(keyID); err != nil {
				t.Fatalf("%s %d: %v", name, round, err)
			}
			if _, err := ec.Sign(ecKey, digest, nil); err != nil {
				t.Fatalf("%s %d: ECDSA sign after the node restarted: %v", name, round, err)
			}
		}
	}
}

// TestNodeDownFailsFast: a node that does not listen makes signing fail at once.
func TestNodeDownFailsFast(t *testing.T) {
	c := tsmnodetest.Must(t, 2)
	cl := tsm.NewEDDSAClient(phone(t, filepath.Join(t.TempDir(), "phone.db"), c, 0, 1))
	keyID, err := cl.GenerateKey("")
	if err != nil {
		t.Fatal(err)
	}
	c.Nodes[0].Kill()
	start := time.Now()
	_, err = cl.Sign(keyID, []byte("m"))
	if !errors.Is(err, tsm.ErrNodeUnreachable) || time.Since(start) > 5*time.Second {
		t.Fatalf("sign with a node down: %v after %s, want ErrNodeUnreachable at once", err, time.Since(start))
	}
}

// TestOpenAPI: api/tsmnode.yaml is a valid OpenAPI document, and what a real node answers
// to a step, to GET /v1/node and to a refused step matches it.
func TestOpenAPI(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(api.TSMNodeOpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatal(err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	c := tsmnodetest.Must(t, 2)
	db := filepath.Join(t.TempDir(), "phone.db")
	cl := tsm.NewEDDSAClient(phone(t, db, c, 0, 1))
	keyID, err := cl.GenerateKey("")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := tsm.EmbeddedNodeKey(db)
	alone, _ := tsm.NewClient(tsm.Config{Nodes: []tsm.NodeConfig{{Database: db}}, EdDSA: tsm.ProtocolConfig{EnableShareBackup: true}})
	backup, _ := tsm.NewEDDSAClient(alone).BackupShare(keyID)
	alone.Close()
	st := &tsm.Step{Op: tsm.OpInfo, KeyID: keyID, Scheme: tsm.EdDSA}
	tsm.AuthorizeStep(st, key, c.Nodes[0].ID, backup)
	good, _ := tsm.EncodeStep(st)
	for _, r := range []struct {
		method, path string
		body         []byte
		status       int
	}{
		{"POST", "/v1/step", good, 200},
		{"POST", "/v1/step", []byte(`{}`), 400},
		{"GET", "/v1/node", nil, 200},
	} {
		req, _ := http.NewRequest(r.method, c.Nodes[0].URL+r.path, bytes.NewReader(r.body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != r.status {
			t.Fatalf("%s %s: %d %s", r.method, r.path, resp.StatusCode, b)
		}
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Fatal(err)
		}
		in := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
			Status:                 resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(b)),
			Options: &openapi3filter.Options{IncludeResponseStatus: true},
		}
		if err := openapi3filter.ValidateResponse(t.Context(), in); err != nil {
			t.Errorf("%s %s -> %d does not match api/tsmnode.yaml: %v", r.method, r.path, resp.StatusCode, err)
		}
	}
}

func init() {
	openapi3filter.RegisterBodyDecoder("application/problem+json", openapi3filter.JSONBodyDecoder)
}

// TestKeyGensPerAddress: one address may start 20 key generations an hour (each from a
// fresh node key, so no per-requester bound applies); the 21st is 429.
func TestKeyGensPerAddress(t *testing.T) {
	dir := t.TempDir()
	key := tsm.GenerateNodeKey()
	node, err := tsm.OpenNode(tsm.ServiceConfig{Database: filepath.Join(dir, "node.db"), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	h, err := tsmnode.New(node, tsmnode.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	statuses := map[int]int{}
	for i := range 21 {
		k := tsm.GenerateNodeKey()
		st := &tsm.Step{Op: tsm.OpKeyGenStart, KeyID: fmt.Sprint("key", i), Scheme: tsm.EdDSA, Session: bytes.Repeat([]byte{byte(i + 1)}, 16),
			Roster: []tsm.NodeID{k.ID(), key.ID()}, KeyGen: &tsm.KeyGenParams{Threshold: 1, Parties: 2, Index: 1, Created: time.Now(), ChainCode: make([]byte, 32)}}
		tsm.AuthorizeStep(st, k, key.ID(), nil)
		b, _ := tsm.EncodeStep(st)
		resp, err := http.Post(srv.URL+"/v1/step", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		statuses[resp.StatusCode]++
	}
	if statuses[200] != 20 || statuses[429] != 1 {
		t.Errorf("21 key generations from one address: %v, want 20 started and 1 refused", statuses)
	}
}

// TestMetricsListener: with metrics_listen, /metrics leaves the API's listener.
func TestMetricsListener(t *testing.T) {
	dir := t.TempDir()
	node, err := tsm.OpenNode(tsm.ServiceConfig{Database: filepath.Join(dir, "node.db"), Key: tsm.GenerateNodeKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	for _, off := range []bool{false, true} {
		h, err := tsmnode.New(node, tsmnode.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), NoMetricsRoute: off})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		resp, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		srv.Close()
		if want := map[bool]int{false: 200, true: 404}[off]; resp.StatusCode != want {
			t.Errorf("NoMetricsRoute %v: /metrics %d, want %d", off, resp.StatusCode, want)
		}
	}
}

// TestBodyBudget: step bodies being read count against the node's budget before any is
// authenticated; past it a step is refused at once (503, Retry-After), and the budget comes
// back when the slow bodies end.
func TestBodyBudget(t *testing.T) {
	dir := t.TempDir()
	node, err := tsm.OpenNode(tsm.ServiceConfig{Database: filepath.Join(dir, "node.db"), Key: tsm.GenerateNodeKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	h, err := tsmnode.New(node, tsmnode.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), BodyBudget: 3 * tsm.MaxStepBody})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	// A slow client: it announces a whole step and sends a byte of it.
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /v1/step HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", tsm.MaxStepBody)
	time.Sleep(200 * time.Millisecond)
	post := func() *http.Response {
		resp, err := http.Post(srv.URL+"/v1/step", "application/json", bytes.NewReader(make([]byte, tsm.MaxStepBody)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post(); resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a step past the budget: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	conn.Close()
	time.Sleep(200 * time.Millisecond)
	if resp := post(); resp.StatusCode != 400 {
		t.Fatalf("within the budget again: %d, want 400 (not a step)", resp.StatusCode)
	}
}
