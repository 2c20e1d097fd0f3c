package tsm

import (
	"crypto/rand"
	"errors"
	"sync"
	"testing"

	"github.com/sharevault/sharevault/internal/tsm/protocol"
)

// A commitment handed out ahead is used at most once: two concurrent signatures that name
// it, a replay of the request that used it, a node restarted since it was handed out, and a
// refresh since, all find it gone.
func TestCommitmentUsedOnce(t *testing.T) {
	c := newCluster(t)
	keyID, err := NewEDDSAClient(c.all).GenerateKey("ahead")
	if err != nil {
		t.Fatal(err)
	}
	node := c.all.peers[1].(*party)
	phoneID := c.all.local.key.ID()
	roster := c.roster()
	handOut := func(n *party) protocol.Commitment {
		t.Helper()
		k, err := n.n.key(keyID, EdDSA)
		if err != nil {
			t.Fatal(err)
		}
		defer k.wipe()
		sid := newSession()
		env, err := n.handOut(&Step{Session: sid}, k, &session{requester: phoneID, roster: roster})
		if err != nil {
			t.Fatal(err)
		}
		m, err := readEnvelope(1, env, protocol.MsgCommitment, sid, roster, 2, NodeID{})
		if err != nil {
			t.Fatal(err)
		}
		return *m.Commitment
	}
	// A signing request naming node 2's commitment (and others made up: the node answers
	// its share before anyone aggregates).
	request := func(mine protocol.Commitment, session []byte) *Step {
		t.Helper()
		var cs []protocol.Commitment
		for _, id := range []int{1, 3} {
			k, _ := c.all.peers[id-1].(*party).n.key(keyID, EdDSA)
			n, err := protocol.Commit(k.keyShare(), rand.Reader)
			k.wipe()
			if err != nil {
				t.Fatal(err)
			}
			cs = append(cs, n.Commitment)
			n.Wipe()
		}
		cs = []protocol.Commitment{cs[0], mine, cs[1]}
		req, err := (&protocol.Message{Type: protocol.MsgSignRequest, Session: session, Curve: protocol.Ed25519,
			Request: &protocol.SignRequest{Message: []byte("m"), Commitments: cs}}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return &Step{Op: OpSignShareAhead, KeyID: keyID, Scheme: EdDSA, Session: session, In: [][]byte{req}, Auth: &Auth{Node: phoneID}}
	}

	mine := handOut(node)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() { _, errs[i] = node.Step(t.Context(), request(mine, newSession())) })
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) || !errors.Is(errors.Join(errs...), ErrNoCommitment) {
		t.Fatalf("two signatures on one commitment: %v", errs)
	}
	st := request(mine, newSession())
	if _, err := node.Step(t.Context(), st); !errors.Is(err, ErrNoCommitment) {
		t.Fatalf("a request naming a used commitment: %v", err)
	}

	// sign/share (a coordinator from before commitments came ahead) uses one too, and its
	// answer is the share alone.
	old := handOut(node)
	st = request(old, newSession())
	st.Op = OpSignShare
	if res, err := node.Step(t.Context(), st); err != nil || len(res.Out) != 1 {
		t.Fatalf("sign/share on a commitment handed out: %v, %d messages", err, len(res.Out))
	}

	// Another requester cannot use the phone's.
	other := handOut(node)
	st = request(other, newSession())
	st.Auth = &Auth{Node: GenerateNodeKey().ID()}
	if _, err := node.Step(t.Context(), st); !errors.Is(err, ErrNoCommitment) {
		t.Fatalf("another requester's use: %v", err)
	}

	// The node restarts: a new party on the same database has none.
	before := handOut(node)
	restarted := newParty(node.n, node.key)
	if _, err := restarted.Step(t.Context(), request(before, newSession())); !errors.Is(err, ErrNoCommitment) {
		t.Fatalf("after a restart: %v", err)
	}

	// A refresh discards the key's.
	stale := handOut(node)
	if err := NewEDDSAClient(c.all).Reshare(keyID); err != nil {
		t.Fatal(err)
	}
	if _, err := node.Step(t.Context(), request(stale, newSession())); !errors.Is(err, ErrNoCommitment) {
		t.Fatalf("after a refresh: %v", err)
	}
	node.mu.Lock()
	n := len(node.precommits)
	node.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d commitments kept across the refresh", n)
	}
}

// TestCommitmentsOfAKeyBounded: commitments of one key handed out under many requester IDs
// (its owner restoring again and again, each time under a new node ID) stay at
// maxPrecommitsOfKey, the oldest replaced: one key cannot fill the node's table.
func TestCommitmentsOfAKeyBounded(t *testing.T) {
	c := newCluster(t)
	keyID, err := NewEDDSAClient(c.all).GenerateKey("many phones")
	if err != nil {
		t.Fatal(err)
	}
	node := c.all.peers[1].(*party)
	k, err := node.n.key(keyID, EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	defer k.wipe()
	for range 3 * maxPrecommitsOfKey {
		if _, err := node.handOut(&Step{Session: newSession()}, k, &session{requester: GenerateNodeKey().ID(), roster: c.roster()}); err != nil {
			t.Fatal(err)
		}
	}
	node.mu.Lock()
	n := len(node.precommits)
	node.mu.Unlock()
	if n != maxPrecommitsOfKey {
		t.Fatalf("%d commitments of one key held, want %d", n, maxPrecommitsOfKey)
	}
}
