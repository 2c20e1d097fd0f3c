package tsm

// A node as a service (cmd/tsmnode; docs/tsm-api.md, "Authorization"): a party whose
// steps come from remote coordinators, each of which must say who it is (its node key)
// and, to act on a key, prove that it is a party of that key by possession of its share.
// There are no accounts: a new phone with a restored share is that party, and a share from
// before the last refresh is refused.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sharevault/sharevault/internal/nodestore"
	"github.com/sharevault/sharevault/internal/nodestore/sqlite"
)

// MaxClockSkew bounds how far a request's time may be from the node's clock.
const MaxClockSkew = 60 * time.Second

// ServiceConfig configures a node served to remote coordinators.
type ServiceConfig struct {
	Database string // its SQLite file, when Store is nil
	// Store is the node's store when it is not a SQLite file (a PostgreSQL database that
	// several replicas serve); the node closes it.
	Store nodestore.Store
	Key   *NodeKey // its long-term identity
	// Peers are the other server nodes it takes part in keys with. In a key's roster every
	// party but the requester must be one of them (or this node).
	Peers []NodeID
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Node is a node serving steps to remote coordinators. It is safe for concurrent use.
type Node struct {
	cfg     ServiceConfig
	p       *party
	release func() // the store's "serve" lease, held while the node is open (nil: shared)

	mu      sync.Mutex
	keygens map[string]keygenRecord // keys this node generated lately, for discard
	seen    map[string]seenRequest  // requester and nonce of every proven request in its window
	perKey  map[string]int          // how many of seen are about each key
	swept   time.Time
	started int64 // Unix seconds: a request signed before then may have been served by an earlier run
}

type seenRequest struct {
	time  int64
	keyID string
}

// Bounds of the requests a node remembers to refuse their replays (Node.fresh): in all, and
// about one key (a phone uses a few dozen a minute; this is above one address's rate). Past
// either, new requests of that key, or all, are answered 503 until old ones leave their
// window.
const (
	maxSeen       = 1 << 20
	maxSeenPerKey = 4096
)

// MaxClockAhead bounds how far in the future a request's time may be: it is remembered
// until its time leaves the window, so this bounds how long.
const MaxClockAhead = 10 * time.Second

// ErrBusy: the node cannot take the request now; retry later.
var ErrBusy = errors.New("the node is busy; retry later")

// fresh admits a proven request once, at now (the one clock reading its time was checked
// at): its nonce is remembered until its time leaves the window, with a second's margin,
// and one signed before this node started is refused, since an earlier run may have served
// it. A replayed request (by a relay, or delivered twice) is ErrUnauthorized.
func (n *Node) fresh(a *Auth, keyID string, now time.Time) error {
	if a.Time < n.started {
		return fmt.Errorf("%w: the request was signed before this node started; sign it again", ErrUnauthorized)
	}
	k := string(a.Node.Sign) + string(a.Nonce)
	if err := n.remember(k, a.Time, keyID, now); err != nil {
		return err
	}
	if !n.p.n.store.Shared() {
		return nil
	}
	// Replicas: what another served is in the store, remembered as long (outside the lock:
	// one slow database makes no other request wait for this one).
	ctx, cancel := n.p.n.ctx()
	defer cancel()
	switch err := n.p.n.store.Admit(ctx, []byte(k), time.Unix(a.Time, 0).Add(MaxClockSkew+time.Second)); {
	case errors.Is(err, nodestore.ErrReplay):
		return fmt.Errorf("%w: a replayed request (a replica of this node has served it)", ErrUnauthorized)
	case err != nil:
		return err
	}
	return nil
}

// remember admits request k of keyID, signed at t, to this process's memory (Node.fresh).
func (n *Node) remember(k string, t int64, keyID string, now time.Time) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if now.Sub(n.swept) > time.Second {
		for id, r := range n.seen {
			if now.Sub(time.Unix(r.time, 0)) > MaxClockSkew+time.Second {
				delete(n.seen, id)
				if n.perKey[r.keyID]--; n.perKey[r.keyID] == 0 {
					delete(n.perKey, r.keyID)
				}
			}
		}
		n.swept = now
	}
	if _, ok := n.seen[k]; ok {
		return fmt.Errorf("%w: a replayed request (this node has served it)", ErrUnauthorized)
	}
	if len(n.seen) >= maxSeen || n.perKey[keyID] >= maxSeenPerKey {
		return ErrBusy
	}
	n.seen[k] = seenRequest{t, keyID}
	n.perKey[keyID]++
	return nil
}

