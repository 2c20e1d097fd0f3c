// Package dkls23 is threshold ECDSA on secp256k1 by the protocol of Doerner, Kondi, Lee and
// shelat, "Threshold ECDSA in Three Rounds" (IEEE S&P 2024, eprint 2023/765), as
// docs/tsm-protocol.md ("Signing: threshold ECDSA") specifies it: the pairwise base OTs a key's
// parties set up once (Setup), and the three rounds of a signature (Start, Round2, Round3,
// Combine), of which only the last needs the message. Pure: state in, messages out, no I/O.
// This file is all of the package's cryptography; wire.go encodes its messages.
//
// Any t+1 parties of a key the DKG made sign: each turns its Shamir share into an additive
// one, sk_i = λ_i·s_i, and every pair multiplies by the random vector OLE of the paper's
// Protocol 5.2 (RVOLE) on the OT extension of package ote. Every multiplication by a secret
// scalar is constant time (secp256k1-voi); the variable-time ones see public values only:
// the base OT proof's check and the final signature's verification.
package dkls23

import (
	"crypto/sha3"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"sync"

	secp256k1 "gitlab.com/yawning/secp256k1-voi"

	"github.com/sharevault/sharevault/internal/tsm/protocol"
	"github.com/sharevault/sharevault/internal/tsm/protocol/ot"
	"github.com/sharevault/sharevault/internal/tsm/protocol/ote"
)

// Xi is ξ = |q| + 2·λ_s with λ_s = 128: the OTs of one RVOLE, the length of the gadget vector.
const Xi = 512

// width is ℓ + ρ: each OT carries the two inputs (r_i, sk_i) and one check value.
const width = 3

// scalarOut is what an OT output gives per scalar: 64 bytes, reduced mod n (bias 2^-256).
const scalarOut = 64

// hash is cSHAKE256, customized by its domain, over framed parts.
func hash(out []byte, domain string, parts ...[]byte) {
	h := sha3.NewCSHAKE256(nil, []byte(domain))
	protocol.Frame(h, "", parts...)
	h.Read(out)
}

// twoTo256 is 2^256 mod n.
var twoTo256 = func() *secp256k1.Scalar {
	n, _ := new(big.Int).SetString("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", 16)
	var b [32]byte
	new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), n).FillBytes(b[:])
	s, _ := secp256k1.NewScalarFromCanonicalBytes(&b)
	return s
}()

// wide reduces 64 bytes mod n: hi·2^256 + lo.
func wide(b []byte) *secp256k1.Scalar {
	hi, _ := secp256k1.NewScalarFromBytes((*[32]byte)(b[:32]))
	lo, _ := secp256k1.NewScalarFromBytes((*[32]byte)(b[32:64]))
	return hi.Multiply(hi, twoTo256).Add(hi, lo)
}

func hashScalar(domain string, parts ...[]byte) *secp256k1.Scalar {
	var b [scalarOut]byte
	hash(b[:], domain, parts...)
	return wide(b[:])
}

// gadget is the public gadget vector g ∈ Z_q^ξ: fixed, derived once from its domain.
var gadget = sync.OnceValue(func() []*secp256k1.Scalar {
	g := make([]*secp256k1.Scalar, Xi)
	for j := range g {
		g[j] = hashScalar("sharevault dkls23 gadget", binary.BigEndian.AppendUint16(nil, uint16(j)))
	}
	return g
})

func base(s *secp256k1.Scalar) *secp256k1.Point {
	return secp256k1.NewIdentityPoint().ScalarBaseMult(s)
}

func id(i int) []byte { return []byte{byte(i)} }

// ---- Setup: the base OTs of every pair, once per key and epoch ----

// Seeds are one party's OT seeds with one peer: as the extension's receiver (Bob, whose
// input is its inversion mask) and as its sender (Alice, whose inputs are its nonce and key
// share). ID is the session of the setup that made them: both parties of a pair must hold
// the same, and a signature names it.
type Seeds struct {
	ID       []byte
	Receiver *ote.ReceiverSeeds
	Sender   *ote.SenderSeeds
}

// Wipe overwrites the seeds.
func (s *Seeds) Wipe() { s.Receiver.Wipe(); s.Sender.Wipe() }

