package protocol

// Distributed key generation and refresh (docs/tsm-protocol.md, "Key generation" and
// "Refresh"). Both are Pedersen's: each party deals a random polynomial of degree t,
// broadcasts Feldman commitments to its coefficients, and sends every other party its
// value there privately; each party checks every value against its dealer's commitments
// and sums what it received. Key generation proves knowledge of each constant term
// (Schnorr, bound to the session and the dealer), so no dealer can choose its
// contribution after seeing the others'. Refresh deals polynomials with a zero constant
// term: the key stays, every share changes.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// pokDomain separates the proof of knowledge's challenge from every other hash.
const pokDomain = "sharevault tsm v2 dkg proof of knowledge"

// SessionLen is the length of a session ID.
const SessionLen = 16

// DKGParams describes a key generation or refresh, the same for every party but ID.
type DKGParams struct {
	Session   []byte // SessionLen random bytes chosen by whoever starts it
	Curve     Curve
	Threshold int // t: any t+1 parties sign
	Parties   int // n
	ID        int // this party, 1..n
}

func (p *DKGParams) check() error {
	switch {
	case len(p.Session) != SessionLen:
		return fmt.Errorf("session ID of %d bytes, want %d", len(p.Session), SessionLen)
	case GroupOf(p.Curve) == nil:
		return fmt.Errorf("unknown curve %d", p.Curve)
	case p.Parties < 2 || p.Parties > MaxParties:
		return fmt.Errorf("%d parties out of range 2..%d", p.Parties, MaxParties)
	case p.Threshold < 1 || p.Threshold >= p.Parties:
		return fmt.Errorf("threshold %d out of range 1..%d", p.Threshold, p.Parties-1)
	case p.ID < 1 || p.ID > p.Parties:
		return fmt.Errorf("identifier %d out of range 1..%d", p.ID, p.Parties)
	}
	return nil
}

// Round1 is a dealer's broadcast: commitments to its coefficients a_0 … a_t (refresh:
// a_1 … a_t, since a_0 = 0), and for key generation a proof of knowledge of a_0.
type Round1 struct {
	From        int
	Commitments [][]byte
	ProofR      []byte // R = k·G (key generation only)
	ProofZ      []byte // z = k + a_0·c
}

// Round2 is a dealer's value f(To) for one other party. It is secret: carry it privately.
type Round2 struct {
	From, To int
	Share    []byte
}

// DKG is one party's state in a key generation or refresh. It holds this party's
// polynomial until Round2, and the shares it received until Finish.
type DKG struct {
	p       DKGParams
	refresh bool
	coeffs  [][]byte // a_0 … a_t; a_0 is zero in a refresh
	own     []byte   // f(ID), kept for itself
	round1  map[int]*Round1
}

// NewDKG starts a key generation: it draws this party's polynomial from rand and returns
// the broadcast of round one.
func NewDKG(p DKGParams, rand io.Reader) (*DKG, *Round1, error) { return start(p, false, rand) }

// NewRefresh starts a refresh of an existing key (the parameters must be the key's).
func NewRefresh(p DKGParams, rand io.Reader) (*DKG, *Round1, error) { return start(p, true, rand) }

func start(p DKGParams, refresh bool, rand io.Reader) (*DKG, *Round1, error) {
	if err := p.check(); err != nil {
		return nil, nil, err
	}
	g := GroupOf(p.Curve)
	d := &DKG{p: p, refresh: refresh, round1: map[int]*Round1{}}
	d.coeffs = make([][]byte, p.Threshold+1)
	for i := range d.coeffs {
		var err error
		if d.coeffs[i], err = g.RandomScalar(rand); err != nil {
			return nil, nil, err
		}
	}
	out := &Round1{From: p.ID}
	first := 0
	if refresh {
		clear(d.coeffs[0]) // f(0) = 0: the key does not move
		first = 1
	}
	for _, a := range d.coeffs[first:] {
		out.Commitments = append(out.Commitments, g.BaseMult(a))
	}
	d.round1[p.ID] = out // its own broadcast counts in the public values
	if !refresh {
		k, err := g.RandomScalar(rand)
		if err != nil {
			return nil, nil, err
		}
		out.ProofR = g.BaseMult(k)
		c := g.Challenge(pokDomain, p.Session, g.ScalarFromInt(p.ID), out.Commitments[0], out.ProofR)
		out.ProofZ = g.AddScalars(k, g.MulScalars(d.coeffs[0], c))
		clear(k)
	}
	return d, out, nil
}