type keygenRecord struct {
	requester NodeID
	at        time.Time
}

// OpenNode opens the node's database.
func OpenNode(cfg ServiceConfig) (*Node, error) {
	if cfg.Key == nil {
		return nil, errors.New("tsm: a node service needs its node key")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	// A store that is not shared is served by one process: its memory of the requests it
	// served (Node.fresh) is the node's. Its "serve" lease, which the process's end releases,
	// taken before anything of the file is read (a SQLite file's, by the store itself).
	var n *node
	if cfg.Store != nil {
		n = &node{name: fmt.Sprint(cfg.Store), store: cfg.Store}
	} else {
		var err error
		if n, err = openNode(cfg.Database, true); errors.Is(err, sqlite.ErrServed) {
			return nil, fmt.Errorf("tsm: %w", err)
		} else if err != nil {
			return nil, err
		}
	}
	var release func()
	if !n.store.Shared() && cfg.Store != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		var err error
		if release, err = n.store.Lease(ctx, "serve"); err != nil {
			n.close()
			return nil, fmt.Errorf("tsm: another process serves %s (%v)", n.name, err)
		}
	}
	return &Node{cfg: cfg, release: release, p: newParty(n, cfg.Key), keygens: map[string]keygenRecord{}, seen: map[string]seenRequest{},
		perKey: map[string]int{}, swept: cfg.Now(), started: cfg.Now().Unix()}, nil
}

// ID is the node's public identity.
func (n *Node) ID() NodeID { return n.cfg.Key.ID() }

// Close closes the node's database and lets another process serve it.
func (n *Node) Close() error {
	err := n.p.n.close()
	if n.release != nil {
		n.release()
	}
	return err
}

// Ready reports whether the database answers.
func (n *Node) Ready(ctx context.Context) error { return n.p.n.store.Ping(ctx) }

func (n *Node) isPeer(id NodeID) bool {
	if id.Equal(n.ID()) {
		return true
	}
	for _, p := range n.cfg.Peers {
		if p.Equal(id) {
			return true
		}
	}
	return false
}

// checkRoster: no node twice; every party of the roster is this node, a configured peer,
// or (at the requester's place, if known) the requester, which appears exactly once.
func (n *Node) checkRoster(roster []NodeID, requester NodeID, at int) error {
	seen := 0
	for i, id := range roster {
		for _, o := range roster[:i] {
			if id.Sign != nil && o.Equal(id) {
				return fmt.Errorf("%w: a node appears twice in the roster", ErrForbidden)
			}
		}
		switch {
		case id.Sign == nil:
		case id.Equal(requester) && (at < 0 || at == i):
			seen++
		case !n.isPeer(id):
			return fmt.Errorf("%w: party %d of the roster is not a node this one works with", ErrForbidden, i+1)
		}
	}
	if seen != 1 {
		return fmt.Errorf("%w: the requester is not in the roster once, at its place", ErrForbidden)
	}
	return nil
}

// ErrForbidden is wrapped by refusals of a step that is authenticated but not allowed.
var ErrForbidden = errors.New("forbidden")

// Serve authorizes a step, runs it, and signs the answer with the node key over the
// request and the answer (nodekey.go, "Answers"). Errors wrap ErrUnauthorized,
// ErrNotAParty, ErrForbidden or ErrStaleEpoch when the step is refused for who asks, and
// ErrStore when the node's database failed.
func (n *Node) Serve(ctx context.Context, st *Step) (*StepResult, error) {
	res, err := n.serve(ctx, st)
	if err != nil {
		return nil, storeError(err)
	}
	n.cfg.Key.signAnswer(st.digest(), st.Auth, res)
	return res, nil
}

