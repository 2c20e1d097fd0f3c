package tsm

// This file is all of the package's cryptography: scalar and point arithmetic on the two
// curves, and the Ed25519 signature equation for n-of-n signing. Everything else handles
// scalars and points only as their canonical encodings (docs/tsm-backup.md).
//
// Sharing is additive: node i holds x_i, the key is x = Σ x_i, and X = x·G = Σ X_i.

import (
	"crypto/rand"
	"crypto/sha512"
	"errors"

	"filippo.io/edwards25519"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// group is the arithmetic one curve offers. Scalars and points are canonical encodings;
// every method that takes them checks them.
type group interface {
	pointLen() int
	randomScalar() []byte
	validScalar(s []byte) bool
	addScalars(a, b []byte) []byte
	negScalar(s []byte) []byte
	baseMult(s []byte) []byte
	// validPoint reports whether p is a canonical encoding of a point usable as a share:
	// on the curve, not the identity (and, on Ed25519, not of small order).
	validPoint(p []byte) bool
	addPoints(ps ...[]byte) ([]byte, error)
}

func groupOf(c Curve) group {
	switch c {
	case Secp256k1:
		return secp{}
	case Ed25519:
		return edw{}
	}
	return nil
}

var errIdentity = errors.New("points sum to the identity")

// secp is secp256k1 with decred's constant-time-where-it-matters implementation.
type secp struct{}

func (secp) pointLen() int { return 33 }

func (secp) randomScalar() []byte {
	k, err := secp256k1.GeneratePrivateKey() // crypto/rand, rejection-sampled, non-zero
	if err != nil {
		panic("tsm: crypto/rand failed: " + err.Error())
	}
	b := k.Key.Bytes()
	k.Zero()
	return b[:]
}

func secpScalar(b []byte) (s secp256k1.ModNScalar, ok bool) {
	if len(b) != 32 {
		return s, false
	}
	overflow := s.SetByteSlice(b)
	return s, !overflow && !s.IsZero()
}

func (secp) validScalar(b []byte) bool { _, ok := secpScalar(b); return ok }

func (secp) addScalars(a, b []byte) []byte {
	x, _ := secpScalar(a)
	y, _ := secpScalar(b)
	out := x.Add(&y).Bytes()
	return out[:]
}

func (secp) negScalar(a []byte) []byte {
	x, _ := secpScalar(a)
	out := x.Negate().Bytes()
	return out[:]
}

func (secp) baseMult(b []byte) []byte {
	s, _ := secpScalar(b)
	var j secp256k1.JacobianPoint
	secp256k1.ScalarBaseMultNonConst(&s, &j) // the scalar is a secret share; see note below
	j.ToAffine()
	return secp256k1.NewPublicKey(&j.X, &j.Y).SerializeCompressed()
}

// Note: decred offers no constant-time base multiplication; its NonConst variant is the
// one its own signing code uses for secret nonces. A phone-local attacker able to time it
// is outside this package's threat model (docs/threat-model.md).

func (secp) validPoint(p []byte) bool {
	if len(p) != 33 {
		return false
	}
	k, err := secp256k1.ParsePubKey(p) // checks the curve equation; never the identity
	return err == nil && string(k.SerializeCompressed()) == string(p)
}

func (secp) addPoints(ps ...[]byte) ([]byte, error) {
	var sum secp256k1.JacobianPoint // the zero value is the point at infinity
	for _, p := range ps {
		k, err := secp256k1.ParsePubKey(p)
		if err != nil {
			return nil, err
		}
		var j secp256k1.JacobianPoint
		k.AsJacobian(&j)
		secp256k1.AddNonConst(&sum, &j, &sum)
	}
	if (sum.X.IsZero() && sum.Y.IsZero()) || sum.Z.IsZero() {
		return nil, errIdentity
	}
	sum.ToAffine()
	return secp256k1.NewPublicKey(&sum.X, &sum.Y).SerializeCompressed(), nil
}

// edw is the Ed25519 group with filippo.io/edwards25519 (constant time).
type edw struct{}

func (edw) pointLen() int { return 32 }

func (edw) randomScalar() []byte {
	var wide [64]byte
	for {
		rand.Read(wide[:]) // never fails (Go 1.24); 512 bits reduced mod ℓ: no bias
		s, _ := edwards25519.NewScalar().SetUniformBytes(wide[:])
		if s.Equal(edwards25519.NewScalar()) == 0 {
			clear(wide[:])
			return s.Bytes()
		}
	}
}

func edScalar(b []byte) (*edwards25519.Scalar, bool) {
	s, err := edwards25519.NewScalar().SetCanonicalBytes(b)
	return s, err == nil && s.Equal(edwards25519.NewScalar()) == 0
}

func (edw) validScalar(b []byte) bool { _, ok := edScalar(b); return ok }

func (edw) addScalars(a, b []byte) []byte {
	x, _ := edScalar(a)
	y, _ := edScalar(b)
	return edwards25519.NewScalar().Add(x, y).Bytes()
}

func (edw) negScalar(a []byte) []byte {
	x, _ := edScalar(a)
	return edwards25519.NewScalar().Negate(x).Bytes()
}

func (edw) baseMult(b []byte) []byte {
	s, _ := edScalar(b)
	return new(edwards25519.Point).ScalarBaseMult(s).Bytes()
}

func (edw) validPoint(p []byte) bool {
	q, err := new(edwards25519.Point).SetBytes(p)
	if err != nil || string(q.Bytes()) != string(p) {
		return false
	}
	// Not the identity and not of small order: [8]q is the identity only for those.
	return new(edwards25519.Point).MultByCofactor(q).Equal(edwards25519.NewIdentityPoint()) == 0
}

func (edw) addPoints(ps ...[]byte) ([]byte, error) {
	sum := edwards25519.NewIdentityPoint()
	for _, p := range ps {
		q, err := new(edwards25519.Point).SetBytes(p)
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

// Ed25519 signing, n-of-n (RFC 8032 verification equation [s]B = R + [k]A). Each node
// draws a nonce r_i and publishes R_i = r_i·B; with R = Σ R_i and k = SHA-512(R || A || M)
// mod ℓ, node i answers s_i = r_i + k·a_i, and s = Σ s_i. The nonces are fresh random
// values held in memory for one signature only, never derived or stored.

// edChallenge returns k = SHA-512(R || A || M) mod ℓ.
func edChallenge(r, a, msg []byte) *edwards25519.Scalar {
	h := sha512.New()
	h.Write(r)
	h.Write(a)
	h.Write(msg)
	k, _ := edwards25519.NewScalar().SetUniformBytes(h.Sum(nil))
	return k
}

// edPartialSig returns s_i = r_i + k·a_i.
func edPartialSig(nonce, share []byte, k *edwards25519.Scalar) []byte {
	r, _ := edScalar(nonce)
	a, _ := edScalar(share)
	return edwards25519.NewScalar().MultiplyAdd(k, a, r).Bytes()
}

// edSumScalars returns Σ s_i, for the final s (which may legitimately be any value).
func edSumScalars(parts [][]byte) ([]byte, error) {
	sum := edwards25519.NewScalar()
	for _, p := range parts {
		s, err := edwards25519.NewScalar().SetCanonicalBytes(p)
		if err != nil {
			return nil, err
		}
		sum.Add(sum, s)
	}
	return sum.Bytes(), nil
}
