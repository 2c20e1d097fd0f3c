package tsmnode_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/sharevault/sharevault/internal/tsm"
	"github.com/sharevault/sharevault/internal/tsmnode/tsmnodetest"
)

// phoneAt is a phone (its database db) with the cluster's nodes at urls, by ID, through rt.
func phoneAt(t *testing.T, db string, c *tsmnodetest.Cluster, urls []string, rt http.RoundTripper) *tsm.EDDSAClient {
	t.Helper()
	cfg := tsm.Config{Nodes: []tsm.NodeConfig{{Database: db}}, EdDSA: tsm.ProtocolConfig{EnableShareBackup: true}}
	if rt != nil {
		cfg.HTTPClient = &http.Client{Transport: rt, Timeout: 30 * time.Second}
	}
	for i, u := range urls {
		cfg.Nodes = append(cfg.Nodes, tsm.NodeConfig{URL: u, ID: c.Nodes[i].ID.String()})
	}
	cl, err := tsm.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return tsm.NewEDDSAClient(cl)
}

func urlsOf(c *tsmnodetest.Cluster) []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.URL)
	}
	return out
}

// TestReshareFromKeptState: a refresh starts from the key's state kept on the phone (here,
// by its generation), with no info round: start, round two, prepare and the switch reach
// each node once (the decider's answer to its switch is the others' word), and the first
// signature after it takes its two rounds from the state the refresh kept.
func TestReshareFromKeptState(t *testing.T) {
	c := tsmnodetest.Must(t, 2)
	count := &tripCounter{}
	e := phoneAt(t, filepath.Join(t.TempDir(), "phone.db"), c, urlsOf(c), count)
	keyID, err := e.GenerateKey("kept")
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := e.PublicKey(keyID)
	count.take()
	if err := e.Reshare(keyID); err != nil {
		t.Fatal(err)
	}
	if most, requests := count.take(); most != 4 || requests != 8 {
		t.Errorf("a refresh: %d requests to a node at most, %d in all; want 4 and 8", most, requests)
	}
	sig, err := e.Sign(keyID, []byte("after"))
	if err != nil || !ed25519.Verify(pub, []byte("after"), sig) {
		t.Fatalf("the signature after the refresh: %v", err)
	}
	if most, _ := count.take(); most != 2 {
		t.Errorf("the signature after the refresh: %d round trips, want 2 (no info round)", most)
	}
}

// TestKeptStateStillRecovers: a refresh left prepared on node 2 (its prepare's answer lost,
// then the discard the decider's word sent it), while the phone's kept state still holds.
// A signature from the kept state is told by node 2's answer and finishes the recovery an
// info round would have run; a refresh from the kept state is told by node 2's answer to
// its start, recovers and starts again. Each ends with nothing prepared anywhere.
func TestKeptStateStillRecovers(t *testing.T) {
	c := tsmnodetest.Must(t, 2)
	r1, r2 := newRelay(t, c.Nodes[0].URL), newRelay(t, c.Nodes[1].URL)
	db := filepath.Join(t.TempDir(), "phone.db")
	e := phoneAt(t, db, c, []string{r1.srv.URL, r2.srv.URL}, nil)
	keyID, err := e.GenerateKey("left prepared")
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := e.PublicKey(keyID)
	key, err := tsm.EmbeddedNodeKey(db)
	if err != nil {
		t.Fatal(err)
	}
	pending := func() uint32 {
		t.Helper()
		one, err := tsm.NewClient(tsm.Config{Nodes: []tsm.NodeConfig{{Database: db}}, EdDSA: tsm.ProtocolConfig{EnableShareBackup: true}})
		if err != nil {
			t.Fatal(err)
		}
		defer one.Close()
		backup, err := tsm.NewEDDSAClient(one).BackupShare(keyID)
		if err != nil {
			t.Fatal(err)
		}
		st := &tsm.Step{Op: tsm.OpInfo, KeyID: keyID, Scheme: tsm.EdDSA}
		status, res := asker(t, c, key, backup)(1, st)
		if status != http.StatusOK || tsm.VerifyAnswer(c.Nodes[1].ID, st, res) != nil {
			t.Fatalf("node 2: info: %d", status)
		}
		return res.Pending
	}
	leave := func() {
		t.Helper()
		r2.arm(fault{tsm.OpRefreshPrep, "drop-answer"}, fault{tsm.OpRefreshAbort, "drop"})
		if err := e.Reshare(keyID); err == nil {
			t.Fatal("a refresh with node 2's prepare answer lost went through")
		}
		r2.arm()
		if pending() == 0 {
			t.Fatal("node 2 has no refresh left prepared")
		}
	}
	leave()
	sig, err := e.Sign(keyID, []byte("kept"))
	if err != nil || !ed25519.Verify(pub, []byte("kept"), sig) {
		t.Fatalf("a signature from the kept state: %v", err)
	}
	if p := pending(); p != 0 {
		t.Fatalf("after the signature, node 2 still has epoch %d prepared", p)
	}
	leave()
	if err := e.Reshare(keyID); err != nil {
		t.Fatalf("a refresh from the kept state with node 2 prepared: %v", err)
	}
	if p := pending(); p != 0 {
		t.Fatalf("after the refresh, node 2 still has epoch %d prepared", p)
	}
	if got := epochOf(t, db, c, 1, keyID); got != 1 {
		t.Fatalf("node 2 at epoch %d after the refresh, want 1", got)
	}
}

