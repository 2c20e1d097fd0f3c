package tsm

// Threshold ECDSA on a key's parties (docs/tsm-protocol.md, "Signing: threshold ECDSA"):
// the steps a party answers, the OT seeds a node keeps, and the coordinator's signature.
// The protocol is package dkls23's; this file carries its messages.

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	decred "github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"

	"github.com/sharevault/sharevault/internal/bip32"
	"github.com/sharevault/sharevault/internal/nodestore"
	"github.com/sharevault/sharevault/internal/tsm/protocol"
	"github.com/sharevault/sharevault/internal/tsm/protocol/dkls23"
	"github.com/sharevault/sharevault/internal/tsm/protocol/ote"
)

const (
	OpECDSASetupStart  Op = "ecdsa-setup/start"  // signing set → base OT first messages, one per other party
	OpECDSASetupAnswer Op = "ecdsa-setup/answer" // those addressed here → the answers
	OpECDSASetupFinish Op = "ecdsa-setup/finish" // the answers addressed here → the seeds, stored
	OpECDSAStart       Op = "ecdsa/start"        // signing set → round one: broadcast, an extension per other signer
	OpECDSARound2      Op = "ecdsa/round2"       // round one addressed here → round two, one per other signer
	OpECDSAFinish      Op = "ecdsa/finish"       // digest and path, round two addressed here → partial signature
)

// maxECDSASigners bounds a signing set (each other signer adds about 66 KB to a step).
const maxECDSASigners = 8

// ErrNoSeeds: a pair of the signing set has no OT seeds in common (never set up, set up
// at another epoch, restored, or ended by a refused extension). The coordinator sets the
// pair up and signs again.
var ErrNoSeeds = errors.New("no OT seeds in common with a signer: the pair is to be set up")

// ---- the party's steps ----

// coordinatorRequest parses a step's In[0], the coordinator's own message (covered by the
// step's Auth, no envelope), of type want and this session.
func coordinatorRequest(st *Step, want protocol.MsgType) (*protocol.Message, error) {
	if len(st.In) == 0 {
		return nil, fmt.Errorf("%s takes the coordinator's request first", st.Op)
	}
	m, err := protocol.Unmarshal(st.In[0])
	if err != nil {
		return nil, err
	}
	if m.Type != want || !bytes.Equal(m.Session, st.Session) {
		return nil, fmt.Errorf("%s: not the coordinator's request of this session", st.Op)
	}
	return m, nil
}

// signingSet reads the step's signing set: at least t+1 of the key's parties, at most
// maxECDSASigners, with this party and, on a node serving remote coordinators, the key's
// owner (the phone): the nodes sign only with the phone.
func (p *party) signingSet(st *Step, k *keyState) ([]int, error) {
	m, err := coordinatorRequest(st, protocol.MsgSigningSet)
	if err != nil {
		return nil, err
	}
	set := m.Signers
	switch {
	case len(set) < k.Threshold+1 || len(set) > maxECDSASigners || set[len(set)-1] > k.Players:
		return nil, fmt.Errorf("a signing set of %d parties for a key of %d that %d sign (at most %d)", len(set), k.Players, k.Threshold+1, maxECDSASigners)
	case !slices.Contains(set, k.NodeIndex+1):
		return nil, errors.New("a signing set without this party")
	}
	if st.Auth != nil { // a node serving remote coordinators
		owner, err := p.n.ownerOf(k.KeyID)
		if err != nil {
			return nil, err
		}
		if owner >= 0 && !slices.Contains(set, owner+1) {
			return nil, fmt.Errorf("%w: a signing set without the key's owner (the phone)", ErrForbidden)
		}
	}
	return set, nil
}

func (p *party) ecdsaKey(st *Step) (*keyState, error) {
	if st.Scheme != ECDSA {
		return nil, fmt.Errorf("%s is for ECDSA keys", st.Op)
	}
	k, err := p.n.key(st.KeyID, st.Scheme)
	if err != nil {
		return nil, err
	}
	if err := p.checkRoster(st.Roster, k.Players, k.NodeIndex+1); err != nil {
		k.wipe()
		return nil, err
	}
	return k, nil
}

