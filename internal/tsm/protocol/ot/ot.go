// Package ot is the base oblivious transfer of threshold ECDSA (docs/tsm-protocol.md,
// "Base OT"): a batch of Count random 1-out-of-2 OTs on secp256k1, the "simplest OT" of Chou
// and Orlandi (2015) with the sender's proof of knowledge of its secret, as DKLs18 and
// DKLs23 use it to seed an OT extension. This file is all of the package's cryptography.
//
// The sender ends with two random 32-byte keys per OT, the receiver with one of them, by a
// choice bit the sender does not learn; the receiver learns nothing of the other key. The
// protocol is two messages, sender first:
//
//	sender:   a random, A = a·G, a Schnorr proof (K, z) of a        → A, K, z
//	receiver: per OT i, b_i random, B_i = b_i·G + c_i·A              → B_0 … B_127
//	sender:   k_i⁰ = H(i, A, B_i, a·B_i), k_i¹ = H(i, A, B_i, a·(B_i − A))
//	receiver: k_i^c_i = H(i, A, B_i, b_i·A)
//
// B_i is uniform whatever c_i, so the receiver's choices are hidden from anyone; a receiver
// that knew both keys of one OT would have solved computational Diffie-Hellman for A and B_i
// (in the random-oracle model). Every hash is cSHAKE256 bound to the session, so no message
// of one batch means anything in another. Every multiplication by a, b_i is constant time
// (secp256k1-voi); only the proof's check multiplies public values.
package ot

import (
	"crypto/sha3"
	"errors"
	"fmt"
	"io"

	secp256k1 "gitlab.com/yawning/secp256k1-voi"

	"github.com/sharevault/sharevault/internal/tsm/protocol"
)

// Count is the number of OTs in a batch: the width κ of the OT extension they seed.
const Count = 128

// KeyLen is the length of a key.
const KeyLen = 32

const pointLen = 33

// Msg1Len and Msg2Len are the lengths of the sender's and the receiver's messages.
const (
	Msg1Len = 2*pointLen + 32
	Msg2Len = Count * pointLen
)

// Sender is the sender's state between its message and the receiver's answer.
type Sender struct {
	sid []byte
	a   *secp256k1.Scalar
	A   *secp256k1.Point
}

// SenderKeys are a sender's output: both keys of every OT.
type SenderKeys [Count][2][KeyLen]byte

// ReceiverKeys are a receiver's output: its choice bits (bit i of Choices, little-endian
// within each byte, is OT i's) and the key it chose of every OT.
type ReceiverKeys struct {
	Choices [Count / 8]byte
	Keys    [Count][KeyLen]byte
}

// Wipe overwrites the keys.
func (k *SenderKeys) Wipe() { *k = SenderKeys{} }

// Wipe overwrites the keys and the choices.
func (k *ReceiverKeys) Wipe() { *k = ReceiverKeys{} }

// RandomScalar draws a uniform non-zero scalar from rand, by rejection (no bias).
func RandomScalar(rand io.Reader) (*secp256k1.Scalar, error) {
	var b [32]byte
	defer clear(b[:])
	for {
		if _, err := io.ReadFull(rand, b[:]); err != nil {
			return nil, err
		}
		if s, err := secp256k1.NewScalarFromCanonicalBytes(&b); err == nil && s.IsZero() == 0 {
			return s, nil
		}
	}
}

// hash is cSHAKE256 (customization: the domain) over the framed session and parts.
func hash(out []byte, domain string, sid []byte, parts ...[]byte) {
	h := sha3.NewCSHAKE256(nil, []byte(domain))
	protocol.Frame(h, "", append([][]byte{sid}, parts...)...)
	h.Read(out)
}

func challenge(sid []byte, A, K []byte) *secp256k1.Scalar {
	var e [32]byte
	hash(e[:], "sharevault ot proof", sid, A, K)
	s, _ := secp256k1.NewScalarFromBytes(&e) // reduced mod n: within 2^-128 of uniform
	return s
}

// NewSender starts a batch in session sid (the caller makes it unique to the batch, the
// pair and the direction) and returns the sender's message.
func NewSender(sid []byte, rand io.Reader) (*Sender, []byte, error) {
	a, err := RandomScalar(rand)
	if err != nil {
		return nil, nil, err
	}
	k, err := RandomScalar(rand)
	if err != nil {
		return nil, nil, err
	}
	defer k.Zero()
	A := secp256k1.NewIdentityPoint().ScalarBaseMult(a)
	K := secp256k1.NewIdentityPoint().ScalarBaseMult(k)
	Ab, Kb := A.CompressedBytes(), K.CompressedBytes()
	z := secp256k1.NewScalar().Multiply(challenge(sid, Ab, Kb), a)
	z.Add(z, k)
	msg := append(append(Ab, Kb...), z.Bytes()...)
	return &Sender{sid: append([]byte(nil), sid...), a: a, A: A}, msg, nil
}