// otSession names the base OTs in which bob is the OT sender (so the extension's receiver).
func otSession(session []byte, bob, alice int) []byte {
	return slices.Concat([]byte("sharevault dkls23 base ot"), session, id(bob), id(alice))
}

// Setup is a party's state between the rounds of a setup.
type Setup struct {
	session []byte
	self    int
	senders map[int]*ot.Sender
	keys    map[int]*ot.ReceiverKeys
}

// NewSetup starts the setup of party self with every peer: the first OT message to each.
func NewSetup(session []byte, self int, peers []int, rand io.Reader) (*Setup, map[int][]byte, error) {
	if len(session) != protocol.SessionLen {
		return nil, nil, errors.New("dkls23: a session ID is 16 bytes")
	}
	s := &Setup{session: slices.Clone(session), self: self, senders: map[int]*ot.Sender{}, keys: map[int]*ot.ReceiverKeys{}}
	out := map[int][]byte{}
	for _, j := range peers {
		snd, m, err := ot.NewSender(otSession(session, self, j), rand)
		if err != nil {
			s.Wipe()
			return nil, nil, err
		}
		s.senders[j], out[j] = snd, m
	}
	return s, out, nil
}

// Answer takes every peer's first message and answers each.
func (s *Setup) Answer(in map[int][]byte, rand io.Reader) (map[int][]byte, error) {
	out := map[int][]byte{}
	for j := range s.senders {
		m, k, err := ot.Receive(otSession(s.session, j, s.self), in[j], rand)
		if err != nil {
			return nil, protocol.CulpritErrorf(j, "base OT: %v", err)
		}
		s.keys[j], out[j] = k, m
	}
	return out, nil
}

// Finish takes every peer's answer and returns the seeds with each.
func (s *Setup) Finish(in map[int][]byte) (map[int]*Seeds, error) {
	out := map[int]*Seeds{}
	for j, snd := range s.senders {
		k, err := snd.Finish(in[j])
		if err != nil {
			return nil, protocol.CulpritErrorf(j, "base OT: %v", err)
		}
		out[j] = &Seeds{ID: slices.Clone(s.session), Receiver: ote.NewReceiverSeeds(k), Sender: ote.NewSenderSeeds(s.keys[j])}
		k.Wipe()
	}
	s.Wipe()
	return out, nil
}

// Wipe overwrites the setup's secrets, for a setup abandoned before Finish.
func (s *Setup) Wipe() {
	for _, snd := range s.senders {
		snd.Wipe()
	}
	for _, k := range s.keys {
		k.Wipe()
	}
}

// ---- Signing ----

// Params are what a signer starts from.
type Params struct {
	Session []byte
	Share   *protocol.KeyShare // secp256k1
	Signers []int              // the signing set's identifiers, with Share.ID, at least t+1
	Seeds   map[int]*Seeds     // with every other signer
}

// SeedError is a refusal of a peer's OT extension: its consistency check failed, or it named
// seeds this party does not hold. The pair's seeds must be deleted and set up again before
// the pair signs again (package ote: a failed check tells the peer a bit of Δ).
type SeedError struct {
	Peer    int
	Reason  string
	Refused bool // the peer's extension failed its check: delete the seeds with it
}

func (e *SeedError) Error() string { return fmt.Sprintf("party %d: %s", e.Peer, e.Reason) }

// bob is a signer's side of one pair as the RVOLE's receiver.
type bob struct {
	beta []byte // ξ choice bits
	chi  *secp256k1.Scalar
	ext  *ote.Receiver
}

// alice is a signer's side of one pair as the RVOLE's sender.
type alice struct{ cu, cv *secp256k1.Scalar }

// Signer is a signer's state for one signature, in memory only; it wipes itself as it goes.
type Signer struct {
	p       Params
	self    int
	sk      *secp256k1.Scalar // λ_i·s_i
	pk      map[int]*secp256k1.Point
	r, phi  *secp256k1.Scalar
	R       *secp256k1.Point
	salt    [32]byte
	nonce   [32]byte
	commit  [32]byte
	bobs    map[int]*bob
	senders map[int]*Seeds // a copy of the sender's seeds with each peer, for round two
	alices  map[int]*alice
	round1  map[int]*Round1
	echo    [32]byte
	round   int
}

