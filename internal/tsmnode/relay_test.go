package tsmnode_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sharevault/sharevault/internal/tsm"
	"github.com/sharevault/sharevault/internal/tsmnode/tsmnodetest"
)

// A relay sits between the phone and one node, as anyone on the network path can: it
// forwards steps, and does to the first step of a chosen op one fault of a kind.
type relay struct {
	target string
	srv    *httptest.Server

	mu       sync.Mutex
	faults   []fault
	answers  map[string][]byte // the last real answer per op, for replays
	used     []string          // the faults done, for the test's log
	requests [][]byte          // every step that came through, for replays of requests
}

type fault struct {
	op   tsm.Op
	kind string
}

// The kinds of fault: every way a relay can touch one exchange.
var faultKinds = []string{
	"drop",          // the step never reaches the node
	"drop-answer",   // the node runs it, its answer is lost
	"delay",         // the answer comes late, but within the step's time
	"replay",        // the node's earlier answer to the same op, in place of this one
	"forge-answer",  // the node's real answer, changed
	"impersonate",   // an answer made up in the node's place, without asking it
	"forge-refusal", // a refusal made up in the node's place (stale epoch)
	"forge-no",      // a refusal made up in the node's place (not a party: "your share is not this key's")
	"duplicate",     // the step delivered twice; the phone gets the second answer
}

func newRelay(t *testing.T, target string) *relay {
	r := &relay{target: target, answers: map[string][]byte{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *relay) arm(fs ...fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults, r.used = fs, nil
}

// next takes the fault for op, if the first one armed is for op.
func (r *relay) next(op tsm.Op) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.faults) == 0 || r.faults[0].op != op {
		return "", false
	}
	f := r.faults[0]
	r.faults = r.faults[1:]
	r.used = append(r.used, string(f.op)+":"+f.kind)
	return f.kind, true
}

func (r *relay) to() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.target
}

