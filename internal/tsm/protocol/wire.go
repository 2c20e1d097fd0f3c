package protocol

// The one encoder and parser of protocol messages (docs/tsm-protocol.md, "Messages"):
// what parties send each other, through whatever carries them. Strict: every field
// checked, no trailing bytes, one encoding per message.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// MsgType is a message's kind.
type MsgType uint8

const (
	MsgDKGRound1     MsgType = 1 // broadcast: Round1 with a proof of knowledge
	MsgDKGRound2     MsgType = 2 // private: Round2
	MsgRefreshRound1 MsgType = 3 // broadcast: Round1 without the constant term
	MsgRefreshRound2 MsgType = 4 // private: Round2
	MsgCommitment    MsgType = 5 // a signer's round one
	MsgSignRequest   MsgType = 6 // the coordinator's (From 0): the message and the signing set's commitments
	MsgSignShare     MsgType = 7 // a signer's round two

	// Threshold ECDSA (package dkls23, which parses these bodies; this file checks their
	// lengths and the header).
	MsgOTSetup1     MsgType = 8  // private: a base OT batch's first message
	MsgOTSetup2     MsgType = 9  // private: its answer
	MsgECDSARound1  MsgType = 10 // broadcast: commitment and nonce
	MsgECDSAExtend  MsgType = 11 // private: round one's OT extension
	MsgECDSARound2  MsgType = 12 // private: round two
	MsgECDSAPartial MsgType = 13 // broadcast: round three's partial signature
	MsgSigningSet   MsgType = 14 // the coordinator's (From 0): the parties that take part
	MsgECDSADigest  MsgType = 15 // the coordinator's (From 0): the digest and a BIP-32 path
)

// The fixed lengths of the ECDSA bodies (package dkls23 checks them against its own).
var ecdsaBodyLen = map[MsgType]int{
	MsgOTSetup1:     98,
	MsgOTSetup2:     128 * 33,
	MsgECDSARound1:  64,
	MsgECDSAExtend:  SessionLen + 128*(512+256)/8 + 32,
	MsgECDSARound2:  33 + 32 + 32 + 512*3*32 + 32 + 32 + 2*33 + 32,
	MsgECDSAPartial: 33 + 64,
}

// ECDSABodyLen returns the length of an ECDSA message's body of type t.
func ECDSABodyLen(t MsgType) int { return ecdsaBodyLen[t] }

// MaxPathDepth bounds a BIP-32 path of a signing request.
const MaxPathDepth = 16

// fromCoordinator: the types the coordinator (From 0) sends, and only it.
func fromCoordinator(t MsgType) bool {
	return t == MsgSignRequest || t == MsgSigningSet || t == MsgECDSADigest
}

const (
	wireMagic   = "SVTP"
	wireVersion = 1
	headerLen   = 4 + 1 + 1 + SessionLen + 1 + 1 + 1
	// MaxSignedMessage bounds what a signing request may carry.
	MaxSignedMessage = 1 << 16
)

// Message is one protocol message: the header, and the body its type names.
type Message struct {
	Type     MsgType
	Session  []byte
	Curve    Curve
	From, To int // To is 0 for a broadcast

	Round1     *Round1     // MsgDKGRound1, MsgRefreshRound1
	Round2     *Round2     // MsgDKGRound2, MsgRefreshRound2
	Commitment *Commitment // MsgCommitment
	Request    *SignRequest
	SigShare   []byte   // MsgSignShare
	Body       []byte   // MsgOTSetup1 … MsgECDSAPartial: parsed by package dkls23
	Signers    []int    // MsgSigningSet: sorted identifiers, each once
	Digest     []byte   // MsgECDSADigest: 32 bytes
	Path       []uint32 // MsgECDSADigest: non-hardened BIP-32 indices, at most MaxPathDepth
}

// SignRequest is what a coordinator sends every signer for round two.
type SignRequest struct {
	Message     []byte
	Commitments []Commitment
}

var errMalformed = errors.New("malformed protocol message")

