package protocol

// This file is all of the package's cryptography: scalar and point arithmetic on the two
// curves, the hashes of RFC 9591 for FROST(Ed25519, SHA-512), and the challenge of the
// DKG's proof of knowledge. Everything else handles scalars and points only as their
// canonical encodings (docs/tsm-protocol.md, "Conventions"), and every method that takes
// an encoding checks it.

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"io"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
	secp256k1 "gitlab.com/yawning/secp256k1-voi"
)

// Curve names a group. Its values are those of the backup format (docs/tsm-backup.md).
type Curve uint8

const (
	Secp256k1 Curve = 1
	Ed25519   Curve = 2
)

// Group is the arithmetic of one curve on canonical encodings. Scalars are 32 bytes.
type Group interface {
	PointLen() int
	// RandomScalar draws a uniform non-zero scalar from rand.
	RandomScalar(rand io.Reader) ([]byte, error)
	// ValidScalar: canonical (below the order) and not zero, as a secret share must be.
	ValidScalar(s []byte) bool
	// CanonicalScalar: canonical, zero allowed (a signature share may be anything).
	CanonicalScalar(s []byte) bool
	AddScalars(a, b []byte) []byte
	SubScalars(a, b []byte) []byte
	MulScalars(a, b []byte) []byte
	// InvertScalar returns 1/a; a must not be zero.
	InvertScalar(a []byte) []byte
	// ScalarFromInt encodes the small integer i as a scalar (a party's identifier).
	ScalarFromInt(i int) []byte
	BaseMult(s []byte) []byte
	// ScalarMult returns s·P for a valid point P. It is for public values only (it may take
	// variable time): commitments, public shares, binding factors, Lagrange coefficients.
	ScalarMult(s, p []byte) ([]byte, error)
	// ValidPoint: a canonical encoding of a point of the prime-order subgroup other than
	// the identity (on Ed25519: [ℓ]P is the identity, so no torsion component).
	ValidPoint(p []byte) bool
	// AddPoints sums valid points; a sum that is the identity is an error.
	AddPoints(ps ...[]byte) ([]byte, error)
	// Challenge hashes a domain and parts (each length-prefixed) to a scalar.
	Challenge(domain string, parts ...[]byte) []byte
	// SchnorrHolds: r is a valid point and z·G = r + c·y, for a valid point y, a canonical
	// scalar z and a challenge c. For public values only (variable time).
	SchnorrHolds(z, c, y, r []byte) bool
}

// GroupOf returns the group of c, or nil.
func GroupOf(c Curve) Group {
	switch c {
	case Secp256k1:
		return secp{}
	case Ed25519:
		return edw{}
	}
	return nil
}

var errIdentity = errors.New("points sum to the identity")

// Frame writes the domain and every part, each preceded by its length (2 bytes), so no
// two different inputs hash alike.
func Frame(w io.Writer, domain string, parts ...[]byte) {
	if len(domain) > 0xffff {
		panic("protocol: a framed part over 65535 bytes")
	}
	for _, p := range parts {
		if len(p) > 0xffff {
			panic("protocol: a framed part over 65535 bytes")
		}
	}
	var l [2]byte
	binary.BigEndian.PutUint16(l[:], uint16(len(domain)))
	w.Write(l[:])
	io.WriteString(w, domain)
	for _, p := range parts {
		binary.BigEndian.PutUint16(l[:], uint16(len(p)))
		w.Write(l[:])
		w.Write(p)
	}
}

// secp is secp256k1 with gitlab.com/yawning/secp256k1-voi: formally verified (fiat-crypto)
// field and scalar arithmetic, complete addition formulas, and constant-time scalar
// multiplication, so a secret scalar (a share, a polynomial coefficient, a nonce) never
// steers a branch or a memory access. Scalars are big-endian; points SEC 1 compressed.
// decred's implementation is kept for verifying finished ECDSA signatures only: its
// multiplications take variable time and see public values there alone.
type secp struct{}

func (secp) PointLen() int { return 33 }

func (secp) RandomScalar(rand io.Reader) ([]byte, error) {
	var b [32]byte
	defer clear(b[:])
	for {
		if _, err := io.ReadFull(rand, b[:]); err != nil {
			return nil, err
		}
		s, err := secp256k1.NewScalarFromCanonicalBytes(&b) // rejection: no bias
		if err == nil && s.IsZero() == 0 {
			return s.Bytes(), nil
		}
	}
}