func (r *relay) forward(path string, body []byte) (int, []byte, error) {
	resp, err := http.Post(r.to()+path, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (r *relay) serve(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/v1/step" {
		resp, err := http.Get(r.to() + req.URL.Path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
		return
	}
	body, _ := io.ReadAll(req.Body)
	var st struct{ Op tsm.Op }
	json.Unmarshal(body, &st)
	r.mu.Lock()
	r.requests = append(r.requests, body)
	r.mu.Unlock()
	kind, _ := r.next(st.Op)
	answer := func(status int, b []byte) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(b)
	}
	switch kind {
	case "drop":
		http.Error(w, "relay dropped it", http.StatusBadGateway)
		return
	case "impersonate":
		r.mu.Lock()
		b := r.answers[string(st.Op)]
		r.mu.Unlock()
		if b == nil {
			b = []byte(`{}`)
		}
		answer(http.StatusOK, b)
		return
	case "forge-refusal":
		answer(http.StatusConflict, []byte(`{"type":"urn:sharevault:tsm:problem:stale-epoch","title":"Conflict","status":409,"detail":"forged"}`))
		return
	case "forge-no":
		answer(http.StatusForbidden, []byte(`{"type":"urn:sharevault:tsm:problem:not-a-party","title":"Forbidden","status":403,"detail":"forged"}`))
		return
	}
	status, b, err := r.forward(req.URL.Path, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if kind == "duplicate" {
		if status, b, err = r.forward(req.URL.Path, body); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
	}
	r.mu.Lock()
	prev := r.answers[string(st.Op)]
	if status == http.StatusOK {
		r.answers[string(st.Op)] = b
	}
	r.mu.Unlock()
	switch kind {
	case "drop-answer":
		http.Error(w, "relay lost the answer", http.StatusBadGateway)
		return
	case "delay":
		time.Sleep(300 * time.Millisecond)
	case "replay":
		if prev != nil {
			b = prev
		}
	case "forge-answer":
		b = forgeAnswer(b)
	}
	answer(status, b)
}

// forgeAnswer changes what an answer says as an attacker would want it: a higher epoch
// with nothing pending (the node "committed"), or no messages; the node's signature stays.
func forgeAnswer(b []byte) []byte {
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return b
	}
	if info, ok := m["info"].(map[string]any); ok {
		info["epoch"] = info["epoch"].(float64) + 1
		delete(m, "pending")
		delete(m, "pending_session")
	} else if out, ok := m["out"].([]any); ok && len(out) > 0 {
		m["out"] = out[:len(out)-1]
	} else {
		m["pending"] = 7
	}
	out, _ := json.Marshal(m)
	return out
}

// TestRelayCannotSplitAKey: whatever a relay between the phone and a node does to any
// one step of a refresh or a signature (drop it, lose its answer, delay, replay, forge or
// make up an answer, forge a refusal, deliver it twice), and to the recovery after it,
// the key ends at one epoch on every party once the relay is gone, and signs. A forged or
// replayed answer is caught by its signature; a refresh the phone reports done is done.
func TestRelayCannotSplitAKey(t *testing.T) {
	c := tsmnodetest.Must(t, 2)
	relays := []*relay{newRelay(t, c.Nodes[0].URL), newRelay(t, c.Nodes[1].URL)}
	db := filepath.Join(t.TempDir(), "phone.db")
	cfg := tsm.Config{Nodes: []tsm.NodeConfig{{Database: db}}, EdDSA: tsm.ProtocolConfig{EnableShareBackup: true}}
	for i, r := range relays {
		cfg.Nodes = append(cfg.Nodes, tsm.NodeConfig{URL: r.srv.URL, ID: c.Nodes[i].ID.String()})
	}
	cl, err := tsm.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	all := tsm.NewEDDSAClient(cl)
	keyID, err := all.GenerateKey("relayed")
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := all.PublicKey(keyID)
	// Every op once through the relays, so that replays have an earlier answer to use.
	if err := all.Reshare(keyID); err != nil {
		t.Fatal(err)
	}
	if _, err := all.Sign(keyID, []byte("warm")); err != nil {
		t.Fatal(err)
	}
	epochs := func() []uint32 {
		var out []uint32
		for _, n := range []int{-1, 0, 1} {
			out = append(out, epochOf(t, db, c, n, keyID))
		}
		return out
	}

	refreshOps := []tsm.Op{tsm.OpInfo, tsm.OpRefreshStart, tsm.OpRefreshRound2, tsm.OpRefreshPrep, tsm.OpRefreshCommit}
	signOps := []tsm.Op{tsm.OpInfo, tsm.OpSignCommit, tsm.OpSignShareAhead}
	type scenario struct {
		node   int
		faults []fault
		sign   bool
	}
	var scenarios []scenario
	for node := range relays {
		for _, kind := range faultKinds {
			for _, op := range refreshOps {
				scenarios = append(scenarios, scenario{node: node, faults: []fault{{op, kind}}})
			}
			for _, op := range signOps[1:] {
				scenarios = append(scenarios, scenario{node: node, faults: []fault{{op, kind}}, sign: true})
			}
			// The commit lost (before or after it landed), then the recovery's view of the
			// node attacked too: the attack that split keys before answers were signed.
			for _, lost := range []string{"drop", "drop-answer"} {
				scenarios = append(scenarios, scenario{node: node, faults: []fault{{tsm.OpRefreshCommit, lost}, {tsm.OpInfo, kind}}})
			}
		}
	}
	for _, sc := range scenarios {
		name := fmt.Sprintf("node%d", sc.node+1)
		for _, f := range sc.faults {
			name += "/" + string(f.op) + ":" + f.kind
		}
		before := epochs()
		relays[sc.node].arm(sc.faults...)
		var opErr error
		if sc.sign {
			var sig []byte
			sig, opErr = all.Sign(keyID, []byte(name))
			if opErr == nil && !ed25519.Verify(pub, []byte(name), sig) {
				t.Fatalf("%s: a signature that does not verify came out", name)
			}
		} else {
			opErr = all.Reshare(keyID)
		}
		relays[sc.node].mu.Lock()
		usedByOp := slices.Clone(relays[sc.node].used) // the faults the operation itself met
		relays[sc.node].mu.Unlock()
		// Whatever the relay does next to the recovery, until its faults are used up.
		for range 4 {
			if len(relays[sc.node].faults) == 0 {
				break
			}
			all.VerifyShare(keyID)
		}
		relays[sc.node].mu.Lock()
		used := relays[sc.node].used
		relays[sc.node].mu.Unlock()
		relays[sc.node].arm()
		if err := all.VerifyShare(keyID); err != nil {
			t.Fatalf("%s (did %v): after the relay left, the key does not verify: %v (op: %v)", name, used, err, opErr)
		}
		after := epochs()
		if after[0] != after[1] || after[1] != after[2] {
			t.Fatalf("%s (did %v): parties at epochs %v (op: %v)", name, used, after, opErr)
		}
		switch {
		case sc.sign && after[0] != before[0]:
			t.Fatalf("%s: a signature moved the epoch from %v to %v", name, before, after)
		case !sc.sign && opErr == nil && after[0] != before[0]+1:
			t.Fatalf("%s (did %v): the refresh was reported done, but the key is at %v from %v", name, used, after, before)
		case !sc.sign && after[0] != before[0] && after[0] != before[0]+1:
			t.Fatalf("%s: epochs %v after %v", name, after, before)
		}
		for _, u := range usedByOp {
			if (strings.HasSuffix(u, ":forge-answer") || strings.HasSuffix(u, ":impersonate") || strings.HasSuffix(u, ":replay")) &&
				len(sc.faults) == 1 && opErr != nil && !errors.Is(opErr, tsm.ErrForgedAnswer) && !errors.Is(opErr, tsm.ErrNodeUnreachable) {
				t.Errorf("%s: a changed answer was refused for another reason: %v", name, opErr)
			}
			if (strings.HasSuffix(u, ":forge-answer") || strings.HasSuffix(u, ":impersonate")) && len(sc.faults) == 1 && opErr == nil {
				t.Errorf("%s: a forged answer was taken", name)
			}
		}
		sig, err := all.Sign(keyID, []byte("after "+name))
		if err != nil || !ed25519.Verify(pub, []byte("after "+name), sig) {
			t.Fatalf("%s: the key does not sign after: %v", name, err)
		}
	}
	t.Logf("%d scenarios, key at epoch %v", len(scenarios), epochs())
}

// TestForgedRefusalUndoesNothing: a refresh whose switch at the decider was lost, its new
// share restored on a second device from the backup the refresh uploaded, and that device's
// recovery switch at the decider answered by a relay with a made-up refusal ("not a party").
// A refusal is not signed, so recovery decides nothing on it: the refresh stays open (it was
// undone here before, leaving the second device at the new epoch and the nodes at the old).
// Once the relay is gone, the second device's recovery switches every node, and both
// devices sign.
func TestForgedRefusalUndoesNothing(t *testing.T) {
	c := tsmnodetest.Must(t, 2)
	r1 := newRelay(t, c.Nodes[0].URL)
	through := func(db string) *tsm.EDDSAClient {
		cl, err := tsm.NewClient(tsm.Config{Nodes: []tsm.NodeConfig{{Database: db},
			{URL: r1.srv.URL, ID: c.Nodes[0].ID.String()}, {URL: c.Nodes[1].URL, ID: c.Nodes[1].ID.String()}},
			EdDSA: tsm.ProtocolConfig{EnableShareBackup: true}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		return tsm.NewEDDSAClient(cl)
	}
	dir := t.TempDir()
	dbA, dbB := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")
	a := through(dbA)
	keyID, err := a.GenerateKey("two devices")
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := a.PublicKey(keyID)
	var uploaded []byte
	r1.arm(fault{tsm.OpRefreshCommit, "drop"})
	if err := a.ReshareWithBackup(keyID, func(b []byte) error { uploaded = bytes.Clone(b); return nil }, nil); err == nil || uploaded == nil {
		t.Fatalf("the refresh with its switch dropped: %v", err)
	}
	one, err := tsm.NewClient(tsm.Config{Nodes: []tsm.NodeConfig{{Database: dbB}}, EdDSA: tsm.ProtocolConfig{EnableShareBackup: true}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tsm.NewEDDSAClient(one).RestoreShare(uploaded); err != nil {
		t.Fatal(err)
	}
	one.Close()
	b := through(dbB)
	// Each node's state, asked directly with the second device's share (epoch 1).
	state := func() (out []string) {
		key, err := tsm.EmbeddedNodeKey(dbB)
		if err != nil {
			t.Fatal(err)
		}
		for n := range 2 {
			st := &tsm.Step{Op: tsm.OpInfo, KeyID: keyID, Scheme: tsm.EdDSA}
			switch status, res := asker(t, c, key, uploaded)(n, st); {
			case status == http.StatusForbidden:
				out = append(out, "the new share refused (the refresh undone)")
			case status != http.StatusOK || tsm.VerifyAnswer(c.Nodes[n].ID, st, res) != nil:
				t.Fatalf("node %d: info: %d", n+1, status)
			default:
				out = append(out, fmt.Sprintf("epoch %d pending %d", res.Info.Epoch, res.Pending))
			}
		}
		return out
	}
	r1.arm(fault{tsm.OpRefreshCommit, "forge-no"})
	if err := b.Recover(keyID); err == nil {
		t.Fatal("the recovery went on past a refused switch")
	}
	if got := state(); !slices.Equal(got, []string{"epoch 0 pending 1", "epoch 0 pending 1"}) {
		t.Fatalf("after a forged refusal of the switch, the nodes are at %v, want the refresh still open", got)
	}
	r1.arm()
	if err := b.Recover(keyID); err != nil {
		t.Fatalf("the recovery once the relay is gone: %v", err)
	}
	if got := state(); !slices.Equal(got, []string{"epoch 1 pending 0", "epoch 1 pending 0"}) {
		t.Fatalf("after the recovery, the nodes are at %v", got)
	}
	for name, dev := range map[string]*tsm.EDDSAClient{"the second device": b, "the first": a} {
		if sig, err := dev.Sign(keyID, []byte(name)); err != nil || !ed25519.Verify(pub, []byte(name), sig) {
			t.Fatalf("%s does not sign: %v", name, err)
		}
	}
}

// epochOf reads a party's epoch of keyID: the phone's (n = -1) from its database, a node's
// from its signed answer to an info step asked directly (no relay).
func epochOf(t *testing.T, db string, c *tsmnodetest.Cluster, n int, keyID string) uint32 {
	t.Helper()
	one, err := tsm.NewClient(tsm.Config{Nodes: []tsm.NodeConfig{{Database: db}}, EdDSA: tsm.ProtocolConfig{EnableShareBackup: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	ed := tsm.NewEDDSAClient(one)
	info, err := ed.KeyInfo(keyID)
	if err != nil || n < 0 {
		return info.Epoch
	}
	backup, err := ed.BackupShare(keyID)
	if err != nil {
		t.Fatal(err)
	}
	key, err := tsm.EmbeddedNodeKey(db)
	if err != nil {
		t.Fatal(err)
	}
	st := &tsm.Step{Op: tsm.OpInfo, KeyID: keyID, Scheme: tsm.EdDSA}
	status, res := asker(t, c, key, backup)(n, st)
	if status != http.StatusOK || res == nil {
		t.Fatalf("node %d: info: %d", n+1, status)
	}
	if err := tsm.VerifyAnswer(c.Nodes[n].ID, st, res); err != nil {
		t.Fatalf("node %d: %v", n+1, err)
	}
	if res.Pending != 0 {
		return res.Info.Epoch*1000 + res.Pending // a prepared refresh left: never equal to a settled epoch
	}
	return res.Info.Epoch
}

// TestNodeIDsPinned: a phone pins each server node's ID the first time it reaches its URL;
// when another node answers there later (a relay that swapped it, or a replaced server),
// every operation stops with one line saying so. An ID given in the configuration must
// match too.
func TestNodeIDsPinned(t *testing.T) {
	c := tsmnodetest.Must(t, 2)
	r1, r2 := newRelay(t, c.Nodes[0].URL), newRelay(t, c.Nodes[1].URL)
	db := filepath.Join(t.TempDir(), "phone.db")
	open := func(id1 string) *tsm.EDDSAClient {
		cl, err := tsm.NewClient(tsm.Config{Nodes: []tsm.NodeConfig{{Database: db}, {URL: r1.srv.URL, ID: id1}, {URL: r2.srv.URL}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		return tsm.NewEDDSAClient(cl)
	}
	keyID, err := open("").GenerateKey("pinned on first use")
	if err != nil {
		t.Fatal(err)
	}
	r1.mu.Lock()
	r1.target = c.Nodes[1].URL // node 2 now answers at node 1's URL
	r1.mu.Unlock()
	_, err = open("").Sign(keyID, []byte("to whom?"))
	if !errors.Is(err, tsm.ErrNodeChanged) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "pinned") {
		t.Fatalf("another node at a pinned URL: %v", err)
	}
	if _, err := open(c.Nodes[0].ID.String()).Sign(keyID, []byte("configured")); !errors.Is(err, tsm.ErrNodeChanged) {
		t.Fatalf("another node than the configured one: %v", err)
	}
	r1.mu.Lock()
	r1.target = c.Nodes[0].URL
	r1.mu.Unlock()
	if _, err := open("").Sign(keyID, []byte("back")); err != nil {
		t.Fatalf("the pinned node back at its URL: %v", err)
	}
}

// TestRelayReplaysRequests: a relay records the phone's steps to the decider, holds the
// commit that would decide a refresh, and once the phone's recovery has undone the refresh
// replays everything it recorded (within the requests' time window): start, round two and
// prepare again, then the held commit. A node serves each request once, and a refresh
// session once, so none is taken, and the key stays at one epoch and signs.
func TestRelayReplaysRequests(t *testing.T) {
	c := tsmnodetest.Must(t, 2)
	r := newRelay(t, c.Nodes[0].URL)
	db := filepath.Join(t.TempDir(), "phone.db")
	cl, err := tsm.NewClient(tsm.Config{Nodes: []tsm.NodeConfig{{Database: db}, {URL: r.srv.URL, ID: c.Nodes[0].ID.String()},
		{URL: c.Nodes[1].URL, ID: c.Nodes[1].ID.String()}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	all := tsm.NewEDDSAClient(cl)
	keyID, err := all.GenerateKey("replayed")
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.requests = nil
	r.mu.Unlock()
	r.arm(fault{tsm.OpRefreshCommit, "drop"})
	if err := all.ReshareWithBackup(keyID, func([]byte) error { return nil }, nil); err == nil {
		t.Fatal("the refresh finished without its decision")
	}
	if err := all.VerifyShare(keyID); err != nil { // recovery undoes the refresh at the decider
		t.Fatal(err)
	}
	r.mu.Lock()
	recorded := r.requests
	r.mu.Unlock()
	served := 0
	for _, body := range recorded {
		resp, err := http.Post(c.Nodes[0].URL+"/v1/step", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			served++
		}
	}
	if served != 0 {
		t.Errorf("%d of %d replayed requests served", served, len(recorded))
	}
	e := []uint32{epochOf(t, db, c, -1, keyID), epochOf(t, db, c, 0, keyID), epochOf(t, db, c, 1, keyID)}
	if e[0] != e[1] || e[1] != e[2] {
		t.Fatalf("after the replays: epochs %v", e)
	}
	if _, err := all.Sign(keyID, []byte("after the replays")); err != nil {
		t.Fatal(err)
	}

	// A restart forgets the requests served, not the refusal: one signed before the node
	// started is refused.
	time.Sleep(1100 * time.Millisecond)
	c.Nodes[0].Kill()
	if err := c.Nodes[0].Start(); err != nil {
		t.Fatal(err)
	}
	unauthorized := 0
	for _, body := range recorded {
		resp, err := http.Post(c.Nodes[0].URL+"/v1/step", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("a request replayed after the node restarted was served")
		}
		if resp.StatusCode == http.StatusUnauthorized {
			unauthorized++ // signed before the node started (the others fail their proof first)
		}
	}
	if unauthorized == 0 {
		t.Fatal("no replay after the restart was refused as signed before it")
	}
	if _, err := all.Sign(keyID, []byte("after the restart")); err != nil {
		t.Fatal(err)
	}
}

// TestOldShareCannotUndoAFollower: a reshare is decided (the decider switched) but its
// commit to node 2 is lost. A thief with the phone's old share (the one the reshare was
// meant to revoke) asks node 2 which refresh it has pending and tells it to discard that:
// refused, without the decider's word, and with the decider's word that it committed. The
// recovery then switches node 2, and the key signs at the new epoch.
func TestOldShareCannotUndoAFollower(t *testing.T) {
	c := tsmnodetest.Must(t, 2)
	r := newRelay(t, c.Nodes[1].URL)
	db := filepath.Join(t.TempDir(), "phone.db")
	cl, err := tsm.NewClient(tsm.Config{Nodes: []tsm.NodeConfig{{Database: db}, {URL: c.Nodes[0].URL, ID: c.Nodes[0].ID.String()},
		{URL: r.srv.URL, ID: c.Nodes[1].ID.String()}}, EdDSA: tsm.ProtocolConfig{EnableShareBackup: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	all := tsm.NewEDDSAClient(cl)
	keyID, err := all.GenerateKey("revoked")
	if err != nil {
		t.Fatal(err)
	}
	one, err := tsm.NewClient(tsm.Config{Nodes: []tsm.NodeConfig{{Database: db}}, EdDSA: tsm.ProtocolConfig{EnableShareBackup: true}})
	if err != nil {
		t.Fatal(err)
	}
	stolen, err := tsm.NewEDDSAClient(one).BackupShare(keyID)
	one.Close()
	if err != nil {
		t.Fatal(err)
	}
	r.arm(fault{tsm.OpRefreshCommit, "drop"})
	if err := all.Reshare(keyID); err == nil {
		t.Fatal("the reshare finished with a commit lost")
	}
	ask := asker(t, c, tsm.GenerateNodeKey(), stolen) // a thief's own node key, and the share
	status, info := ask(1, &tsm.Step{Op: tsm.OpInfo, KeyID: keyID, Scheme: tsm.EdDSA})
	if status != http.StatusOK || info.Pending == 0 {
		t.Fatalf("node 2 before the recovery: %d, pending %v", status, info)
	}
	session := info.PendingOf
	if status, _ := ask(1, &tsm.Step{Op: tsm.OpRefreshAbort, KeyID: keyID, Scheme: tsm.EdDSA, Session: session}); status != http.StatusForbidden {
		t.Fatalf("the old share's discard of node 2's prepared refresh: %d", status)
	}
	word := &tsm.Step{Op: tsm.OpInfo, KeyID: keyID, Scheme: tsm.EdDSA, Session: session}
	status, said := ask(0, word)
	if status != http.StatusOK || said.Done != tsm.Committed {
		t.Fatalf("the decider's word: %d, %+v", status, said)
	}
	ev, _ := tsm.EncodeEvidence(word, said)
	if status, _ := ask(1, &tsm.Step{Op: tsm.OpRefreshAbort, KeyID: keyID, Scheme: tsm.EdDSA, Session: session, In: [][]byte{ev}}); status != http.StatusForbidden {
		t.Fatalf("a discard on the decider's word that it committed: %d", status)
	}
	if err := all.VerifyShare(keyID); err != nil {
		t.Fatal(err)
	}
	e := []uint32{epochOf(t, db, c, -1, keyID), epochOf(t, db, c, 0, keyID), epochOf(t, db, c, 1, keyID)}
	if e[0] != 1 || e[1] != 1 || e[2] != 1 {
		t.Fatalf("after the recovery: epochs %v, want 1 everywhere", e)
	}
	if _, err := all.Sign(keyID, []byte("at the new epoch")); err != nil {
		t.Fatal(err)
	}
}

// TestShareHoldersCannotDecide: while the phone's refresh is prepared (its backup going to
// the vault), a thief holding the phone's current share tries to decide it: a switch at the
// decider is refused (only the holder of the new share switches it), and so is a discard at
// node 2 without the decider's word. The refresh then finishes. After it, the revoked share
// asks node 1 the key's state four thousand times: it is answered (signed) but not counted
// against the key, whose phone still signs.
func TestShareHoldersCannotDecide(t *testing.T) {
	c := tsmnodetest.Must(t, 2)
	db, all, keyID, stolen := keyOfTwo(t, c, "held")
	ask := asker(t, c, tsm.GenerateNodeKey(), stolen) // a thief's own node key, and the share
	err := all.ReshareWithBackup(keyID, func([]byte) error {
		status, info := ask(0, &tsm.Step{Op: tsm.OpInfo, KeyID: keyID, Scheme: tsm.EdDSA})
		if status != http.StatusOK || info.Pending == 0 {
			t.Errorf("the decider while prepared: %d %+v", status, info)
			return nil
		}
		if status, _ := ask(0, &tsm.Step{Op: tsm.OpRefreshCommit, KeyID: keyID, Scheme: tsm.EdDSA, Session: info.PendingOf}); status != http.StatusForbidden {
			t.Errorf("the current share's switch at the decider: %d", status)
		}
		if status, _ := ask(1, &tsm.Step{Op: tsm.OpRefreshAbort, KeyID: keyID, Scheme: tsm.EdDSA, Session: info.PendingOf}); status != http.StatusForbidden {
			t.Errorf("the current share's discard at node 2 without the decider's word: %d", status)
		}
		return nil
	}, nil)
	if err != nil {
		t.Fatalf("the refresh beside the thief: %v", err)
	}
	for _, n := range []int{-1, 0, 1} {
		if e := epochOf(t, db, c, n, keyID); e != 1 {
			t.Fatalf("party %d at epoch %d after the refresh", n, e)
		}
	}
	for i := range 4200 {
		if status, _ := ask(0, &tsm.Step{Op: tsm.OpInfo, KeyID: keyID, Scheme: tsm.EdDSA}); status != http.StatusOK {
			t.Fatalf("the revoked share's info %d: %d", i, status)
		}
	}
	if _, err := all.Sign(keyID, []byte("beside the revoked share")); err != nil {
		t.Fatalf("the phone after the revoked share's infos: %v", err)
	}
}

// TestRefreshRosterIsTheKeys: with three server nodes that all work together, a holder of
// the phone's share cannot start a refresh of a key of nodes 1 and 2 whose roster puts node
// 3 in node 1's place (which would make node 3 the decider node 2 obeys).
func TestRefreshRosterIsTheKeys(t *testing.T) {
	c := tsmnodetest.Must(t, 3)
	db, all, keyID, share := keyOfTwo(t, c, "three nodes")
	key, err := tsm.EmbeddedNodeKey(db)
	if err != nil {
		t.Fatal(err)
	}
	st := &tsm.Step{Op: tsm.OpRefreshStart, KeyID: keyID, Scheme: tsm.EdDSA, Session: bytes.Repeat([]byte{7}, 16),
		Roster: []tsm.NodeID{key.ID(), c.Nodes[2].ID, c.Nodes[1].ID}}
	if err := tsm.AuthorizeStep(st, key, c.Nodes[1].ID, share); err != nil {
		t.Fatal(err)
	}
	body, _ := tsm.EncodeStep(st)
	status, problem := post(t, c.Nodes[1].URL, body)
	if status != http.StatusForbidden || problem != "forbidden" {
		t.Fatalf("a refresh naming node 3 in node 1's place: %d %s", status, problem)
	}
	if err := all.Reshare(keyID); err != nil {
		t.Fatal(err)
	}
}

// asker returns how a requester with node key key, proving the share in backup, sends a
// step straight to node n of c: the status and the answer.
func asker(t *testing.T, c *tsmnodetest.Cluster, key *tsm.NodeKey, backup []byte) func(n int, st *tsm.Step) (int, *tsm.StepResult) {
	return func(n int, st *tsm.Step) (int, *tsm.StepResult) {
		t.Helper()
		if err := tsm.AuthorizeStep(st, key, c.Nodes[n].ID, backup); err != nil {
			t.Fatal(err)
		}
		body, _ := tsm.EncodeStep(st)
		resp, err := http.Post(c.Nodes[n].URL+"/v1/step", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		res, _ := tsm.DecodeResult(resp.Body)
		return resp.StatusCode, res
	}
}

// keyOfTwo makes a key of a phone (its database db) and the cluster's first two nodes, and
// returns the phone's client of them, the key and the phone's share of it (a backup).
func keyOfTwo(t *testing.T, c *tsmnodetest.Cluster, desc string) (string, *tsm.EDDSAClient, string, []byte) {
	t.Helper()
	db := filepath.Join(t.TempDir(), "phone.db")
	all := tsm.NewEDDSAClient(phone(t, db, c, 0, 1))
	keyID, err := all.GenerateKey(desc)
	if err != nil {
		t.Fatal(err)
	}
	share, err := tsm.NewEDDSAClient(phone(t, db, c)).BackupShare(keyID)
	if err != nil {
		t.Fatal(err)
	}
	return db, all, keyID, share
}
