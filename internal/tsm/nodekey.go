package tsm

// This file is the cryptography that lets parties talk through anyone (docs/tsm-api.md,
// "Envelopes" and "Authorization"): every node's long-term identity (an Ed25519 signing key
// and an X25519 key for HPKE, both derived from one 32-byte seed), the envelope every
// protocol message travels in (signed by its sender; sealed to its recipient when private,
// with HPKE, RFC 9180), and the proof a party of a key gives a node to act on it.

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sharevault/sharevault/internal/tsm/protocol"
)

// NodeID is a node's public identity: its Ed25519 key (signatures) and X25519 key (HPKE).
type NodeID struct {
	Sign []byte // 32 bytes
	Seal []byte // 32 bytes
}

// String is the node ID as operators write it in a configuration: 128 hex digits.
func (id NodeID) String() string { return hex.EncodeToString(id.Sign) + hex.EncodeToString(id.Seal) }

// Equal reports whether two node IDs are the same.
func (id NodeID) Equal(o NodeID) bool {
	return bytes.Equal(id.Sign, o.Sign) && bytes.Equal(id.Seal, o.Seal)
}

// ParseNodeID reads String's form.
func ParseNodeID(s string) (NodeID, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != 64 {
		return NodeID{}, errors.New("a node ID is 128 hex digits")
	}
	id := NodeID{Sign: b[:32], Seal: b[32:]}
	if _, err := ecdh.X25519().NewPublicKey(id.Seal); err != nil {
		return NodeID{}, err
	}
	return id, nil
}

// NodeKey is a node's long-term private identity. It does not print.
type NodeKey struct {
	seed []byte
	sign ed25519.PrivateKey
	seal *ecdh.PrivateKey
}

func (*NodeKey) String() string { return "tsm.NodeKey{…}" }

// NewNodeKey derives a node key from a 32-byte seed: the Ed25519 seed and the X25519 key
// are HKDF-SHA256 of it with the infos "sharevault tsm node sign" and "… seal".
func NewNodeKey(seed []byte) (*NodeKey, error) {
	if len(seed) != 32 {
		return nil, errors.New("a node key seed is 32 bytes")
	}
	s, err := hkdf.Key(sha256.New, seed, nil, "sharevault tsm node sign", 32)
	if err != nil {
		return nil, err
	}
	x, err := hkdf.Key(sha256.New, seed, nil, "sharevault tsm node seal", 32)
	if err != nil {
		return nil, err
	}
	xk, err := ecdh.X25519().NewPrivateKey(x)
	if err != nil {
		return nil, err
	}
	return &NodeKey{seed: bytes.Clone(seed), sign: ed25519.NewKeyFromSeed(s), seal: xk}, nil
}

// GenerateNodeKey draws a new node key.
func GenerateNodeKey() *NodeKey {
	seed := make([]byte, 32)
	rand.Read(seed)
	k, _ := NewNodeKey(seed)
	return k
}

// LoadNodeKey reads a node key file (64 hex digits of seed), creating it (mode 0600) with
// a new key if it does not exist.
func LoadNodeKey(path string) (*NodeKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		k := GenerateNodeKey()
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("tsm: create node key %s: %w", path, err)
		}
		_, werr := f.WriteString(hex.EncodeToString(k.seed) + "\n")
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			return nil, fmt.Errorf("tsm: write node key %s: %w", path, err)
		}
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tsm: read node key: %w", err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != 32 {
		return nil, fmt.Errorf("tsm: node key %s is not 64 hex digits", path)
	}
	return NewNodeKey(seed)
}

// ID returns the node's public identity.
func (k *NodeKey) ID() NodeID {
	return NodeID{Sign: bytes.Clone(k.sign.Public().(ed25519.PublicKey)), Seal: k.seal.PublicKey().Bytes()}
}