func secpScalar(b []byte) (*secp256k1.Scalar, bool) {
	if len(b) != 32 {
		return nil, false
	}
	s, err := secp256k1.NewScalarFromCanonicalBytes((*[32]byte)(b))
	return s, err == nil
}

func (secp) ValidScalar(b []byte) bool { s, ok := secpScalar(b); return ok && s.IsZero() == 0 }

func (secp) CanonicalScalar(b []byte) bool { _, ok := secpScalar(b); return ok }

// secpPair decodes two scalars that the caller has already checked.
func secpPair(a, b []byte) (*secp256k1.Scalar, *secp256k1.Scalar) {
	x, okx := secpScalar(a)
	y, oky := secpScalar(b)
	if !okx || !oky {
		panic("protocol: a scalar that was not checked")
	}
	return x, y
}

func (secp) AddScalars(a, b []byte) []byte { x, y := secpPair(a, b); return x.Add(x, y).Bytes() }

func (secp) SubScalars(a, b []byte) []byte { x, y := secpPair(a, b); return x.Subtract(x, y).Bytes() }

func (secp) MulScalars(a, b []byte) []byte { x, y := secpPair(a, b); return x.Multiply(x, y).Bytes() }

func (secp) InvertScalar(a []byte) []byte {
	x, _ := secpPair(a, a)
	return x.Invert(x).Bytes() // constant time (an addition chain)
}

func (secp) ScalarFromInt(i int) []byte { return secp256k1.NewScalarFromUint64(uint64(i)).Bytes() }

func secpPoint(p []byte) (*secp256k1.Point, error) {
	if len(p) != 33 {
		return nil, errors.New("not a compressed secp256k1 point")
	}
	q, err := secp256k1.NewIdentityPoint().SetCompressedBytes(p)
	if err != nil || q.IsIdentity() == 1 {
		return nil, errors.New("not a compressed secp256k1 point")
	}
	return q, nil
}

func secpEncode(q *secp256k1.Point) ([]byte, error) {
	if q.IsIdentity() == 1 {
		return nil, errIdentity
	}
	return q.CompressedBytes(), nil
}

func (secp) BaseMult(b []byte) []byte {
	s, ok := secpScalar(b)
	if !ok || s.IsZero() == 1 {
		panic("protocol: BaseMult of zero") // callers pass valid (non-zero) scalars
	}
	out, _ := secpEncode(secp256k1.NewIdentityPoint().ScalarBaseMult(s))
	return out
}

func (secp) ScalarMult(b, p []byte) ([]byte, error) {
	s, ok := secpScalar(b)
	if !ok {
		return nil, errors.New("not a canonical scalar")
	}
	q, err := secpPoint(p)
	if err != nil {
		return nil, err
	}
	return secpEncode(q.ScalarMult(s, q))
}

func (secp) ValidPoint(p []byte) bool {
	// SetCompressedBytes checks the curve equation; secp256k1 has cofactor 1 and a
	// compressed encoding cannot name the identity, so every point it accepts is in the
	// group of prime order. It also refuses x at or above the field prime.
	_, err := secpPoint(p)
	return err == nil
}

// SchnorrHolds computes z·G − c·y in one double multiplication and compares its compressed
// encoding (canonical: x below the field prime) with r; the identity is refused.
func (secp) SchnorrHolds(z, c, y, r []byte) bool {
	zs, ok := secpScalar(z)
	cs, ok2 := secpScalar(c)
	q, err := secpPoint(y)
	if !ok || !ok2 || err != nil {
		return false
	}
	p := secp256k1.NewIdentityPoint().DoubleScalarMultBasepointVartime(zs, secp256k1.NewScalar().Negate(cs), q)
	return p.IsIdentity() == 0 && string(p.CompressedBytes()) == string(r)
}

func (secp) AddPoints(ps ...[]byte) ([]byte, error) {
	sum := secp256k1.NewIdentityPoint()
	for _, p := range ps {
		q, err := secpPoint(p)
		if err != nil {
			return nil, err
		}
		sum.Add(sum, q)
	}
	return secpEncode(sum)
}

func (secp) Challenge(domain string, parts ...[]byte) []byte {
	h := sha256.New()
	Frame(h, domain, parts...)
	s, _ := secp256k1.NewScalarFromBytes((*[32]byte)(h.Sum(nil))) // reduced mod n; n is within 2^-128 of 2^256, so no useful bias
	return s.Bytes()
}

// edw is the Ed25519 group with filippo.io/edwards25519 (constant time). Scalars are
// little-endian; points RFC 8032 encoded.
type edw struct{}