// Round1 is a signer's broadcast of round one: the commitment to its R_i and its nonce.
type Round1 struct {
	Commit [32]byte
	Nonce  [32]byte
}

func commitment(session []byte, i int, R []byte, salt []byte) [32]byte {
	var c [32]byte
	hash(c[:], "sharevault dkls23 commitment", session, id(i), R, salt)
	return c
}

// extensionID names an RVOLE's OT extension: the pair, and Bob's fresh nonce.
func extensionID(session []byte, b, a int, bobNonce []byte) []byte {
	return slices.Concat([]byte("sharevault dkls23 rvole"), session, id(b), id(a), bobNonce)
}

// Start is round one. It checks the parameters, draws r_i, φ_i and a nonce, commits to
// R_i = r_i·G, and as Bob towards every other signer draws ξ choice bits β, so χ = ⟨g, β⟩,
// and sends the extension's message. It returns the broadcast and one message per peer.
func Start(p Params, rand io.Reader) (_ *Signer, _ *Round1, _ map[int]*Round1Private, err error) {
	k := p.Share
	if k == nil || k.Curve != protocol.Secp256k1 {
		return nil, nil, nil, errors.New("dkls23: a secp256k1 key share is needed")
	}
	if len(p.Session) != protocol.SessionLen {
		return nil, nil, nil, errors.New("dkls23: a session ID is 16 bytes")
	}
	if !slices.IsSorted(p.Signers) || len(slices.Compact(slices.Clone(p.Signers))) != len(p.Signers) ||
		len(p.Signers) < k.Threshold+1 || !slices.Contains(p.Signers, k.ID) ||
		p.Signers[0] < 1 || p.Signers[len(p.Signers)-1] > k.Parties() {
		return nil, nil, nil, fmt.Errorf("dkls23: the signing set %v is not %d or more of the key's parties, sorted, each once, with this one (%d)", p.Signers, k.Threshold+1, k.ID)
	}
	s := &Signer{p: p, self: k.ID, pk: map[int]*secp256k1.Point{}, bobs: map[int]*bob{}, alices: map[int]*alice{}, senders: map[int]*Seeds{}}
	for _, j := range p.Signers {
		lb, err := protocol.Lagrange(protocol.Secp256k1, p.Signers, j)
		if err != nil {
			return nil, nil, nil, err
		}
		l, _ := secp256k1.NewScalarFromCanonicalBytes((*[32]byte)(lb))
		Y, err := secp256k1.NewIdentityPoint().SetCompressedBytes(k.Shares[j-1])
		if err != nil {
			return nil, nil, nil, err
		}
		s.pk[j] = Y.ScalarMult(l, Y) // public values, constant time all the same
		if j == s.self {
			si, err := secp256k1.NewScalarFromCanonicalBytes((*[32]byte)(k.Secret))
			if err != nil {
				return nil, nil, nil, err
			}
			s.sk = si.Multiply(si, l)
		}
		if j != s.self && (p.Seeds[j] == nil || p.Seeds[j].Receiver == nil || p.Seeds[j].Sender == nil) {
			return nil, nil, nil, &SeedError{Peer: j, Reason: "no OT seeds with this party: set the pair up"}
		}
	}
	defer func() {
		if err != nil {
			s.Wipe()
		}
	}()
	if s.r, err = ot.RandomScalar(rand); err != nil {
		return nil, nil, nil, err
	}
	if s.phi, err = ot.RandomScalar(rand); err != nil {
		return nil, nil, nil, err
	}
	if _, err := io.ReadFull(rand, s.salt[:]); err != nil {
		return nil, nil, nil, err
	}
	if _, err := io.ReadFull(rand, s.nonce[:]); err != nil {
		return nil, nil, nil, err
	}
	s.R = base(s.r)
	s.commit = commitment(p.Session, s.self, s.R.CompressedBytes(), s.salt[:])
	priv := map[int]*Round1Private{}
	for _, j := range p.Signers {
		if j == s.self {
			continue
		}
		b := &bob{beta: make([]byte, Xi/8)}
		if _, err := io.ReadFull(rand, b.beta); err != nil {
			return nil, nil, nil, err
		}
		b.chi = secp256k1.NewScalar()
		sum := secp256k1.NewScalar()
		for i, g := range gadget() {
			sum.Add(b.chi, g)
			b.chi.ConditionalSelect(b.chi, sum, uint64(b.beta[i/8]>>(i%8))&1)
		}
		ext, msg, err := p.Seeds[j].Receiver.Extend(extensionID(p.Session, s.self, j, s.nonce[:]), Xi, b.beta, rand)
		if err != nil {
			return nil, nil, nil, err
		}
		b.ext = ext
		s.bobs[j] = b
		snd := *p.Seeds[j].Sender
		s.senders[j] = &Seeds{ID: slices.Clone(p.Seeds[j].ID), Sender: &snd}
		priv[j] = &Round1Private{SeedsID: slices.Clone(p.Seeds[j].ID), Extension: msg}
	}
	s.p.Seeds = nil // the caller may wipe its seeds now
	s.round = 1
	return s, &Round1{Commit: s.commit, Nonce: s.nonce}, priv, nil
}