func point(b []byte) (*secp256k1.Point, error) {
	p, err := secp256k1.NewIdentityPoint().SetCompressedBytes(b)
	if err != nil || p.IsIdentity() == 1 {
		return nil, errors.New("not a point of secp256k1")
	}
	return p, nil
}

// Receive answers a sender's message msg1 of session sid: it draws its choice bits and
// returns its message and its keys. A message that is malformed or whose proof fails is
// refused.
func Receive(sid, msg1 []byte, rand io.Reader) ([]byte, *ReceiverKeys, error) {
	if len(msg1) != Msg1Len {
		return nil, nil, fmt.Errorf("ot: a sender's message is %d bytes, not %d", len(msg1), Msg1Len)
	}
	Ab, Kb, zb := msg1[:pointLen], msg1[pointLen:2*pointLen], msg1[2*pointLen:]
	A, errA := point(Ab)
	K, errK := point(Kb)
	z, errz := secp256k1.NewScalarFromCanonicalBytes((*[32]byte)(zb))
	if errA != nil || errK != nil || errz != nil {
		return nil, nil, errors.New("ot: the sender's message is not two points and a scalar")
	}
	// z·G = K + e·A, on public values only.
	lhs := secp256k1.NewIdentityPoint().DoubleScalarMultBasepointVartime(z, secp256k1.NewScalar().Negate(challenge(sid, Ab, Kb)), A)
	if lhs.Equal(K) != 1 {
		return nil, nil, errors.New("ot: the sender's proof of knowledge does not verify")
	}
	out := &ReceiverKeys{}
	if _, err := io.ReadFull(rand, out.Choices[:]); err != nil {
		return nil, nil, err
	}
	msg := make([]byte, 0, Msg2Len)
	var idx [2]byte
	for i := range Count {
		b, err := RandomScalar(rand)
		if err != nil {
			out.Wipe()
			return nil, nil, err
		}
		c := uint64(out.Choices[i/8]>>(i%8)) & 1
		B := secp256k1.NewIdentityPoint().ScalarBaseMult(b)
		BA := secp256k1.NewIdentityPoint().Add(B, A)
		B.ConditionalSelect(B, BA, c)
		Bb := B.CompressedBytes()
		msg = append(msg, Bb...)
		idx[0], idx[1] = byte(i>>8), byte(i)
		bA := secp256k1.NewIdentityPoint().ScalarMult(b, A)
		hash(out.Keys[i][:], "sharevault ot key", sid, idx[:], Ab, Bb, bA.CompressedBytes())
		b.Zero()
		bA.Identity()
	}
	return msg, out, nil
}

// Finish takes the receiver's message and returns both keys of every OT. The sender's
// secret is wiped whatever the outcome: a Sender finishes once.
func (s *Sender) Finish(msg2 []byte) (*SenderKeys, error) {
	if s.a == nil {
		return nil, errors.New("ot: this batch is finished")
	}
	defer func() { s.a.Zero(); s.a = nil }()
	if len(msg2) != Msg2Len {
		return nil, fmt.Errorf("ot: a receiver's message is %d bytes, not %d", len(msg2), Msg2Len)
	}
	aA := secp256k1.NewIdentityPoint().ScalarMult(s.a, s.A)
	Ab := s.A.CompressedBytes()
	out := &SenderKeys{}
	var idx [2]byte
	for i := range Count {
		Bb := msg2[i*pointLen : (i+1)*pointLen]
		B, err := point(Bb)
		if err != nil {
			out.Wipe()
			return nil, fmt.Errorf("ot: the receiver's point %d: %w", i, err)
		}
		aB := secp256k1.NewIdentityPoint().ScalarMult(s.a, B)
		idx[0], idx[1] = byte(i>>8), byte(i)
		hash(out[i][0][:], "sharevault ot key", s.sid, idx[:], Ab, Bb, aB.CompressedBytes())
		hash(out[i][1][:], "sharevault ot key", s.sid, idx[:], Ab, Bb, aB.Subtract(aB, aA).CompressedBytes())
		aB.Identity()
	}
	aA.Identity()
	return out, nil
}

// Wipe overwrites the sender's secret, for a batch abandoned before Finish.
func (s *Sender) Wipe() {
	if s.a != nil {
		s.a.Zero()
		s.a = nil
	}
}
