// Package ote is the OT extension of threshold ECDSA (docs/tsm-protocol.md, "OT
// extension"): from Kappa base OTs made once per pair of parties (package ot, in the other
// direction), any number of random OTs per signature, by the protocol of Keller, Orsini and
// Scholl (KOS15, "Actively Secure OT Extension with Optimal Overhead"), with its consistency
// check made non-interactive by Fiat and Shamir. This file is all of the package's
// cryptography.
//
// Roles: the extension's receiver was the base OTs' sender and holds both seeds of each;
// the extension's sender was their receiver and holds one seed of each, chosen by its secret
// Δ ∈ {0,1}^κ. For an extension of m OTs with choice bits x, padded with κ+s random bits to
// m' = m + Pad:
//
//	receiver: t⁰_i = PRG(k⁰_i, eid), t¹_i = PRG(k¹_i, eid), u_i = t⁰_i ⊕ t¹_i ⊕ x  (i < κ)
//	          χ_1 … χ_m' = H(eid, u);  x̃ = Σ x_j·χ_j,  t̃ = Σ t_j·χ_j in GF(2^128)  → u, x̃, t̃
//	sender:   q_i = PRG(k^Δ_i, eid) ⊕ Δ_i·u_i, so row q_j = t_j ⊕ x_j·Δ;
//	          refuses unless Σ q_j·χ_j = t̃ ⊕ x̃·Δ
//	outputs:  sender v⁰_j = H(eid, tweak, j, q_j), v¹_j = H(eid, tweak, j, q_j ⊕ Δ);
//	          receiver v^x_j = H(eid, tweak, j, t_j)
//
// The check is what stops a malicious receiver from using different choice bits in
// different columns of u: such a receiver passes only by guessing the bits of Δ where its
// columns differ, and each guess it gets wrong is a refusal. So a refusal must end the pair's
// seeds (the caller deletes them and sets the pair up again): seeds kept after a refusal
// would let a receiver learn Δ a bit per refusal, then every OT the sender ever makes with
// it. The Pad rows mask what x̃ says of x.
//
// The extension ID eid must never repeat for one set of seeds: the receiver's PRG streams
// would repeat and the sender would learn the XOR of two choice vectors. The caller puts the
// receiver's fresh randomness in it. The tweak of the outputs carries the sender's fresh
// randomness, so a receiver that replays an old u gets new, unrelated outputs.
package ote

import (
	"crypto/sha3"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/sharevault/sharevault/internal/tsm/protocol"
	"github.com/sharevault/sharevault/internal/tsm/protocol/ot"
)

// Kappa is the number of base OTs, the width of a row, in bits.
const Kappa = ot.Count

// MaxOTs bounds an extension (its message stays within the 2-byte lengths of its hashes
// framing, and its indices within 2 bytes).
const MaxOTs = 2048

// Pad is the number of random rows added to every extension: κ + s with s = 128.
const Pad = Kappa + 128

const rowLen = Kappa / 8

// MsgLen is the length of the receiver's message for m OTs.
func MsgLen(m int) int { return Kappa*((m+Pad)/8) + 2*rowLen }

// ReceiverSeeds are the extension receiver's seeds: both keys of each base OT.
type ReceiverSeeds struct{ k [Kappa][2][ot.KeyLen]byte }

// SenderSeeds are the extension sender's seeds: Δ and the key it chose of each base OT.
type SenderSeeds struct {
	delta [rowLen]byte
	k     [Kappa][ot.KeyLen]byte
}

// NewReceiverSeeds takes the base OTs' sender keys.
func NewReceiverSeeds(k *ot.SenderKeys) *ReceiverSeeds { return &ReceiverSeeds{k: *k} }

// NewSenderSeeds takes the base OTs' receiver keys.
func NewSenderSeeds(k *ot.ReceiverKeys) *SenderSeeds {
	return &SenderSeeds{delta: k.Choices, k: k.Keys}
}

