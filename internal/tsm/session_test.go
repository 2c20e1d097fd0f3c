package tsm

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sharevault/sharevault/internal/nodestore"
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
	sessionTTL = 500 * time.Millisecond
	p := c.all.local
	session := newSession()
	if _, err := p.Step(context.Background(), &Step{Op: OpSignCommit, KeyID: keyID, Scheme: EdDSA, Session: session, Roster: roster}); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	s := p.sessions[sessionKey(NodeID{}, session)]
	live := s != nil && !s.nonces.Wiped()
	p.mu.Unlock()
	if !live {
		t.Fatal("no live session after sign/commit")
	}
	time.Sleep(1500 * time.Millisecond)
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
	err := n.write(func(tx querier) error { // a NULL share: NOT NULL fails
		return tx.InsertKey(&nodestore.Key{ID: "x", PublicShares: [][]byte{{1}}})
	})
	if err = storeError(err); !errors.Is(err, ErrStore) {
		t.Fatalf("a NOT NULL failure: %v, want ErrStore", err)
	}
	if err := storeError(ErrNotAParty); errors.Is(err, ErrStore) {
		t.Fatal("a refusal marked as a store error")
	}
}

// TestTwoPhonesRecoverTogether: a phone uploads its refresh's backup and dies before the
// decision; a second phone is restored from that backup (the nodes accept it, by their
// pending shares); then the first comes back. Each phone holds the phone's share, the old
// one with the new pending, the new one switched, so they would decide the refresh
// differently; they recover at the same time, in every order, with the decider's and the
// others' switches slowed. The key always ends at one epoch on both nodes, and
// signs with them and one of the phones.
func TestTwoPhonesRecoverTogether(t *testing.T) {
	t.Cleanup(func() { faultHook = nil })
	for round := range 12 {
		c := newCluster(t)
		ed := NewEDDSAClient(c.all)
		keyID, err := ed.GenerateKey("two phones")
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := ed.PublicKey(keyID)
		var uploaded []byte
		func() {
			defer func() {
				if r := recover(); r == nil {
					t.Fatal("the refresh did not reach its upload")
				} else if _, ok := r.(crash); !ok {
					panic(r)
				}
			}()
			ed.ReshareWithBackup(keyID, func(b []byte) error {
				uploaded = bytes.Clone(b)
				panic(crash{"phone", "after the upload"})
			}, nil)
		}()
		p2 := filepath.Join(c.dir, "phone2.db")
		if _, err := NewEDDSAClient(c.open(p2)).RestoreShare(uploaded); err != nil {
			t.Fatal(err)
		}
		first := c.open(append([]string{c.phone}, c.servers()...)...)
		second := c.open(append([]string{p2}, c.servers()...)...)
		slow := c.servers()[round%2] // one server's switch is slow (a relay delays it)
		faultHook = func(path, step string) error {
			if step == "commit-before" && path == slow {
				time.Sleep(time.Duration(20+mrand.IntN(20)) * time.Millisecond)
			}
			return nil
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, cl := range []*Client{first, second} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if round%3 == 1 && i == 0 || round%3 == 2 && i == 1 {
					time.Sleep(10 * time.Millisecond)
				}
				errs[i] = NewEDDSAClient(cl).Recover(keyID)
			}()
		}
		wg.Wait()
		faultHook = nil
		for range 2 { // a recovery that lost the race finishes on the next use
			NewEDDSAClient(first).Recover(keyID)
			NewEDDSAClient(second).Recover(keyID)
		}
		var epochs []uint32
		for _, s := range c.servers() {
			n, err := openNode(s)
			if err != nil {
				t.Fatal(err)
			}
			k, err := n.key(keyID, EdDSA)
			p, _, _ := n.pendingEpoch(keyID)
			n.close()
			if err != nil || p != 0 {
				t.Fatalf("round %d: %s: %v, pending %d", round, s, err, p)
			}
			epochs = append(epochs, k.Epoch)
		}
		if epochs[0] != epochs[1] {
			t.Fatalf("round %d: the server nodes split: epochs %v (recoveries: %v)", round, epochs, errs)
		}
		signed := 0
		for _, cl := range []*Client{first, second} {
			if sig, err := NewEDDSAClient(cl).Sign(keyID, []byte("who signs")); err == nil && ed25519.Verify(pub, []byte("who signs"), sig) {
				signed++
			}
		}
		if signed == 0 {
			t.Fatalf("round %d: neither phone signs with the nodes at epoch %d (recoveries: %v)", round, epochs[0], errs)
		}
	}
}