// bodies sorts a step's opened ECDSA messages by type and sender.
func (p *party) bodies(st *Step, s *session, in [][]byte, want ...protocol.MsgType) (map[protocol.MsgType]map[int][]byte, error) {
	out := map[protocol.MsgType]map[int][]byte{}
	for _, t := range want {
		out[t] = map[int][]byte{}
	}
	for _, b := range in {
		m, err := p.key.unwrap(b, st.Session, s.self, s.roster)
		if err != nil {
			return nil, err
		}
		byFrom, ok := out[m.Type]
		if !ok || !slices.Contains(s.signers, m.From) || m.From == s.self || byFrom[m.From] != nil {
			return nil, fmt.Errorf("%s: a message of type %d from party %d does not belong here", st.Op, m.Type, m.From)
		}
		byFrom[m.From] = m.Body
	}
	for _, t := range want {
		if len(out[t]) != len(s.signers)-1 {
			return nil, fmt.Errorf("%s: %d messages of type %d, not one from each of the %d other signers", st.Op, len(out[t]), t, len(s.signers)-1)
		}
	}
	return out, nil
}

func (p *party) sealECDSA(s *session, st *Step, typ protocol.MsgType, bodies map[int][]byte) ([][]byte, error) {
	var ms []*protocol.Message
	for _, j := range s.signers {
		if b, ok := bodies[j]; ok {
			ms = append(ms, &protocol.Message{Type: typ, Session: st.Session, Curve: protocol.Secp256k1, From: s.self, To: j, Body: b})
		}
	}
	return p.seal(s, st.Session, ms...)
}

func (p *party) ecdsaSetupStart(st *Step) (*StepResult, error) {
	k, err := p.ecdsaKey(st)
	if err != nil {
		return nil, err
	}
	defer k.wipe()
	set, err := p.signingSet(st, k)
	if err != nil {
		return nil, err
	}
	self := k.NodeIndex + 1
	setup, m1, err := dkls23.NewSetup(st.Session, self, without(set, self), rand.Reader)
	if err != nil {
		return nil, err
	}
	s := &session{kind: kindOf(st.Op), keyID: st.KeyID, scheme: st.Scheme, self: self, roster: st.Roster, requester: authNode(st),
		signers: set, setup: setup, epoch: k.Epoch}
	out, err := p.sealECDSA(s, st, protocol.MsgOTSetup1, m1)
	return p.opened(st, s, out, err)
}

func (p *party) ecdsaSetupAnswer(st *Step) (_ *StepResult, err error) {
	s, err := p.take(st)
	if err != nil {
		return nil, err
	}
	defer wipeOnError(s, &err)
	in, err := p.bodies(st, s, st.In, protocol.MsgOTSetup1)
	if err != nil {
		return nil, err
	}
	m2, err := s.setup.Answer(in[protocol.MsgOTSetup1], rand.Reader)
	if err != nil {
		return nil, err
	}
	out, err := p.sealECDSA(s, st, protocol.MsgOTSetup2, m2)
	if err != nil {
		return nil, err
	}
	return &StepResult{Out: out}, p.put(st.Session, s)
}

func (p *party) ecdsaSetupFinish(st *Step) (*StepResult, error) {
	s, err := p.take(st)
	if err != nil {
		return nil, err
	}
	defer s.wipe()
	in, err := p.bodies(st, s, st.In, protocol.MsgOTSetup2)
	if err != nil {
		return nil, err
	}
	seeds, err := s.setup.Finish(in[protocol.MsgOTSetup2])
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, x := range seeds {
			x.Wipe()
		}
	}()
	return &StepResult{}, p.n.storeSeeds(s.keyID, s.epoch, seeds)
}

// A refused extension tells its sender one bit of this party's Δ, so the seeds that
// refused never extend again (docs/tsm-protocol.md, "OT extension"): end refuses every live
// signing session of the key that holds a copy of them, and deletes them from the database;
// should the delete fail, they stay refused in memory, and every later signature of the key
// tries the delete again first and is refused until it succeeds.
type refusedSeeds struct {
	keyID string
	peer  int
	id    string // the seeds' ID
}