// Marshal encodes m. It fails for a message whose fields break the format. Its points are
// not checked again: each is one this process computed, or one Unmarshal checked.
func (m *Message) Marshal() ([]byte, error) {
	g := GroupOf(m.Curve)
	if g == nil || len(m.Session) != SessionLen || m.From < 0 || m.From > MaxParties || m.To < 0 || m.To > MaxParties {
		return nil, errMalformed
	}
	b := append([]byte(wireMagic), wireVersion, byte(m.Type))
	b = append(b, m.Session...)
	b = append(b, byte(m.Curve), byte(m.From), byte(m.To))
	switch m.Type {
	case MsgDKGRound1, MsgRefreshRound1:
		r := m.Round1
		if r == nil || r.From != m.From || len(r.Commitments) == 0 || len(r.Commitments) > MaxParties {
			return nil, errMalformed
		}
		b = append(b, byte(len(r.Commitments)))
		for _, c := range r.Commitments {
			b = append(b, c...)
		}
		if m.Type == MsgDKGRound1 {
			b = append(append(b, r.ProofR...), r.ProofZ...)
		}
	case MsgDKGRound2, MsgRefreshRound2:
		if m.Round2 == nil || m.Round2.From != m.From || m.Round2.To != m.To {
			return nil, errMalformed
		}
		b = append(b, m.Round2.Share...)
	case MsgCommitment:
		if m.Commitment == nil || m.Commitment.ID != m.From {
			return nil, errMalformed
		}
		b = append(append(b, m.Commitment.Hiding...), m.Commitment.Binding...)
	case MsgSignRequest:
		r := m.Request
		if r == nil || len(r.Message) > MaxSignedMessage-1 || len(r.Commitments) == 0 || len(r.Commitments) > MaxParties {
			return nil, errMalformed
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(r.Message)))
		b = append(b, r.Message...)
		b = append(b, byte(len(r.Commitments)))
		for _, c := range r.Commitments {
			if c.ID < 1 || c.ID > MaxParties {
				return nil, errMalformed
			}
			b = append(b, byte(c.ID))
			b = append(append(b, c.Hiding...), c.Binding...)
		}
	case MsgSignShare:
		b = append(b, m.SigShare...)
	case MsgOTSetup1, MsgOTSetup2, MsgECDSARound1, MsgECDSAExtend, MsgECDSARound2, MsgECDSAPartial:
		b = append(b, m.Body...)
	case MsgSigningSet:
		if len(m.Signers) > MaxParties {
			return nil, errMalformed
		}
		b = append(b, byte(len(m.Signers)))
		for _, i := range m.Signers {
			b = append(b, byte(i))
		}
	case MsgECDSADigest:
		if len(m.Path) > MaxPathDepth {
			return nil, errMalformed
		}
		b = append(append(b, m.Digest...), byte(len(m.Path)))
		for _, i := range m.Path {
			b = binary.BigEndian.AppendUint32(b, i)
		}
	default:
		return nil, errMalformed
	}
	if _, err := parse(b, false); err != nil { // the parser is the one authority on the format
		return nil, err
	}
	return b, nil
}

// Unmarshal parses a message strictly: the header, then exactly the body of its type,
// every point and scalar canonical for its curve, every point in the prime-order subgroup
// and not the identity. This is where an untrusted point enters, so it is checked here
// once and not again by whoever uses the message; the one exception is a signing
// request's commitments, which SignShare checks (all but the signer's own).
func Unmarshal(b []byte) (*Message, error) { return parse(b, true) }

// UnmarshalDeferred is Unmarshal taking points by their length alone, for a message whose
// points are checked where they are used: a FROST commitment handed out for a later
// signature, each of whose signers checks in SignShare every commitment of its request but
// its own (so a point is checked once, at its use, not also where it arrived).
func UnmarshalDeferred(b []byte) (*Message, error) { return parse(b, false) }

