package tsm

// The coordinator runs the protocols across the parties of a client (docs/tsm-protocol.md):
// it chooses session IDs, carries messages from party to party, compares what the parties
// say in public, and drives the two-phase commit of a refresh. It never holds a share; the
// private messages it carries are for their recipients (over a network they are sealed to
// them).

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
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

func (s *schemeClient) step(i int, st *Step) (*StepResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	st.Scheme = s.scheme
	res, err := s.c.peers[i].Step(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("node %d: %s: %w", i, st.Op, err)
	}
	return res, nil
}

// each runs a step on every node, built by mk, and returns the results in node order.
func (s *schemeClient) each(mk func(i int) *Step) ([]*StepResult, error) {
	out := make([]*StepResult, len(s.c.peers))
	for i := range s.c.peers {
		res, err := s.step(i, mk(i))
		if err != nil {
			return nil, err
		}
		out[i] = res
	}
	return out, nil
}

func (s *schemeClient) multiNode() error {
	n := len(s.c.nodes)
	if n < 2 || n > maxPlayers {
		return fmt.Errorf("tsm: this needs 2 to %d nodes, the client has %d", maxPlayers, n)
	}
	seen := map[string]bool{}
	for _, nd := range s.c.nodes {
		p, _ := filepath.Abs(nd.path)
		if seen[p] {
			return fmt.Errorf("tsm: node database %s is configured twice", nd.path)
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

// route delivers private messages to their recipients' inboxes, by identifier.
func route(inbox map[int][][]byte, out [][]byte) error {
	for _, b := range out {
		m, err := protocol.Unmarshal(b)
		if err != nil {
			return err
		}
		inbox[m.To] = append(inbox[m.To], b)
	}
	return nil
}

// GenerateKey creates a key that needs every node of the client to sign (n-of-n) and
// returns its ID. Node i of the configuration is party i+1.
func (s *schemeClient) GenerateKey(description string) (string, error) {
	return s.GenerateKeyThreshold(description, len(s.c.nodes)-1)
}

// GenerateKeyThreshold creates a key among the client's n nodes, by distributed key
// generation, that any threshold+1 of them can sign with.
func (s *schemeClient) GenerateKeyThreshold(description string, threshold int) (string, error) {
	if err := s.multiNode(); err != nil {
		return "", err
	}
	n := len(s.c.nodes)
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
	r1, err := s.each(func(i int) *Step {
		return &Step{Op: OpKeyGenStart, KeyID: keyID, Session: session, KeyGen: &KeyGenParams{Threshold: threshold, Parties: n,
			Index: i, Description: description, Created: created, ChainCode: chain}}
	})
	if err != nil {
		return fail(err)
	}
	bcast := make([][]byte, n)
	for i, r := range r1 {
		if len(r.Out) != 1 {
			return fail(fmt.Errorf("node %d answered %d round-one messages", i, len(r.Out)))
		}
		bcast[i] = r.Out[0]
	}
	inbox := map[int][][]byte{}
	r2, err := s.each(func(i int) *Step {
		return &Step{Op: OpKeyGenRound2, KeyID: keyID, Session: session, In: others(bcast, i)}
	})
	if err != nil {
		return fail(err)
	}
	for _, r := range r2 {
		if err := route(inbox, r.Out); err != nil {
			return fail(err)
		}
	}
	done, err := s.each(func(i int) *Step { return &Step{Op: OpKeyGenFinish, KeyID: keyID, Session: session, In: inbox[i+1]} })
	if err != nil {
		return fail(err)
	}
	if _, err := agreeOn(done); err != nil {
		return fail(err)
	}
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
	if err := s.Recover(keyID); err != nil {
		return nil, nil, err
	}
	sts, err := s.each(func(int) *Step { return &Step{Op: OpInfo, KeyID: keyID} })
	if err != nil {
		return nil, nil, err
	}
	pub, err := agreeOn(sts)
	return sts, pub, err
}

// Recover finishes or discards a refresh of keyID that a crash left half done, the same
// way on every node: if any node switched to the new epoch, every node that prepared it
// switches too (the decision to commit was taken); if none did and the client has every
// party of the key, every prepared share is discarded. With only some parties it only
// commits, never discards, since an absent party may have switched.
func (s *schemeClient) Recover(keyID string) error {
	sts, err := s.each(func(int) *Step { return &Step{Op: OpInfo, KeyID: keyID} })
	if err != nil {
		return err
	}
	var maxEpoch uint32
	pending := false
	for _, st := range sts {
		maxEpoch = max(maxEpoch, st.Info.Epoch)
		pending = pending || st.Pending != 0
	}
	if !pending {
		return nil
	}
	// A node at the highest epoch with nothing pending, while another has that epoch
	// pending, can only have got there by a commit.
	committed := false
	for _, st := range sts {
		if st.Pending != 0 && st.Pending == maxEpoch {
			for _, o := range sts {
				committed = committed || o.Pending == 0 && o.Info.Epoch == maxEpoch
			}
		}
	}
	for i, st := range sts {
		switch {
		case st.Pending == 0:
		case committed && st.Pending == maxEpoch && st.Info.Epoch+1 == maxEpoch:
			if _, err := s.step(i, &Step{Op: OpRefreshCommit, KeyID: keyID}); err != nil {
				return fmt.Errorf("tsm: finishing an interrupted refresh: %w", err)
			}
		case !committed && len(sts) == st.Info.Players:
			if _, err := s.step(i, &Step{Op: OpRefreshAbort, KeyID: keyID}); err != nil {
				return fmt.Errorf("tsm: discarding an interrupted refresh: %w", err)
			}
		}
	}
	return nil
}

// VerifyShare proves that the shares of keyID work. On a client with one node it checks
// that node's share against its own copy of the public shares. With several, each node
// checks its own share, and their public states must agree at one epoch: a share restored
// from before a refresh gives ErrStaleEpoch.
func (s *schemeClient) VerifyShare(keyID string) error {
	if len(s.c.nodes) == 1 {
		_, err := s.step(0, &Step{Op: OpCheck, KeyID: keyID})
		return err
	}
	if _, _, err := s.states(keyID); err != nil {
		return err
	}
	_, err := s.each(func(int) *Step { return &Step{Op: OpCheck, KeyID: keyID} })
	return err
}

// Reshare refreshes every node's share of keyID (proactive secret sharing): the public
// key stays, the epoch goes up by one, and backups from earlier epochs become stale. It
// needs every party of the key. The switch is a two-phase commit: every node stores its
// next share as pending, and only when all have does any switch; a crash anywhere leaves
// the key at one epoch once Recover (run before every operation) has finished.
func (s *schemeClient) Reshare(keyID string) error {
	sts, _, err := s.states(keyID)
	if err != nil {
		return err
	}
	if len(sts) != sts[0].Info.Players {
		return fmt.Errorf("tsm: a refresh needs all %d parties of the key; the client has %d", sts[0].Info.Players, len(sts))
	}
	session := newSession()
	abort := func(err error) error {
		for i := range s.c.peers {
			s.step(i, &Step{Op: OpRefreshAbort, KeyID: keyID})
		}
		return fmt.Errorf("tsm: refresh: %w", err)
	}
	r1, err := s.each(func(int) *Step { return &Step{Op: OpRefreshStart, KeyID: keyID, Session: session} })
	if err != nil {
		return abort(err)
	}
	bcast := make([][]byte, len(r1))
	for i, r := range r1 {
		if len(r.Out) != 1 {
			return abort(fmt.Errorf("node %d answered %d round-one messages", i, len(r.Out)))
		}
		bcast[i] = r.Out[0]
	}
	r2, err := s.each(func(i int) *Step {
		return &Step{Op: OpRefreshRound2, KeyID: keyID, Session: session, In: others(bcast, i)}
	})
	if err != nil {
		return abort(err)
	}
	inbox := map[int][][]byte{}
	for _, r := range r2 {
		if err := route(inbox, r.Out); err != nil {
			return abort(err)
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
	// Every node holds its next share durably: the refresh is decided. A commit that fails
	// here is finished by Recover.
	for i := range s.c.peers {
		if _, err := s.step(i, &Step{Op: OpRefreshCommit, KeyID: keyID, Session: session}); err != nil {
			return fmt.Errorf("tsm: refresh decided but not yet switched on every node (it finishes on the next use of the key): %w", err)
		}
	}
	return nil
}

// Sign signs msg with keyID by FROST among the client's nodes, which must be at least
// threshold+1 parties of the key, and returns a standard 64-byte Ed25519 signature that
// crypto/ed25519.Verify accepts. A signer whose share does not verify is named.
func (c *EDDSAClient) Sign(keyID string, msg []byte) ([]byte, error) {
	if len(msg) >= protocol.MaxSignedMessage {
		return nil, fmt.Errorf("tsm: a message of %d bytes is over the signing limit", len(msg))
	}
	_, pub, err := c.states(keyID)
	if err != nil {
		return nil, err
	}
	session := newSession()
	r1, err := c.each(func(int) *Step { return &Step{Op: OpSignCommit, KeyID: keyID, Session: session} })
	if err != nil {
		return nil, err
	}
	var cs []protocol.Commitment
	for _, r := range r1 {
		if len(r.Out) != 1 {
			return nil, errors.New("tsm: a signer answered no commitment")
		}
		m, err := protocol.Unmarshal(r.Out[0])
		if err != nil || m.Type != protocol.MsgCommitment || !bytes.Equal(m.Session, session) {
			return nil, fmt.Errorf("tsm: a signer's commitment is malformed: %v", err)
		}
		cs = append(cs, *m.Commitment)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].ID < cs[j].ID })
	req, err := (&protocol.Message{Type: protocol.MsgSignRequest, Session: session, Curve: protocol.Ed25519,
		Request: &protocol.SignRequest{Message: msg, Commitments: cs}}).Marshal()
	if err != nil {
		return nil, err
	}
	r2, err := c.each(func(int) *Step { return &Step{Op: OpSignShare, KeyID: keyID, Session: session, In: [][]byte{req}} })
	if err != nil {
		return nil, err
	}
	shares := map[int][]byte{}
	for _, r := range r2 {
		if len(r.Out) != 1 {
			return nil, errors.New("tsm: a signer answered no signature share")
		}
		m, err := protocol.Unmarshal(r.Out[0])
		if err != nil || m.Type != protocol.MsgSignShare || !bytes.Equal(m.Session, session) {
			return nil, fmt.Errorf("tsm: a signature share is malformed: %v", err)
		}
		shares[m.From] = m.SigShare
	}
	sig, err := protocol.Aggregate(pub, msg, cs, shares)
	if err != nil {
		return nil, fmt.Errorf("tsm: sign: %w", err)
	}
	if !ed25519.Verify(pub.PublicKey, msg, sig) {
		return nil, errors.New("tsm: the signature does not verify")
	}
	return sig, nil
}