func (p *party) endSeeds(keyID string, peer int, id []byte) error {
	r := refusedSeeds{keyID, peer, string(id)}
	p.mu.Lock()
	if p.refused == nil {
		p.refused = map[refusedSeeds]bool{}
	}
	p.refused[r] = true
	for k, s := range p.sessions {
		if s.kind == "ecdsa" && s.keyID == keyID && s.seedIDs != nil && s.seedIDs[peer] == string(id) {
			delete(p.sessions, k)
			s.wipe()
		}
	}
	p.mu.Unlock()
	return p.retryEnds(keyID)
}

// retryEnds deletes the key's refused seeds that are still in the database.
func (p *party) retryEnds(keyID string) error {
	p.mu.Lock()
	var todo []refusedSeeds
	for r := range p.refused {
		if r.keyID == keyID {
			todo = append(todo, r)
		}
	}
	p.mu.Unlock()
	for _, r := range todo {
		if err := p.n.dropSeeds(r.keyID, r.peer, []byte(r.id)); err != nil {
			return fmt.Errorf("the OT seeds a signer's check refused are not yet deleted: %w", err)
		}
		p.mu.Lock()
		delete(p.refused, r)
		p.mu.Unlock()
	}
	return nil
}

func (p *party) ecdsaStart(st *Step) (*StepResult, error) {
	k, err := p.ecdsaKey(st)
	if err != nil {
		return nil, err
	}
	defer k.wipe()
	set, err := p.signingSet(st, k)
	if err != nil {
		return nil, err
	}
	self := k.NodeIndex + 1
	if err := p.retryEnds(k.KeyID); err != nil {
		return nil, err
	}
	seeds, err := p.n.seeds(k.KeyID, k.Epoch)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, x := range seeds {
			x.Wipe()
		}
	}()
	share := k.keyShare()
	signer, bc, priv, err := dkls23.Start(dkls23.Params{Session: st.Session, Share: share, Signers: set, Seeds: seeds}, rand.Reader)
	share.Wipe()
	var se *dkls23.SeedError
	if errors.As(err, &se) {
		return nil, fmt.Errorf("%w (%v)", ErrNoSeeds, err)
	}
	if err != nil {
		return nil, err
	}
	s := &session{kind: kindOf(st.Op), keyID: st.KeyID, scheme: st.Scheme, self: self, roster: st.Roster, requester: authNode(st),
		signers: set, signer: signer, epoch: k.Epoch, seedIDs: map[int]string{}}
	for j, x := range seeds {
		s.seedIDs[j] = string(x.ID)
	}
	bodies := map[int][]byte{}
	for j, m := range priv {
		bodies[j] = m.Bytes()
	}
	out, err := p.seal(s, st.Session, &protocol.Message{Type: protocol.MsgECDSARound1, Session: st.Session, Curve: protocol.Secp256k1, From: self, Body: bc.Bytes()})
	if err == nil {
		var o [][]byte
		o, err = p.sealECDSA(s, st, protocol.MsgECDSAExtend, bodies)
		out = append(out, o...)
	}
	return p.opened(st, s, out, err)
}