// TestAbortWipesTheRefresh: a refresh abandoned before its prepare (refresh/abort) leaves
// no polynomial in memory, without waiting for the timer.
func TestAbortWipesTheRefresh(t *testing.T) {
	c := newCluster(t)
	ed := NewEDDSAClient(c.all)
	keyID, err := ed.GenerateKey("abort")
	if err != nil {
		t.Fatal(err)
	}
	roster, err := ed.roster(3, func(i int) int { return i })
	if err != nil {
		t.Fatal(err)
	}
	p := c.all.local
	session := newSession()
	if _, err := p.Step(context.Background(), &Step{Op: OpRefreshStart, KeyID: keyID, Scheme: EdDSA, Session: session, Roster: roster}); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	s := p.sessions[sessionKey(NodeID{}, session)]
	p.mu.Unlock()
	if s == nil || s.dkg.Wiped() {
		t.Fatal("no live refresh")
	}
	if _, err := p.Step(context.Background(), &Step{Op: OpRefreshAbort, KeyID: keyID, Scheme: EdDSA, Session: session}); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	left := len(p.sessions)
	p.mu.Unlock()
	if left != 0 || !s.dkg.Wiped() {
		t.Fatalf("after the abort: %d sessions kept, polynomial wiped %v", left, s.dkg.Wiped())
	}
}

// TestFullTableAdmitsAKeysFirstSession: parties of many keys of their own fill a node's
// session table, each key's renewals replacing its own oldest; a phone's first session on
// its key still gets in (in the place of the table's oldest), and a key generation, which
// proves nothing, does not.
func TestFullTableAdmitsAKeysFirstSession(t *testing.T) {
	c := newCluster(t)
	p := c.all.local
	p.mu.Lock()
	for i := range maxSessions {
		s := &session{kind: "sign", keyID: fmt.Sprint("attacker", i/4), requester: GenerateNodeKey().ID(), started: time.Now().Add(time.Duration(i) * time.Microsecond)}
		p.sessions[sessionKey(s.requester, newSession())] = s
	}
	p.mu.Unlock()
	renew := &session{kind: "sign", keyID: "attacker0", requester: GenerateNodeKey().ID()}
	if err := p.put(newSession(), renew); err != nil {
		t.Fatalf("an attacker's renewal: %v", err)
	}
	victim := &session{kind: "sign", keyID: "victim", requester: GenerateNodeKey().ID()}
	if err := p.put(newSession(), victim); err != nil {
		t.Fatalf("a phone's first session on its key in a full table: %v", err)
	}
	stranger := &session{kind: "keygen", keyID: "newkey", requester: GenerateNodeKey().ID()}
	if err := p.put(newSession(), stranger); err == nil {
		t.Fatal("a key generation got into a full table")
	}
	p.mu.Lock()
	n, found := len(p.sessions), false
	for _, s := range p.sessions {
		found = found || s == victim
	}
	p.mu.Unlock()
	if n != maxSessions || !found {
		t.Fatalf("table of %d sessions, the phone's in it: %v", n, found)
	}
}

