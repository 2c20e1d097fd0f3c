package tsm

// A party is one node as the protocols see it (docs/tsm-protocol.md, "Steps"): it holds
// its own share, in its database, and the secrets of its sessions in progress, in memory,
// and answers one step at a time. A step takes protocol messages in and gives messages
// out; nothing but a party ever reads a share. The coordinator (coordinator.go) reaches a
// party through a Peer: in this process for an embedded node, over a network for a
// remote one.

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sharevault/sharevault/internal/nodestore"
	"github.com/sharevault/sharevault/internal/tsm/protocol"
	"github.com/sharevault/sharevault/internal/tsm/protocol/dkls23"
)

// Op names a step.
type Op string

const (
	OpInfo          Op = "info"           // the key's public state: KeyInfo, public shares, pending epoch
	OpCheck         Op = "check"          // check the party's share against its public state
	OpKeyGenStart   Op = "keygen/start"   // → DKG round one broadcast
	OpKeyGenRound2  Op = "keygen/round2"  // round one broadcasts → private round two messages
	OpKeyGenFinish  Op = "keygen/finish"  // round two messages → the key, stored
	OpKeyGenDiscard Op = "keygen/discard" // remove a key a failed key generation left
	OpSignCommit    Op = "sign/commit"    // → FROST round one commitment
	OpSignShare     Op = "sign/share"     // signing request → signature share
	// OpInfoAhead is OpInfo whose answer, to the key's owner proven at its epoch (an EdDSA
	// key), also brings a commitment for its next signature, as sign/share-ahead's does: a
	// restore's check of its backup leaves the phone ready to sign in one round trip.
	OpInfoAhead Op = "info/ahead"
	// OpSignShareAhead is OpSignShare whose answer also brings a commitment for the
	// requester's next signature (precommit.go).
	OpSignShareAhead Op = "sign/share-ahead"
	OpRefreshStart   Op = "refresh/start"  // → refresh round one broadcast
	OpRefreshRound2  Op = "refresh/round2" // round one broadcasts → private round two messages
	OpRefreshPrep    Op = "refresh/prepare"
	OpRefreshCommit  Op = "refresh/commit" // switch to the prepared share
	OpRefreshAbort   Op = "refresh/abort"  // discard the prepared share
)

// Step is one request to a party.
type Step struct {
	Op      Op
	KeyID   string
	Scheme  Scheme
	Session []byte   // protocol.SessionLen bytes, chosen by the coordinator
	In      [][]byte // protocol messages in their envelopes (nodekey.go)
	KeyGen  *KeyGenParams
	Roster  []NodeID // the parties' node IDs by identifier (a zero NodeID for one absent)
	Auth    *Auth    // who asks; checked by a node serving remote requests (Node.Serve)
}

// KeyGenParams are what every party of a new key is told; Index differs per party.
type KeyGenParams struct {
	Threshold   int
	Parties     int
	Index       int // 0-based; the protocol identifier is Index+1
	Description string
	Created     time.Time
	ChainCode   []byte
}

// StepResult is a party's answer.
type StepResult struct {
	Out          [][]byte // encoded protocol messages
	Info         *KeyInfo // OpInfo, OpKeyGenFinish, OpRefreshPrep (the next state)
	PublicShares [][]byte // with Info
	Pending      uint32   // OpInfo: the epoch of a prepared refresh, 0 if none
	PendingOf    []byte   // OpInfo: that refresh's session
	Done         uint8    // OpInfo with a session: how this node finished it (Committed, Aborted; 0 not)
	// OpInfo with a session this node has prepared: the public shares of its next state,
	// by which the phone tells, from a signed answer, whether its own share is that one.
	PendingShares [][]byte
	Sig           []byte // a node serving remote coordinators signs its answer (nodekey.go)

	// vouched is, for the coordinator that got this answer, the node whose own it is as a
	// whole (Out included): a remote node whose signature on it was checked, or a party in
	// this process that returned it. Not encoded.
	vouched NodeID
}

// Peer is how a coordinator reaches one party.
type Peer interface {
	// ID is the party's node identity, for the roster.
	ID(ctx context.Context) (NodeID, error)
	Step(ctx context.Context, s *Step) (*StepResult, error)
}

// sessionTTL bounds how long a party keeps a session's secrets: a timer wipes them then,
// whether or not another step arrives. An ECDSA signature's waits longer for its digest
// (presignTTL), as a presignature (docs/tsm-protocol.md, "Signing ahead").
var sessionTTL = 2 * time.Minute

