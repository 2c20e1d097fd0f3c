// Package protocol is the TSM's threshold cryptography as pure state machines: Pedersen
// distributed key generation with Feldman commitments and a proof of knowledge of each
// dealer's constant term (the keygen of the FROST paper), FROST(Ed25519, SHA-512) signing
// as RFC 9591 specifies it, and proactive refresh of the shares. Each party holds only its
// own secret; every function takes state and messages and returns messages, and nothing
// here does I/O: transports, storage and the two-phase commit of a refresh sit around it
// (package tsm). docs/tsm-protocol.md specifies the rounds and their messages.
//
// # Sharing
//
// A key of n parties with threshold t is a Shamir sharing of degree t: party i (its
// identifier, 1..n) holds s_i = f(i), the key is s = f(0), and any t+1 parties sign.
// Everyone knows the public key Y = s·G and every public share Y_i = s_i·G.
//
// Threshold ECDSA signing of secp256k1 keys from the same DKG is package dkls23.
package protocol

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// MaxParties bounds n.
const MaxParties = 32

// CulpritError names the party whose message failed a check: the protocol aborts, and
// the caller knows whom to blame.
type CulpritError struct {
	Party  int
	Reason string
}

func (e *CulpritError) Error() string { return fmt.Sprintf("party %d: %s", e.Party, e.Reason) }

func culprit(party int, format string, args ...any) error {
	return &CulpritError{Party: party, Reason: fmt.Sprintf(format, args...)}
}

// Public is what every party of a key knows.
type Public struct {
	Curve     Curve
	Threshold int      // t: any t+1 parties sign
	PublicKey []byte   // Y
	Shares    [][]byte // Shares[i-1] is Y_i, for identifiers 1..n
}

// Parties returns n.
func (p *Public) Parties() int { return len(p.Shares) }

// Clone returns a deep copy.
func (p *Public) Clone() Public {
	out := *p
	out.PublicKey = bytes.Clone(p.PublicKey)
	out.Shares = make([][]byte, len(p.Shares))
	for i, s := range p.Shares {
		out.Shares[i] = bytes.Clone(s)
	}
	return out
}

// Equal reports whether two public packages are the same.
func (p *Public) Equal(q *Public) bool {
	if p.Curve != q.Curve || p.Threshold != q.Threshold || !bytes.Equal(p.PublicKey, q.PublicKey) || len(p.Shares) != len(q.Shares) {
		return false
	}
	for i := range p.Shares {
		if !bytes.Equal(p.Shares[i], q.Shares[i]) {
			return false
		}
	}
	return true
}

// Check validates the package: its sizes, every point, and that the public shares lie on
// one polynomial of degree t whose value at 0 is the public key. A package that passed
// once in this process passes again without the arithmetic (a coordinator sees its key's
// package before every signature): the check is a function of the bytes alone.
func (p *Public) Check() error {
	h := p.digest()
	checked.Lock()
	ok := checked.m[h]
	checked.Unlock()
	if ok {
		return nil
	}
	if err := p.check(); err != nil {
		return err
	}
	checked.Lock()
	defer checked.Unlock()
	if len(checked.m) >= maxChecked {
		clear(checked.m)
	}
	checked.m[h] = true
	return nil
}

// checked holds the digests of the packages that passed Check, up to maxChecked.
var checked = struct {
	sync.Mutex
	m map[[32]byte]bool
}{m: map[[32]byte]bool{}}

const maxChecked = 4096

// digest is SHA-256 over the package's fields, each prefixed with its length: two packages
// that differ in anything have different digests.
func (p *Public) digest() [32]byte {
	h := sha256.New()
	b := []byte{byte(p.Curve)}
	b = binary.BigEndian.AppendUint64(b, uint64(p.Threshold))
	for _, part := range append([][]byte{p.PublicKey}, p.Shares...) {
		b = binary.BigEndian.AppendUint64(b, uint64(len(part)))
		h.Write(b)
		h.Write(part)
		b = b[:0]
	}
	return [32]byte(h.Sum(nil))
}