// The envelope (docs/tsm-api.md, "Envelopes"):
//
//	"SVTE" | 01 | session (16) | from (1) | to (1) | sealed (1) | length (4) | payload | Ed25519 signature (64)
//
// The signature is the sender's, over every byte before it with the prefix envDomain. A
// sealed payload is HPKE (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305,
// single shot) to the recipient's X25519 key, with info envDomain || session || from || to.
const (
	envMagic  = "SVTE"
	envDomain = "sharevault tsm envelope v1"
	envHeader = 4 + 1 + protocol.SessionLen + 3 + 4
	maxEnvLen = 1 << 17
)

var hpkeKDF, hpkeAEAD = hpke.HKDFSHA256(), hpke.ChaCha20Poly1305()

func envInfo(session []byte, from, to int) []byte {
	return append(append([]byte(envDomain), session...), byte(from), byte(to))
}

// wrap puts an encoded protocol message into an envelope from this node: signed, and sealed
// to the recipient's identity when the message is private (to ≠ 0).
func (k *NodeKey) wrap(msg []byte, session []byte, from, to int, recipient *NodeID) ([]byte, error) {
	payload, sealed := msg, byte(0)
	if to != 0 {
		pub, err := ecdh.X25519().NewPublicKey(recipient.Seal)
		if err != nil {
			return nil, err
		}
		hp, err := hpke.NewDHKEMPublicKey(pub)
		if err != nil {
			return nil, err
		}
		if payload, err = hpke.Seal(hp, hpkeKDF, hpkeAEAD, envInfo(session, from, to), msg); err != nil {
			return nil, err
		}
		sealed = 1
	}
	b := append([]byte(envMagic), 1)
	b = append(b, session...)
	b = append(b, byte(from), byte(to), sealed)
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	b = append(b, payload...)
	return append(b, ed25519.Sign(k.sign, append([]byte(envDomain), b...))...), nil
}

// envelope is a parsed envelope, before its signature is checked.
type envelope struct {
	session  []byte
	from, to int
	sealed   bool
	payload  []byte
	signed   []byte
	sig      []byte
}

func parseEnvelope(b []byte) (*envelope, error) {
	if len(b) < envHeader+ed25519.SignatureSize || len(b) > maxEnvLen || string(b[:4]) != envMagic || b[4] != 1 {
		return nil, errors.New("not a protocol envelope")
	}
	e := &envelope{session: b[5 : 5+protocol.SessionLen]}
	h := b[5+protocol.SessionLen:]
	e.from, e.to, e.sealed = int(h[0]), int(h[1]), h[2] == 1
	n := binary.BigEndian.Uint32(h[3:7])
	if h[2] > 1 || uint64(len(b)) != uint64(envHeader)+uint64(n)+ed25519.SignatureSize || e.sealed != (e.to != 0) {
		return nil, errors.New("a malformed protocol envelope")
	}
	e.payload = b[envHeader : envHeader+int(n)]
	e.signed, e.sig = b[:envHeader+int(n)], b[envHeader+int(n):]
	return e, nil
}

// unwrap checks an envelope's signature against the sender's identity in the roster and,
// if it is sealed, opens it with this node's key. It returns the protocol message, parsed
// (protocol.Unmarshal: its points checked); the caller wipes what it holds secret.
func (k *NodeKey) unwrap(b, session []byte, self int, roster []NodeID) (*protocol.Message, error) {
	return unwrapEnvelope(k, b, session, self, roster, NodeID{})
}

// unwrapEnvelope is unwrap for anyone: with k nil it reads broadcasts only. vouched is who
// vouches for the envelope's bytes already (StepResult.vouched): if it is the sender the
// roster names, everything but the envelope's signature is checked. (The node's signature
// on its whole answer, checked, covers the envelope; a party in this process returned it
// to a direct call. Checking again costs a scalar multiplication and proves nothing.)
func unwrapEnvelope(k *NodeKey, b, session []byte, self int, roster []NodeID, vouched NodeID) (*protocol.Message, error) {
	return unwrapWith(protocol.Unmarshal, k, b, session, self, roster, vouched)
}

