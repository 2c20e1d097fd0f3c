package dkls23

// The one encoder and parser of each message body of threshold ECDSA (docs/tsm-protocol.md,
// "Messages", types 8 to 14). The bodies have fixed lengths; protocol.Message carries them
// under its header and checks the length, and these parsers check every field.

import (
	"errors"
	"fmt"

	secp256k1 "gitlab.com/yawning/secp256k1-voi"

	"github.com/sharevault/sharevault/internal/tsm/protocol"
	"github.com/sharevault/sharevault/internal/tsm/protocol/ote"
)

const pointLen = 33

// The lengths of the bodies.
var (
	Round1Len        = 64
	Round1PrivateLen = protocol.SessionLen + ote.MsgLen(Xi)
	Round2PrivateLen = pointLen + 32 + 32 + Xi*width*32 + 32 + 32 + 2*pointLen + 32
	PartialLen       = pointLen + 64
)

type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil || len(r.b) < n {
		r.err = errors.New("too short")
		return make([]byte, n)
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) point() *secp256k1.Point {
	b := r.take(pointLen)
	p, err := secp256k1.NewIdentityPoint().SetCompressedBytes(b)
	if r.err == nil && (err != nil || p.IsIdentity() == 1) {
		r.err = errors.New("a point is not valid")
	}
	return p
}

func (r *reader) scalar() *secp256k1.Scalar {
	s, err := secp256k1.NewScalarFromCanonicalBytes((*[32]byte)(r.take(32)))
	if r.err == nil && err != nil {
		r.err = errors.New("a scalar is not canonical")
	}
	if s == nil {
		s = secp256k1.NewScalar()
	}
	return s
}

func (r *reader) done(what string, want int, got int) error {
	if got != want {
		return fmt.Errorf("dkls23: %s is %d bytes, not %d", what, got, want)
	}
	if r.err != nil {
		return fmt.Errorf("dkls23: %s: %v", what, r.err)
	}
	return nil
}

// Bytes encodes round one's broadcast: the commitment, the nonce.
func (m *Round1) Bytes() []byte { return append(append([]byte(nil), m.Commit[:]...), m.Nonce[:]...) }

// ParseRound1 is the parser of Round1.Bytes.
func ParseRound1(b []byte) (*Round1, error) {
	if len(b) != Round1Len {
		return nil, fmt.Errorf("dkls23: a round one broadcast is %d bytes, not %d", len(b), Round1Len)
	}
	m := &Round1{}
	copy(m.Commit[:], b)
	copy(m.Nonce[:], b[32:])
	return m, nil
}

// Bytes encodes round one's message to a peer: the seeds' ID, the extension's message.
func (m *Round1Private) Bytes() []byte {
	return append(append([]byte(nil), m.SeedsID...), m.Extension...)
}

// ParseRound1Private is the parser of Round1Private.Bytes.
func ParseRound1Private(b []byte) (*Round1Private, error) {
	if len(b) != Round1PrivateLen {
		return nil, fmt.Errorf("dkls23: a round one message is %d bytes, not %d", len(b), Round1PrivateLen)
	}
	return &Round1Private{SeedsID: append([]byte(nil), b[:protocol.SessionLen]...), Extension: append([]byte(nil), b[protocol.SessionLen:]...)}, nil
}

// Bytes encodes round two's message to a peer.
func (m *Round2Private) Bytes() []byte {
	b := make([]byte, 0, Round2PrivateLen)
	b = append(append(append(b, m.R.CompressedBytes()...), m.Salt[:]...), m.Echo[:]...)
	for r := range m.ATilde {
		for _, v := range m.ATilde[r] {
			b = append(b, v.Bytes()...)
		}
	}
	b = append(append(b, m.Eta.Bytes()...), m.Mu[:]...)
	b = append(append(b, m.GammaU.CompressedBytes()...), m.GammaV.CompressedBytes()...)
	return append(b, m.Psi.Bytes()...)
}

// ParseRound2Private is the parser of Round2Private.Bytes: every point valid and not the
// identity, every scalar canonical.
func ParseRound2Private(b []byte) (*Round2Private, error) {
	r := &reader{b: b}
	m := &Round2Private{R: r.point()}
	copy(m.Salt[:], r.take(32))
	copy(m.Echo[:], r.take(32))
	for j := range m.ATilde {
		for k := range m.ATilde[j] {
			m.ATilde[j][k] = r.scalar()
		}
	}
	m.Eta = r.scalar()
	copy(m.Mu[:], r.take(32))
	m.GammaU, m.GammaV, m.Psi = r.point(), r.point(), r.scalar()
	if err := r.done("a round two message", Round2PrivateLen, len(b)); err != nil {
		return nil, err
	}
	return m, nil
}

// Bytes encodes a partial: R, u, w.
func (p *Partial) Bytes() []byte {
	return append(append(p.R.CompressedBytes(), p.U.Bytes()...), p.W.Bytes()...)
}

// ParsePartial is the parser of Partial.Bytes; from is the sender's identifier.
func ParsePartial(from int, b []byte) (*Partial, error) {
	r := &reader{b: b}
	p := &Partial{From: from, R: r.point(), U: r.scalar(), W: r.scalar()}
	if err := r.done("a partial signature", PartialLen, len(b)); err != nil {
		return nil, err
	}
	return p, nil
}