func (p *Public) check() error {
	g := GroupOf(p.Curve)
	n := len(p.Shares)
	switch {
	case g == nil:
		return fmt.Errorf("unknown curve %d", p.Curve)
	case n < 2 || n > MaxParties:
		return fmt.Errorf("%d parties out of range 2..%d", n, MaxParties)
	case p.Threshold < 1 || p.Threshold >= n:
		return fmt.Errorf("threshold %d out of range 1..%d", p.Threshold, n-1)
	case !g.ValidPoint(p.PublicKey):
		return errors.New("the public key is not a valid point")
	}
	for i, s := range p.Shares {
		if !g.ValidPoint(s) {
			return fmt.Errorf("public share %d is not a valid point", i+1)
		}
	}
	base := make([]int, p.Threshold+1) // identifiers 1..t+1 fix the polynomial
	for i := range base {
		base[i] = i + 1
	}
	at := func(x int) ([]byte, error) { // Y(x) = Σ λ_i(x)·Y_i over the base
		terms := make([][]byte, len(base))
		for k, i := range base {
			l, err := lagrange(g, base, i, x)
			if err != nil {
				return nil, err
			}
			if terms[k], err = g.ScalarMult(l, p.Shares[i-1]); err != nil {
				return nil, err
			}
		}
		return g.AddPoints(terms...)
	}
	if y, err := at(0); err != nil || !bytes.Equal(y, p.PublicKey) {
		return errors.New("the public shares do not interpolate to the public key")
	}
	for x := p.Threshold + 2; x <= n; x++ {
		if y, err := at(x); err != nil || !bytes.Equal(y, p.Shares[x-1]) {
			return fmt.Errorf("public share %d is not on the polynomial of the others", x)
		}
	}
	return nil
}

// KeyShare is one party's share of a key: its identifier and secret, with the public
// package. Wipe it when done.
type KeyShare struct {
	Public
	ID     int    // 1..n
	Secret []byte // s_i
}

// Wipe overwrites the secret share.
func (k *KeyShare) Wipe() { clear(k.Secret) }

// Check validates the public package and that the secret matches this party's public
// share: s_i·G = Y_i.
func (k *KeyShare) Check() error {
	if err := k.Public.Check(); err != nil {
		return err
	}
	g := GroupOf(k.Curve)
	switch {
	case k.ID < 1 || k.ID > k.Parties():
		return fmt.Errorf("identifier %d out of range 1..%d", k.ID, k.Parties())
	case !g.ValidScalar(k.Secret):
		return errors.New("the secret share is not a valid scalar")
	case !bytes.Equal(g.BaseMult(k.Secret), k.Shares[k.ID-1]):
		return ErrShareMismatch
	}
	return nil
}

// ErrShareMismatch: a secret share does not match its public share.
var ErrShareMismatch = errors.New("the secret share does not match its public share")

// lagrange returns λ_i(x) = Π_{j in set, j≠i} (x − j)/(i − j) for identifiers in set.
func lagrange(g Group, set []int, i, x int) ([]byte, error) {
	num, den := g.ScalarFromInt(1), g.ScalarFromInt(1)
	seen := false
	for _, j := range set {
		if j == i {
			seen = true
			continue
		}
		num = g.MulScalars(num, g.SubScalars(g.ScalarFromInt(x), g.ScalarFromInt(j)))
		den = g.MulScalars(den, g.SubScalars(g.ScalarFromInt(i), g.ScalarFromInt(j)))
	}
	if !seen || !g.ValidScalar(den) {
		return nil, fmt.Errorf("identifier %d not once in the set %v", i, set)
	}
	return g.MulScalars(num, g.InvertScalar(den)), nil
}

// FromAdditive turns party i's share of an n-of-n additive sharing (x = Σ x_j, the
// format of v1 backups) into its Shamir share of degree n−1 for identifiers 1..n:
// s_i = x_i / λ_i(0), Y_i = X_i / λ_i(0). Every party can convert alone, and the results
// agree, since n points always lie on one polynomial of degree n−1.
func FromAdditive(curve Curve, index int, secret []byte, publicKey []byte, additive [][]byte) (*KeyShare, error) {
	g := GroupOf(curve)
	n := len(additive)
	if g == nil || n < 2 || n > MaxParties || index < 0 || index >= n {
		return nil, errors.New("not an additive sharing this can convert")
	}
	set := make([]int, n)
	for i := range set {
		set[i] = i + 1
	}
	k := &KeyShare{Public: Public{Curve: curve, Threshold: n - 1, PublicKey: bytes.Clone(publicKey), Shares: make([][]byte, n)}, ID: index + 1}
	for j := range n {
		l, err := lagrange(g, set, j+1, 0)
		if err != nil {
			return nil, err
		}
		inv := g.InvertScalar(l)
		if k.Shares[j], err = g.ScalarMult(inv, additive[j]); err != nil {
			return nil, err
		}
		if j == index {
			if !g.ValidScalar(secret) {
				return nil, errors.New("the secret share is not a valid scalar")
			}
			k.Secret = g.MulScalars(secret, inv)
		}
	}
	return k, k.Check()
}

// Lagrange returns party i's coefficient λ_i(0) among the identifiers of set: what turns
// its Shamir share into an additive share of the key within that signing set.
func Lagrange(c Curve, set []int, i int) ([]byte, error) { return lagrange(GroupOf(c), set, i, 0) }

// CulpritErrorf returns a CulpritError naming party (for the protocols of subpackages).
func CulpritErrorf(party int, format string, args ...any) error {
	return culprit(party, format, args...)
}