// unwrapWith is unwrapEnvelope with the message parsed by parse.
func unwrapWith(parse func([]byte) (*protocol.Message, error), k *NodeKey, b, session []byte, self int, roster []NodeID, vouched NodeID) (*protocol.Message, error) {
	e, err := parseEnvelope(b)
	if err != nil {
		return nil, err
	}
	switch {
	case !bytes.Equal(e.session, session):
		return nil, errors.New("an envelope of another session")
	case e.from < 1 || e.from > len(roster) || roster[e.from-1].Sign == nil:
		return nil, fmt.Errorf("an envelope from party %d, who is not in the roster", e.from)
	case e.sealed && k == nil:
		return nil, errors.New("a sealed envelope where a broadcast belongs")
	case !vouched.Equal(roster[e.from-1]) && !ed25519.Verify(roster[e.from-1].Sign, append([]byte(envDomain), e.signed...), e.sig):
		return nil, fmt.Errorf("party %d: the envelope's signature does not verify", e.from)
	case e.sealed && e.to != self:
		return nil, fmt.Errorf("party %d: a sealed envelope for party %d", e.from, e.to)
	}
	msg := bytes.Clone(e.payload) // the caller's own, to wipe: never the envelope's bytes
	if e.sealed {
		hk, err := hpke.NewDHKEMPrivateKey(k.seal)
		if err != nil {
			return nil, err
		}
		if msg, err = hpke.Open(hk, hpkeKDF, hpkeAEAD, envInfo(session, e.from, e.to), e.payload); err != nil {
			return nil, fmt.Errorf("party %d: the sealed envelope does not open", e.from)
		}
	}
	m, err := parse(msg)
	clear(msg) // a private value, opened: the message holds its own copy
	if err != nil {
		return nil, fmt.Errorf("party %d: %w", e.from, err)
	}
	if !bytes.Equal(m.Session, session) || m.From != e.from || m.To != e.to {
		if m.Round2 != nil {
			clear(m.Round2.Share)
		}
		return nil, fmt.Errorf("party %d: the message inside does not match its envelope", e.from)
	}
	return m, nil
}

// checkSender checks that an envelope of session is from party from, signed by its node in
// the roster, and returns its recipient (0: broadcast). It opens nothing: a coordinator
// checks what each node hands it before routing, so a node cannot pass off a message as
// another's, and a bad one is blamed on the node that delivered it.
func checkSender(b, session []byte, from int, roster []NodeID) (int, error) {
	e, err := parseEnvelope(b)
	if err != nil {
		return 0, err
	}
	if !bytes.Equal(e.session, session) || e.from != from || from < 1 || from > len(roster) || roster[from-1].Sign == nil ||
		!ed25519.Verify(roster[from-1].Sign, append([]byte(envDomain), e.signed...), e.sig) {
		return 0, fmt.Errorf("party %d handed over a message that is not its own, signed, of this session", from)
	}
	return e.to, nil
}

// Authorization (docs/tsm-api.md): a request to a node is signed by the requester's node
// key; a request about an existing key also proves possession of the requester's share of
// it: a Schnorr proof for its public share, whose challenge binds the request.

const authDomain = "sharevault tsm request v1"

// Auth authorizes one step: who asks (its node key), when, and for an existing key which
// party it is, with the proof.
type Auth struct {
	Node   NodeID
	Target NodeID // the node the step is for: it is good at no other
	Time   int64  // Unix seconds
	Party  int    // the requester's node index in the key (proofs only)
	Epoch  uint32
	ProofR []byte
	ProofZ []byte
	Nonce  []byte // 16 random bytes: the answer's signature covers them, so no answer replays
	Sig    []byte // Ed25519 by Node.Sign over the request digest
}

// AuthNonceLen is the length of Auth.Nonce.
const AuthNonceLen = 16