// TestRestoreSignsInOneRoundTrip: a restore's check of its backup against the nodes (info
// with commitments ahead) leaves the new phone ready to sign: its first signature is one
// request to each node.
func TestRestoreSignsInOneRoundTrip(t *testing.T) {
	c := tsmnodetest.Must(t, 2)
	dir := t.TempDir()
	a := phoneAt(t, filepath.Join(dir, "a.db"), c, urlsOf(c), nil)
	keyID, err := a.GenerateKey("restored")
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := a.PublicKey(keyID)
	one := func(db string) *tsm.EDDSAClient {
		cl, err := tsm.NewClient(tsm.Config{Nodes: []tsm.NodeConfig{{Database: db}}, EdDSA: tsm.ProtocolConfig{EnableShareBackup: true}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		return tsm.NewEDDSAClient(cl)
	}
	backup, err := one(filepath.Join(dir, "a.db")).BackupShare(keyID)
	if err != nil {
		t.Fatal(err)
	}
	count := &tripCounter{}
	b := phoneAt(t, filepath.Join(dir, "b.db"), c, urlsOf(c), count)
	if _, err := b.CurrentEpoch(backup); err != nil {
		t.Fatal(err)
	}
	if _, err := one(filepath.Join(dir, "b.db")).RestoreShare(backup); err != nil {
		t.Fatal(err)
	}
	count.take()
	sig, err := b.Sign(keyID, []byte("first"))
	if err != nil || !ed25519.Verify(pub, []byte("first"), sig) {
		t.Fatalf("the restored phone's first signature: %v", err)
	}
	if most, requests := count.take(); most != 1 || requests != 2 {
		t.Errorf("the restored phone's first signature: %d round trips, %d requests; want 1 and 2", most, requests)
	}
}

// TestECDSAPresignOneRoundTrip: across processes, a presignature takes two round trips and
// the signature on it one, on another client of the phone (an app opens one per operation);
// after a node restarted (its half gone), the signature on a presignature made before takes
// its three rounds again, and succeeds.
func TestECDSAPresignOneRoundTrip(t *testing.T) {
	c := tsmnodetest.Must(t, 2)
	count := &tripCounter{}
	db := filepath.Join(t.TempDir(), "phone.db")
	open := func() *tsm.ECDSAClient { return tsm.NewECDSAClient(throughAt(t, db, c, count)) }
	e := open()
	keyID, err := e.GenerateKey("ahead")
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("pay bob 1 coin"))
	if _, err := e.Sign(keyID, digest[:], nil); err != nil { // the pairs' setup, once
		t.Fatal(err)
	}
	count.take()
	if err := e.Presign(keyID); err != nil {
		t.Fatal(err)
	}
	if most, _ := count.take(); most != 2 {
		t.Errorf("a presignature: %d round trips, want 2", most)
	}
	if _, err := open().Sign(keyID, digest[:], nil); err != nil {
		t.Fatal(err)
	}
	if most, requests := count.take(); most != 1 || requests != 2 {
		t.Errorf("a signature on a presignature: %d round trips, %d requests; want 1 and 2", most, requests)
	}
	if err := e.Presign(keyID); err != nil {
		t.Fatal(err)
	}
	c.Nodes[1].Kill()
	if err := c.Nodes[1].Start(); err != nil {
		t.Fatal(err)
	}
	count.take()
	if _, err := e.Sign(keyID, digest[:], nil); err != nil {
		t.Fatalf("a signature on a presignature a restart ended: %v", err)
	}
	if most, _ := count.take(); most != 4 {
		t.Errorf("a signature on a presignature a restart ended: %d round trips, want 4 (the refused one, then three)", most)
	}
}