// Round1Private is round one's message to one peer: the extension's message, on the seeds
// it names.
type Round1Private struct {
	SeedsID   []byte
	Extension []byte
}

// Round2Private is round two's message to one peer.
type Round2Private struct {
	R      *secp256k1.Point
	Salt   [32]byte
	Echo   [32]byte
	ATilde [Xi][width]*secp256k1.Scalar
	Eta    *secp256k1.Scalar
	Mu     [32]byte
	GammaU *secp256k1.Point
	GammaV *secp256k1.Point
	Psi    *secp256k1.Scalar
}

// echoOf hashes every signer's round-one broadcast as this signer received it.
func echoOf(session []byte, signers []int, bc map[int]*Round1) [32]byte {
	parts := [][]byte{session}
	for _, j := range signers {
		parts = append(parts, id(j), bc[j].Commit[:], bc[j].Nonce[:])
	}
	var e [32]byte
	hash(e[:], "sharevault dkls23 echo", parts...)
	return e
}

// theta derives θ ∈ Z_q^2 from ã (the paper's Fiat-Shamir challenge of Alice's inputs).
func theta(eid, tweak []byte, at *[Xi][width]*secp256k1.Scalar) [2]*secp256k1.Scalar {
	h := sha3.NewCSHAKE256(nil, []byte("sharevault dkls23 theta"))
	protocol.Frame(h, "", eid, tweak)
	for j := range at {
		for _, v := range at[j] {
			h.Write(v.Bytes())
		}
	}
	var b [2 * scalarOut]byte
	h.Read(b[:])
	return [2]*secp256k1.Scalar{wide(b[:scalarOut]), wide(b[scalarOut:])}
}

// muOf hashes the check values of every row.
func muOf(eid, tweak []byte, rows []*secp256k1.Scalar) [32]byte {
	h := sha3.NewCSHAKE256(nil, []byte("sharevault dkls23 mu"))
	protocol.Frame(h, "", eid, tweak)
	for _, v := range rows {
		h.Write(v.Bytes())
	}
	var mu [32]byte
	h.Read(mu[:])
	return mu
}

func outputs(v []byte) [width]*secp256k1.Scalar {
	var out [width]*secp256k1.Scalar
	for k := range out {
		out[k] = wide(v[k*scalarOut : (k+1)*scalarOut])
	}
	clear(v)
	return out
}

