package tsm

// FROST nonce commitments handed out ahead of a signature (docs/tsm-protocol.md, "Signing in
// one round trip"). Every signature share a node answers comes with a fresh commitment for
// the coordinator's next signature; the nonces stay in this node's memory, under the
// requester, the key and the commitment, until a signing request names that commitment:
// then they are taken out (at most once, whoever asks), used and wiped. They are never
// written anywhere, so a restarted node (or another replica) has none and the coordinator
// signs in two rounds. A refresh discards the key's.

import (
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sharevault/sharevault/internal/tsm/protocol"
)

// Bounds on the commitments a node holds: per requester and key, per requester, in all, and
// how long one waits for its signature.
const (
	maxPrecommitsKey       = 2
	maxPrecommitsOfKey     = 8 // of one key, whoever asked (a restored phone asks under a new node ID)
	maxPrecommitsRequester = 64
	maxPrecommits          = 8192
	precommitTTL           = 10 * time.Minute
)

type precommit struct {
	nonces    *protocol.Nonces
	keyID     string
	epoch     uint32
	requester NodeID
	roster    []NodeID
	made      time.Time
}

func precommitKey(requester NodeID, keyID string, c *protocol.Commitment) string {
	return string(requester.Sign) + "\x00" + keyID + "\x00" + string(c.Hiding) + string(c.Binding)
}

// handOut makes a commitment for requester's next signature with k, keeps its nonces, and
// returns its envelope (a broadcast of this party's, signed). Past the bounds, the oldest
// of the requester's for the key (or of the requester's, or of all) make room.
func (p *party) handOut(st *Step, k *keyState, s *session) ([]byte, error) {
	n, err := protocol.Commit(k.keyShare(), rand.Reader)
	if err != nil {
		return nil, err
	}
	out, err := p.seal(s, st.Session, &protocol.Message{Type: protocol.MsgCommitment, Session: st.Session, Curve: protocol.Ed25519,
		From: k.NodeIndex + 1, Commitment: &n.Commitment})
	if err != nil {
		n.Wipe()
		return nil, err
	}
	pc := &precommit{nonces: n, keyID: k.KeyID, epoch: k.Epoch, requester: s.requester, roster: s.roster, made: time.Now()}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.precommits == nil {
		p.precommits = map[string]*precommit{}
	}
	var oldKey, oldMine, oldOfKey, oldest string
	key, mine, ofKey := 0, 0, 0
	for id, o := range p.precommits {
		older := func(than string) bool { return than == "" || o.made.Before(p.precommits[than].made) }
		if older(oldest) {
			oldest = id
		}
		if o.keyID == pc.keyID {
			if ofKey++; older(oldOfKey) {
				oldOfKey = id
			}
		}
		if o.requester.Equal(pc.requester) {
			if mine++; older(oldMine) {
				oldMine = id
			}
			if o.keyID == pc.keyID {
				if key++; older(oldKey) {
					oldKey = id
				}
			}
		}
	}
	evict := ""
	switch {
	case key >= maxPrecommitsKey:
		evict = oldKey
	case ofKey >= maxPrecommitsOfKey: // one key's owner cannot fill the table under many node IDs
		evict = oldOfKey
	case mine >= maxPrecommitsRequester:
		evict = oldMine
	case len(p.precommits) >= maxPrecommits:
		// A full table hands out nothing: others' commitments are not pushed out (whoever
		// makes keys under many node IDs would otherwise flush the phones that sign rarely).
		n.Wipe()
		return nil, errTableFull
	}
	if o := p.precommits[evict]; o != nil {
		delete(p.precommits, evict)
		o.nonces.Wipe()
	}
	id := precommitKey(pc.requester, pc.keyID, &n.Commitment)
	time.AfterFunc(precommitTTL, func() { p.expirePrecommit(id, pc) })
	p.precommits[id] = pc
	return out[0], nil
}

var errTableFull = errors.New("the table of commitments handed out is full")

// expirePrecommit wipes a commitment's nonces when its time is up, if it is still there.
func (p *party) expirePrecommit(id string, pc *precommit) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.precommits[id] == pc {
		delete(p.precommits, id)
		pc.nonces.Wipe()
	}
}