// authDigest is what an Auth covers: the domain, the step's digest, the time, the node, the
// party and epoch it claims.
func authDigest(stepDigest []byte, a *Auth) []byte {
	h := sha256.New()
	h.Write([]byte(authDomain))
	h.Write(stepDigest)
	binary.Write(h, binary.BigEndian, a.Time)
	h.Write(a.Node.Sign)
	h.Write(a.Node.Seal)
	h.Write(a.Target.Sign)
	h.Write(a.Target.Seal)
	binary.Write(h, binary.BigEndian, uint32(a.Party))
	binary.Write(h, binary.BigEndian, a.Epoch)
	h.Write(a.Nonce)
	return h.Sum(nil)
}

// newAuth starts the Auth of a request from node to target, now, with a fresh nonce.
func newAuth(node, target NodeID) *Auth {
	a := &Auth{Node: node, Target: target, Time: time.Now().Unix(), Party: -1, Nonce: make([]byte, AuthNonceLen)}
	rand.Read(a.Nonce)
	return a
}

// signAuth fills in a's signature by k.
func (k *NodeKey) signAuth(stepDigest []byte, a *Auth) {
	a.Node = k.ID()
	a.Sig = ed25519.Sign(k.sign, authDigest(stepDigest, a))
}

// proveShare fills in a's proof of possession of share for the party's public share.
func proveShare(stepDigest []byte, a *Auth, k *keyState) error {
	g := protocol.GroupOf(protocol.Curve(k.Curve))
	r, err := g.RandomScalar(rand.Reader)
	if err != nil {
		return err
	}
	defer clear(r)
	a.Party, a.Epoch = k.NodeIndex, k.Epoch
	a.ProofR = g.BaseMult(r)
	c := g.Challenge(authDomain, authDigest(stepDigest, a), k.publicShares[k.NodeIndex], a.ProofR)
	a.ProofZ = g.AddScalars(r, g.MulScalars(c, k.share))
	return nil
}

// verifyAuth checks a's signature and, for k, its proof against party a.Party's current
// public share: ErrStaleEpoch for a party proving an older epoch.
//
// The proof is checked before anything about the key is told: a request that does not
// prove a share gets ErrNotAParty whether the key exists or not, and at which epoch. A
// proof at an older epoch is checked against that epoch's public shares (old, of the
// key's history; nil if the node does not have them) and then gives ErrStaleEpoch.
func verifyAuth(stepDigest []byte, a *Auth, k *keyState, old [][]byte) error {
	if len(a.Node.Sign) != ed25519.PublicKeySize || len(a.Nonce) != AuthNonceLen ||
		!ed25519.Verify(a.Node.Sign, authDigest(stepDigest, a), a.Sig) {
		return ErrUnauthorized
	}
	if k == nil {
		return nil
	}
	shares := k.publicShares
	if a.Epoch < k.Epoch {
		shares = old
	} else if a.Epoch != k.Epoch {
		shares = nil
	}
	if !proofHolds(protocol.Curve(k.Curve), stepDigest, a, k.Players, shares) {
		return ErrNotAParty
	}
	if a.Epoch < k.Epoch {
		return fmt.Errorf("%w (the request proves epoch %d, the key is at %d)", ErrStaleEpoch, a.Epoch, k.Epoch)
	}
	return nil
}

// proofHolds checks a's proof of possession against party a.Party's public share in shares.
// Without one to check it against (no such key, another epoch, no such party) it does the
// same work against a decoy point and is false: how long a refusal takes does not tell
// whether the key exists, or its epoch.
func proofHolds(curve protocol.Curve, stepDigest []byte, a *Auth, players int, shares [][]byte) bool {
	g := protocol.GroupOf(curve)
	if g == nil {
		return false
	}
	y, real := decoys[curve], false
	if a.Party >= 0 && a.Party < players && a.Party < len(shares) {
		y, real = shares[a.Party], true
	}
	if !g.ValidScalar(a.ProofZ) {
		return false
	}
	c := g.Challenge(authDomain, authDigest(stepDigest, a), y, a.ProofR)
	return g.SchnorrHolds(a.ProofZ, c, y, a.ProofR) && real
}