func (edw) PointLen() int { return 32 }

func (edw) RandomScalar(rand io.Reader) ([]byte, error) {
	var wide [64]byte
	defer clear(wide[:])
	for {
		if _, err := io.ReadFull(rand, wide[:]); err != nil {
			return nil, err
		}
		s, _ := edwards25519.NewScalar().SetUniformBytes(wide[:]) // 512 bits mod ℓ: no bias
		if s.Equal(edwards25519.NewScalar()) == 0 {
			return s.Bytes(), nil
		}
	}
}

func edScalar(b []byte) (*edwards25519.Scalar, bool) {
	s, err := edwards25519.NewScalar().SetCanonicalBytes(b)
	return s, err == nil
}

func (edw) ValidScalar(b []byte) bool {
	s, ok := edScalar(b)
	return ok && s.Equal(edwards25519.NewScalar()) == 0
}

func (edw) CanonicalScalar(b []byte) bool { _, ok := edScalar(b); return ok }

func edPair(a, b []byte) (*edwards25519.Scalar, *edwards25519.Scalar) {
	x, _ := edScalar(a)
	y, _ := edScalar(b)
	if x == nil || y == nil {
		panic("protocol: scalar not canonical") // callers check encodings first
	}
	return x, y
}

func (edw) AddScalars(a, b []byte) []byte {
	x, y := edPair(a, b)
	return edwards25519.NewScalar().Add(x, y).Bytes()
}

func (edw) SubScalars(a, b []byte) []byte {
	x, y := edPair(a, b)
	return edwards25519.NewScalar().Subtract(x, y).Bytes()
}

func (edw) MulScalars(a, b []byte) []byte {
	x, y := edPair(a, b)
	return edwards25519.NewScalar().Multiply(x, y).Bytes()
}

func (edw) InvertScalar(a []byte) []byte {
	x, _ := edPair(a, a)
	return edwards25519.NewScalar().Invert(x).Bytes()
}

func (edw) ScalarFromInt(i int) []byte {
	var b [32]byte
	binary.LittleEndian.PutUint32(b[:], uint32(i))
	return b[:]
}

func (edw) BaseMult(b []byte) []byte {
	s, _ := edPair(b, b)
	return new(edwards25519.Point).ScalarBaseMult(s).Bytes()
}

// edPoint decodes a canonical RFC 8032 encoding. filippo.io/edwards25519 also accepts the
// two non-canonical kinds (a y of p or more; x zero with the sign bit set): those are
// refused here by looking at y and x, which is cheaper than encoding the point again (an
// inversion) and comparing.
func edPoint(p []byte) (*edwards25519.Point, error) {
	q, err := new(edwards25519.Point).SetBytes(p)
	if err != nil {
		return nil, errNotCanonical
	}
	y, _ := new(field.Element).SetBytes(p) // the top bit ignored, reduced mod p
	yb := y.Bytes()
	x, _, _, _ := q.ExtendedCoordinates()
	if string(yb[:31]) != string(p[:31]) || yb[31] != p[31]&0x7f || p[31]&0x80 != 0 && x.Equal(new(field.Element)) == 1 {
		return nil, errNotCanonical
	}
	return q, nil
}

var errNotCanonical = errors.New("not a canonical Ed25519 point")

func (edw) ScalarMult(b, p []byte) ([]byte, error) {
	s, ok := edScalar(b)
	if !ok {
		return nil, errors.New("not a canonical scalar")
	}
	q, err := edPoint(p)
	if err != nil {
		return nil, err
	}
	r := new(edwards25519.Point).VarTimeDoubleScalarBaseMult(s, q, edwards25519.NewScalar()) // public values
	if r.Equal(edwards25519.NewIdentityPoint()) == 1 {
		return nil, errIdentity
	}
	return r.Bytes(), nil
}