// TestRequestsServedOnce: a node remembers a proven request's nonce until its time leaves
// the window (with a margin past it, so that a replay checked at the window's last moment
// is still known), refuses one signed before it started, holds one key to its share of the
// memory, and remembers nothing of requests that prove nothing.
func TestRequestsServedOnce(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	n, err := OpenNode(ServiceConfig{Database: filepath.Join(t.TempDir(), "node.db"), Key: GenerateNodeKey(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	req := GenerateNodeKey().ID()
	a := &Auth{Node: req, Time: now.Unix(), Nonce: bytes.Repeat([]byte{1}, AuthNonceLen)}
	if err := n.fresh(a, "k", now); err != nil {
		t.Fatal(err)
	}
	if err := n.fresh(a, "k", now); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("a replay: %v", err)
	}
	late := now.Add(MaxClockSkew + 500*time.Millisecond) // past the window's edge, swept
	if err := n.fresh(a, "k", late); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("a replay swept at the window's last moment: %v", err)
	}
	old := &Auth{Node: req, Time: now.Unix() - 1, Nonce: bytes.Repeat([]byte{2}, AuthNonceLen)}
	if err := n.fresh(old, "k", now); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("a request signed before the node started: %v", err)
	}
	for i := 1; i < maxSeenPerKey; i++ {
		b := &Auth{Node: req, Time: now.Unix(), Nonce: binary.BigEndian.AppendUint64(make([]byte, 8), uint64(i)+10)}
		if err := n.fresh(b, "k", now); err != nil {
			t.Fatalf("request %d of one key: %v", i, err)
		}
	}
	over := &Auth{Node: req, Time: now.Unix(), Nonce: bytes.Repeat([]byte{3}, AuthNonceLen)}
	if err := n.fresh(over, "k", now); !errors.Is(err, ErrBusy) {
		t.Fatalf("one key past its share: %v", err)
	}
	if err := n.fresh(over, "other", now); err != nil {
		t.Fatalf("another key beside it: %v", err)
	}
	before := len(n.seen)
	st := &Step{Op: OpInfo, KeyID: "nosuchkey", Scheme: EdDSA}
	if err := AuthorizeStep(st, GenerateNodeKey(), n.ID(), nil); err != nil {
		t.Fatal(err)
	}
	st.Auth.Time = now.Unix()
	stranger := GenerateNodeKey()
	stranger.signAuth(st.digest(), st.Auth)
	if _, err := n.Serve(context.Background(), st); !errors.Is(err, ErrNotAParty) {
		t.Fatalf("an unproven info: %v", err)
	}
	if len(n.seen) != before {
		t.Fatal("an unproven request was remembered")
	}
}

// TestOneProcessServesADatabase: a second node service on the same database is refused at
// once, and may start once the first is closed.
func TestOneProcessServesADatabase(t *testing.T) {
	cfg := ServiceConfig{Database: filepath.Join(t.TempDir(), "node.db"), Key: GenerateNodeKey()}
	n, err := OpenNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenNode(cfg); err == nil {
		t.Fatal("a second service opened the same database")
	}
	n.Close()
	again, err := OpenNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	again.Close()
}

// TestThresholdSignsWithoutTheDecider: a 2-of-3 key whose refresh was left prepared (a node
// crashed after its prepare) still signs with the phone and the other server node while the
// decider is away, at the current epoch; once the decider is back, the refresh is undone
// and a new one runs.
func TestThresholdSignsWithoutTheDecider(t *testing.T) {
	t.Cleanup(func() { faultHook = nil })
	c := newCluster(t)
	keyID, err := NewEDDSAClient(c.all).GenerateKeyThreshold("2-of-3", 1)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := NewEDDSAClient(c.all).PublicKey(keyID)
	target := c.servers()[1]
	faultHook = func(path, step string) error {
		if path == target && step == "prepare-after" {
			panic(crash{path, step})
		}
		return nil
	}
	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Fatal("the refresh did not reach the crash")
			} else if _, ok := r.(crash); !ok {
				panic(r)
			}
		}()
		NewEDDSAClient(c.all).Reshare(keyID)
	}()
	faultHook = nil
	c.all.Close()
	without := c.open(c.phone, c.servers()[1]) // the decider (server 1) is away
	sig, err := NewEDDSAClient(without).Sign(keyID, []byte("decider away"))
	if err != nil || !ed25519.Verify(pub, []byte("decider away"), sig) {
		t.Fatalf("signing without the decider: %v", err)
	}
	without.Close()
	c.reopenAll()
	if err := NewEDDSAClient(c.all).Reshare(keyID); err != nil {
		t.Fatalf("a refresh once the decider is back: %v", err)
	}
}