func (n *Node) serve(ctx context.Context, st *Step) (*StepResult, error) {
	a := st.Auth
	if a == nil {
		return nil, ErrUnauthorized
	}
	now := n.cfg.Now()
	if d := now.Sub(time.Unix(a.Time, 0)); d > MaxClockSkew || d < -MaxClockAhead {
		return nil, fmt.Errorf("%w: the request's time is %s from this node's clock", ErrUnauthorized, d.Round(time.Second))
	}
	digest := st.digest()
	if err := verifyAuth(digest, a, nil, nil); err != nil {
		return nil, err
	}
	if !a.Target.Equal(n.ID()) {
		return nil, fmt.Errorf("%w: the request is for another node", ErrUnauthorized)
	}
	switch st.Op {
	case OpKeyGenStart:
		if err := checkKeyGen(st.KeyGen); err != nil {
			return nil, err
		}
		if err := n.checkRoster(st.Roster, a.Node, -1); err != nil {
			return nil, err
		}
		if err := n.p.admit(a.Node, st.KeyID, "keygen"); err != nil {
			return nil, err
		}
	case OpKeyGenRound2, OpKeyGenFinish:
		// The session is kept under its requester: another node's step finds none. (Steps
		// that prove no share are not recorded, so no one without one fills the record: a
		// relay can run a copy of a key generation on another replica, which fails it, as
		// dropping its steps would.)
	case OpKeyGenDiscard:
		n.mu.Lock()
		r, ok := n.keygens[st.KeyID]
		n.mu.Unlock()
		if !ok || !r.requester.Equal(a.Node) || n.cfg.Now().Sub(r.at) > sessionTTL {
			return nil, fmt.Errorf("%w: only the node that generated a key may discard it, right after", ErrForbidden)
		}
		if err := n.fresh(a, st.KeyID, now); err != nil {
			return nil, err
		}
	default:
		// A party proven at an older epoch may still ask the key's state (a restore asks
		// whether its backup is current, and is told the epoch, signed); nothing else.
		words := n.peerWords(st) // checked before the key is read: its work tells nothing of the key
		owner, err := n.p.checkProof(st)
		if errors.Is(err, ErrNotAParty) && words != nil {
			err = n.markBehind(st, words)
		}
		if err != nil && !(errors.Is(err, ErrStaleEpoch) && (st.Op == OpInfo || st.Op == OpInfoAhead) && owner) {
			return nil, err
		}
		if !owner {
			return nil, fmt.Errorf("%w: only the party that coordinates this key (the phone) acts on it", ErrForbidden)
		}
		// Remembered only once proven at the key's epoch, so that no one without its current
		// share fills the memory (a stale info changes nothing, and is not counted).
		if err == nil {
			if err := n.fresh(a, st.KeyID, now); err != nil {
				return nil, err
			}
		}
		switch st.Op {
		case OpRefreshCommit, OpRefreshAbort:
			if err := n.checkDecision(st); err != nil {
				return nil, err
			}
		case OpSignCommit, OpRefreshStart, OpECDSAStart, OpECDSASetupStart:
			if err := n.checkRoster(st.Roster, a.Node, a.Party); err != nil {
				return nil, err
			}
			if err := n.checkKeyRoster(st); err != nil {
				return nil, err
			}
			if err := n.p.admit(a.Node, st.KeyID, kindOf(st.Op)); err != nil {
				return nil, err
			}
		}
	}
	res, err := n.p.Step(ctx, st)
	if err == nil && st.Op == OpKeyGenFinish {
		n.mu.Lock()
		for id, r := range n.keygens {
			if n.cfg.Now().Sub(r.at) > sessionTTL {
				delete(n.keygens, id)
			}
		}
		n.keygens[st.KeyID] = keygenRecord{a.Node, n.cfg.Now()}
		n.mu.Unlock()
	}
	return res, err
}

