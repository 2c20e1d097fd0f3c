package protocol

// FROST(Ed25519, SHA-512) signing, RFC 9591 (docs/tsm-protocol.md, "Signing"). Round one:
// each signer draws a hiding and a binding nonce and publishes their commitments. Round
// two: given the message and the commitments of the signing set, each signer computes the
// binding factors, the group commitment and the challenge, and answers its signature
// share. The coordinator (whoever carries the messages; it learns nothing secret)
// aggregates and verifies the signature; if it does not verify, it checks every share
// against the signer's public share, naming a cheater. The result is an RFC 8032 Ed25519
// signature.

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Commitment is a signer's round-one broadcast: D = d·G and E = e·G.
type Commitment struct {
	ID      int
	Hiding  []byte // D
	Binding []byte // E
}

// Nonces are a signer's secret round-one values, used once by SignShare and wiped.
type Nonces struct {
	hiding, binding []byte
	Commitment      Commitment
}

// Wipe overwrites the nonces; SignShare does so itself.
func (n *Nonces) Wipe() {
	clear(n.hiding)
	clear(n.binding)
	n.hiding, n.binding = nil, nil
}

// Wiped reports whether the nonces are gone (used, or wiped).
func (n *Nonces) Wiped() bool { return n.hiding == nil && n.binding == nil }

// nonceGenerate is RFC 9591 nonce_generate: H3(random_bytes || SerializeScalar(secret)),
// so a weak random source alone does not give away the nonce.
func nonceGenerate(random, secret []byte) []byte {
	in := append(bytes.Clone(random), secret...)
	defer clear(in)
	return frostH3(in)
}

// Commit is round one for signer k: nonces from 32 bytes of rand each, mixed with the
// share as RFC 9591 says. Keep the Nonces in memory only, and for one signature.
func Commit(k *KeyShare, rand io.Reader) (*Nonces, error) {
	if k.Curve != Ed25519 {
		return nil, errors.New("signing is built for Ed25519 keys only")
	}
	var hr, br [32]byte
	defer clear(hr[:])
	defer clear(br[:])
	if _, err := io.ReadFull(rand, hr[:]); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(rand, br[:]); err != nil {
		return nil, err
	}
	return commitWith(k, hr[:], br[:]), nil
}

func commitWith(k *KeyShare, hidingRandom, bindingRandom []byte) *Nonces {
	g := edw{}
	n := &Nonces{hiding: nonceGenerate(hidingRandom, k.Secret), binding: nonceGenerate(bindingRandom, k.Secret)}
	n.Commitment = Commitment{ID: k.ID, Hiding: g.BaseMult(n.hiding), Binding: g.BaseMult(n.binding)}
	return n
}

// checkCommitments: sorted by identifier, each once, in 1..n, and at least t+1 of them.
// Their points are checked where they arrive (Unmarshal, and SignShare for a signing
// request) and decoded by edGroupCommitment, which refuses the identity.
func checkCommitments(p *Public, cs []Commitment) error {
	if len(cs) < p.Threshold+1 || len(cs) > p.Parties() {
		return fmt.Errorf("%d signers; this key needs %d to %d", len(cs), p.Threshold+1, p.Parties())
	}
	for i, c := range cs {
		switch {
		case c.ID < 1 || c.ID > p.Parties():
			return fmt.Errorf("signer %d is not a party of this key", c.ID)
		case i > 0 && c.ID <= cs[i-1].ID:
			return errors.New("commitments are not sorted by identifier, each once")
		}
	}
	return nil
}

// signingState is what every signer and the coordinator derive from the message and the
// commitments: the binding factors, the group commitment R and the challenge c.
type signingState struct {
	ids []int
	rho map[int][]byte
	r   []byte
	c   []byte
}

// lambda is signer id's Lagrange coefficient in the signing set (an inversion: each is
// computed only where it is used).
func (st *signingState) lambda(id int) ([]byte, error) { return lagrange(edw{}, st.ids, id, 0) }

// deriveSigning is RFC 9591 compute_binding_factors, compute_group_commitment and
// compute_challenge.
func deriveSigning(p *Public, msg []byte, cs []Commitment) (*signingState, error) {
	g := edw{}
	var enc []byte // encode_group_commitment_list
	st := &signingState{rho: map[int][]byte{}}
	for _, c := range cs {
		enc = append(enc, g.ScalarFromInt(c.ID)...)
		enc = append(enc, c.Hiding...)
		enc = append(enc, c.Binding...)
		st.ids = append(st.ids, c.ID)
	}
	prefix := append(append(bytes.Clone(p.PublicKey), frostH4(msg)...), frostH5(enc)...)
	for _, c := range cs {
		st.rho[c.ID] = frostH1(append(bytes.Clone(prefix), g.ScalarFromInt(c.ID)...))
	}
	var err error
	if st.r, err = edGroupCommitment(cs, st.rho); err != nil {
		return nil, fmt.Errorf("group commitment: %w", err)
	}
	st.c = frostH2(append(append(bytes.Clone(st.r), p.PublicKey...), msg...))
	return st, nil
}