// Round2 takes every other signer's round one (its broadcast and its message to this one),
// and as Alice towards each answers the RVOLE with inputs (r_i, sk_i): ã, η, μ, with
// Γ^u = c^u·G and Γ^v = c^v·G of its output shares, ψ = φ_i − χ of its own RVOLE as Bob
// towards that signer, the decommitment of R_i, and the echo of every broadcast.
func (s *Signer) Round2(bc map[int]*Round1, priv map[int]*Round1Private, rand io.Reader) (map[int]*Round2Private, error) {
	if s.round != 1 {
		return nil, errors.New("dkls23: round two out of order")
	}
	s.round = 2
	bc[s.self] = &Round1{Commit: s.commit, Nonce: s.nonce}
	for _, j := range s.p.Signers {
		if bc[j] == nil || j != s.self && priv[j] == nil {
			s.Wipe()
			return nil, protocol.CulpritErrorf(j, "no round one")
		}
	}
	s.round1, s.echo = bc, echoOf(s.p.Session, s.p.Signers, bc)
	out := map[int]*Round2Private{}
	a := [2]*secp256k1.Scalar{s.r, s.sk}
	for _, j := range s.p.Signers {
		if j == s.self {
			continue
		}
		seeds := s.senders[j]
		if subtle.ConstantTimeCompare(priv[j].SeedsID, seeds.ID) != 1 {
			s.Wipe()
			return nil, &SeedError{Peer: j, Reason: "its OT extension is on other seeds than this party's with it"}
		}
		eid := extensionID(s.p.Session, j, s.self, bc[j].Nonce[:])
		ext, err := seeds.Sender.Extend(eid, Xi, priv[j].Extension)
		if err != nil {
			s.Wipe()
			if errors.Is(err, ote.ErrConsistency) {
				return nil, &SeedError{Peer: j, Reason: err.Error(), Refused: true}
			}
			return nil, protocol.CulpritErrorf(j, "%v", err)
		}
		tweak := s.nonce[:]
		v0, v1 := ext.Outputs(tweak, width*scalarOut)
		m := &Round2Private{R: s.R, Salt: s.salt, Echo: s.echo, Psi: secp256k1.NewScalar().Subtract(s.phi, s.bobs[j].chi)}
		etaHat, err := ot.RandomScalar(rand)
		if err != nil {
			s.Wipe()
			return nil, err
		}
		alpha0 := make([][width]*secp256k1.Scalar, Xi)
		cu, cv := secp256k1.NewScalar(), secp256k1.NewScalar()
		t := secp256k1.NewScalar()
		for r := range Xi {
			alpha0[r] = outputs(v0[r])
			a1 := outputs(v1[r])
			for k := range width {
				in := etaHat
				if k < 2 {
					in = a[k]
				}
				m.ATilde[r][k] = secp256k1.NewScalar().Subtract(alpha0[r][k], a1[k])
				m.ATilde[r][k].Add(m.ATilde[r][k], in)
				a1[k].Zero()
			}
			cu.Add(cu, t.Multiply(gadget()[r], alpha0[r][0]))
			cv.Add(cv, t.Multiply(gadget()[r], alpha0[r][1]))
		}
		cu.Negate(cu)
		cv.Negate(cv)
		th := theta(eid, tweak, &m.ATilde)
		m.Eta = secp256k1.NewScalar().Multiply(th[0], a[0])
		m.Eta.Add(m.Eta, t.Multiply(th[1], a[1])).Add(m.Eta, etaHat)
		etaHat.Zero()
		rows := make([]*secp256k1.Scalar, Xi)
		for r := range Xi {
			rows[r] = secp256k1.NewScalar().Multiply(th[0], alpha0[r][0])
			rows[r].Add(rows[r], t.Multiply(th[1], alpha0[r][1])).Add(rows[r], alpha0[r][2])
			for _, x := range alpha0[r] {
				x.Zero()
			}
		}
		m.Mu = muOf(eid, tweak, rows)
		for _, x := range rows {
			x.Zero()
		}
		m.GammaU, m.GammaV = base(cu), base(cv)
		s.alices[j] = &alice{cu: cu, cv: cv}
		out[j] = m
	}
	return out, nil
}

// Partial is a signer's round three, to whoever combines: its shares u_i of r·φ and w_i of
// the numerator, with the R it computed.
type Partial struct {
	From int
	R    *secp256k1.Point
	U, W *secp256k1.Scalar
}