// checkProof checks the proof of possession in st.Auth for the key it names: against the
// key's current public shares, its pending ones (a requester that switched first) or an
// older epoch's (then ErrStaleEpoch, once the proof holds). It tells whether the proven
// party is the key's owner (the phone), and never whether the key exists or its epoch
// unless the proof holds.
func (p *party) checkProof(st *Step) (owner bool, err error) {
	a := st.Auth
	var k, next *keyState
	var old [][]byte
	var o int
	var behind uint32
	var marked bool
	err = p.n.view(func(q querier) error { // one state of the key, its pending share and history
		var err error
		if k, err = readKey(q, st.KeyID, st.Scheme); err != nil {
			return err
		}
		switch {
		case a.Epoch == k.Epoch+1: // the requester switched first: its proof is of our pending share
			next, err = readPending(q, st.KeyID, st.Scheme)
		case a.Epoch < k.Epoch:
			old, err = q.History(st.KeyID, a.Epoch) // nil if none is kept
		}
		if err != nil {
			return err
		}
		if o, err = readOwner(q, st.KeyID); err != nil {
			return err
		}
		behind, _, marked, err = q.Behind(st.KeyID)
		return err
	})
	if k != nil {
		defer k.wipe()
	}
	if next != nil {
		defer next.wipe()
	}
	if errors.Is(err, ErrKeyNotFound) {
		// The same answer as to a request that proves nothing, after the same work.
		verifyAuth(st.digest(), a, &keyState{KeyInfo: KeyInfo{Curve: curveOf(st.Scheme)}}, nil)
		return false, ErrNotAParty
	}
	if err != nil {
		return false, err
	}
	prove := k
	if next != nil {
		prove = next
	}
	err = verifyAuth(st.digest(), a, prove, old)
	if err != nil && !errors.Is(err, ErrStaleEpoch) {
		return false, err
	}
	if marked && behind > k.Epoch {
		return a.Party == o, fmt.Errorf("%w: key %s held here at epoch %d, at %d by its other server parties; the key is served here no more until this node's database is restored to epoch %d or later (or tsmnode behind --clear)",
			ErrNodeBehind, st.KeyID, k.Epoch, behind, behind)
	}
	return a.Party == o, err
}

// ErrNodeBehind: this node's state of the key is older than the key (the other server
// parties' signed word and the requester's proof of its share say the key is at a later
// epoch): its database was restored from before a refresh. The node serves the key no more until its state reaches
// that epoch (docs/operations.md, "A node's database restored from before a refresh").
var ErrNodeBehind = errors.New("this node's state of the key is older than the key (its database was restored from before a refresh)")

// peerWords are st's inputs if st is an info step carrying peer server nodes' signed info
// answers about st's key (the phone shows them to a node that refused its proof as of a
// later epoch than the node holds): the answers, each checked against its peer's signature,
// or nil if any is not one.
func (n *Node) peerWords(st *Step) []*StepResult {
	if st.Op != OpInfo || len(st.In) == 0 || len(st.In) > len(n.cfg.Peers) {
		return nil
	}
	var words []*StepResult
	for _, in := range st.In {
		ev, res, err := DecodeEvidence(in)
		if err != nil || (ev.Op != OpInfo && ev.Op != OpInfoAhead) || ev.KeyID != st.KeyID || ev.Scheme != st.Scheme ||
			ev.Auth == nil || res.Info == nil || !slices.ContainsFunc(n.cfg.Peers, ev.Auth.Target.Equal) ||
			slices.ContainsFunc(words, func(w *StepResult) bool { return w.vouched.Equal(ev.Auth.Target) }) {
			return nil
		}
		if VerifyAnswer(ev.Auth.Target, ev, res) != nil {
			return nil
		}
		res.vouched = ev.Auth.Target
		words = append(words, res)
	}
	return words
}