// SignShare is round two for signer k: its share z_i = d_i + e_i·ρ_i + λ_i·s_i·c of the
// signature of msg by the signing set whose commitments are cs. It uses the nonces once
// and wipes them; its own commitment must be in cs as it made it. Every other commitment
// gets RFC 9591's element validation here (a signing request's points are taken by length
// where it arrives); the signer's own is the one it made.
func SignShare(k *KeyShare, n *Nonces, msg []byte, cs []Commitment) ([]byte, error) {
	if n.hiding == nil || !(edw{}).ValidScalar(n.hiding) || !(edw{}).ValidScalar(n.binding) {
		return nil, errors.New("these nonces were used already")
	}
	defer n.Wipe()
	if err := checkCommitments(&k.Public, cs); err != nil {
		return nil, err
	}
	i := slices.IndexFunc(cs, func(c Commitment) bool { return c.ID == k.ID })
	if i < 0 || !bytes.Equal(cs[i].Hiding, n.Commitment.Hiding) || !bytes.Equal(cs[i].Binding, n.Commitment.Binding) {
		return nil, errors.New("this signer's commitment is not in the signing set as it made it")
	}
	for _, c := range cs {
		if c.ID != k.ID && (!(edw{}).ValidPoint(c.Hiding) || !(edw{}).ValidPoint(c.Binding)) {
			return nil, culprit(c.ID, "a commitment is not a valid point")
		}
	}
	st, err := deriveSigning(&k.Public, msg, cs)
	if err != nil {
		return nil, err
	}
	g := edw{}
	z := g.AddScalars(n.hiding, g.MulScalars(n.binding, st.rho[k.ID]))
	lambda, err := st.lambda(k.ID)
	if err != nil {
		return nil, err
	}
	ls := g.MulScalars(lambda, k.Secret)
	defer clear(ls)
	return g.AddScalars(z, g.MulScalars(ls, st.c)), nil
}

// Aggregate sums the signature shares into the signature R || z and checks it with
// crypto/ed25519 (one verification, where checking each share would take one per signer).
// If it does not verify, each share is checked against its signer's public share
// ([z_i]G = D_i + [ρ_i]E_i + [c·λ_i]Y_i), and a bad one is a CulpritError naming the signer.
func Aggregate(p *Public, msg []byte, cs []Commitment, shares map[int][]byte) ([]byte, error) {
	if p.Curve != Ed25519 {
		return nil, errors.New("signing is built for Ed25519 keys only")
	}
	if err := checkCommitments(p, cs); err != nil {
		return nil, err
	}
	st, err := deriveSigning(p, msg, cs)
	if err != nil {
		return nil, err
	}
	g := edw{}
	z := g.ScalarFromInt(0)
	for _, c := range cs {
		zi, ok := shares[c.ID]
		if !ok || !g.CanonicalScalar(zi) {
			return nil, culprit(c.ID, "no signature share, or not a scalar")
		}
		z = g.AddScalars(z, zi)
	}
	if len(shares) != len(cs) {
		return nil, errors.New("signature shares from parties outside the signing set")
	}
	sig := append(bytes.Clone(st.r), z...)
	if ed25519.Verify(p.PublicKey, msg, sig) {
		return sig, nil
	}
	// RFC 9591 section 5.3: the aggregate verifies if every share does; when it does not,
	// the shares are checked one by one to name whoever sent a bad one.
	for _, c := range cs {
		if !verifyShare(st, c, shares[c.ID], p.Shares[c.ID-1]) {
			return nil, culprit(c.ID, "its signature share does not verify")
		}
	}
	return nil, errors.New("the aggregate signature does not verify")
}

// verifyShare is RFC 9591 verify_signature_share: [z]G == D + [ρ]E + [c·λ]Y_i.
func verifyShare(st *signingState, c Commitment, z, y []byte) bool {
	g := edw{}
	terms := [][]byte{c.Hiding}
	if g.ValidScalar(st.rho[c.ID]) {
		e, err := g.ScalarMult(st.rho[c.ID], c.Binding)
		if err != nil {
			return false
		}
		terms = append(terms, e)
	}
	lambda, err := st.lambda(c.ID)
	if err != nil {
		return false
	}
	cy, err := g.ScalarMult(g.MulScalars(st.c, lambda), y)
	if err != nil {
		return false
	}
	rhs, err := g.AddPoints(append(terms, cy)...)
	if err != nil {
		return false
	}
	if !g.ValidScalar(z) {
		return false // [0]G is the identity, which no valid right-hand side is
	}
	return bytes.Equal(g.BaseMult(z), rhs)
}