// SeedsLen is the length of either kind of seeds encoded.
const (
	ReceiverSeedsLen = Kappa * 2 * ot.KeyLen
	SenderSeedsLen   = rowLen + Kappa*ot.KeyLen
)

// Bytes encodes the seeds (node state: keep them as secret as a share).
func (s *ReceiverSeeds) Bytes() []byte {
	b := make([]byte, 0, ReceiverSeedsLen)
	for i := range s.k {
		b = append(append(b, s.k[i][0][:]...), s.k[i][1][:]...)
	}
	return b
}

// Bytes encodes the seeds (node state: keep them as secret as a share).
func (s *SenderSeeds) Bytes() []byte {
	b := append(make([]byte, 0, SenderSeedsLen), s.delta[:]...)
	for i := range s.k {
		b = append(b, s.k[i][:]...)
	}
	return b
}

// ParseReceiverSeeds and ParseSenderSeeds are the parsers of Bytes.
func ParseReceiverSeeds(b []byte) (*ReceiverSeeds, error) {
	if len(b) != ReceiverSeedsLen {
		return nil, errors.New("ote: not a receiver's seeds")
	}
	s := &ReceiverSeeds{}
	for i := range s.k {
		copy(s.k[i][0][:], b[64*i:])
		copy(s.k[i][1][:], b[64*i+32:])
	}
	return s, nil
}

func ParseSenderSeeds(b []byte) (*SenderSeeds, error) {
	if len(b) != SenderSeedsLen {
		return nil, errors.New("ote: not a sender's seeds")
	}
	s := &SenderSeeds{}
	copy(s.delta[:], b)
	for i := range s.k {
		copy(s.k[i][:], b[rowLen+32*i:])
	}
	return s, nil
}

// Wipe overwrites the seeds.
func (s *ReceiverSeeds) Wipe() { *s = ReceiverSeeds{} }

// Wipe overwrites the seeds.
func (s *SenderSeeds) Wipe() { *s = SenderSeeds{} }

func prg(out []byte, key []byte, eid []byte, i int) {
	h := sha3.NewCSHAKE256(nil, []byte("sharevault ote prg"))
	protocol.Frame(h, "", eid, binary.BigEndian.AppendUint16(nil, uint16(i)), key)
	h.Read(out)
}

// challenges derives χ_1 … χ_m' from the extension ID and the whole of u.
func challenges(eid []byte, u []byte, n int) []gf {
	h := sha3.NewCSHAKE256(nil, []byte("sharevault ote check"))
	protocol.Frame(h, "", eid, u)
	buf := make([]byte, n*rowLen)
	h.Read(buf)
	out := make([]gf, n)
	for j := range out {
		out[j] = gfFrom(buf[j*rowLen:])
	}
	return out
}

// transpose turns Kappa columns of n bits (each n/8 bytes) into n rows of Kappa bits.
func transpose(cols [][]byte, n int) [][rowLen]byte {
	rows := make([][rowLen]byte, n)
	for i, c := range cols {
		for j := range n {
			rows[j][i/8] |= (c[j/8] >> (j % 8) & 1) << (i % 8)
		}
	}
	return rows
}

func bit(b []byte, j int) uint64 { return uint64(b[j/8]>>(j%8)) & 1 }

// Receiver is the extension receiver's state between its message and its outputs.
type Receiver struct {
	eid  []byte
	m    int
	rows [][rowLen]byte // t_j
}

// Extend is the receiver's round for m OTs (m a multiple of 8) with choices (bit j of
// choices is OT j's, little-endian in each byte), under extension ID eid.
func (s *ReceiverSeeds) Extend(eid []byte, m int, choices []byte, rand io.Reader) (*Receiver, []byte, error) {
	if m%8 != 0 || m > MaxOTs || len(choices) != m/8 {
		return nil, nil, fmt.Errorf("ote: m choice bits, m a multiple of 8 up to %d", MaxOTs)
	}
	n := m + Pad
	x := make([]byte, n/8)
	defer clear(x)
	copy(x, choices)
	if _, err := io.ReadFull(rand, x[m/8:]); err != nil {
		return nil, nil, err
	}
	rows, msg := s.extend(eid, x, nil)
	clear(rows[m:]) // the pad rows are the check's alone
	return &Receiver{eid: append([]byte(nil), eid...), m: m, rows: rows[:m]}, msg, nil
}