// markBehind, for an info step whose proof this node refused, keeps the key as behind if
// every other server party of the key (by its roster) gave its word, and they agree: the
// key is at the proof's epoch, later than this node's and not its pending one, with public
// shares against which the requester's proof (the key's owner's) holds. Then ErrNodeBehind;
// else ErrNotAParty, as before. (With one other server party, that party alone can have this
// node refuse the key: a denial of service, which the operator undoes with tsmnode behind
// --clear; it gives that party no share and no signature.)
func (n *Node) markBehind(st *Step, words []*StepResult) error {
	a := st.Auth
	var k *keyState
	var pending uint32
	var owner int
	var roster []NodeID
	err := n.p.n.view(func(q querier) (err error) { // one state of the key, its pending refresh and parties
		if k, err = readKey(q, st.KeyID, st.Scheme); err != nil {
			return err
		}
		if pending, _, err = readPendingEpoch(q, st.KeyID); err != nil {
			return err
		}
		owner, roster, err = readParties(q, st.KeyID)
		return err
	})
	if k != nil {
		defer k.wipe()
	}
	if err != nil || roster == nil || a.Party != owner || a.Epoch <= k.Epoch || a.Epoch == pending {
		return ErrNotAParty
	}
	need := map[string]bool{} // every server party but this node, by node ID
	for i, id := range roster {
		if i != owner && i != k.NodeIndex {
			need[id.String()] = true
		}
	}
	first := words[0]
	for _, w := range words {
		if !need[w.vouched.String()] || w.Info.Epoch != a.Epoch || !bytes.Equal(w.Info.PublicKey, k.PublicKey) ||
			!slices.EqualFunc(w.PublicShares, first.PublicShares, bytes.Equal) || len(w.PublicShares) != len(k.publicShares) {
			return ErrNotAParty
		}
		delete(need, w.vouched.String())
	}
	if len(need) != 0 {
		return ErrNotAParty
	}
	at := &keyState{KeyInfo: k.KeyInfo, publicShares: first.PublicShares}
	at.Epoch = a.Epoch
	if verifyAuth(st.digest(), a, at, nil) != nil {
		return ErrNotAParty
	}
	if err := n.p.n.write(func(tx querier) error { return tx.SetBehind(st.KeyID, a.Epoch, first.vouched.String()) }); err != nil {
		return err
	}
	return fmt.Errorf("%w: key %s held here at epoch %d, at %d by its other server parties and the requester's share; the key is served here no more until this node's database is restored to epoch %d or later",
		ErrNodeBehind, st.KeyID, k.Epoch, a.Epoch, a.Epoch)
}

// checkDecision lets a node that is not a refresh's decider switch to, or discard, its
// prepared share only on the decider's signed word (docs/tsm-protocol.md, "Recovery"): the
// step carries, as its one input, the decider's signed answer to an info step naming the
// session, which must say the decider committed it (for a switch) or aborted it (for a
// discard). That outcome is final on the decider, so the word need not be fresh. A discard
// of a session that is not prepared here only ends it on this node.
func (n *Node) checkDecision(st *Step) error {
	var decider string
	var epoch uint32
	var prepared bool
	var k *keyState
	var owner int
	var roster []NodeID
	err := n.p.n.view(func(q querier) error { // one state of the prepared refresh and its key
		var err error
		if decider, epoch, prepared, err = readPendingDecider(q, st.KeyID, st.Session); err != nil || !prepared {
			return err
		}
		if k, err = readKey(q, st.KeyID, st.Scheme); err != nil {
			return err
		}
		owner, roster, err = readParties(q, st.KeyID)
		return err
	})
	if err != nil || !prepared {
		return err
	}
	k.wipe()
	d := deciderIndex(owner)
	if d == k.NodeIndex {
		// This node decides. A switch only for the holder of the refresh's new share (the
		// phone, once it prepared; nobody else has it before its backup leaves the phone),
		// never for a holder of the current one.
		if st.Op == OpRefreshCommit && st.Auth.Epoch != epoch {
			return fmt.Errorf("%w: the refresh is switched only by the holder of its new share", ErrForbidden)
		}
		return nil
	}
	var deciders []NodeID // whose word counts: the recorded decider, else the key's, else a peer
	switch {
	case decider != "":
		id, err := ParseNodeID(decider)
		if err != nil {
			return err
		}
		deciders = []NodeID{id}
	case d < len(roster):
		deciders = []NodeID{roster[d]}
	default:
		deciders = n.cfg.Peers
	}
	want := Committed
	if st.Op == OpRefreshAbort {
		want = Aborted
	}
	if len(st.In) != 1 {
		return fmt.Errorf("%w: switching or discarding a prepared refresh needs its decider's signed word", ErrForbidden)
	}
	ev, res, err := DecodeEvidence(st.In[0])
	if err != nil {
		return fmt.Errorf("%w: %w", ErrForbidden, err)
	}
	// The word is the decider's answer to info naming the session, or, for a switch, to the
	// switch it took (which answers Committed).
	word := ev.Op == OpInfo || ev.Op == OpRefreshCommit && want == Committed
	if !word || ev.KeyID != st.KeyID || ev.Scheme != st.Scheme || !bytes.Equal(ev.Session, st.Session) ||
		!slices.ContainsFunc(deciders, ev.Auth.Target.Equal) {
		return fmt.Errorf("%w: the decider's word is about another step, or not the decider's", ErrForbidden)
	}
	if VerifyAnswer(ev.Auth.Target, ev, res) != nil {
		return fmt.Errorf("%w: the decider's word is not signed by it", ErrForbidden)
	}
	if res.Done != want {
		return fmt.Errorf("%w: the decider did not decide this refresh that way", ErrForbidden)
	}
	return nil
}

