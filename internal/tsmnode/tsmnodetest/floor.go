package tsmnodetest

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"syscall"
	"time"

	"filippo.io/edwards25519"
	"github.com/sharevault/sharevault/internal/tsm/protocol"
)

// FROSTFloor returns one run of the scalar multiplications that a FROST signature of s
// signers and a coordinator needs (RFC 9591), the floor that a signature's CPU is measured
// against: 2s base multiplications (the commitments); s+1 group commitments, each an
// s-term multi-scalar multiplication (every signer's, and the coordinator's); one Ed25519
// verification (the coordinator's, of the aggregate); and 2s² subgroup checks (every
// signer checks the 2(s−1) points of the others' commitments, the coordinator the 2s it
// receives). docs/tsm-protocol.md, "Cost".
func FROSTFloor(s int) func() error {
	g := protocol.GroupOf(protocol.Ed25519)
	scalar := func() *edwards25519.Scalar {
		var w [64]byte
		rand.Read(w[:])
		x, _ := edwards25519.NewScalar().SetUniformBytes(w[:])
		return x
	}
	scalars, points := make([]*edwards25519.Scalar, s), make([]*edwards25519.Point, s)
	for i := range s {
		scalars[i], points[i] = scalar(), new(edwards25519.Point).ScalarBaseMult(scalar())
	}
	enc := points[0].Bytes()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	sig := ed25519.Sign(priv, []byte("m"))
	return func() error {
		for range 2 * s {
			new(edwards25519.Point).ScalarBaseMult(scalars[0]).Bytes()
		}
		for range s + 1 {
			new(edwards25519.Point).VarTimeMultiScalarMult(scalars, points).Bytes()
		}
		ok := ed25519.Verify(pub, []byte("m"), sig)
		for range 2 * s * s {
			ok = g.ValidPoint(enc) && ok
		}
		if !ok {
			return errors.New("tsmnodetest: the floor's verification or subgroup check failed")
		}
		return nil
	}
}

// SelfCPU is the CPU time (user and system) of this process so far.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