// life is how long s is kept.
func (s *session) life() time.Duration {
	if s.kind == "ecdsa" {
		return max(presignTTL, sessionTTL)
	}
	return sessionTTL
}

// Bounds on the sessions a party keeps at once (docs/tsm-api.md, "Limits"): in all, started
// by one requesting node, on one key, and of key generations (which anyone may start, with
// any key ID) in all. A new session past its requester's bound replaces that requester's
// oldest, and a signing or refresh session past its key's bound replaces that key's oldest
// (only a party of the key, proven, opens those), so a phone whose steps were lost is never
// locked out by its own leftovers; past half the table, a requester or key that has such a
// session replaces it rather than taking more room, and in a full table a key's first one
// replaces the table's oldest. Key generations past their share of the table are refused, so
// that steps proving a share always find room.
const (
	maxSessions          = 4096
	maxSessionsRequester = 16
	maxSessionsKey       = 8
	maxKeyGenSessions    = maxSessions / 4
)

// party answers steps for one node.
type party struct {
	n          *node
	key        *NodeKey
	mu         sync.Mutex
	sessions   map[string]*session   // by sessionKey: requester and session ID
	refused    map[refusedSeeds]bool // ECDSA seeds a check refused, until deleted (ecdsa.go)
	precommits map[string]*precommit // FROST nonces of commitments handed out (precommit.go)
	ended      map[string]time.Time  // kind/key: when a refresh ended its sessions (dropSessions)
}

type session struct {
	kind      string // "keygen", "refresh" or "sign": only that protocol's steps take it
	started   time.Time
	keyID     string
	dkg       *protocol.DKG
	params    *KeyGenParams
	nonces    *protocol.Nonces
	scheme    Scheme
	self      int      // this party's identifier
	roster    []NodeID // fixed when the session starts
	requester NodeID   // who started it; only it continues it (sessions are kept by requester)
	signers   []int    // ECDSA: the signing set
	setup     *dkls23.Setup
	signer    *dkls23.Signer
	epoch     uint32         // ECDSA: the key's epoch when the session started
	seedIDs   map[int]string // ECDSA signing: the ID of the seeds it holds with each peer
}

// wipe zeroes every secret the session holds: nonces, DKG polynomial and values.
func (s *session) wipe() {
	if s.nonces != nil {
		s.nonces.Wipe()
	}
	if s.dkg != nil {
		s.dkg.Wipe()
	}
	if s.setup != nil {
		s.setup.Wipe()
	}
	if s.signer != nil {
		s.signer.Wipe()
	}
}

// sessionKey is where a session is kept: one requester cannot name, take or squat
// another's session, whatever session ID it sends.
func sessionKey(requester NodeID, id []byte) string { return string(requester.Sign) + string(id) }

func (p *party) ID(context.Context) (NodeID, error) { return p.key.ID(), nil }

func newParty(n *node, key *NodeKey) *party {
	return &party{n: n, key: key, sessions: map[string]*session{}}
}

// checkRoster: one entry per party, this party's own ID at its identifier.
func (p *party) checkRoster(roster []NodeID, parties, self int) error {
	if len(roster) != parties || self < 1 || self > parties || !roster[self-1].Equal(p.key.ID()) {
		return errors.New("the roster does not name this node at its place among the key's parties")
	}
	return nil
}

// open unwraps every input envelope of a session's step.
func (p *party) open(st *Step, s *session, want protocol.MsgType) ([]*protocol.Message, error) {
	var out []*protocol.Message
	for _, b := range st.In {
		m, err := p.key.unwrap(b, st.Session, s.self, s.roster)
		if err != nil {
			return nil, err
		}
		if m.Type != want {
			return nil, fmt.Errorf("a message of type %d in a %s step", m.Type, st.Op)
		}
		out = append(out, m)
	}
	return out, nil
}