// evalPoly returns f(x) = Σ a_k·x^k.
func evalPoly(g Group, coeffs [][]byte, x int) []byte {
	xs := g.ScalarFromInt(x)
	acc := bytes.Clone(coeffs[len(coeffs)-1])
	for k := len(coeffs) - 2; k >= 0; k-- {
		acc = g.AddScalars(g.MulScalars(acc, xs), coeffs[k])
	}
	return acc
}

// evalCommitments returns Σ C_k·x^(k+first), the commitment to f(x) (first = 1 when the
// constant term's commitment is left out).
func evalCommitments(g Group, cs [][]byte, first, x int) ([]byte, error) {
	xs := g.ScalarFromInt(x)
	pow := g.ScalarFromInt(1)
	if first == 1 {
		pow = xs
	}
	terms := make([][]byte, len(cs))
	for k, c := range cs {
		var err error
		if terms[k], err = g.ScalarMult(pow, c); err != nil {
			return nil, err
		}
		pow = g.MulScalars(pow, xs)
	}
	return g.AddPoints(terms...)
}

// Wipe zeroes the secrets d still holds (its polynomial, its own value): for a session
// that fails, expires or is abandoned at any point. d is unusable after.
func (d *DKG) Wipe() {
	for _, a := range d.coeffs {
		clear(a)
	}
	d.coeffs = nil
	clear(d.own)
	d.own = nil
}

// Wiped reports whether d holds no secret any more.
func (d *DKG) Wiped() bool { return d.coeffs == nil && d.own == nil }

// Round2 checks every other party's round-one broadcast (each exactly once: its
// commitments, and in key generation its proof of knowledge) and returns this party's
// private values for each of them. A bad broadcast is a CulpritError.
func (d *DKG) Round2(msgs []*Round1) ([]*Round2, error) {
	if d.coeffs == nil {
		return nil, errors.New("round two already ran")
	}
	g := GroupOf(d.p.Curve)
	want := d.p.Threshold + 1
	if d.refresh {
		want = d.p.Threshold
	}
	for _, m := range msgs {
		switch {
		case m.From < 1 || m.From > d.p.Parties || m.From == d.p.ID:
			return nil, culprit(m.From, "a round-one message from no other party of this session")
		case d.round1[m.From] != nil:
			return nil, culprit(m.From, "two round-one messages")
		case len(m.Commitments) != want:
			return nil, culprit(m.From, "%d commitments, want %d", len(m.Commitments), want)
		}
		for _, c := range m.Commitments {
			if !g.ValidPoint(c) {
				return nil, culprit(m.From, "a commitment is not a valid point")
			}
		}
		if d.refresh != (m.ProofR == nil && m.ProofZ == nil) {
			return nil, culprit(m.From, "a proof of knowledge where none belongs, or none where one does")
		}
		if !d.refresh {
			if !g.ValidPoint(m.ProofR) || !g.ValidScalar(m.ProofZ) {
				return nil, culprit(m.From, "a malformed proof of knowledge")
			}
			c := g.Challenge(pokDomain, d.p.Session, g.ScalarFromInt(m.From), m.Commitments[0], m.ProofR)
			cc, err := g.ScalarMult(c, m.Commitments[0])
			if err != nil {
				return nil, culprit(m.From, "a malformed proof of knowledge")
			}
			if rhs, err := g.AddPoints(m.ProofR, cc); err != nil || !bytes.Equal(g.BaseMult(m.ProofZ), rhs) {
				return nil, culprit(m.From, "the proof of knowledge of its constant term does not verify")
			}
		}
		d.round1[m.From] = m
	}
	if len(d.round1) != d.p.Parties {
		return nil, fmt.Errorf("round one heard from %d of the %d other parties", len(d.round1)-1, d.p.Parties-1)
	}
	var out []*Round2
	for j := 1; j <= d.p.Parties; j++ {
		v := evalPoly(g, d.coeffs, j)
		if j == d.p.ID {
			d.own = v
			continue
		}
		out = append(out, &Round2{From: d.p.ID, To: j, Share: v})
	}
	for _, a := range d.coeffs {
		clear(a)
	}
	d.coeffs = nil
	return out, nil
}