// edGroupCommitment is RFC 9591 compute_group_commitment: R = Σ D_i + [ρ_i]E_i, each point
// decoded once and the binding terms in one multi-scalar multiplication (public values:
// variable time). A commitment that is the identity, or R the identity, is an error.
func edGroupCommitment(cs []Commitment, rho map[int][]byte) ([]byte, error) {
	sum := edwards25519.NewIdentityPoint()
	scalars := make([]*edwards25519.Scalar, len(cs))
	points := make([]*edwards25519.Point, len(cs))
	for i, c := range cs {
		d, err := edPoint(c.Hiding)
		if err != nil {
			return nil, err
		}
		if points[i], err = edPoint(c.Binding); err != nil {
			return nil, err
		}
		if d.Equal(edwards25519.NewIdentityPoint()) == 1 || points[i].Equal(edwards25519.NewIdentityPoint()) == 1 {
			return nil, culprit(c.ID, "a commitment is the identity")
		}
		var ok bool
		if scalars[i], ok = edScalar(rho[c.ID]); !ok {
			return nil, errors.New("not a canonical scalar")
		}
		sum.Add(sum, d)
	}
	sum.Add(sum, new(edwards25519.Point).VarTimeMultiScalarMult(scalars, points))
	if sum.Equal(edwards25519.NewIdentityPoint()) == 1 {
		return nil, errIdentity
	}
	return sum.Bytes(), nil
}

// edMinusOne is ℓ−1: [ℓ−1]P + P = [ℓ]P, the identity exactly for P in the prime-order
// subgroup (the multiplication works on the integer value, so torsion is not reduced away).
var edMinusOne = edwards25519.NewScalar().Negate(edwards25519.NewScalar().Add(edwards25519.NewScalar(), mustScalar(1)))

func mustScalar(i int) *edwards25519.Scalar {
	s, _ := edScalar(edw{}.ScalarFromInt(i))
	return s
}

func (edw) ValidPoint(p []byte) bool {
	q, err := edPoint(p)
	if err != nil || q.Equal(edwards25519.NewIdentityPoint()) == 1 {
		return false
	}
	l := new(edwards25519.Point).VarTimeDoubleScalarBaseMult(edMinusOne, q, edwards25519.NewScalar()) // P is public
	return l.Add(l, q).Equal(edwards25519.NewIdentityPoint()) == 1
}

// SchnorrHolds computes z·G − c·y in one double multiplication and compares its encoding
// with r: equal only if r is that point's canonical encoding, a point of the prime-order
// group (as G and y are), so r needs no check of its own; the identity is refused, as
// ValidPoint refuses it.
func (edw) SchnorrHolds(z, c, y, r []byte) bool {
	zs, ok := edScalar(z)
	cs, ok2 := edScalar(c)
	q, err := edPoint(y)
	if !ok || !ok2 || err != nil {
		return false
	}
	p := new(edwards25519.Point).VarTimeDoubleScalarBaseMult(new(edwards25519.Scalar).Negate(cs), q, zs)
	return p.Equal(edwards25519.NewIdentityPoint()) == 0 && string(p.Bytes()) == string(r)
}

func (edw) AddPoints(ps ...[]byte) ([]byte, error) {
	sum := edwards25519.NewIdentityPoint()
	for _, p := range ps {
		q, err := edPoint(p)
		if err != nil {
			return nil, err
		}
		sum.Add(sum, q)
	}
	if sum.Equal(edwards25519.NewIdentityPoint()) == 1 {
		return nil, errIdentity
	}
	return sum.Bytes(), nil
}

func (edw) Challenge(domain string, parts ...[]byte) []byte {
	h := sha512.New()
	Frame(h, domain, parts...)
	s, _ := edwards25519.NewScalar().SetUniformBytes(h.Sum(nil))
	return s.Bytes()
}

// FROST(Ed25519, SHA-512), RFC 9591 section 6.1. contextString is the ciphersuite's.
const frostContext = "FROST-ED25519-SHA512-v1"

func edHashToScalar(parts ...[]byte) []byte {
	h := sha512.New()
	for _, p := range parts {
		h.Write(p)
	}
	s, _ := edwards25519.NewScalar().SetUniformBytes(h.Sum(nil))
	return s.Bytes()
}

// frostH1 is H1(m): the binding factor.
func frostH1(m []byte) []byte { return edHashToScalar([]byte(frostContext+"rho"), m) }

// frostH2 is H2(m) = SHA-512(m) mod ℓ, the Ed25519 challenge, so signatures verify as
// RFC 8032 Ed25519.
func frostH2(m []byte) []byte { return edHashToScalar(m) }

// frostH3 is H3(m): nonce generation.
func frostH3(m []byte) []byte { return edHashToScalar([]byte(frostContext+"nonce"), m) }

// frostH4 is H4(m): the message hash in the binding factor input.
func frostH4(m []byte) []byte {
	h := sha512.Sum512(append([]byte(frostContext+"msg"), m...))
	return h[:]
}

// frostH5 is H5(m): the commitment list hash in the binding factor input.
func frostH5(m []byte) []byte {
	h := sha512.Sum512(append([]byte(frostContext+"com"), m...))
	return h[:]
}