func (p *party) ecdsaRound2(st *Step) (_ *StepResult, err error) {
	s, err := p.take(st)
	if err != nil {
		return nil, err
	}
	defer wipeOnError(s, &err)
	in, err := p.bodies(st, s, st.In, protocol.MsgECDSARound1, protocol.MsgECDSAExtend)
	if err != nil {
		return nil, err
	}
	bc, priv := map[int]*dkls23.Round1{}, map[int]*dkls23.Round1Private{}
	for j, b := range in[protocol.MsgECDSARound1] {
		if bc[j], err = dkls23.ParseRound1(b); err != nil {
			return nil, protocol.CulpritErrorf(j, "%v", err)
		}
		if priv[j], err = dkls23.ParseRound1Private(in[protocol.MsgECDSAExtend][j]); err != nil {
			return nil, protocol.CulpritErrorf(j, "%v", err)
		}
	}
	if _, err := p.sessionKeyState(s); err != nil {
		return nil, err
	}
	r2, err := s.signer.Round2(bc, priv, rand.Reader)
	var se *dkls23.SeedError
	if errors.As(err, &se) && se.Refused {
		// No honest party's extension fails its check (a setup's seeds are its own): the
		// peer is named, and its seeds with this party end here.
		if err := p.endSeeds(s.keyID, se.Peer, []byte(s.seedIDs[se.Peer])); err != nil {
			return nil, err
		}
		return nil, protocol.CulpritErrorf(se.Peer, "its OT extension failed its consistency check: this party ended their seeds")
	}
	if errors.As(err, &se) {
		return nil, fmt.Errorf("%w (%v)", ErrNoSeeds, err)
	}
	if err != nil {
		return nil, err
	}
	bodies := map[int][]byte{}
	for j, m := range r2 {
		bodies[j] = m.Bytes()
	}
	out, err := p.sealECDSA(s, st, protocol.MsgECDSARound2, bodies)
	for _, b := range bodies {
		clear(b)
	}
	if err != nil {
		return nil, err
	}
	return &StepResult{Out: out}, p.put(st.Session, s)
}

func (p *party) ecdsaFinish(st *Step) (*StepResult, error) {
	s, err := p.take(st)
	if err != nil {
		return nil, err
	}
	defer s.wipe()
	req, err := coordinatorRequest(st, protocol.MsgECDSADigest)
	if err != nil {
		return nil, err
	}
	in, err := p.bodies(st, s, st.In[1:], protocol.MsgECDSARound2)
	if err != nil {
		return nil, err
	}
	r2 := map[int]*dkls23.Round2Private{}
	for j, b := range in[protocol.MsgECDSARound2] {
		r2[j], err = dkls23.ParseRound2Private(b)
		clear(b)
		if err != nil {
			return nil, protocol.CulpritErrorf(j, "%v", err)
		}
	}
	k, err := p.sessionKeyState(s)
	if err != nil {
		return nil, err
	}
	d, err := bip32.Derive(k.PublicKey, k.ChainCode, req.Path)
	if err != nil {
		return nil, err
	}
	part, err := s.signer.Round3(r2, req.Digest, d.Tweak)
	if err != nil {
		return nil, err
	}
	out, err := p.seal(s, st.Session, &protocol.Message{Type: protocol.MsgECDSAPartial, Session: st.Session, Curve: protocol.Secp256k1, From: s.self, Body: part.Bytes()})
	return &StepResult{Out: out}, err
}

// sessionKeyState reads the public state of s's key (its share wiped), refusing a key that
// a refresh moved past the session's epoch.
func (p *party) sessionKeyState(s *session) (*keyState, error) {
	k, err := p.n.key(s.keyID, s.scheme)
	if err != nil {
		return nil, err
	}
	k.wipe()
	if k.Epoch != s.epoch {
		return nil, fmt.Errorf("%w: the key was refreshed during the signature", ErrStaleEpoch)
	}
	return k, nil
}

// without is set without self.
func without(set []int, self int) []int {
	return slices.DeleteFunc(slices.Clone(set), func(j int) bool { return j == self })
}

// ---- the node's OT seeds ----

// seeds reads the key's OT seeds with each peer, made at epoch.
func (n *node) seeds(keyID string, epoch uint32) (map[int]*dkls23.Seeds, error) {
	var rows []nodestore.Seeds
	if err := n.view(func(q querier) (err error) { rows, err = q.Seeds(keyID, epoch); return err }); err != nil {
		return nil, err
	}
	out := map[int]*dkls23.Seeds{}
	for _, row := range rows {
		r, err1 := ote.ParseReceiverSeeds(row.Receiver)
		s, err2 := ote.ParseSenderSeeds(row.Sender)
		clear(row.Receiver)
		clear(row.Sender)
		if err := errors.Join(err1, err2); err != nil {
			for _, x := range out {
				x.Wipe()
			}
			return nil, fmt.Errorf("key %q: the seeds with party %d: %w", keyID, row.Peer, err)
		}
		out[row.Peer] = &dkls23.Seeds{ID: row.ID, Receiver: r, Sender: s}
	}
	return out, nil
}

