package ote

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/sharevault/sharevault/internal/tsm/protocol/ot"
)

// refMul multiplies bit by bit, reducing at every step: an independent reference.
func refMul(a, b gf) gf {
	var r gf
	for i := range 128 {
		var bit uint64
		if i < 64 {
			bit = b.lo >> i & 1
		} else {
			bit = b.hi >> (i - 64) & 1
		}
		if bit == 1 {
			r.lo ^= a.lo
			r.hi ^= a.hi
		}
		carry := a.hi >> 63
		a.hi = a.hi<<1 | a.lo>>63
		a.lo <<= 1
		if carry == 1 {
			a.lo ^= 0x87
		}
	}
	return r
}

func randGF(t *testing.T) gf {
	var b [16]byte
	rand.Read(b[:])
	return gfFrom(b[:])
}

func TestGF128(t *testing.T) {
	for range 200 {
		a, b, c := randGF(t), randGF(t), randGF(t)
		var w gfWide
		w.mulAdd(a, b)
		if got, want := w.reduce(), refMul(a, b); got != want {
			t.Fatalf("%x·%x = %x, want %x", a, b, got, want)
		}
		w.mulAdd(a, c) // a·b + a·c = a·(b+c)
		if got, want := w.reduce(), refMul(a, gf{b.lo ^ c.lo, b.hi ^ c.hi}); got != want {
			t.Fatal("not distributive")
		}
	}
	all := gf{^uint64(0), ^uint64(0)}
	var w gfWide
	w.mulAdd(all, all)
	if w.reduce() != refMul(all, all) {
		t.Fatal("the widest product reduces wrong")
	}
}

func seeds(t testing.TB) (*ReceiverSeeds, *SenderSeeds) {
	s, m1, err := ot.NewSender([]byte("setup"), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	m2, rk, err := ot.Receive([]byte("setup"), m1, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := s.Finish(m2)
	if err != nil {
		t.Fatal(err)
	}
	return NewReceiverSeeds(sk), NewSenderSeeds(rk)
}

const m = 512

func TestExtension(t *testing.T) {
	rs, ss := seeds(t)
	choices := make([]byte, m/8)
	rand.Read(choices)
	r, msg, err := rs.Extend([]byte("eid"), m, choices, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if len(msg) != MsgLen(m) {
		t.Fatalf("message of %d bytes, want %d", len(msg), MsgLen(m))
	}
	s, err := ss.Extend([]byte("eid"), m, msg)
	if err != nil {
		t.Fatal(err)
	}
	v0, v1 := s.Outputs([]byte("tweak"), 96)
	w := r.Outputs([]byte("tweak"), 96)
	for j := range m {
		want, other := v0[j], v1[j]
		if bit(choices, j) == 1 {
			want, other = other, want
		}
		if !bytes.Equal(w[j], want) || bytes.Equal(w[j], other) {
			t.Fatalf("OT %d: the receiver's output is not the sender's for its choice", j)
		}
	}
	// The seeds encode and parse to themselves.
	rs2, err1 := ParseReceiverSeeds(rs.Bytes())
	ss2, err2 := ParseSenderSeeds(ss.Bytes())
	if err1 != nil || err2 != nil || *rs2 != *rs || *ss2 != *ss {
		t.Fatal("seeds do not survive their encoding")
	}
	// Another extension ID: the sender's rows are another's, the check fails, and the
	// seeds that refused are wiped (fail closed).
	refusing := *ss
	if _, err := refusing.Extend([]byte("other"), m, msg); !errors.Is(err, ErrConsistency) {
		t.Fatalf("a message under another extension ID: %v", err)
	}
	if refusing != (SenderSeeds{}) {
		t.Fatal("seeds that refused an extension were kept")
	}
	// Another tweak: unrelated outputs.
	r2, msg2, _ := rs.Extend([]byte("eid"), m, choices, rand.Reader)
	s2, err := ss.Extend([]byte("eid"), m, msg2)
	if err != nil {
		t.Fatal(err)
	}
	if v0b, _ := s2.Outputs([]byte("tweak2"), 96); bytes.Equal(v0b[0], v0[0]) || bytes.Equal(r2.Outputs([]byte("tweak2"), 96)[0], w[0]) {
		t.Fatal("a replayed extension under a new tweak gave the old outputs")
	}
}

// A receiver that uses other choice bits in one column than in the rest passes the check
// only by guessing the bit of Δ of that column: each refusal tells it one bit, which is why
// a refusal ends the seeds (docs/tsm-protocol.md, "OT extension").
func TestInconsistentChoicesRefused(t *testing.T) {
	rs, ss := seeds(t)
	n := m + Pad
	x := make([]byte, n/8)
	rand.Read(x)
	const col, row = 5, 17
	flip := func(u []byte) { u[col*n/8+row/8] ^= 1 << (row % 8) } // column 5 says x ⊕ e_17
	_, msg := rs.extend([]byte("eid"), x, nil)
	_, cheat := rs.extend([]byte("eid"), x, flip)
	// The guesses: t̃ corrected by χ_17·g·e_5 for g = 0, 1 (g = 0 is the cheat alone, which
	// passes when Δ_5 = 0: the sender then never reads column 5 of u).
	chi := challenges([]byte("eid"), cheat[:Kappa*n/8], n)
	passed := 0
	for g := range 2 {
		guess := bytes.Clone(cheat)
		var e [16]byte
		e[col/8] = byte(g) << (col % 8)
		var w gfWide
		w.mulAdd(chi[row], gfFrom(e[:]))
		d := w.reduce()
		ts := gfFrom(guess[len(guess)-rowLen:])
		ts.lo ^= d.lo
		ts.hi ^= d.hi
		copy(guess[len(guess)-rowLen:], ts.bytes())
		try := *ss
		_, err := try.Extend([]byte("eid"), m, guess)
		if err != nil && !errors.Is(err, ErrConsistency) {
			t.Fatal(err)
		}
		if err == nil {
			passed++
			if want := ss.delta[col/8] >> (col % 8) & 1; byte(g) != want {
				t.Fatalf("the wrong guess %d of Δ_5 passed", g)
			}
		}
	}
	if passed != 1 {
		t.Fatalf("%d of the two guesses passed, want exactly the right one", passed)
	}
	if _, err := ss.Extend([]byte("eid"), m, msg); err != nil {
		t.Fatalf("the honest message: %v", err)
	}
	// Tampered check values and lengths.
	for i, bad := range [][]byte{msg[:len(msg)-1], append(bytes.Clone(msg[:len(msg)-2*rowLen]), make([]byte, 2*rowLen)...)} {
		try := *ss
		if _, err := try.Extend([]byte("eid"), m, bad); err == nil {
			t.Fatalf("bad message %d accepted", i)
		}
	}
}

func BenchmarkExtend512(b *testing.B) {
	rs, ss := seeds(b)
	choices := make([]byte, m/8)
	for b.Loop() {
		r, msg, _ := rs.Extend([]byte("eid"), m, choices, rand.Reader)
		s, err := ss.Extend([]byte("eid"), m, msg)
		if err != nil {
			b.Fatal(err)
		}
		s.Outputs(nil, 96)
		r.Outputs(nil, 96)
	}
}
