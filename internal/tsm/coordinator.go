package tsm

// The coordinator runs the protocols across the parties of a client (docs/tsm-protocol.md):
// it chooses session IDs, carries messages from party to party, compares what the parties
// say in public, and drives the two-phase commit of a refresh. It never holds a share; the
// private messages it carries are for their recipients (over a network they are sealed to
// them).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/sharevault/sharevault/internal/tsm/protocol"
)

var keyIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newKeyID returns 26 random characters of a-z and 2-7 (128 bits).
func newKeyID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return keyIDEncoding.EncodeToString(b)
}

func newSession() []byte {
	b := make([]byte, protocol.SessionLen)
	rand.Read(b)
	return b
}

// stepTimeout bounds one step on one party.
const stepTimeout = 30 * time.Second

func (s *schemeClient) step(i int, st *Step) (*StepResult, error) { return s.stepProving(i, st, nil) }

// stepProving is step, proving to a remote node the share prover (nil: the phone's stored
// one). The decider takes a refresh's switch only from the holder of its new share, so the
// phone proves that one there.
func (s *schemeClient) stepProving(i int, st *Step, prover *keyState) (*StepResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	st.Scheme = s.scheme
	var target NodeID
	if rp, remote := s.c.peers[i].(*remotePeer); remote {
		var err error
		if target, err = rp.ID(ctx); err != nil {
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		if err := s.c.authorize(st, target, prover); err != nil {
			return nil, fmt.Errorf("node %d: %s: %w", i, st.Op, err)
		}
	}
	// A node a refresh ahead of this phone (its decider switched, the phone not yet) answers
	// info to the phone's older proof, and recovery then switches the phone.
	res, err := s.c.peers[i].Step(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("node %d: %s: %w", i, st.Op, err)
	}
	if p, here := s.c.peers[i].(*party); here {
		res.vouched = p.key.ID()
	}
	return res, nil
}

// showBehind, after an info round where a server node refused the phone's proof while the
// others answered, signed, at the phone's epoch, shows the first the others' answers
// (docs/tsm-api.md, "A node behind its peers"): a node whose database went back before a
// refresh then says so (ErrNodeBehind), which this returns, and serves the key no more.
// Any other answer leaves the round's errors as they were (nil).
func (s *schemeClient) showBehind(steps []*Step, out []*StepResult, errs []error) error {
	for i, err := range errs {
		st := steps[i]
		if !errors.Is(err, ErrNotAParty) || st == nil || st.Auth == nil || (st.Op != OpInfo && st.Op != OpInfoAhead) {
			continue
		}
		var words [][]byte
		for j, res := range out {
			if _, remote := s.c.peers[j].(*remotePeer); !remote || res == nil || res.Info == nil || res.Info.Epoch != st.Auth.Epoch {
				continue
			}
			word, err := EncodeEvidence(steps[j], res)
			if err != nil {
				return nil
			}
			words = append(words, word)
		}
		if len(words) == 0 {
			continue
		}
		if _, err := s.step(i, &Step{Op: OpInfo, KeyID: st.KeyID, In: words}); errors.Is(err, ErrNodeBehind) {
			return err
		}
	}
	return nil
}

// authorize signs st with the embedded node's key and, for an existing key, proves
// possession of that node's share of it (of prover, if given, else the stored one).
func (c *Client) authorize(st *Step, target NodeID, prover *keyState) error {
	if c.local == nil {
		return errors.New("a client with remote nodes needs an embedded node to speak for it")
	}
	a := newAuth(c.local.key.ID(), target)
	digest := st.digest()
	switch st.Op {
	case OpKeyGenStart, OpKeyGenRound2, OpKeyGenFinish, OpKeyGenDiscard:
	default:
		k := prover
		if k == nil {
			var err error
			if k, err = c.local.n.key(st.KeyID, st.Scheme); err != nil {
				return err
			}
			defer k.wipe()
		}
		if err := proveShare(digest, a, k); err != nil {
			return err
		}
	}
	c.local.key.signAuth(digest, a)
	st.Auth = a
	return nil
}

// roster returns the parties' node IDs by identifier: node i of the client is party
// index(i)+1; parties the client lacks stay zero.
func (s *schemeClient) roster(n int, index func(i int) int) ([]NodeID, error) {
	r := make([]NodeID, n)
	for i, p := range s.c.peers {
		ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
		id, err := p.ID(ctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		if j := index(i); j >= 0 && j < n {
			r[j] = id
		}
	}
	return r, nil
}

// each runs a step on every node, built by mk, all at once (a phone far from its nodes
// waits one round trip, not one per node), and returns the results in node order, or the
// error of the first node in that order that failed.
func (s *schemeClient) each(mk func(i int) *Step) ([]*StepResult, error) {
	return s.eachProving(mk, nil)
}

// eachProving is each, proving to remote nodes the share prover (stepProving).
func (s *schemeClient) eachProving(mk func(i int) *Step, prover *keyState) ([]*StepResult, error) {
	return s.atOnce(mk, prover, nil)
}

// atOnce is eachProving for the nodes i whose mk(i) is not nil (the others' results are
// nil); beside, if not nil, runs on the caller's goroutine while the steps are in flight.
func (s *schemeClient) atOnce(mk func(i int) *Step, prover *keyState, beside func()) ([]*StepResult, error) {
	out := make([]*StepResult, len(s.c.peers))
	errs := make([]error, len(s.c.peers))
	steps := make([]*Step, len(s.c.peers))
	for i := range steps {
		steps[i] = mk(i)
	}
	var wg sync.WaitGroup
	panics := make([]any, len(s.c.peers))
	run := func(i int) {
		defer func() { panics[i] = recover() }() // carried to the caller, as if it ran there
		out[i], errs[i] = s.stepProving(i, steps[i], prover)
	}
	// Remote nodes' steps wait on the network: each on its own goroutine. The parties in
	// this process compute: here, one after the other, while those wait (a goroutine of
	// their own would grow a stack for SQLite's deep calls every time).
	for i, p := range s.c.peers {
		if _, remote := p.(*remotePeer); remote && steps[i] != nil {
			wg.Go(func() { run(i) })
		}
	}
	for i, p := range s.c.peers {
		if _, remote := p.(*remotePeer); !remote && steps[i] != nil {
			run(i)
		}
	}
	if beside != nil {
		beside()
	}
	wg.Wait()
	for _, p := range panics {
		if p != nil {
			panic(p)
		}
	}
	if err := s.showBehind(steps, out, errs); err != nil {
		return nil, err
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *schemeClient) multiNode() error {
	n := len(s.c.peers)
	if n < 2 || n > maxPlayers {
		return fmt.Errorf("tsm: this needs 2 to %d nodes, the client has %d", maxPlayers, n)
	}
	seen := map[string]bool{}
	for _, nc := range s.c.cfg.Nodes {
		p := nc.URL
		if p == "" {
			p, _ = filepath.Abs(nc.Database)
		}
		if seen[p] {
			return fmt.Errorf("tsm: node %s is configured twice", p)
		}
		seen[p] = true
	}
	return nil
}

// others returns every message of ms but the i-th party's.
func others(ms [][]byte, i int) [][]byte {
	var out [][]byte
	for j, m := range ms {
		if j != i {
			out = append(out, m)
		}
	}
	return out
}

// route delivers party from's private envelopes to their recipients' inboxes, by
// identifier, after checking that each is from's own. The coordinator reads only the
// envelope's route; what is inside is sealed to the recipient.
func route(inbox map[int][][]byte, out [][]byte, from int, session []byte, roster []NodeID) error {
	for _, b := range out {
		to, err := checkSender(b, session, from, roster)
		if err != nil {
			return err
		}
		if to == 0 {
			return fmt.Errorf("party %d handed over a broadcast where private messages belong", from)
		}
		inbox[to] = append(inbox[to], b)
	}
	return nil
}

// broadcast checks that party from answered exactly one broadcast of its own and returns it.
func broadcast(r *StepResult, from int, session []byte, roster []NodeID) ([]byte, error) {
	if len(r.Out) != 1 {
		return nil, fmt.Errorf("party %d answered %d round-one messages", from, len(r.Out))
	}
	if to, err := checkSender(r.Out[0], session, from, roster); err != nil || to != 0 {
		return nil, fmt.Errorf("party %d answered a round-one message that is not its own broadcast", from)
	}
	return r.Out[0], nil
}

// GenerateKey creates a key that needs every node of the client to sign (n-of-n) and
// returns its ID. Node i of the configuration is party i+1.
func (s *schemeClient) GenerateKey(description string) (string, error) {
	return s.GenerateKeyThreshold(description, len(s.c.peers)-1)
}

// GenerateKeyThreshold creates a key among the client's n nodes, by distributed key
// generation, that any threshold+1 of them can sign with.
func (s *schemeClient) GenerateKeyThreshold(description string, threshold int) (string, error) {
	if err := s.multiNode(); err != nil {
		return "", err
	}
	n := len(s.c.peers)
	if threshold < 1 || threshold >= n {
		return "", fmt.Errorf("tsm: threshold %d out of range 1..%d for %d nodes", threshold, n-1, n)
	}
	keyID, session := newKeyID(), newSession()
	chain := make([]byte, chainCodeLen)
	rand.Read(chain)
	created := time.Now().Truncate(time.Second).UTC()
	fail := func(err error) (string, error) {
		for i := range s.c.peers { // a key some nodes stored before another failed
			s.step(i, &Step{Op: OpKeyGenDiscard, KeyID: keyID})
		}
		return "", fmt.Errorf("tsm: generate key: %w", err)
	}
	roster, err := s.roster(n, func(i int) int { return i })
	if err != nil {
		return "", fmt.Errorf("tsm: generate key: %w", err)
	}
	r1, err := s.each(func(i int) *Step {
		return &Step{Op: OpKeyGenStart, KeyID: keyID, Session: session, Roster: roster, KeyGen: &KeyGenParams{Threshold: threshold, Parties: n,
			Index: i, Description: description, Created: created, ChainCode: chain}}
	})
	if err != nil {
		return fail(err)
	}
	bcast := make([][]byte, n)
	for i, r := range r1 {
		if bcast[i], err = broadcast(r, i+1, session, roster); err != nil {
			return fail(fmt.Errorf("node %d: %w", i, err))
		}
	}
	inbox := map[int][][]byte{}
	r2, err := s.each(func(i int) *Step {
		return &Step{Op: OpKeyGenRound2, KeyID: keyID, Session: session, In: others(bcast, i)}
	})
	if err != nil {
		return fail(err)
	}
	for i, r := range r2 {
		if err := route(inbox, r.Out, i+1, session, roster); err != nil {
			return fail(fmt.Errorf("node %d: %w", i, err))
		}
	}
	done, err := s.each(func(i int) *Step { return &Step{Op: OpKeyGenFinish, KeyID: keyID, Session: session, In: inbox[i+1]} })
	if err != nil {
		return fail(err)
	}
	pub, err := agreeOn(done)
	if err != nil {
		return fail(err)
	}
	s.keepFrom(keyID, done, pub, roster)
	return keyID, nil
}

// agreeOn checks that parties' states are of one key: one epoch (else ErrStaleEpoch), one
// public key and one set of public shares, distinct parties. It returns the public package.
func agreeOn(states []*StepResult) (*protocol.Public, error) {
	first := states[0].Info
	var maxEpoch uint32
	for _, st := range states {
		maxEpoch = max(maxEpoch, st.Info.Epoch)
	}
	seen := map[int]bool{}
	for i, st := range states {
		k := st.Info
		switch {
		case k.Epoch < maxEpoch:
			return nil, fmt.Errorf("node %d (party %d): %w (epoch %d, others at %d)", i, k.NodeIndex+1, ErrStaleEpoch, k.Epoch, maxEpoch)
		case k.Players != first.Players || k.Threshold != first.Threshold || seen[k.NodeIndex]:
			return nil, fmt.Errorf("node %d: the client's nodes do not hold key %q as one set of parties", i, k.KeyID)
		case !bytes.Equal(k.PublicKey, first.PublicKey):
			return nil, fmt.Errorf("node %d: holds another public key for this key ID", i)
		case len(st.PublicShares) != len(states[0].PublicShares):
			return nil, fmt.Errorf("node %d: another number of public shares", i)
		}
		for j, p := range st.PublicShares {
			if !bytes.Equal(p, states[0].PublicShares[j]) {
				return nil, fmt.Errorf("node %d: public share of party %d differs from node 0's", i, j+1)
			}
		}
		seen[k.NodeIndex] = true
	}
	pub := &protocol.Public{Curve: protocol.Curve(first.Curve), Threshold: first.Threshold, PublicKey: first.PublicKey, Shares: states[0].PublicShares}
	return pub, pub.Check()
}

// states recovers any refresh left half done, then returns every node's public state of
// keyID, checked to agree.
func (s *schemeClient) states(keyID string) ([]*StepResult, *protocol.Public, error) {
	if err := s.multiNode(); err != nil {
		return nil, nil, err
	}
	unlock, err := s.c.opLock()
	if err != nil {
		return nil, nil, err
	}
	sts, acted, err := s.recoverStates(keyID)
	unlock()
	return s.statesAfter(keyID, sts, acted, err)
}

// signers is states with the roster of the key's parties by the nodes' answers: what a
// signature starts from.
func (s *schemeClient) signers(keyID string) ([]*StepResult, *protocol.Public, []NodeID, error) {
	sts, pub, err := s.states(keyID)
	if err != nil {
		return nil, nil, nil, err
	}
	roster, err := s.roster(pub.Parties(), func(i int) int { return sts[i].Info.NodeIndex })
	if err != nil {
		return nil, nil, nil, err
	}
	return sts, pub, roster, nil
}

// kept is a key's state as the last info round of a client found it: what its signatures
// start from, without an info round, while the phone's own share of the key is the one it
// was kept with and nothing is pending there. The nodes' answers check it: a node at
// another epoch refuses the phone's proof (ErrStaleEpoch), and a share or signature that
// does not verify under the kept public package fails the signature.
type kept struct {
	sts    []*StepResult
	pub    *protocol.Public
	roster []NodeID
	epoch  uint32 // the phone's
}

// signFrom runs sign from the key's kept state, if there is one for the phone's current
// share, and from a new info round (with its recovery check) if not, or if the nodes say
// the kept one has moved on (a refresh the phone has not seen, a key gone).
func (s *schemeClient) signFrom(keyID string, sign func(sts []*StepResult, pub *protocol.Public, roster []NodeID) error) error {
	if k := s.keptState(keyID); k != nil {
		// A node that refuses the kept state as stale, or the phone's proof as no party's
		// (its state of the key went back: showBehind), is asked again by an info round.
		err := sign(k.sts, k.pub, k.roster)
		if !errors.Is(err, ErrStaleEpoch) && !errors.Is(err, ErrKeyNotFound) && !errors.Is(err, ErrNotAParty) {
			return err
		}
		s.keep(keyID, nil)
	}
	sts, pub, roster, err := s.signers(keyID)
	if err != nil {
		return err
	}
	s.keepFrom(keyID, sts, pub, roster)
	return sign(sts, pub, roster)
}

// keptStates holds kept states in this process's memory, for every client (an app opens a
// client per operation): by keptKey, at most maxKept.
var keptStates = struct {
	sync.Mutex
	m map[string]*kept
}{m: map[string]*kept{}}

// maxKept bounds the keys whose state the process keeps.
const maxKept = 1024

// keptKey names a key's state for this client's nodes: the phone's node, the scheme, the
// key, and each node in order (a remote one by URL, one in this process by its node ID).
func (s *schemeClient) keptKey(keyID string) string {
	k := s.c.local.key.ID().String() + "/" + string(s.scheme) + "/" + keyID
	for _, p := range s.c.peers {
		switch p := p.(type) {
		case *remotePeer:
			k += "/" + p.url
		case *party:
			k += "/" + p.key.ID().String()
		}
	}
	return k
}

// keepFrom keeps the nodes' states sts of keyID (the phone's among them, whose epoch the
// kept state is of), with the public package and roster they give.
func (s *schemeClient) keepFrom(keyID string, sts []*StepResult, pub *protocol.Public, roster []NodeID) {
	if li := s.localIndex(); li >= 0 {
		s.keep(keyID, &kept{sts: sts, pub: pub, roster: roster, epoch: sts[li].Info.Epoch})
	}
}

func (s *schemeClient) keep(keyID string, k *kept) {
	keptStates.Lock()
	defer keptStates.Unlock()
	if k == nil {
		delete(keptStates.m, s.keptKey(keyID))
		return
	}
	if len(keptStates.m) >= maxKept {
		clear(keptStates.m)
	}
	keptStates.m[s.keptKey(keyID)] = k
}

// keptState is the kept state of keyID if the phone's share is still the one it was kept
// with (its epoch and public package) and no refresh is pending on the phone.
func (s *schemeClient) keptState(keyID string) *kept {
	if s.c.local == nil {
		return nil
	}
	keptStates.Lock()
	k := keptStates.m[s.keptKey(keyID)]
	keptStates.Unlock()
	if k == nil {
		return nil
	}
	me := s.settled(keyID)
	if me == nil {
		return nil
	}
	defer me.wipe()
	if me.Epoch != k.epoch || !bytes.Equal(me.PublicKey, k.pub.PublicKey) || !slices.EqualFunc(me.publicShares, k.pub.Shares, bytes.Equal) {
		return nil
	}
	return k
}

// settled is the phone's own key state of keyID (wipe it when done), if the phone holds
// the key and no refresh of it is pending there: what a kept state, a commitment handed
// out ahead or a presignature is used with.
func (s *schemeClient) settled(keyID string) *keyState {
	if s.c.local == nil {
		return nil
	}
	k, err := s.c.local.n.key(keyID, s.scheme)
	if err != nil {
		return nil
	}
	if pending, _, err := s.c.local.n.pendingEpoch(keyID); err != nil || pending != 0 {
		k.wipe()
		return nil
	}
	return k
}

// statesLocked is states for a caller that holds the op lock.
func (s *schemeClient) statesLocked(keyID string) ([]*StepResult, *protocol.Public, error) {
	if err := s.multiNode(); err != nil {
		return nil, nil, err
	}
	sts, acted, err := s.recoverStates(keyID)
	return s.statesAfter(keyID, sts, acted, err)
}

// statesAfter is the states after a recovery check: its own info round when it found
// nothing to do (a check that costs no round trip of its own), else a new one.
func (s *schemeClient) statesAfter(keyID string, sts []*StepResult, acted bool, err error) ([]*StepResult, *protocol.Public, error) {
	if err != nil {
		return nil, nil, err
	}
	if acted {
		return s.infos(keyID)
	}
	pub, err := agreeOn(sts)
	return sts, pub, err
}

func (s *schemeClient) infos(keyID string) ([]*StepResult, *protocol.Public, error) {
	sts, err := s.each(func(int) *Step { return &Step{Op: OpInfo, KeyID: keyID} })
	if err != nil {
		return nil, nil, err
	}
	pub, err := agreeOn(sts)
	return sts, pub, err
}

// Recover finishes or undoes a refresh of keyID that a crash or a lost message left half
// done, the same way on every party. A refresh is decided by one transaction on one node,
// its **decider** (the key's server party with the lowest identifier): its switch decides
// the refresh, its discard undoes it. Recover decides it there if it is still open (switch,
// if this phone already holds the new share; else discard), reads the decider's signed
// state again, and makes every other party, this phone too, follow it. Two devices that
// hold the phone's share (a lost phone that comes back beside the restored one) may both
// recover: the decider serializes them, and both follow what it did. docs/tsm-protocol.md,
// "Recovery", says why no relay can steer it.
func (s *schemeClient) Recover(keyID string) error {
	unlock, err := s.c.opLock()
	if err != nil {
		return err
	}
	defer unlock()
	return s.recoverLocked(keyID)
}

// decider returns the place among the client's peers of the key's decider (the party of
// lowest identifier but the phone's, li), by the states sts, or -1 if the client lacks it.
func decider(sts []*StepResult, li int) int {
	want := deciderIndex(sts[li].Info.NodeIndex)
	for i, st := range sts {
		if st.Info.NodeIndex == want {
			return i
		}
	}
	return -1
}

// localIndex is the place of the client's embedded node (the phone) among its peers.
func (s *schemeClient) localIndex() int {
	for i, p := range s.c.peers {
		if s.c.local != nil && p == Peer(s.c.local) {
			return i
		}
	}
	return -1
}

func (s *schemeClient) recoverLocked(keyID string) error {
	_, _, err := s.recoverStates(keyID)
	return err
}

// recoverStates is recoverLocked, which also returns its round of info answers and whether
// it acted on a refresh (the answers are then out of date).
func (s *schemeClient) recoverStates(keyID string) ([]*StepResult, bool, error) {
	sts, err := s.each(func(int) *Step { return &Step{Op: OpInfo, KeyID: keyID} })
	if err != nil {
		return nil, false, err
	}
	var sessions [][]byte // the refreshes some party has prepared, each once
	for _, st := range sts {
		if st.Pending != 0 && !slices.ContainsFunc(sessions, func(o []byte) bool { return bytes.Equal(o, st.PendingOf) }) {
			sessions = append(sessions, st.PendingOf)
		}
	}
	if len(sessions) == 0 {
		return sts, false, nil
	}
	li := s.localIndex()
	if li < 0 {
		return nil, false, errors.New("tsm: a refresh of this key is unfinished; only a phone with its share can finish it")
	}
	d := decider(sts, li)
	if d < 0 {
		// Without the decider nothing can be decided; the current shares are untouched by a
		// prepared one, so the parties here still sign together (a threshold key without
		// that node), and the refresh is finished when it is back.
		return sts, false, nil
	}
	for _, session := range sessions {
		word, ev, err := s.word(d, keyID, session)
		if err != nil {
			return nil, true, err
		}
		if word.Done == 0 {
			// Open: switch the decider if it has this refresh prepared and this phone already
			// holds its new share (restored from the backup it uploaded, or switched under an
			// earlier release, which switched the phone first): the decider's signed word
			// names the public shares it prepared, and a share at the refresh's epoch with
			// others is another refresh's, undone. Otherwise undo it, prepared there or not.
			// Nothing is decided on a refusal, which is not signed: a refused switch is
			// retried by the next recovery, never turned into an undo.
			op := OpRefreshAbort
			if word.Pending != 0 && bytes.Equal(word.PendingOf, session) && sts[li].Pending == 0 && sts[li].Info.Epoch == word.Pending {
				// A decider of an earlier release names none: the switch is asked, which it
				// takes only from a proof of its pending share (and a refusal undoes nothing).
				if len(word.PendingShares) == 0 || slices.EqualFunc(sts[li].PublicShares, word.PendingShares, bytes.Equal) {
					op = OpRefreshCommit
				}
			}
			_, err := s.step(d, &Step{Op: op, KeyID: keyID, Session: session})
			if err != nil {
				return nil, true, fmt.Errorf("tsm: deciding an interrupted refresh: %w", err)
			}
			if word, ev, err = s.word(d, keyID, session); err != nil {
				return nil, true, err
			}
			if word.Done == 0 {
				return nil, true, errors.New("tsm: the refresh's decider has not decided it; retry")
			}
		}
		op := OpRefreshAbort
		if word.Done == Committed {
			op = OpRefreshCommit
		}
		for i, st := range sts {
			if i == d || st.Pending == 0 || !bytes.Equal(st.PendingOf, session) {
				continue
			}
			if _, err := s.step(i, &Step{Op: op, KeyID: keyID, Session: session, In: [][]byte{ev}}); err != nil {
				return nil, true, fmt.Errorf("tsm: finishing an interrupted refresh: %w", err)
			}
		}
	}
	if me, err := s.c.local.n.key(keyID, s.scheme); err == nil {
		defer me.wipe()
		if e, err := s.step(d, &Step{Op: OpInfo, KeyID: keyID}); err == nil && me.Epoch > e.Info.Epoch {
			return nil, true, fmt.Errorf("tsm: this phone holds the share of a refresh to epoch %d that was undone (the key is at %d): delete it here and restore the key from the vault", me.Epoch, e.Info.Epoch)
		}
	}
	return nil, true, nil
}

// word asks the decider (peer d) how it finished a refresh session, and returns its answer
// and, as the other parties need it, the evidence of it: the step and the signed answer.
func (s *schemeClient) word(d int, keyID string, session []byte) (*StepResult, []byte, error) {
	st := &Step{Op: OpInfo, KeyID: keyID, Session: session}
	res, err := s.step(d, st)
	if err != nil {
		return nil, nil, err
	}
	ev, err := EncodeEvidence(st, res)
	return res, ev, err
}

// CurrentEpoch asks every node of the client but its embedded one for the epoch of the
// key a backup holds a share of, proving to each that it is that party with the backup's
// share (nothing is restored). A node past the backup's epoch answers ErrStaleEpoch.
func (s *schemeClient) CurrentEpoch(backup []byte) (uint32, error) {
	k, err := decodeBackup(backup)
	if err != nil {
		return 0, err
	}
	defer k.wipe()
	if k.additive {
		sh, err := k.toShamir()
		if err != nil {
			return 0, fmt.Errorf("%w: %w", ErrBadBackup, err)
		}
		defer sh.wipe()
		k = sh
	}
	// Every node is asked at once: a phone far from its nodes waits one round trip. A remote
	// node of an EdDSA key also hands out a commitment for the phone's next signature, if
	// the phone holds none of it (a restore then signs in one round trip).
	session := newSession()
	sts := make([]*StepResult, len(s.c.peers))
	errs := make([]error, len(s.c.peers))
	var wg sync.WaitGroup
	for i, p := range s.c.peers {
		if p == Peer(s.c.local) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			op := OpInfo
			if rp, remote := p.(*remotePeer); remote && k.Scheme == EdDSA && s.c.local != nil &&
				!haveCommitment(s.c.local.key.ID(), k.KeyID, rp.url, k.Epoch) {
				op = OpInfoAhead
			}
			sts[i], errs[i] = s.askEpoch(p, k, op, session)
		}()
	}
	wg.Wait()
	var epoch uint32
	asked := 0
	for i, p := range s.c.peers {
		if p == Peer(s.c.local) {
			continue
		}
		if errs[i] != nil {
			return 0, fmt.Errorf("node %d: %w", i, errs[i])
		}
		epoch = max(epoch, sts[i].Info.Epoch)
		asked++
	}
	if asked == 0 {
		return 0, errors.New("tsm: no other node to ask")
	}
	if epoch == k.Epoch {
		s.keepBackup(k, sts, session)
	}
	if epoch > k.Epoch {
		return epoch, fmt.Errorf("%w (backup at epoch %d, the key is at %d)", ErrStaleEpoch, k.Epoch, epoch)
	}
	return epoch, nil
}

// askEpoch asks node p the state of the key a backup holds a share of, proving with it
// (op is OpInfo, or OpInfoAhead in session).
func (s *schemeClient) askEpoch(p Peer, k *keyState, op Op, session []byte) (*StepResult, error) {
	st := &Step{Op: op, KeyID: k.KeyID, Scheme: k.Scheme}
	if op == OpInfoAhead {
		st.Session = session
	}
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	target, err := p.ID(ctx)
	if err == nil {
		err = s.c.authorize(st, target, k)
	}
	if lp, local := p.(*party); local && err == nil {
		_, err = lp.checkProof(st) // an in-process node checks the proof as a remote one does
		if errors.Is(err, ErrStaleEpoch) {
			err = nil // and tells the epoch
		}
	}
	if err != nil {
		return nil, err
	}
	res, err := p.Step(ctx, st)
	if errors.Is(err, ErrStaleEpoch) {
		// A node tells the owner's stale backup its epoch, signed; a refusal instead is a
		// relay's, or another server's at the URL.
		return nil, fmt.Errorf("refused the backup's share as stale without telling its epoch, which a TSM node does not do (a relay, or another server at its URL): %s", err)
	}
	return res, err
}

// keepBackup keeps the state the nodes answered for the key of backup k, at its epoch, as
// the state a signature of the phone starts from once k is its share (a restore, or the
// phone's own share backed up): the phone's place is k's own, and the kept state is used
// only while the phone's share is k's (keptState), if nothing is pending anywhere. The
// commitments the nodes handed out in session are kept for the phone's next signature.
func (s *schemeClient) keepBackup(k *keyState, sts []*StepResult, session []byte) {
	li := s.localIndex()
	if li < 0 {
		return
	}
	full := slices.Clone(sts)
	info := k.KeyInfo
	full[li] = &StepResult{Info: &info, PublicShares: k.publicShares}
	pub, err := agreeOn(full)
	if err != nil {
		return
	}
	roster, err := s.roster(pub.Parties(), func(i int) int { return full[i].Info.NodeIndex })
	if err != nil {
		return
	}
	for i, st := range full {
		rp, remote := s.c.peers[i].(*remotePeer)
		if !remote || len(st.Out) != 1 {
			continue
		}
		from := st.Info.NodeIndex + 1
		if m, err := readAhead(i, st.Out[0], session, roster, from, st.vouched); err == nil {
			cacheCommitment(s.c.local.key.ID(), k.KeyID, cachedCommitment{epoch: k.Epoch, url: rp.url, node: roster[from-1], c: *m.Commitment})
		}
	}
	if !slices.ContainsFunc(full, func(st *StepResult) bool { return st.Pending != 0 }) {
		s.keepFrom(k.KeyID, full, pub, roster)
	}
}

// VerifyShare proves that the shares of keyID work. On a client with one node it checks
// that node's share against its own copy of the public shares. With several, each node
// checks its own share, and their public states must agree at one epoch: a share restored
// from before a refresh gives ErrStaleEpoch.
func (s *schemeClient) VerifyShare(keyID string) error {
	if len(s.c.peers) == 1 {
		_, err := s.step(0, &Step{Op: OpCheck, KeyID: keyID})
		return err
	}
	if _, _, err := s.states(keyID); err != nil {
		return err
	}
	_, err := s.each(func(int) *Step { return &Step{Op: OpCheck, KeyID: keyID} })
	return err
}

// Reshare refreshes every node's share of keyID (proactive secret sharing) with no backup
// of the new share: ReshareWithBackup(keyID, nil, nil).
func (s *schemeClient) Reshare(keyID string) error { return s.ReshareWithBackup(keyID, nil, nil) }

// ReshareWithBackup refreshes every node's share of keyID (proactive secret sharing): the
// public key stays, the epoch goes up by one, and shares from earlier epochs become stale.
// It needs every party of the key. The switch is a two-phase commit:
//
//  1. every node stores its next share as pending and answers its next public state, which
//     must agree;
//  2. keep, if not nil, is given the phone's next share as a backup (BackupShare's format,
//     at the new epoch, unencrypted: seal it) and must store it durably; if it fails, the
//     refresh is undone (at the decider, then everywhere on its word) and the key stays as
//     it was;
//  3. the key's decider (its first server party) switches, asked with a proof of the
//     phone's new share: from then on the refresh is decided, and Recover (run before every
//     operation) finishes it on any party a crash or a lost message left behind;
//  4. every other party switches on the decider's signed word (its answer to the switch);
//     decided, if not nil, runs then, beside their switch, and ReshareWithBackup returns
//     after it.
//
// It starts from the key's kept state if the phone has one (no info round): the nodes'
// answers to the refresh's start tell what an info round would, a node at another epoch
// refusing the phone's proof and one with another refresh prepared saying so, and the
// refresh then starts again from an info round and its recovery.
func (s *schemeClient) ReshareWithBackup(keyID string, keep func(backup []byte) error, decided func()) error {
	unlock, err := s.c.opLock()
	if err != nil {
		return err
	}
	defer unlock()
	if k := s.keptState(keyID); k != nil {
		err := s.reshare(keyID, k.sts, true, keep, decided)
		if !errors.Is(err, errRecheck) {
			return err
		}
		s.keep(keyID, nil)
	}
	sts, _, err := s.statesLocked(keyID)
	if err != nil {
		return err
	}
	return s.reshare(keyID, sts, false, keep, decided)
}

// errRecheck: a refresh started from the kept state found it out of date, before anything
// was prepared; it starts again from an info round.
var errRecheck = errors.New("tsm: the key's kept state is out of date")

// reshare is ReshareWithBackup from the parties' states sts (kept: the kept state, which
// the start's answers check, if fromKept).
func (s *schemeClient) reshare(keyID string, sts []*StepResult, fromKept bool, keep func(backup []byte) error, decided func()) error {
	if len(sts) != sts[0].Info.Players {
		return fmt.Errorf("tsm: a refresh needs all %d parties of the key; the client has %d", sts[0].Info.Players, len(sts))
	}
	li := s.localIndex()
	if li < 0 {
		return errors.New("tsm: a refresh is run by the phone: the client needs its embedded node")
	}
	session := newSession()
	d := decider(sts, li)
	if d < 0 {
		return errors.New("tsm: a refresh needs the key's decider, its first server party")
	}
	// Before the new share's backup leaves the phone, no other device can hold it, so no
	// party can switch to it: a failure undoes the refresh, at the decider first (the session
	// is then over there for good), then everywhere else on its word.
	abort := func(err error) error {
		s.step(d, &Step{Op: OpRefreshAbort, KeyID: keyID, Session: session})
		word, ev, werr := s.word(d, keyID, session)
		if werr != nil || word.Done != Aborted {
			// The decider did not say it aborted: never discard on a guess; recovery reads it.
			if rerr := s.recoverLocked(keyID); rerr != nil {
				return fmt.Errorf("tsm: refresh: %w (and finishing it failed, the next use of the key does: %w)", err, rerr)
			}
			return fmt.Errorf("tsm: refresh: %w", err)
		}
		for i := range s.c.peers {
			if i != d {
				s.step(i, &Step{Op: OpRefreshAbort, KeyID: keyID, Session: session, In: [][]byte{ev}})
			}
		}
		return fmt.Errorf("tsm: refresh: %w", err)
	}
	roster, err := s.roster(len(sts), func(i int) int { return sts[i].Info.NodeIndex })
	if err != nil {
		return err
	}
	r1, err := s.each(func(int) *Step { return &Step{Op: OpRefreshStart, KeyID: keyID, Session: session, Roster: roster} })
	if fromKept && (errors.Is(err, ErrStaleEpoch) || errors.Is(err, ErrKeyNotFound) ||
		err == nil && slices.ContainsFunc(r1, func(r *StepResult) bool { return r.Pending != 0 })) {
		return errRecheck // nothing is prepared: the started sessions end on their timer
	}
	if err != nil {
		return abort(err)
	}
	bcast := make([][]byte, len(r1))
	for i, r := range r1 {
		if bcast[i], err = broadcast(r, sts[i].Info.NodeIndex+1, session, roster); err != nil {
			return abort(fmt.Errorf("node %d: %w", i, err))
		}
	}
	r2, err := s.each(func(i int) *Step {
		return &Step{Op: OpRefreshRound2, KeyID: keyID, Session: session, In: others(bcast, i)}
	})
	if err != nil {
		return abort(err)
	}
	inbox := map[int][][]byte{}
	for i, r := range r2 {
		if err := route(inbox, r.Out, sts[i].Info.NodeIndex+1, session, roster); err != nil {
			return abort(fmt.Errorf("node %d: %w", i, err))
		}
	}
	prepared, err := s.each(func(i int) *Step {
		return &Step{Op: OpRefreshPrep, KeyID: keyID, Session: session, In: inbox[sts[i].Info.NodeIndex+1]}
	})
	if err != nil {
		return abort(err)
	}
	if _, err := agreeOn(prepared); err != nil {
		return abort(err)
	}
	if keep != nil {
		next, err := s.c.local.n.pendingKey(keyID, s.scheme)
		if err != nil || next == nil {
			return abort(fmt.Errorf("this phone's next share is not prepared (%v)", err))
		}
		b := next.encode()
		next.wipe()
		err = keep(b)
		clear(b)
		if err != nil {
			// The backup may have landed, and another device restored it: undo the refresh
			// at the decider and follow it, as Recover does, rather than abort everywhere.
			if rerr := s.recoverLocked(keyID); rerr != nil {
				return fmt.Errorf("tsm: refresh: the new share's backup was not stored (%w), and undoing the refresh failed (the next use of the key does it): %w", err, rerr)
			}
			if now, kerr := s.c.local.n.key(keyID, s.scheme); kerr == nil {
				defer now.wipe()
				if now.Epoch > sts[li].Info.Epoch {
					return fmt.Errorf("tsm: refresh: the vault did not acknowledge the new share's backup (%w), and another device holding it finished the refresh", err)
				}
			}
			return fmt.Errorf("tsm: refresh: the new share's backup was not stored, so the refresh is undone: %w", err)
		}
	}
	// The decider's switch decides the refresh. If its answer is lost, whether it switched
	// is read back from it by Recover, never guessed here: no abort after this point.
	next, err := s.c.local.n.pendingKey(keyID, s.scheme)
	if err != nil || next == nil {
		return fmt.Errorf("tsm: refresh: this phone's next share is gone (%v); the next use of the key undoes the refresh", err)
	}
	commit := &Step{Op: OpRefreshCommit, KeyID: keyID, Session: session}
	res, err := s.stepProving(d, commit, next)
	next.wipe()
	if err != nil {
		return fmt.Errorf("tsm: refresh: the decision did not come back (the next use of the key finishes or undoes it): %w", err)
	}
	// The decider's signed answer to the switch is its word; a node of an earlier release
	// answers nothing in it, and is asked.
	var ev []byte
	if res.Done == Committed {
		ev, err = EncodeEvidence(commit, res)
	} else {
		var word *StepResult
		word, ev, err = s.word(d, keyID, session)
		if err == nil && word.Done != Committed {
			err = errors.New("the decider does not say it committed")
		}
	}
	if err != nil {
		return fmt.Errorf("tsm: refresh: the decider's word did not come back (the next use of the key finishes the refresh): %w", err)
	}
	// Every other party at once, each on the decider's word.
	_, err = s.atOnce(func(i int) *Step {
		if i == d {
			return nil
		}
		return &Step{Op: OpRefreshCommit, KeyID: keyID, Session: session, In: [][]byte{ev}}
	}, nil, decided)
	if err != nil {
		return fmt.Errorf("tsm: refresh decided but not yet switched on every party (it finishes on the next use of the key): %w", err)
	}
	if pub, err := agreeOn(prepared); err == nil {
		s.keepFrom(keyID, prepared, pub, roster)
	}
	return nil
}

// Sign signs msg with keyID by FROST among the client's nodes, which must be at least
// threshold+1 parties of the key, and returns a standard 64-byte Ed25519 signature that
// crypto/ed25519.Verify accepts. A signer whose share does not verify is named. With a
// commitment handed out ahead by every server node (each signature's answers bring the
// next), it is one round trip; else two, after the recovery check.
func (c *EDDSAClient) Sign(keyID string, msg []byte) ([]byte, error) {
	if len(msg) >= protocol.MaxSignedMessage {
		return nil, fmt.Errorf("tsm: a message of %d bytes is over the signing limit", len(msg))
	}
	// In one round, if the nodes handed out commitments; in two, if they have none (or the
	// phone is behind a refresh, which the two rounds recover). Any other failure stands: a
	// node's answer that does not verify is not a reason to ask again.
	switch sig, err := c.signAhead(keyID, msg); {
	case err == nil:
		return sig, nil
	case !errors.Is(err, errNotAhead) && !errors.Is(err, ErrNoCommitment) && !errors.Is(err, ErrStaleEpoch):
		return nil, err
	}
	var sig []byte
	err := c.signFrom(keyID, func(sts []*StepResult, pub *protocol.Public, roster []NodeID) error {
		session := newSession()
		r1, err := c.each(func(int) *Step { return &Step{Op: OpSignCommit, KeyID: keyID, Session: session, Roster: roster} })
		if err != nil {
			return err
		}
		cs := make([]protocol.Commitment, len(r1))
		for i, r := range r1 {
			m, err := c.readSigner(i, r, protocol.MsgCommitment, session, roster, sts[i].Info.NodeIndex+1)
			if err != nil {
				return err
			}
			cs[i] = *m.Commitment
		}
		sig, err = c.shares(keyID, msg, session, roster, pub, cs, func(i int) int { return sts[i].Info.NodeIndex + 1 }, nil)
		return err
	})
	return sig, err
}

// readSigner reads node i's first answered message, which must be from an envelope its
// node signed, of type typ, from its own identifier.
func (c *EDDSAClient) readSigner(i int, r *StepResult, typ protocol.MsgType, session []byte, roster []NodeID, from int) (*protocol.Message, error) {
	if len(r.Out) < 1 || len(r.Out) > 2 {
		return nil, fmt.Errorf("tsm: node %d answered %d messages", i, len(r.Out))
	}
	return readEnvelope(i, r.Out[0], typ, session, roster, from, r.vouched)
}

func readEnvelope(i int, env []byte, typ protocol.MsgType, session []byte, roster []NodeID, from int, vouched NodeID) (*protocol.Message, error) {
	return readWith(protocol.Unmarshal, i, env, typ, session, roster, from, vouched)
}

// readAhead is readEnvelope for a commitment handed out for the phone's next signature: its
// points are checked at that signature, by every signer's SignShare (the phone's too), so
// not here as well.
func readAhead(i int, env []byte, session []byte, roster []NodeID, from int, vouched NodeID) (*protocol.Message, error) {
	return readWith(protocol.UnmarshalDeferred, i, env, protocol.MsgCommitment, session, roster, from, vouched)
}

func readWith(parse func([]byte) (*protocol.Message, error), i int, env []byte, typ protocol.MsgType, session []byte, roster []NodeID, from int, vouched NodeID) (*protocol.Message, error) {
	m, err := unwrapWith(parse, nil, env, session, 0, roster, vouched)
	if err != nil {
		return nil, fmt.Errorf("tsm: node %d: %w", i, err)
	}
	if m.Type != typ || m.From != from {
		return nil, fmt.Errorf("tsm: node %d answered another message than its own", i)
	}
	return m, nil
}

// shares is round two: the signing request with every node's commitment cs[i], the shares,
// their check and aggregation; the commitments the nodes hand out for the next signature
// are kept. id(i) is node i's identifier. me is the phone's key as this signature read it
// (nil: it is read where needed): the share it proves to the nodes, and its epoch.
func (c *EDDSAClient) shares(keyID string, msg, session []byte, roster []NodeID, pub *protocol.Public, cs []protocol.Commitment, id func(i int) int, me *keyState) ([]byte, error) {
	sorted := slices.Clone(cs)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
	req, err := (&protocol.Message{Type: protocol.MsgSignRequest, Session: session, Curve: protocol.Ed25519,
		Request: &protocol.SignRequest{Message: msg, Commitments: sorted}}).Marshal()
	if err != nil {
		return nil, err
	}
	r2, err := c.eachProving(func(int) *Step { return &Step{Op: OpSignShareAhead, KeyID: keyID, Session: session, In: [][]byte{req}} }, me)
	if err != nil {
		return nil, err
	}
	shares := map[int][]byte{}
	for i, r := range r2 {
		m, err := c.readSigner(i, r, protocol.MsgSignShare, session, roster, id(i))
		if err != nil {
			return nil, err
		}
		shares[m.From] = m.SigShare
		rp, remote := c.c.peers[i].(*remotePeer)
		if len(r.Out) == 2 && remote && c.c.local != nil {
			if next, err := readAhead(i, r.Out[1], session, roster, id(i), r.vouched); err == nil {
				epoch := uint32(0)
				if me != nil {
					epoch = me.Epoch
				} else if k, err := c.c.local.n.key(keyID, EdDSA); err == nil {
					epoch = k.Epoch
					k.wipe()
				}
				cacheCommitment(c.c.local.key.ID(), keyID, cachedCommitment{epoch: epoch, url: rp.url, node: roster[id(i)-1], c: *next.Commitment})
			}
		}
	}
	sig, err := protocol.Aggregate(pub, msg, sorted, shares) // verified there
	if err != nil {
		return nil, fmt.Errorf("tsm: sign: %w", err)
	}
	c.afterSign(keyID, r2)
	return sig, nil
}

// afterSign: when the answers rs of a signature say that a refresh of keyID is prepared on
// some node (the recovery check that rode with the signature), the refresh is finished or
// undone, as an info round's recovery would have done before the signature. The signature
// stands either way (a prepared share does not touch the current ones); a recovery that
// fails is run again after the next signature, whose answers say the same. (The kept state
// stays: if the recovery switches the phone, its epoch no longer matches it.)
func (s *schemeClient) afterSign(keyID string, rs []*StepResult) {
	if slices.ContainsFunc(rs, func(r *StepResult) bool { return r != nil && r.Pending != 0 }) {
		s.Recover(keyID)
	}
}

// Exclusive runs fn while no refresh or recovery runs on this client's embedded node (the
// lock refreshes hold): a backup taken inside it is never of a share a refresh is about
// to replace, nor uploaded between a refresh's backup and its switch.
func (c *Client) Exclusive(fn func() error) error {
	unlock, err := c.opLock()
	if err != nil {
		return err
	}
	defer unlock()
	return fn()
}

// opLockWait bounds how long a refresh or a recovery waits for another on this phone.
const opLockWait = 30 * time.Second

// opLock serializes refreshes and recoveries among every coordinator that uses this
// client's embedded node (goroutines, clients and processes alike): the store's "refresh"
// lease (on SQLite an exclusive flock on "<database>.lock"), which a crash releases. A recovery so never sees a refresh that is
// still running as one that was interrupted.
func (c *Client) opLock() (func(), error) {
	n, err := c.embedded()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), opLockWait)
	defer cancel()
	release, err := n.store.Lease(ctx, "refresh")
	if err != nil {
		return nil, fmt.Errorf("tsm: another refresh of this phone's keys is still running (%v)", err)
	}
	return release, nil
}