// extend makes the message for the padded choices x; tamper, for tests only, plays a
// receiver that changes u before it computes its check values honestly.
func (s *ReceiverSeeds) extend(eid, x []byte, tamper func(u []byte)) ([][rowLen]byte, []byte) {
	n := len(x) * 8
	msg := make([]byte, 0, Kappa*n/8+2*rowLen)
	t0 := make([][]byte, Kappa)
	t1 := make([]byte, n/8)
	defer clear(t1)
	for i := range Kappa {
		t0[i] = make([]byte, n/8)
		prg(t0[i], s.k[i][0][:], eid, i)
		prg(t1, s.k[i][1][:], eid, i)
		for b := range t1 {
			t1[b] ^= t0[i][b] ^ x[b]
		}
		msg = append(msg, t1...)
	}
	if tamper != nil {
		tamper(msg)
	}
	rows := transpose(t0, n)
	for _, c := range t0 {
		clear(c)
	}
	chi := challenges(eid, msg, n)
	var xs, ts gfWide
	for j := range n {
		xs.addMasked(chi[j], bit(x, j))
		ts.mulAdd(gfFrom(rows[j][:]), chi[j])
	}
	return rows, append(append(msg, xs.lo.bytes()...), ts.reduce().bytes()...)
}

// Outputs returns the receiver's output of every OT: outLen bytes each, H(eid, tweak, j,
// t_j), which is the sender's output for the receiver's choice. It wipes the state.
func (r *Receiver) Outputs(tweak []byte, outLen int) [][]byte {
	out := make([][]byte, r.m)
	for j := range out {
		out[j] = outputHash(r.eid, tweak, j, r.rows[j][:], outLen)
	}
	r.Wipe()
	return out
}

// Wipe overwrites the receiver's state.
func (r *Receiver) Wipe() {
	clear(r.rows)
	r.rows = nil
}

func outputHash(eid, tweak []byte, j int, row []byte, n int) []byte {
	h := sha3.NewCSHAKE256(nil, []byte("sharevault ote output"))
	protocol.Frame(h, "", eid, tweak, binary.BigEndian.AppendUint16(nil, uint16(j)), row)
	out := make([]byte, n)
	h.Read(out)
	return out
}

// ErrConsistency is the sender's refusal of a receiver's message whose check fails: the
// receiver did not use one choice vector in every column. The pair's seeds must be deleted.
var ErrConsistency = errors.New("ote: the receiver's consistency check fails")

// Sender is the extension sender's rows after a checked message.
type Sender struct {
	eid   []byte
	m     int
	delta [rowLen]byte
	rows  [][rowLen]byte // q_j
}