// storeSeeds keeps the seeds a setup made with each peer, in place of any before.
func (n *node) storeSeeds(keyID string, epoch uint32, seeds map[int]*dkls23.Seeds) error {
	return n.write(func(tx querier) error {
		r, err := tx.Key(keyID)
		if err != nil {
			return fmt.Errorf("%w: %q", ErrKeyNotFound, keyID)
		}
		clear(r.Share)
		if r.Epoch != epoch {
			return fmt.Errorf("%w: the key was refreshed during the setup", ErrStaleEpoch)
		}
		for peer, s := range seeds {
			row := &nodestore.Seeds{Peer: peer, Epoch: epoch, ID: s.ID, Receiver: s.Receiver.Bytes(), Sender: s.Sender.Bytes()}
			err := tx.PutSeeds(keyID, row)
			clear(row.Receiver)
			clear(row.Sender)
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// dropSeeds deletes the key's seeds of that ID with peer (newer ones stay).
func (n *node) dropSeeds(keyID string, peer int, id []byte) error {
	return n.write(func(tx querier) error { return tx.DeleteSeeds(keyID, peer, id) })
}

// ---- the coordinator ----

// Signature is an ECDSA signature as wallets use it: r and s (s low, BIP-62 / EIP-2), the
// recovery ID, and the public key it verifies under (the key's, or its derived child's).
type Signature struct {
	R, S       [32]byte
	RecoveryID byte
	PublicKey  []byte // SEC 1 compressed
}

// Compact is r || s || recovery ID, 65 bytes (Ethereum's v is 27 + the recovery ID).
func (s *Signature) Compact() []byte {
	return append(append(append([]byte(nil), s.R[:]...), s.S[:]...), s.RecoveryID)
}

// Sign signs a 32-byte digest with keyID, or with its BIP-32 child at path (non-hardened
// indices), among the client's nodes, which must be at least threshold+1 parties of the key.
// The signature is verified with decred's ecdsa before it is returned. Pairs of signers
// without OT seeds in common are set up first (a new key, a restored phone, a refresh). On a
// presignature (Presign) it is one round trip; if that fails (a node restarted, its half
// expired), it signs in three.
func (c *ECDSAClient) Sign(keyID string, digest []byte, path []uint32) (*Signature, error) {
	if len(digest) != 32 {
		return nil, fmt.Errorf("tsm: an ECDSA digest is 32 bytes, not %d", len(digest))
	}
	if len(path) > bip32.MaxDepth {
		return nil, fmt.Errorf("tsm: a path deeper than %d", bip32.MaxDepth)
	}
	for _, i := range path {
		if i >= bip32.Hardened {
			return nil, errors.New("tsm: bip32: a hardened index needs the private key")
		}
	}
	// On a presignature; a half gone (a node restarted, or a refresh) or seeds gone sign in
	// three rounds, and any other failure stands: a signer's answer that does not check is
	// not a reason to ask again (a signer that cheated on presignatures only would never be
	// named), nor is a node that does not answer (the app signs with the others).
	if ps := c.takePresigned(keyID); ps != nil {
		sig, err := c.finishSigned(ps, digest, path)
		if err == nil || !errors.Is(err, ErrNoSession) && !errors.Is(err, ErrStaleEpoch) && !errors.Is(err, ErrNoSeeds) {
			return sig, err
		}
	}
	var ps *presigned
	err := c.signFrom(keyID, func(sts []*StepResult, pub *protocol.Public, roster []NodeID) (err error) {
		ps, err = c.presign(keyID, sts, pub, roster)
		return err
	})
	if err != nil {
		return nil, err
	}
	return c.finishSigned(ps, digest, path)
}

// Presign runs, ahead, the rounds of the next signature with keyID that do not depend on
// the digest (DKLs23's rounds one and two, two round trips), among all the client's nodes:
// the next Sign in this process, within presignTTL, finishes it in one round trip. The
// phone's half is kept in this process's memory and each node's in its own (one per key
// here; a new one replaces it); each is used at most once, and a refresh ends them. The
// signature's nonce is re-randomized by the digest and path it signs (docs/tsm-protocol.md,
// "Signing ahead").
func (c *ECDSAClient) Presign(keyID string) error {
	return c.signFrom(keyID, func(sts []*StepResult, pub *protocol.Public, roster []NodeID) error {
		ps, err := c.presign(keyID, sts, pub, roster)
		if err == nil {
			if c.c.local != nil { // the phone's half, kept with the rest (a step here has no Auth)
				ps.mine = c.c.local.lift(NodeID{}, ps.run.session)
			}
			c.keepPresigned(keyID, ps)
		}
		return err
	})
}

// presign runs rounds one and two from the key's states sts, setting the pairs' OT seeds up
// first when the phone lacks some.
func (c *ECDSAClient) presign(keyID string, sts []*StepResult, pub *protocol.Public, roster []NodeID) (*presigned, error) {
	ids := make([]int, len(sts))
	for i, st := range sts {
		ids[i] = st.Info.NodeIndex + 1
	}
	// The phone knows its own seeds: when it lacks some (a new key, a restored phone, a
	// refresh), the pairs are set up first, not after a round that would fail.
	if li := c.localIndex(); li >= 0 {
		if own, err := c.c.local.n.seeds(keyID, sts[li].Info.Epoch); err == nil {
			missing := false
			for _, j := range ids {
				missing = missing || j != sts[li].Info.NodeIndex+1 && own[j] == nil
			}
			for _, x := range own {
				x.Wipe()
			}
			if missing {
				if err := c.setupECDSA(keyID, roster, ids); err != nil {
					return nil, fmt.Errorf("tsm: set up the signers' OT seeds: %w", err)
				}
			}
		}
	}
	ps, err := c.rounds12(keyID, roster, ids)
	if errors.Is(err, ErrNoSeeds) {
		if err := c.setupECDSA(keyID, roster, ids); err != nil {
			return nil, fmt.Errorf("tsm: set up the signers' OT seeds: %w", err)
		}
		ps, err = c.rounds12(keyID, roster, ids)
	}
	if err != nil {
		return nil, fmt.Errorf("tsm: sign: %w", err)
	}
	ps.publicKey, ps.chainCode, ps.made = pub.PublicKey, sts[0].Info.ChainCode, time.Now()
	if li := c.localIndex(); li >= 0 {
		ps.epoch = sts[li].Info.Epoch
	}
	return ps, nil
}

// finishSigned is round three on ps with the digest and path, the combined signature
// checked with decred's ecdsa.
func (c *ECDSAClient) finishSigned(ps *presigned, digest []byte, path []uint32) (*Signature, error) {
	d, err := bip32.Derive(ps.publicKey, ps.chainCode, path)
	if err != nil {
		return nil, fmt.Errorf("tsm: %w", err)
	}
	sig, err := c.round3(ps, digest, path)
	if err != nil {
		return nil, fmt.Errorf("tsm: sign: %w", err)
	}
	pk, err := decred.ParsePubKey(d.PublicKey)
	if err != nil {
		return nil, err
	}
	var r, s decred.ModNScalar
	r.SetBytes(&sig.R)
	s.SetBytes(&sig.S)
	if !ecdsa.NewSignature(&r, &s).Verify(digest, pk) {
		return nil, errors.New("tsm: the signature does not verify (a signer's share of it was wrong)")
	}
	return &Signature{R: sig.R, S: sig.S, RecoveryID: sig.RecoveryID, PublicKey: d.PublicKey}, nil
}

// presigned is a signature's rounds one and two, done: the run and what each party got in
// round two (envelopes, by identifier), with the key's public key, chain code and the
// phone's epoch at the time.
type presigned struct {
	run       *ecdsaRun
	in        map[int][][]byte
	mine      *session    // the phone's own half, while it is kept here
	timer     *time.Timer // wipes it unused
	publicKey []byte
	chainCode []byte
	epoch     uint32
	made      time.Time
}

// presignTTL is how long a presignature waits for its digest: a node keeps an ECDSA
// signing session this long (session.life); the phone takes one only well within it.
const presignTTL = 10 * time.Minute

// presignatures holds, in this process's memory, one presignature per key and the client's
// nodes (keptKey), at most maxKept.
var presignatures = struct {
	sync.Mutex
	m map[string]*presigned
}{m: map[string]*presigned{}}

func (c *ECDSAClient) keepPresigned(keyID string, ps *presigned) {
	k := c.keptKey(keyID)
	presignatures.Lock()
	defer presignatures.Unlock()
	if len(presignatures.m) >= maxKept {
		for _, o := range presignatures.m {
			o.wipe()
		}
		clear(presignatures.m)
	}
	if o := presignatures.m[k]; o != nil {
		o.wipe()
	}
	presignatures.m[k] = ps
	ps.timer = time.AfterFunc(presignTTL, func() { // unused: the phone's half is wiped with its time
		presignatures.Lock()
		defer presignatures.Unlock()
		if presignatures.m[k] == ps {
			delete(presignatures.m, k)
			ps.wipe()
		}
	})
}

// dropPresigned wipes and forgets every presignature of keyID this process holds (a
// refresh of the key: the phone's halves hold the old share's additive part).
func dropPresigned(keyID string) {
	presignatures.Lock()
	defer presignatures.Unlock()
	for k, ps := range presignatures.m {
		if ps.run.keyID == keyID {
			delete(presignatures.m, k)
			ps.wipe()
		}
	}
}

// wipe wipes the phone's half of ps.
func (ps *presigned) wipe() {
	if ps.mine != nil {
		ps.mine.wipe()
	}
}

// takePresigned takes keyID's presignature out (it is used at most once), if it is of the
// phone's current epoch, nothing is pending on the phone, and it is young enough.
func (c *ECDSAClient) takePresigned(keyID string) *presigned {
	if c.c.local == nil {
		return nil
	}
	presignatures.Lock()
	ps := presignatures.m[c.keptKey(keyID)]
	delete(presignatures.m, c.keptKey(keyID))
	presignatures.Unlock()
	if ps == nil {
		return nil
	}
	ps.timer.Stop()
	if time.Since(ps.made) > presignTTL-time.Minute || ps.mine == nil {
		ps.wipe()
		return nil
	}
	k := c.settled(keyID)
	if k != nil {
		k.wipe() // its epoch is what is compared
	}
	if k == nil || k.Epoch != ps.epoch {
		ps.wipe()
		return nil
	}
	if c.c.local.adopt(ps.run.session, ps.mine) != nil { // the phone's half, to this client's party
		return nil
	}
	ps.run.c = c // the client of this signature (an app opens one per operation)
	return ps
}

// ecdsaRounds runs steps whose results are envelopes: each node's step is built by mk from
// the node's index and party identifier, and every envelope it answers is checked as its
// own and kept: broadcasts for everyone else, private ones for their recipient.
type ecdsaRun struct {
	c       *ECDSAClient
	keyID   string
	session []byte
	roster  []NodeID
	ids     []int // party identifier of each of the client's nodes
	set     []byte
}

// round runs op on every node, in is what each party gets (by identifier) after prefix,
// the coordinator's own message; every answer must be bc broadcasts and one private
// message to each other party (priv), each checked as its sender's own, and they are kept:
// broadcasts for every other party, private ones for their recipient.
func (r *ecdsaRun) round(op Op, in func(id int) [][]byte, prefix func() []byte, bc int, priv bool) (map[int][][]byte, []*StepResult, error) {
	inbox := map[int][][]byte{}
	res, err := r.c.each(func(i int) *Step {
		var msgs [][]byte
		if prefix != nil {
			msgs = append(msgs, prefix())
		}
		if in != nil {
			msgs = append(msgs, in(r.ids[i])...)
		}
		return &Step{Op: op, KeyID: r.keyID, Session: r.session, Roster: r.roster, In: msgs}
	})
	if err != nil {
		return nil, nil, err
	}
	for i, res := range res {
		from := r.ids[i]
		broadcasts, to := 0, map[int]bool{}
		for _, b := range res.Out {
			j, err := checkSender(b, r.session, from, r.roster)
			if err != nil {
				return nil, nil, fmt.Errorf("node %d: %w", i, err)
			}
			if j == 0 {
				broadcasts++
				for _, k := range r.ids {
					if k != from {
						inbox[k] = append(inbox[k], b)
					}
				}
				continue
			}
			if !priv || to[j] || j == from || !slices.Contains(r.ids, j) {
				return nil, nil, protocol.CulpritErrorf(from, "%s: a private message to party %d that does not belong", op, j)
			}
			to[j] = true
			inbox[j] = append(inbox[j], b)
		}
		if broadcasts != bc || priv && len(to) != len(r.ids)-1 {
			return nil, nil, protocol.CulpritErrorf(from, "%s: %d broadcasts and %d private messages, not %d and one to each other party", op, broadcasts, len(to), bc)
		}
	}
	return inbox, res, nil
}

func (c *ECDSAClient) newRun(keyID string, roster []NodeID, ids []int) (*ecdsaRun, error) {
	set := slices.Sorted(slices.Values(ids))
	session := newSession()
	req, err := (&protocol.Message{Type: protocol.MsgSigningSet, Session: session, Curve: protocol.Secp256k1, Signers: set}).Marshal()
	if err != nil {
		return nil, err
	}
	return &ecdsaRun{c: c, keyID: keyID, session: session, roster: roster, ids: ids, set: req}, nil
}

// setupECDSA makes the base OTs of every pair of the signers.
func (c *ECDSAClient) setupECDSA(keyID string, roster []NodeID, ids []int) error {
	r, err := c.newRun(keyID, roster, ids)
	if err != nil {
		return err
	}
	in, _, err := r.round(OpECDSASetupStart, nil, func() []byte { return r.set }, 0, true)
	if err != nil {
		return err
	}
	if in, _, err = r.round(OpECDSASetupAnswer, func(id int) [][]byte { return in[id] }, nil, 0, true); err != nil {
		return err
	}
	_, _, err = r.round(OpECDSASetupFinish, func(id int) [][]byte { return in[id] }, nil, 0, false)
	return err
}

// rounds12 is a signature's rounds one and two, which do not depend on the digest.
func (c *ECDSAClient) rounds12(keyID string, roster []NodeID, ids []int) (*presigned, error) {
	r, err := c.newRun(keyID, roster, ids)
	if err != nil {
		return nil, err
	}
	in, _, err := r.round(OpECDSAStart, nil, func() []byte { return r.set }, 1, true)
	if err != nil {
		return nil, err
	}
	if in, _, err = r.round(OpECDSARound2, func(id int) [][]byte { return in[id] }, nil, 0, true); err != nil {
		return nil, err
	}
	return &presigned{run: r, in: in}, nil
}

// round3 is round three on ps: the digest and path to every signer, their partial
// signatures combined.
func (c *ECDSAClient) round3(ps *presigned, digest []byte, path []uint32) (*dkls23.Signature, error) {
	r := ps.run
	req, err := (&protocol.Message{Type: protocol.MsgECDSADigest, Session: r.session, Curve: protocol.Secp256k1, Digest: digest, Path: path}).Marshal()
	if err != nil {
		return nil, err
	}
	_, res, err := r.round(OpECDSAFinish, func(id int) [][]byte { return ps.in[id] }, func() []byte { return req }, 1, false)
	if err != nil {
		return nil, err
	}
	var parts []*dkls23.Partial
	for i, res := range res {
		if len(res.Out) != 1 {
			return nil, fmt.Errorf("node %d answered %d partial signatures", i, len(res.Out))
		}
		m, err := readEnvelope(i, res.Out[0], protocol.MsgECDSAPartial, r.session, r.roster, r.ids[i], res.vouched)
		if err != nil {
			return nil, err
		}
		p, err := dkls23.ParsePartial(m.From, m.Body)
		if err != nil {
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		parts = append(parts, p)
	}
	sig, err := dkls23.Combine(parts)
	if err == nil {
		c.afterSign(r.keyID, res)
	}
	return sig, err
}
