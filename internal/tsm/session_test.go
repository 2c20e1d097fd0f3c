package tsm

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"
)

// TestSessionsExpireOnATimer: a session's secrets are wiped when its time is up, though no
// other step arrives to notice.
func TestSessionsExpireOnATimer(t *testing.T) {
	c := newCluster(t)
	ed := NewEDDSAClient(c.all)
	keyID, err := ed.GenerateKey("timer")
	if err != nil {
		t.Fatal(err)
	}
	roster, err := ed.roster(3, func(i int) int { return i })
	if err != nil {
		t.Fatal(err)
	}
	defer func(d time.Duration) { sessionTTL = d }(sessionTTL)
	sessionTTL = 50 * time.Millisecond
	p := c.all.local
	session := newSession()
	if _, err := p.Step(context.Background(), &Step{Op: OpSignCommit, KeyID: keyID, Scheme: EdDSA, Session: session, Roster: roster}); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	s := p.sessions[sessionKey(NodeID{}, session)]
	p.mu.Unlock()
	if s == nil || s.nonces.Wiped() {
		t.Fatal("no live session after sign/commit")
	}
	time.Sleep(300 * time.Millisecond)
	p.mu.Lock()
	left := len(p.sessions)
	wiped := s.nonces.Wiped()
	p.mu.Unlock()
	if left != 0 || !wiped {
		t.Fatalf("after its time: %d sessions kept, nonces wiped %v", left, wiped)
	}
}

// TestFailedStepWipesTheDKG: a key generation whose round two fails leaves no polynomial in
// memory.
func TestFailedStepWipesTheDKG(t *testing.T) {
	c := newCluster(t)
	ed := NewEDDSAClient(c.all)
	roster, err := ed.roster(3, func(i int) int { return i })
	if err != nil {
		t.Fatal(err)
	}
	p := c.all.local
	session := newSession()
	kg := &KeyGenParams{Threshold: 2, Parties: 3, Index: 0, Created: time.Now(), ChainCode: make([]byte, chainCodeLen)}
	if _, err := p.Step(context.Background(), &Step{Op: OpKeyGenStart, KeyID: newKeyID(), Scheme: EdDSA, Session: session, Roster: roster, KeyGen: kg}); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	s := p.sessions[sessionKey(NodeID{}, session)]
	p.mu.Unlock()
	if s == nil || s.dkg.Wiped() {
		t.Fatal("no live key generation")
	}
	if _, err := p.Step(context.Background(), &Step{Op: OpKeyGenRound2, Scheme: EdDSA, Session: session}); err == nil {
		t.Fatal("round two without the others' messages ran")
	}
	if !s.dkg.Wiped() {
		t.Fatal("the failed round left the polynomial in memory")
	}
}

// TestStoreErrorsAreMarked: an error of SQLite itself (here a real constraint failure) is
// ErrStore, which an answer states without the database's words; a refusal is not.
func TestStoreErrorsAreMarked(t *testing.T) {
	c := newCluster(t)
	n := c.all.local.n
	err := n.write(func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO keys (key_id) VALUES ('x')`)
		return err
	})
	if err = storeError(err); !errors.Is(err, ErrStore) {
		t.Fatalf("a NOT NULL failure: %v, want ErrStore", err)
	}
	if err := storeError(ErrNotAParty); errors.Is(err, ErrStore) {
		t.Fatal("a refusal marked as a store error")
	}
}