// decoys are the points proofHolds checks against when it has none: the generators.
var decoys = map[protocol.Curve][]byte{
	protocol.Ed25519:   protocol.GroupOf(protocol.Ed25519).BaseMult(protocol.GroupOf(protocol.Ed25519).ScalarFromInt(1)),
	protocol.Secp256k1: protocol.GroupOf(protocol.Secp256k1).BaseMult(protocol.GroupOf(protocol.Secp256k1).ScalarFromInt(1)),
}

// Answers (docs/tsm-api.md, "Answers"): a node signs every successful answer with its node
// key over the request it answers (the step's digest and the Auth's nonce, which no two
// requests share) and the answer itself, so a relay can neither forge an answer nor replay
// one to another request.

const answerDomain = "sharevault tsm answer v1"

// answerDigest is what an answer's signature covers.
func answerDigest(stepDigest []byte, a *Auth, r *StepResult) []byte {
	h := sha256.New()
	field := func(b []byte) {
		binary.Write(h, binary.BigEndian, uint32(len(b)))
		h.Write(b)
	}
	field([]byte(answerDomain))
	field(stepDigest)
	field(a.Nonce)
	field(a.Target.Sign)
	binary.Write(h, binary.BigEndian, uint32(len(r.Out)))
	for _, m := range r.Out {
		field(m)
	}
	if i := r.Info; i != nil {
		field([]byte{1})
		field([]byte(i.KeyID))
		binary.Write(h, binary.BigEndian, []int64{int64(i.Scheme), int64(i.Curve), int64(i.NodeIndex), int64(i.Players),
			int64(i.Threshold), int64(i.Epoch), i.Created.Unix()})
		field(i.PublicKey)
		field([]byte(i.Description))
		field(i.ChainCode)
	} else {
		field(nil)
	}
	binary.Write(h, binary.BigEndian, uint32(len(r.PublicShares)))
	for _, p := range r.PublicShares {
		field(p)
	}
	binary.Write(h, binary.BigEndian, r.Pending)
	field(r.PendingOf)
	field([]byte{r.Done})
	if len(r.PendingShares) > 0 { // after the fields of version 1's answers, only when there
		field([]byte("pending public shares"))
		binary.Write(h, binary.BigEndian, uint32(len(r.PendingShares)))
		for _, p := range r.PendingShares {
			field(p)
		}
	}
	return h.Sum(nil)
}

// signAnswer fills in r's signature by k, for the request st.
func (k *NodeKey) signAnswer(stepDigest []byte, a *Auth, r *StepResult) {
	r.Sig = ed25519.Sign(k.sign, answerDigest(stepDigest, a, r))
}

// verifyAnswer checks that r is node id's answer to the request of stepDigest and a.
func verifyAnswer(id NodeID, stepDigest []byte, a *Auth, r *StepResult) error {
	if len(id.Sign) != ed25519.PublicKeySize || !ed25519.Verify(id.Sign, answerDigest(stepDigest, a, r), r.Sig) {
		return ErrForgedAnswer
	}
	return nil
}

var (
	// ErrUnauthorized: a request to a node is not signed by the node key it names, or is
	// out of its time window.
	ErrUnauthorized = errors.New("the request is not signed by the node key it names")
	// ErrNotAParty: a request about a key does not prove possession of a share of it.
	ErrNotAParty = errors.New("the request does not prove possession of a share of this key")
	// ErrForgedAnswer: an answer is not signed by the node it comes from, for this request:
	// whoever relays the traffic changed, replayed or made it up.
	ErrForgedAnswer = errors.New("the answer is not signed by the node for this request (changed or replayed on the way)")
)