// Round3 takes every other signer's round two to this one, checks it (the echo; the
// decommitment; the RVOLE's μ; χ·R_j − Γ^u = d^u·G and χ·pk_j − Γ^v = d^v·G), and given
// the 32-byte digest and the tweak of a BIP-32 derivation (zero for the key itself) answers
// u_i = r_i·φ'_i + Σ (c^u + d^u), w_i = h·φ_i + r_x·(v_i + τ·φ_i), where
// φ'_i = φ_i + Σ ψ_ji and v_i = sk_i·φ'_i + Σ (c^v + d^v). It wipes the signer.
func (s *Signer) Round3(in map[int]*Round2Private, digest []byte, tweak *secp256k1.Scalar) (*Partial, error) {
	defer s.Wipe()
	if s.round != 2 {
		return nil, errors.New("dkls23: round three out of order")
	}
	if len(digest) != 32 {
		return nil, errors.New("dkls23: a digest is 32 bytes")
	}
	R := secp256k1.NewPointFrom(s.R)
	phiP := secp256k1.NewScalarFrom(s.phi)
	u, v := secp256k1.NewScalar(), secp256k1.NewScalar()
	t := secp256k1.NewScalar()
	du, dv := secp256k1.NewScalar(), secp256k1.NewScalar()
	ok := false
	defer func() {
		for _, x := range []*secp256k1.Scalar{phiP, v, t, du, dv} {
			x.Zero()
		}
		if !ok {
			u.Zero()
		}
	}()
	for _, j := range s.p.Signers {
		if j == s.self {
			continue
		}
		m := in[j]
		if m == nil {
			return nil, protocol.CulpritErrorf(j, "no round two")
		}
		if subtle.ConstantTimeCompare(m.Echo[:], s.echo[:]) != 1 {
			return nil, protocol.CulpritErrorf(j, "its view of round one differs from this party's (a signer sent different broadcasts to different parties)")
		}
		if c := commitment(s.p.Session, j, m.R.CompressedBytes(), m.Salt[:]); subtle.ConstantTimeCompare(c[:], s.round1[j].Commit[:]) != 1 {
			return nil, protocol.CulpritErrorf(j, "its R does not open its commitment")
		}
		b := s.bobs[j]
		eid := extensionID(s.p.Session, s.self, j, s.nonce[:])
		tw := s.round1[j].Nonce[:]
		w := b.ext.Outputs(tw, width*scalarOut)
		th := theta(eid, tw, &m.ATilde)
		rows := make([]*secp256k1.Scalar, Xi)
		du.Zero()
		dv.Zero()
		for r := range Xi {
			bit := uint64(b.beta[r/8]>>(r%8)) & 1
			d := outputs(w[r])
			for k := range width {
				t.Add(d[k], m.ATilde[r][k])
				d[k].ConditionalSelect(d[k], t, bit)
			}
			rows[r] = secp256k1.NewScalar().Multiply(th[0], d[0])
			rows[r].Add(rows[r], t.Multiply(th[1], d[1])).Add(rows[r], d[2])
			t.Subtract(rows[r], m.Eta)
			rows[r].ConditionalSelect(rows[r], t, bit)
			du.Add(du, t.Multiply(gadget()[r], d[0]))
			dv.Add(dv, t.Multiply(gadget()[r], d[1]))
			for _, x := range d {
				x.Zero()
			}
		}
		mu := muOf(eid, tw, rows)
		for _, x := range rows {
			x.Zero()
		}
		if subtle.ConstantTimeCompare(mu[:], m.Mu[:]) != 1 {
			return nil, protocol.CulpritErrorf(j, "its RVOLE fails the check of μ (inputs that differ between OTs)")
		}
		lhs := secp256k1.NewIdentityPoint().ScalarMult(b.chi, m.R)
		if lhs.Subtract(lhs, m.GammaU).Equal(base(du)) != 1 {
			return nil, protocol.CulpritErrorf(j, "its RVOLE input is not the nonce its R commits to")
		}
		lhs.ScalarMult(b.chi, s.pk[j])
		if lhs.Subtract(lhs, m.GammaV).Equal(base(dv)) != 1 {
			return nil, protocol.CulpritErrorf(j, "its RVOLE input is not its key share")
		}
		R.Add(R, m.R)
		phiP.Add(phiP, m.Psi)
		a := s.alices[j]
		u.Add(u, du).Add(u, a.cu)
		v.Add(v, dv).Add(v, a.cv)
	}
	// R, opened in round two, is known before the digest and the tweak are: bind them to
	// the nonce by re-randomizing it (Groth and Shoup, eprint 2021/1330, against the attack
	// on presignatures with additive derivation): k' = r + δ, δ = H(…, R, digest, τ), so
	// R' = R + δ·G and u grows by δ·φ. Signers given other digests or tweaks compute
	// other R', which Combine refuses.
	if tweak == nil {
		tweak = secp256k1.NewScalar()
	}
	delta := hashScalar("sharevault dkls23 rerandomize", s.p.Session, s.echo[:], R.CompressedBytes(), digest, tweak.Bytes())
	R.Add(R, base(delta))
	if R.IsIdentity() == 1 {
		return nil, errors.New("dkls23: R is the identity")
	}
	rx, err := xScalar(R)
	if err != nil {
		return nil, err
	}
	u.Add(u, t.Multiply(s.r, phiP))
	u.Add(u, t.Multiply(delta, s.phi))
	v.Add(v, t.Multiply(s.sk, phiP))
	v.Add(v, t.Multiply(tweak, s.phi))
	h, _ := secp256k1.NewScalarFromBytes((*[32]byte)(digest))
	wv := secp256k1.NewScalar().Multiply(h, s.phi)
	wv.Add(wv, t.Multiply(rx, v))
	ok = true
	return &Partial{From: s.self, R: R, U: u, W: wv}, nil
}