// Extend is the sender's side of the receiver's message msg for m OTs under eid: it checks
// the message and returns the rows to draw outputs from.
func (s *SenderSeeds) Extend(eid []byte, m int, msg []byte) (*Sender, error) {
	if m%8 != 0 || m > MaxOTs || len(msg) != MsgLen(m) {
		return nil, fmt.Errorf("ote: a receiver's message for %d OTs is %d bytes, not %d", m, len(msg), MsgLen(m))
	}
	n := m + Pad
	u := msg[:Kappa*n/8]
	q := make([][]byte, Kappa)
	for i := range Kappa {
		q[i] = make([]byte, n/8)
		prg(q[i], s.k[i][:], eid, i)
		mask := -byte(s.delta[i/8] >> (i % 8) & 1)
		for b, ub := range u[i*n/8 : (i+1)*n/8] {
			q[i][b] ^= ub & mask
		}
	}
	rows := transpose(q, n)
	for _, c := range q {
		clear(c)
	}
	chi := challenges(eid, u, n)
	var qs gfWide
	for j := range n {
		qs.mulAdd(gfFrom(rows[j][:]), chi[j])
	}
	xs, ts := gfFrom(msg[len(u):]), gfFrom(msg[len(u)+rowLen:])
	var want gfWide
	want.mulAdd(xs, gfFrom(s.delta[:]))
	w := want.reduce()
	w.lo ^= ts.lo
	w.hi ^= ts.hi
	got := qs.reduce()
	if subtle.ConstantTimeCompare(got.bytes(), w.bytes()) != 1 {
		clear(rows)
		s.Wipe() // fail closed: these seeds never extend again (the caller deletes its copies)
		return nil, ErrConsistency
	}
	clear(rows[m:])
	return &Sender{eid: append([]byte(nil), eid...), m: m, delta: s.delta, rows: rows[:m]}, nil
}

// Outputs returns both outputs of every OT, outLen bytes each, and wipes the state.
func (s *Sender) Outputs(tweak []byte, outLen int) (v0, v1 [][]byte) {
	v0, v1 = make([][]byte, s.m), make([][]byte, s.m)
	for j := range s.m {
		v0[j] = outputHash(s.eid, tweak, j, s.rows[j][:], outLen)
		for b := range s.rows[j] {
			s.rows[j][b] ^= s.delta[b]
		}
		v1[j] = outputHash(s.eid, tweak, j, s.rows[j][:], outLen)
	}
	clear(s.rows)
	s.rows, s.delta = nil, [rowLen]byte{}
	return v0, v1
}

// gf is an element of GF(2^128) = GF(2)[X]/(X^128 + X^7 + X^2 + X + 1): bit k of lo is the
// coefficient of X^k, bit k of hi that of X^(64+k). Every operation is constant time.
type gf struct{ lo, hi uint64 }

func gfFrom(b []byte) gf {
	return gf{binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])}
}

func (a gf) bytes() []byte {
	return binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, a.lo), a.hi)
}

// gfWide is an unreduced sum of products: 255 bits.
type gfWide struct {
	lo     gf
	w2, w3 uint64
}

// clmul is the carry-less product of a and b, in constant time (the loop and its shifts
// depend on nothing secret; each bit of b becomes a mask).
func clmul(a, b uint64) (hi, lo uint64) {
	for i := range 64 {
		m := -(b >> i & 1)
		lo ^= a << i & m
		hi ^= a >> (64 - i) & m // a >> 64 is 0 in Go
	}
	return hi, lo
}

// mulAdd adds a·b to w.
func (w *gfWide) mulAdd(a, b gf) {
	h0, l0 := clmul(a.lo, b.lo)
	h1, l1 := clmul(a.lo, b.hi)
	h2, l2 := clmul(a.hi, b.lo)
	h3, l3 := clmul(a.hi, b.hi)
	w.lo.lo ^= l0
	w.lo.hi ^= h0 ^ l1 ^ l2
	w.w2 ^= h1 ^ h2 ^ l3
	w.w3 ^= h3
}

// addMasked adds a to w if bit is 1, in constant time.
func (w *gfWide) addMasked(a gf, bit uint64) {
	w.lo.lo ^= a.lo & -bit
	w.lo.hi ^= a.hi & -bit
}

// reduce folds X^128 = X^7 + X^2 + X + 1 into the low 128 bits.
func (w *gfWide) reduce() gf {
	const p = 0x87
	h0, l0 := clmul(w.w2, p)
	h1, l1 := clmul(w.w3, p)
	_, f := clmul(h1, p) // h1 has at most 7 bits: X^(128+k) for k < 7 once more
	return gf{w.lo.lo ^ l0 ^ f, w.lo.hi ^ h0 ^ l1}
}