// parse is Unmarshal; with untrusted false it takes points by their length alone, as
// Marshal does for the points of this process's own messages (each computed here, or
// checked where it arrived): the subgroup check is a scalar multiplication per point.
func parse(b []byte, untrusted bool) (*Message, error) {
	if len(b) < headerLen || string(b[:4]) != wireMagic {
		return nil, fmt.Errorf("%w: no SVTP header", errMalformed)
	}
	if b[4] != wireVersion {
		return nil, fmt.Errorf("%w: version %d", errMalformed, b[4])
	}
	m := &Message{Type: MsgType(b[5]), Session: bytes.Clone(b[6 : 6+SessionLen])}
	h := b[6+SessionLen:]
	m.Curve, m.From, m.To = Curve(h[0]), int(h[1]), int(h[2])
	g := GroupOf(m.Curve)
	// The coordinator, who is no party, sends signing requests: From 0 there and only there.
	if g == nil || (m.From < 1) != fromCoordinator(m.Type) || m.From > MaxParties || m.To > MaxParties {
		return nil, fmt.Errorf("%w: curve, sender or recipient out of range", errMalformed)
	}
	r := &reader{b: b[headerLen:]}
	point := func() []byte {
		p := r.take(g.PointLen())
		if r.err == nil && untrusted && !g.ValidPoint(p) {
			r.err = errors.New("a point is not valid")
		}
		return bytes.Clone(p)
	}
	scalar := func(nonzero bool) []byte {
		s := r.take(32)
		if r.err == nil && !(nonzero && g.ValidScalar(s) || !nonzero && g.CanonicalScalar(s)) {
			r.err = errors.New("a scalar is not valid")
		}
		return bytes.Clone(s)
	}
	broadcast := m.To == 0
	switch m.Type {
	case MsgDKGRound1, MsgRefreshRound1:
		n := r.byte()
		if r.err == nil && (n < 1 || n > MaxParties) {
			r.err = errors.New("commitment count out of range")
		}
		m.Round1 = &Round1{From: m.From}
		for i := 0; i < n && r.err == nil; i++ {
			m.Round1.Commitments = append(m.Round1.Commitments, point())
		}
		if m.Type == MsgDKGRound1 {
			m.Round1.ProofR, m.Round1.ProofZ = point(), scalar(true)
		}
	case MsgDKGRound2, MsgRefreshRound2:
		broadcast = !broadcast
		m.Round2 = &Round2{From: m.From, To: m.To, Share: scalar(true)}
	case MsgCommitment:
		if m.Curve != Ed25519 {
			r.err = errors.New("signing is Ed25519 only")
		}
		m.Commitment = &Commitment{ID: m.From, Hiding: point(), Binding: point()}
	case MsgSignRequest:
		if m.Curve != Ed25519 {
			r.err = errors.New("signing is Ed25519 only")
		}
		m.Request = &SignRequest{Message: bytes.Clone(r.take(int(binary.BigEndian.Uint16(r.take(2)))))}
		n := r.byte()
		if r.err == nil && (n < 1 || n > MaxParties) {
			r.err = errors.New("signer count out of range")
		}
		for i := 0; i < n && r.err == nil; i++ {
			// Taken by length: SignShare checks every commitment of the request but the
			// signer's own, which it compares with the one it made.
			c := Commitment{ID: r.byte()}
			c.Hiding, c.Binding = bytes.Clone(r.take(g.PointLen())), bytes.Clone(r.take(g.PointLen()))
			if r.err == nil && (c.ID < 1 || c.ID > MaxParties || i > 0 && c.ID <= m.Request.Commitments[i-1].ID) {
				r.err = errors.New("signers not sorted by identifier, each once")
			}
			m.Request.Commitments = append(m.Request.Commitments, c)
		}
	case MsgSignShare:
		m.SigShare = scalar(false)
	case MsgOTSetup1, MsgOTSetup2, MsgECDSARound1, MsgECDSAExtend, MsgECDSARound2, MsgECDSAPartial:
		if m.Curve != Secp256k1 {
			r.err = errors.New("threshold ECDSA is secp256k1 only")
		}
		if m.Type == MsgOTSetup1 || m.Type == MsgOTSetup2 || m.Type == MsgECDSAExtend || m.Type == MsgECDSARound2 {
			broadcast = !broadcast
		}
		m.Body = bytes.Clone(r.take(ecdsaBodyLen[m.Type]))
	case MsgSigningSet:
		n := r.byte()
		if r.err == nil && (n < 2 || n > MaxParties) {
			r.err = errors.New("a signing set of 2 to 32 parties")
		}
		for i := 0; i < n && r.err == nil; i++ {
			id := r.byte()
			if r.err == nil && (id < 1 || id > MaxParties || i > 0 && id <= m.Signers[i-1]) {
				r.err = errors.New("parties not sorted by identifier, each once")
			}
			m.Signers = append(m.Signers, id)
		}
	case MsgECDSADigest:
		if m.Curve != Secp256k1 {
			r.err = errors.New("threshold ECDSA is secp256k1 only")
		}
		m.Digest = bytes.Clone(r.take(32))
		n := r.byte()
		if r.err == nil && n > MaxPathDepth {
			r.err = errors.New("a path deeper than 16")
		}
		for i := 0; i < n && r.err == nil; i++ {
			x := binary.BigEndian.Uint32(r.take(4))
			if r.err == nil && x >= 1<<31 {
				r.err = errors.New("a hardened index (the nodes derive public keys only)")
			}
			m.Path = append(m.Path, x)
		}
	default:
		return nil, fmt.Errorf("%w: unknown type %d", errMalformed, m.Type)
	}
	switch {
	case r.err != nil:
		return nil, fmt.Errorf("%w: %v", errMalformed, r.err)
	case len(r.b) != 0:
		return nil, fmt.Errorf("%w: %d bytes after the body", errMalformed, len(r.b))
	case !broadcast || m.To != 0 && m.To == m.From:
		return nil, fmt.Errorf("%w: a private message without a recipient (or to its sender), or a broadcast with one", errMalformed)
	}
	return m, nil
}

// reader takes bytes off the front of a buffer, failing once it runs short.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil || n > len(r.b) {
		if r.err == nil {
			r.err = errors.New("truncated")
		}
		return make([]byte, n)
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) byte() int { return int(r.take(1)[0]) }