// seal encodes messages and wraps each in an envelope from this party: signed, and sealed
// to its recipient when private.
func (p *party) seal(s *session, session []byte, ms ...*protocol.Message) ([][]byte, error) {
	var out [][]byte
	for _, m := range ms {
		b, err := m.Marshal()
		if err != nil {
			return nil, err
		}
		var to *NodeID
		if m.To != 0 {
			if m.To > len(s.roster) || s.roster[m.To-1].Sign == nil {
				return nil, fmt.Errorf("no node ID for party %d", m.To)
			}
			to = &s.roster[m.To-1]
		}
		w, err := p.key.wrap(b, session, m.From, m.To, to)
		clear(b)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

// kindOf is the protocol a step belongs to.
func kindOf(op Op) string { return strings.SplitN(string(op), "/", 2)[0] }

// wipeOnError wipes a step's session if the step ends with an error (deferred).
func wipeOnError(s *session, err *error) {
	if *err != nil {
		s.wipe()
	}
}

// take removes and returns the step's session (its requester's, of the step's protocol).
func (p *party) take(st *Step) (*session, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := sessionKey(authNode(st), st.Session)
	s := p.sessions[k]
	if s == nil || s.kind != kindOf(st.Op) || time.Since(s.started) > s.life() {
		return nil, fmt.Errorf("%s: %w", st.Op, ErrNoSession)
	}
	delete(p.sessions, k)
	return s, nil
}

// lift takes requester's session id out of the table as it is, for the caller to keep: a
// presignature's phone half, which outlives the client that made it (an app opens a client
// per operation, each with its own party of the phone's node).
func (p *party) lift(requester NodeID, id []byte) *session {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := sessionKey(requester, id)
	s := p.sessions[k]
	delete(p.sessions, k)
	return s
}

// adopt puts s, lifted from another party of the same node, in this one's table for what
// is left of its life (wiping it if nothing is).
func (p *party) adopt(id []byte, s *session) error {
	left := s.life() - time.Since(s.started)
	p.mu.Lock()
	defer p.mu.Unlock()
	k := sessionKey(s.requester, id)
	if left <= 0 || p.sessions[k] != nil || !s.started.After(p.ended[s.kind+"/"+s.keyID]) {
		s.wipe()
		return errors.New("the session expired, or another is in its place")
	}
	p.sessions[k] = s
	time.AfterFunc(left, func() { p.expire(k, s) })
	return nil
}

// ErrNoSession: a step continues a session this node does not have (expired, used, or the
// node restarted since it began); the coordinator starts again (an ECDSA signature on a
// presignature signs in three rounds).
var ErrNoSession = errors.New("no such session on this node (expired, used, held by another replica of this node, or the node restarted)")

// drop wipes and forgets the step's session, if its requester has one of the step's
// protocol waiting.
func (p *party) drop(st *Step) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := sessionKey(authNode(st), st.Session)
	if s := p.sessions[k]; s != nil && s.kind == kindOf(st.Op) {
		delete(p.sessions, k)
		s.wipe()
	}
}

// dropSessions wipes and forgets every session of kind on keyID (a refresh ends the old
// share's presignatures), and refuses back (put) one that a step holds now, begun before.
func (p *party) dropSessions(keyID, kind string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if p.ended == nil {
		p.ended = map[string]time.Time{}
	}
	for k, t := range p.ended { // an end older than any session's life bars nothing
		if now.Sub(t) > presignTTL+sessionTTL {
			delete(p.ended, k)
		}
	}
	p.ended[kind+"/"+keyID] = now
	for k, s := range p.sessions {
		if s.keyID == keyID && s.kind == kind {
			delete(p.sessions, k)
			s.wipe()
		}
	}
}

// expire wipes and drops a session when its time is up, if it is still waiting.
func (p *party) expire(k string, s *session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sessions[k] == s { // a step that holds it wipes it itself, and put refuses it back
		delete(p.sessions, k)
		s.wipe()
	}
}

// admit says whether requester may open another session of kind on keyID.
func (p *party) admit(requester NodeID, keyID, kind string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := p.admitLocked(requester, keyID, kind)
	return err
}

// admitLocked returns the session a new one of requester on keyID replaces (if any), or
// an error if the table has no room for it. A key generation's key ID is anyone's to name:
// it counts for no key. The caller holds p.mu.
func (p *party) admitLocked(requester NodeID, keyID, kind string) (string, error) {
	mine, key, keygens := 0, 0, 0
	var oldMine, oldKey, oldest string
	older := func(k, than string) bool { return than == "" || p.sessions[k].started.Before(p.sessions[than].started) }
	for k, s := range p.sessions {
		if s.kind == "keygen" {
			keygens++
		}
		if older(k, oldest) {
			oldest = k
		}
		if s.requester.Equal(requester) {
			if mine++; older(k, oldMine) {
				oldMine = k
			}
		}
		if kind != "keygen" && s.kind != "keygen" && s.keyID == keyID {
			if key++; older(k, oldKey) {
				oldKey = k
			}
		}
	}
	crowded := len(p.sessions) >= maxSessions/2
	switch {
	case key >= maxSessionsKey, key > 0 && crowded:
		return oldKey, nil
	case mine >= maxSessionsRequester, mine > 0 && crowded:
		return oldMine, nil
	case kind == "keygen" && keygens >= maxKeyGenSessions:
		return "", fmt.Errorf("%w: too many key generations in progress; retry later", ErrForbidden)
	case len(p.sessions) >= maxSessions && kind != "keygen":
		// A key's first session always gets in, in the place of the table's oldest: whoever
		// holds many keys cannot keep a phone out, only make sessions live shorter.
		return oldest, nil
	case len(p.sessions) >= maxSessions:
		return "", fmt.Errorf("%w: too many sessions in progress; retry later", ErrForbidden)
	}
	return "", nil
}

// put keeps a session under its requester and ID: a new one (started zero) if the caps
// admit it, with a timer that wipes it at its end; a taken one back, if still in time.
func (p *party) put(id []byte, s *session) error {
	if len(id) != protocol.SessionLen || s.kind == "" {
		return errors.New("bad session")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	k := sessionKey(s.requester, id)
	if p.sessions[k] != nil {
		return errors.New("session already in progress")
	}
	if s.started.IsZero() {
		evict, err := p.admitLocked(s.requester, s.keyID, s.kind)
		if err != nil {
			return err
		}
		if old := p.sessions[evict]; old != nil {
			delete(p.sessions, evict)
			old.wipe()
		}
		s.started = time.Now()
		time.AfterFunc(s.life(), func() { p.expire(k, s) })
	} else if time.Since(s.started) > s.life() || !s.started.After(p.ended[s.kind+"/"+s.keyID]) {
		return errors.New("the session expired")
	}
	p.sessions[k] = s
	return nil
}

// tellsPending are the steps whose answers say, as info's do, whether a refresh of the key
// is prepared here (Pending, PendingOf): a signature's last step and a refresh's first, which
// may start from the phone's kept state, so that the recovery check rides with them.
var tellsPending = map[Op]bool{OpSignShareAhead: true, OpECDSAFinish: true, OpRefreshStart: true}

// Step runs one step on the party's node.
func (p *party) Step(_ context.Context, st *Step) (*StepResult, error) {
	if !tellsPending[st.Op] {
		return p.step(st)
	}
	pending, of, err := p.n.pendingEpoch(st.KeyID) // read first: a failure opens no session
	if err != nil {
		return nil, err
	}
	res, err := p.step(st)
	if err == nil {
		res.Pending, res.PendingOf = pending, of
	}
	return res, err
}

func (p *party) step(st *Step) (*StepResult, error) {
	switch st.Op {
	case OpInfo:
		return p.info(st.KeyID, st.Scheme, st.Session)
	case OpInfoAhead:
		return p.infoAhead(st)
	case OpCheck:
		k, err := p.n.key(st.KeyID, st.Scheme)
		if err != nil {
			return nil, err
		}
		defer k.wipe()
		return &StepResult{}, k.check()
	case OpKeyGenStart, OpRefreshStart:
		return p.dkgStart(st)
	case OpKeyGenRound2, OpRefreshRound2:
		return p.dkgRound2(st)
	case OpKeyGenFinish:
		return p.keygenFinish(st)
	case OpKeyGenDiscard:
		p.dropPrecommits(st.KeyID) // a key of this ID made again takes none of these
		return &StepResult{}, p.n.discardNew(st.KeyID)
	case OpSignCommit:
		return p.signCommit(st)
	case OpSignShare, OpSignShareAhead:
		return p.signShare(st)
	case OpRefreshPrep:
		return p.refreshPrepare(st)
	case OpRefreshCommit:
		if err := p.n.commitPending(st.KeyID, st.Session); err != nil {
			return nil, err
		}
		p.dropPrecommits(st.KeyID) // nonces of the old share's commitments, and presignatures
		p.dropSessions(st.KeyID, "ecdsa")
		dropPresigned(st.KeyID) // the phone's own halves, kept in this process
		// The answer says the refresh is committed here: the decider's, signed, is its word
		// to the other parties (Node.checkDecision), as an info answer naming the session is.
		return &StepResult{Done: Committed}, nil
	case OpECDSASetupStart:
		return p.ecdsaSetupStart(st)
	case OpECDSASetupAnswer:
		return p.ecdsaSetupAnswer(st)
	case OpECDSASetupFinish:
		return p.ecdsaSetupFinish(st)
	case OpECDSAStart:
		return p.ecdsaStart(st)
	case OpECDSARound2:
		return p.ecdsaRound2(st)
	case OpECDSAFinish:
		return p.ecdsaFinish(st)
	case OpRefreshAbort:
		p.drop(st) // a refresh abandoned before its prepare leaves no polynomial behind
		return &StepResult{}, p.n.abortPending(st.KeyID, st.Session)
	}
	return nil, fmt.Errorf("unknown step %q", st.Op)
}

// info answers the key's public state, its pending refresh and, for a refresh session
// given, how this node finished it; read in one transaction.
func (p *party) info(keyID string, s Scheme, session []byte) (*StepResult, error) {
	var res *StepResult
	err := p.n.view(func(q querier) error {
		k, err := readKey(q, keyID, s)
		if err != nil {
			return err
		}
		k.wipe()
		pending, of, err := readPendingEpoch(q, keyID)
		if err != nil {
			return err
		}
		res = &StepResult{Info: &k.KeyInfo, PublicShares: k.publicShares, Pending: pending, PendingOf: of}
		if session == nil {
			return nil
		}
		if pending != 0 && bytes.Equal(of, session) {
			next, err := readPending(q, keyID, s)
			if err != nil {
				return err
			}
			next.wipe()
			res.PendingShares = next.publicShares
		}
		res.Done, err = q.Outcome(keyID, session)
		return err
	})
	return res, err
}

func (p *party) dkgStart(st *Step) (*StepResult, error) {
	refresh := st.Op == OpRefreshStart
	params := protocol.DKGParams{Session: st.Session, Curve: protocol.Curve(curveOf(st.Scheme))}
	s := &session{kind: kindOf(st.Op), keyID: st.KeyID, scheme: st.Scheme, roster: st.Roster, requester: authNode(st)}
	typ := protocol.MsgDKGRound1
	if refresh {
		typ = protocol.MsgRefreshRound1
		k, err := p.n.key(st.KeyID, st.Scheme)
		if err != nil {
			return nil, err
		}
		k.wipe()
		var done uint8
		err = p.n.view(func(q querier) (err error) { done, err = q.Outcome(st.KeyID, st.Session); return err })
		switch {
		case err != nil:
			return nil, err
		case done != 0:
			return nil, errSessionOver
		}
		params.Threshold, params.Parties, params.ID = k.Threshold, k.Players, k.NodeIndex+1
	} else {
		kp := st.KeyGen
		if err := checkKeyGen(kp); err != nil || validKeyID(st.KeyID) != nil {
			return nil, errors.New("key generation needs a key ID and valid parameters")
		}
		// An existing key ID is not told here (docs/tsm-api.md): the key generation fails
		// at its end, where the key would be stored.
		params.Threshold, params.Parties, params.ID = kp.Threshold, kp.Parties, kp.Index+1
		s.params = kp
	}
	if err := p.checkRoster(st.Roster, params.Parties, params.ID); err != nil {
		return nil, err
	}
	for _, id := range st.Roster {
		if id.Sign == nil {
			return nil, errors.New("key generation and refresh need every party in the roster")
		}
	}
	s.self = params.ID
	start := protocol.NewDKG
	if refresh {
		start = protocol.NewRefresh
	}
	d, r1, err := start(params, rand.Reader)
	if err != nil {
		return nil, err
	}
	s.dkg = d
	out, err := p.seal(s, st.Session, &protocol.Message{Type: typ, Session: st.Session, Curve: params.Curve, From: params.ID, Round1: r1})
	return p.opened(st, s, out, err)
}

// opened ends a step that starts a session: it keeps s and answers out, or, if sealing out
// (err) or keeping s failed, wipes s.
func (p *party) opened(st *Step, s *session, out [][]byte, err error) (*StepResult, error) {
	if err == nil {
		err = p.put(st.Session, s)
	}
	if err != nil {
		s.wipe()
		return nil, err
	}
	return &StepResult{Out: out}, nil
}

func authNode(st *Step) NodeID {
	if st.Auth == nil {
		return NodeID{}
	}
	return st.Auth.Node
}

func (p *party) dkgRound2(st *Step) (_ *StepResult, err error) {
	s, err := p.take(st)
	if err != nil {
		return nil, err
	}
	defer wipeOnError(s, &err)
	in, typ := protocol.MsgDKGRound1, protocol.MsgDKGRound2
	if st.Op == OpRefreshRound2 {
		in, typ = protocol.MsgRefreshRound1, protocol.MsgRefreshRound2
	}
	ms, err := p.open(st, s, in)
	if err != nil {
		return nil, err
	}
	var r1 []*protocol.Round1
	for _, m := range ms {
		r1 = append(r1, m.Round1)
	}
	r2, err := s.dkg.Round2(r1)
	if err != nil {
		return nil, err
	}
	var out []*protocol.Message
	for _, m := range r2 {
		out = append(out, &protocol.Message{Type: typ, Session: st.Session, Curve: protocol.Curve(curveOf(s.scheme)), From: m.From, To: m.To, Round2: m})
	}
	enc, err := p.seal(s, st.Session, out...)
	for _, m := range r2 {
		clear(m.Share)
	}
	if err != nil {
		return nil, err
	}
	if err := p.put(st.Session, s); err != nil {
		return nil, err
	}
	return &StepResult{Out: enc}, nil
}

// finishDKG runs the last round of a session's DKG on the step's messages.
// The session's secrets are wiped whatever the outcome.
func (p *party) finishDKG(st *Step, typ protocol.MsgType) (*session, *protocol.Result, error) {
	s, err := p.take(st)
	if err != nil {
		return nil, nil, err
	}
	defer s.wipe()
	ms, err := p.open(st, s, typ)
	if err != nil {
		return nil, nil, err
	}
	var r2 []*protocol.Round2
	for _, m := range ms {
		r2 = append(r2, m.Round2)
	}
	res, err := s.dkg.Finish(r2)
	for _, m := range r2 {
		clear(m.Share)
	}
	return s, res, err
}

func (p *party) keygenFinish(st *Step) (*StepResult, error) {
	s, res, err := p.finishDKG(st, protocol.MsgDKGRound2)
	if err != nil {
		return nil, err
	}
	defer clear(res.Secret)
	kp := s.params
	k := &keyState{KeyInfo: KeyInfo{KeyID: s.keyID, Scheme: s.scheme, Curve: curveOf(s.scheme), NodeIndex: kp.Index,
		Players: kp.Parties, Threshold: kp.Threshold, Created: kp.Created.Truncate(time.Second).UTC(), PublicKey: res.Public.PublicKey,
		Description: kp.Description, ChainCode: kp.ChainCode}, share: res.Secret, publicShares: res.Public.Shares}
	if err := k.check(); err != nil {
		return nil, err
	}
	owner := -1 // the requester's place, for a node that serves remote coordinators
	for i, id := range s.roster {
		if s.requester.Sign != nil && id.Equal(s.requester) {
			owner = i
		}
	}
	if err := p.n.insert(k, owner, s.roster); err != nil {
		return nil, err
	}
	return &StepResult{Info: &k.KeyInfo, PublicShares: k.publicShares}, nil
}

func (p *party) refreshPrepare(st *Step) (*StepResult, error) {
	s, res, err := p.finishDKG(st, protocol.MsgRefreshRound2)
	if err != nil {
		return nil, err
	}
	defer clear(res.Secret)
	old, err := p.n.key(s.keyID, s.scheme)
	if err != nil {
		return nil, err
	}
	defer old.wipe()
	ks, err := protocol.ApplyRefresh(old.keyShare(), res)
	if err != nil {
		return nil, err
	}
	next := &keyState{KeyInfo: old.KeyInfo, share: ks.Secret, publicShares: ks.Shares}
	defer next.wipe()
	next.Epoch++
	// The decider is the key's party of lowest identifier but its owner (the phone's place);
	// a node that is not it takes a switch or discard only on its signed word (Node.serve).
	owner, err := p.n.ownerOf(s.keyID)
	if err != nil {
		return nil, err
	}
	decider := ""
	if d := deciderIndex(owner); d != old.NodeIndex && d < len(s.roster) {
		decider = s.roster[d].String()
	}
	if err := p.n.prepare(next, st.Session, decider); err != nil {
		return nil, err
	}
	return &StepResult{Info: &next.KeyInfo, PublicShares: next.publicShares}, nil
}

func (p *party) signCommit(st *Step) (*StepResult, error) {
	if st.Scheme != EdDSA {
		return nil, errors.New("sign/commit is FROST, for EdDSA keys; an ECDSA key signs with the ecdsa/ steps")
	}
	k, err := p.n.key(st.KeyID, st.Scheme)
	if err != nil {
		return nil, err
	}
	defer k.wipe()
	if err := p.checkRoster(st.Roster, k.Players, k.NodeIndex+1); err != nil {
		return nil, err
	}
	n, err := protocol.Commit(k.keyShare(), rand.Reader)
	if err != nil {
		return nil, err
	}
	s := &session{kind: "sign", keyID: st.KeyID, scheme: st.Scheme, nonces: n, self: k.NodeIndex + 1, roster: st.Roster, requester: authNode(st)}
	out, err := p.seal(s, st.Session, &protocol.Message{Type: protocol.MsgCommitment, Session: st.Session, Curve: protocol.Ed25519, From: k.NodeIndex + 1, Commitment: &n.Commitment})
	return p.opened(st, s, out, err) // s.wipe wipes n
}

func (p *party) signShare(st *Step) (*StepResult, error) {
	s, serr := p.take(st)
	// The request is the coordinator's, covered by the step's Auth; it is no envelope.
	var m *protocol.Message
	merr := errors.New("a signing step takes one request, for the session's key")
	if len(st.In) == 1 {
		if m, merr = protocol.Unmarshal(st.In[0]); merr == nil && (m.Type != protocol.MsgSignRequest || !bytes.Equal(m.Session, st.Session)) {
			merr = errors.New("not a signing request of this session")
		}
	}
	if merr != nil {
		if s != nil {
			s.wipe()
		}
		if serr != nil {
			return nil, serr
		}
		return nil, merr
	}
	k, err := p.n.key(st.KeyID, st.Scheme)
	if err != nil {
		if s != nil {
			s.wipe()
		}
		return nil, err
	}
	defer k.wipe()
	if serr != nil { // no round one in this session: a commitment handed out ahead, or nothing
		if s, err = p.takePrecommit(st, m.Request, k); err != nil {
			return nil, err
		}
	}
	defer s.wipe() // nonces are used once, whatever happens
	if s.keyID != st.KeyID {
		return nil, errors.New("a signing step takes one request, for the session's key")
	}
	z, err := protocol.SignShare(k.keyShare(), s.nonces, m.Request.Message, m.Request.Commitments)
	if err != nil {
		return nil, err
	}
	out, err := p.seal(s, st.Session, &protocol.Message{Type: protocol.MsgSignShare, Session: st.Session, Curve: protocol.Ed25519, From: k.NodeIndex + 1, SigShare: z})
	if err != nil {
		return nil, err
	}
	// A remote coordinator that asks for it gets its next signature's commitment, ahead; a
	// failure to make one costs only that (the share is answered all the same).
	if st.Op == OpSignShareAhead && st.Auth != nil {
		if next, err := p.handOut(st, k, s); err == nil {
			out = append(out, next)
		}
	}
	return &StepResult{Out: out}, nil
}

// deciderIndex is the node index of a key's decider: its lowest but the owner's.
func deciderIndex(owner int) int {
	if owner == 0 {
		return 1
	}
	return 0
}

// These node methods are the party's writes; each is one transaction.

// insert stores a new key and, when owner ≥ 0, the index of the party that coordinates it
// and the parties' node IDs (a refresh's roster must be the same but at the owner's place,
// whose node ID changes with a restored phone).
func (n *node) insert(k *keyState, owner int, roster []NodeID) error {
	return n.write(func(tx querier) error {
		if err := insertKey(tx, k); errors.Is(err, nodestore.ErrExists) {
			return errors.New("the key generation failed: this node cannot store a key of this ID")
		} else if err != nil {
			return err
		}
		if owner < 0 {
			return nil
		}
		ids := make([]string, len(roster))
		for i, id := range roster {
			ids[i] = id.String()
		}
		return tx.SetOwner(k.KeyID, owner, strings.Join(ids, ","))
	})
}

// discardNew removes a key at epoch 0 that a failed key generation left behind.
func (n *node) discardNew(keyID string) error { // the party drops its precommits of it (Step)
	return n.write(func(tx querier) error { return tx.DeleteNewKey(keyID) })
}