// xScalar is r = x(R) mod n.
func xScalar(R *secp256k1.Point) (*secp256k1.Scalar, error) {
	xb, err := R.XBytes()
	if err != nil {
		return nil, err
	}
	rx, _ := secp256k1.NewScalarFromBytes((*[32]byte)(xb))
	if rx.IsZero() == 1 {
		return nil, errors.New("dkls23: r is zero")
	}
	return rx, nil
}

// Wipe overwrites the signer's secrets; a Signer is used for one signature.
func (s *Signer) Wipe() {
	for _, x := range []*secp256k1.Scalar{s.sk, s.r, s.phi} {
		if x != nil {
			x.Zero()
		}
	}
	for _, b := range s.bobs {
		clear(b.beta)
		b.chi.Zero()
		b.ext.Wipe()
	}
	for _, a := range s.alices {
		a.cu.Zero()
		a.cv.Zero()
	}
	for _, sd := range s.senders {
		sd.Sender.Wipe()
	}
	s.bobs, s.alices, s.senders, s.round = nil, nil, nil, -1
	clear(s.salt[:])
}

// Wiped reports whether Wipe has run.
func (s *Signer) Wiped() bool { return s.round == -1 }

// Signature is a finished ECDSA signature: r and s (low-S) with the recovery ID that gives
// back the public key (bit 0: R's y is odd, bit 1: x(R) is at least n).
type Signature struct {
	R, S       [32]byte
	RecoveryID byte
}

// Combine sums the partials of every signer: s = Σw / Σu, normalized to low-S. It returns
// the signature for digest under the public key pub (the key, or its BIP-32 child), which
// the caller verifies.
func Combine(partials []*Partial) (*Signature, error) {
	if len(partials) == 0 {
		return nil, errors.New("dkls23: no partials")
	}
	u, w := secp256k1.NewScalar(), secp256k1.NewScalar()
	R := partials[0].R
	for _, p := range partials {
		if p.R.Equal(R) != 1 {
			return nil, protocol.CulpritErrorf(p.From, "computed another R than party %d", partials[0].From)
		}
		u.Add(u, p.U)
		w.Add(w, p.W)
	}
	if u.IsZero() == 1 {
		return nil, errors.New("dkls23: the sum of u is zero")
	}
	rx, err := xScalar(R)
	if err != nil {
		return nil, err
	}
	sv := u.Invert(u).Multiply(u, w)
	if sv.IsZero() == 1 {
		return nil, errors.New("dkls23: s is zero")
	}
	rec := byte(R.IsYOdd())
	if xb, _ := R.XBytes(); string(xb) != string(rx.Bytes()) {
		rec |= 2
	}
	if sv.IsGreaterThanHalfN() == 1 {
		sv.Negate(sv)
		rec ^= 1
	}
	sig := &Signature{RecoveryID: rec}
	copy(sig.R[:], rx.Bytes())
	copy(sig.S[:], sv.Bytes())
	return sig, nil
}