// takePrecommit is the session of a signing request that names a commitment this party
// handed out to its requester for the key: taken out of the table, so no other request
// (concurrent, replayed, or on another replica) finds it.
func (p *party) takePrecommit(st *Step, req *protocol.SignRequest, k *keyState) (*session, error) {
	var mine *protocol.Commitment
	for i, c := range req.Commitments {
		if c.ID == k.NodeIndex+1 {
			mine = &req.Commitments[i]
		}
	}
	if mine == nil {
		return nil, fmt.Errorf("%s: the signing request has no commitment of this party", st.Op)
	}
	p.mu.Lock()
	id := precommitKey(authNode(st), st.KeyID, mine)
	pc := p.precommits[id]
	delete(p.precommits, id)
	p.mu.Unlock()
	switch {
	case pc == nil:
		return nil, fmt.Errorf("%w: %s: no such session, nor a commitment this node handed out and has not used (used, expired, handed out by another replica of this node, or the node restarted)", ErrNoCommitment, st.Op)
	case pc.epoch != k.Epoch || time.Since(pc.made) > precommitTTL:
		pc.nonces.Wipe()
		return nil, fmt.Errorf("%w: %s: the commitment is from before a refresh, or expired", ErrNoCommitment, st.Op)
	}
	return &session{kind: "sign", keyID: pc.keyID, scheme: EdDSA, nonces: pc.nonces, self: k.NodeIndex + 1, roster: pc.roster,
		requester: pc.requester, started: pc.made}, nil
}

// dropPrecommits wipes every commitment of a key (after a refresh).
func (p *party) dropPrecommits(keyID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, o := range p.precommits {
		if o.keyID == keyID {
			delete(p.precommits, id)
			o.nonces.Wipe()
		}
	}
}

// infoAhead is info with, for the key's owner proven at the key's epoch (an EdDSA key), a
// commitment for its next signature (Out[0]) under the key's roster with the requester at
// the owner's place. The info stands if none can be made.
func (p *party) infoAhead(st *Step) (*StepResult, error) {
	res, err := p.info(st.KeyID, st.Scheme, nil)
	if err != nil || st.Scheme != EdDSA || st.Auth == nil || len(st.Session) != protocol.SessionLen {
		return res, err
	}
	var owner int
	var roster []NodeID
	err = p.n.view(func(q querier) (err error) { owner, roster, err = readParties(q, st.KeyID); return err })
	if err != nil || owner < 0 || owner >= len(roster) {
		return res, nil
	}
	k, err := p.n.key(st.KeyID, EdDSA)
	if err != nil {
		return res, nil
	}
	defer k.wipe()
	if st.Auth.Epoch != k.Epoch { // the epoch the commitment is made at, proven
		return res, nil
	}
	roster = slices.Clone(roster)
	roster[owner] = authNode(st)
	s := &session{kind: "sign", keyID: st.KeyID, scheme: EdDSA, roster: roster, requester: authNode(st)}
	if next, err := p.handOut(st, k, s); err == nil {
		res.Out = [][]byte{next}
	}
	return res, nil
}

// ---- the coordinator's side ----

// cachedCommitment is a server node's commitment for this phone's next signature with a
// key, as the node handed it out (its answer signed and checked). Public values: the nonces
// are the node's.
type cachedCommitment struct {
	epoch uint32
	url   string
	node  NodeID
	c     protocol.Commitment
}

// commitCache keeps, in this process's memory, a few commitments per phone, key and
// server node. Each is used at most once: taken out before its request is sent.
var commitCache = struct {
	sync.Mutex
	m map[string][]cachedCommitment
}{m: map[string][]cachedCommitment{}}

func cacheKey(phone NodeID, keyID, url string) string {
	return phone.String() + "/" + keyID + "/" + url
}

func cacheCommitment(phone NodeID, keyID string, c cachedCommitment) {
	commitCache.Lock()
	defer commitCache.Unlock()
	k := cacheKey(phone, keyID, c.url)
	l := append(commitCache.m[k], c)
	if len(l) > maxPrecommitsKey {
		l = l[len(l)-maxPrecommitsKey:]
	}
	commitCache.m[k] = l
}