// Result is what a key generation or refresh gives one party: its secret (a share, or in a
// refresh the change to add to its share) and the matching public values.
type Result struct {
	Secret []byte
	Public Public // in a refresh: the changes to the public shares, and no public key
}

// Finish checks every other party's private value against that party's commitments (a
// bad one is a CulpritError) and returns this party's result.
func (d *DKG) Finish(msgs []*Round2) (*Result, error) {
	if d.own == nil {
		return nil, errors.New("round two has not run")
	}
	g := GroupOf(d.p.Curve)
	first := 0
	if d.refresh {
		first = 1
	}
	got := map[int]bool{}
	sum := bytes.Clone(d.own)
	defer clear(sum)
	for _, m := range msgs {
		r1 := d.round1[m.From]
		switch {
		case r1 == nil || m.From == d.p.ID || m.To != d.p.ID:
			return nil, culprit(m.From, "a round-two message from no other party, or for another")
		case got[m.From]:
			return nil, culprit(m.From, "two round-two messages")
		case !g.ValidScalar(m.Share):
			return nil, culprit(m.From, "its value is not a valid scalar")
		}
		want, err := evalCommitments(g, r1.Commitments, first, d.p.ID)
		if err != nil || !bytes.Equal(g.BaseMult(m.Share), want) {
			clear(m.Share)
			return nil, culprit(m.From, "its value for party %d does not match its commitments", d.p.ID)
		}
		got[m.From] = true
		next := g.AddScalars(sum, m.Share)
		clear(sum)
		sum = next
	}
	if len(got) != d.p.Parties-1 {
		return nil, fmt.Errorf("round two heard from %d of the %d other parties", len(got), d.p.Parties-1)
	}
	// Every party's public value is the sum of the dealers' commitments evaluated there.
	var all [][][]byte
	for id := 1; id <= d.p.Parties; id++ {
		all = append(all, d.round1[id].Commitments)
	}
	res := &Result{Secret: bytes.Clone(sum), Public: Public{Curve: d.p.Curve, Threshold: d.p.Threshold}}
	var err error
	for j := 1; j <= d.p.Parties; j++ {
		terms := make([][]byte, len(all))
		for k, cs := range all {
			if terms[k], err = evalCommitments(g, cs, first, j); err != nil {
				return nil, err
			}
		}
		y, err := g.AddPoints(terms...)
		if err != nil {
			return nil, fmt.Errorf("public value of party %d: %w", j, err)
		}
		res.Public.Shares = append(res.Public.Shares, y)
	}
	if !d.refresh {
		c0 := make([][]byte, len(all))
		for k, cs := range all {
			c0[k] = cs[0]
		}
		if res.Public.PublicKey, err = g.AddPoints(c0...); err != nil {
			return nil, err
		}
		k := KeyShare{Public: res.Public, ID: d.p.ID, Secret: res.Secret}
		if err := k.Check(); err != nil {
			return nil, fmt.Errorf("the key generated does not check: %w", err)
		}
	} else if !bytes.Equal(g.BaseMult(res.Secret), res.Public.Shares[d.p.ID-1]) {
		return nil, ErrShareMismatch
	}
	clear(d.own)
	d.own = nil
	return res, nil
}

// ApplyRefresh adds a refresh's result to a key share: s_i' = s_i + δ_i and
// Y_j' = Y_j + Δ_j, with the same public key. The new share is checked.
func ApplyRefresh(old *KeyShare, r *Result) (*KeyShare, error) {
	g := GroupOf(old.Curve)
	if r.Public.Curve != old.Curve || r.Public.Threshold != old.Threshold || len(r.Public.Shares) != old.Parties() {
		return nil, errors.New("the refresh is not of this key")
	}
	next := &KeyShare{Public: old.Public.Clone(), ID: old.ID, Secret: g.AddScalars(old.Secret, r.Secret)}
	for j := range next.Shares {
		var err error
		if next.Shares[j], err = g.AddPoints(old.Shares[j], r.Public.Shares[j]); err != nil {
			return nil, err
		}
	}
	if err := next.Check(); err != nil {
		next.Wipe()
		return nil, fmt.Errorf("the refreshed share does not check: %w", err)
	}
	return next, nil
}