// checkKeyRoster: a refresh's or signature's roster is the key's, as its generation named
// it, but at the owner's place (a restored phone has a node ID of its own).
func (n *Node) checkKeyRoster(st *Step) error {
	var owner int
	var roster []NodeID
	err := n.p.n.view(func(q querier) (err error) {
		owner, roster, err = readParties(q, st.KeyID)
		return err
	})
	if err != nil || roster == nil {
		return err
	}
	if len(st.Roster) != len(roster) {
		return fmt.Errorf("%w: the roster is not the key's", ErrForbidden)
	}
	for i, id := range st.Roster {
		if i != owner && id.Sign != nil && !id.Equal(roster[i]) { // an absent signer is left out
			return fmt.Errorf("%w: party %d of the roster is not the key's", ErrForbidden, i+1)
		}
	}
	return nil
}

// AuthorizeStep fills in st.Auth as a coordinator does (docs/tsm-api.md, "Authorization"):
// for the node target, signed with key, and for a step on an existing key, a proof of
// possession of the share that backup (a BackupShare result) holds. For key generation
// steps backup is nil.
func AuthorizeStep(st *Step, key *NodeKey, target NodeID, backup []byte) error {
	a := newAuth(key.ID(), target)
	digest := st.digest()
	if backup != nil {
		k, err := decodeBackup(backup)
		if err != nil {
			return err
		}
		defer k.wipe()
		if k.additive {
			sh, err := k.toShamir()
			if err != nil {
				return err
			}
			defer sh.wipe()
			k = sh
		}
		if err := proveShare(digest, a, k); err != nil {
			return err
		}
	}
	key.signAuth(digest, a)
	st.Auth = a
	return nil
}

// VerifyAnswer checks that res is node target's signed answer to st (as AuthorizeStep
// made it): for tools and tests that speak for a phone.
func VerifyAnswer(target NodeID, st *Step, res *StepResult) error {
	return verifyAnswer(target, st.digest(), st.Auth, res)
}

// EmbeddedNodeKey reads the identity an embedded node keeps in its database (made on first
// use): for tools and tests that speak for a phone.
func EmbeddedNodeKey(database string) (*NodeKey, error) {
	n, err := openNode(database)
	if err != nil {
		return nil, err
	}
	defer n.close()
	return n.nodeKey()
}

// checkKeyGen validates key generation parameters before anything is kept in memory.
func checkKeyGen(kg *KeyGenParams) error {
	switch {
	case kg == nil:
		return errors.New("key generation needs its parameters")
	case kg.Parties < 2 || kg.Parties > maxPlayers || kg.Threshold < 1 || kg.Threshold >= kg.Parties || kg.Index < 0 || kg.Index >= kg.Parties:
		return errors.New("key generation parameters out of range")
	case len(kg.Description) > maxDescription || !utf8.ValidString(kg.Description):
		return fmt.Errorf("a description is UTF-8 of at most %d bytes", maxDescription)
	case len(kg.ChainCode) != chainCodeLen:
		return errors.New("key generation needs a chain code of 32 bytes")
	}
	return nil
}