func takeCommitment(phone NodeID, keyID, url string, epoch uint32) (cachedCommitment, bool) {
	commitCache.Lock()
	defer commitCache.Unlock()
	k := cacheKey(phone, keyID, url)
	for l := commitCache.m[k]; len(l) > 0; l = l[1:] {
		c := l[0]
		commitCache.m[k] = l[1:]
		if c.epoch == epoch {
			return c, true
		}
	}
	return cachedCommitment{}, false
}

// haveCommitment: the phone holds a commitment of the node at url for keyID at epoch.
func haveCommitment(phone NodeID, keyID, url string, epoch uint32) bool {
	commitCache.Lock()
	defer commitCache.Unlock()
	return slices.ContainsFunc(commitCache.m[cacheKey(phone, keyID, url)], func(c cachedCommitment) bool { return c.epoch == epoch })
}

// ErrNoCommitment: a signing request names a commitment this node did not hand out, or
// has used (or it restarted since): the coordinator signs in two rounds.
var ErrNoCommitment = errors.New("no such commitment")

// errNotAhead: the one-round signature cannot be tried (no commitment ahead from a node,
// a refresh pending on the phone, no remote nodes); the two rounds are.
var errNotAhead = errors.New("no commitments ahead")

// signAhead signs in one round trip: the phone's own commitment, made here, and one handed
// out ahead by every server node, from the phone's own public state of the key (no info
// round). Any refusal (a node restarted, a refresh the phone has not seen) sends the caller
// to the two rounds, which recover first.
func (c *EDDSAClient) signAhead(keyID string, msg []byte) ([]byte, error) {
	local := c.c.local
	if local == nil {
		return nil, errNotAhead
	}
	for _, p := range c.c.peers {
		if _, remote := p.(*remotePeer); !remote && p != Peer(local) {
			return nil, errNotAhead // nodes in this process hand out nothing
		}
	}
	k := c.settled(keyID)
	if k == nil {
		return nil, errNotAhead
	}
	defer k.wipe() // the share it proves with, and its epoch
	phone := local.key.ID()
	session := newSession()
	cs := make([]protocol.Commitment, len(c.c.peers))
	roster := make([]NodeID, k.Players)
	taken := make([]cachedCommitment, len(c.c.peers))
	for i, p := range c.c.peers {
		rp, remote := p.(*remotePeer)
		if !remote {
			continue
		}
		cc, ok := takeCommitment(phone, keyID, rp.url, k.Epoch)
		if !ok || !rp.assume(cc.node) {
			return nil, errNotAhead
		}
		taken[i], cs[i] = cc, cc.c
	}
	// Every node's commitment is its own: distinct identifiers, none the phone's.
	seen := map[int]bool{k.NodeIndex + 1: true}
	for i, p := range c.c.peers {
		if _, remote := p.(*remotePeer); remote {
			if seen[cs[i].ID] {
				return nil, errNotAhead
			}
			seen[cs[i].ID] = true
		}
	}
	// The local party's round one, here; the roster is the key's as the phone holds it.
	for i, p := range c.c.peers {
		if _, remote := p.(*remotePeer); remote {
			if cs[i].ID < 1 || cs[i].ID > k.Players {
				return nil, errNotAhead
			}
			roster[cs[i].ID-1] = taken[i].node
			continue
		}
		roster[k.NodeIndex] = local.key.ID()
	}
	pub := &protocol.Public{Curve: protocol.Ed25519, Threshold: k.Threshold, PublicKey: k.PublicKey, Shares: k.publicShares}
	for i, p := range c.c.peers {
		if _, remote := p.(*remotePeer); remote {
			continue
		}
		r, err := c.step(i, &Step{Op: OpSignCommit, KeyID: keyID, Session: session, Roster: roster})
		if err != nil {
			return nil, err
		}
		m, err := c.readSigner(i, r, protocol.MsgCommitment, session, roster, k.NodeIndex+1)
		if err != nil {
			return nil, err
		}
		cs[i] = *m.Commitment
	}
	return c.shares(keyID, msg, session, roster, pub, cs, func(i int) int { return cs[i].ID }, k)
}

// assume takes id as the node's identity without asking it, if the configuration or the
// phone's pin does not say otherwise: the ID a checked answer of this URL was signed by.
func (r *remotePeer) assume(id NodeID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.id.Sign != nil {
		return r.id.Equal(id)
	}
	if r.checkPins(id) != nil {
		return false
	}
	r.id, r.learned = id, true
	return true
}
