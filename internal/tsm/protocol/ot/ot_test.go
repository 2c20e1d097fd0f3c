package ot

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"
)

func batch(t *testing.T, sid []byte) (*SenderKeys, *ReceiverKeys) {
	t.Helper()
	s, m1, err := NewSender(sid, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	m2, rk, err := Receive(sid, m1, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := s.Finish(m2)
	if err != nil {
		t.Fatal(err)
	}
	return sk, rk
}

func TestReceiverGetsItsChoice(t *testing.T) {
	sk, rk := batch(t, []byte("session"))
	ones := 0
	for i := range Count {
		c := rk.Choices[i/8] >> (i % 8) & 1
		ones += int(c)
		if rk.Keys[i] != sk[i][c] {
			t.Fatalf("OT %d: the receiver's key is not the sender's key %d", i, c)
		}
		if rk.Keys[i] == sk[i][1-c] || sk[i][0] == sk[i][1] {
			t.Fatalf("OT %d: the two keys are not distinct", i)
		}
	}
	if ones == 0 || ones == Count {
		t.Fatalf("the choices are all %d", rk.Choices[0]&1)
	}
	sk2, _ := batch(t, []byte("session"))
	if sk2[0] == sk[0] {
		t.Fatal("two batches gave the same keys")
	}
}

// offCurve puts x = 5, below the field prime with no point on the curve, in A.
func offCurve(m1 []byte) []byte {
	b := bytes.Clone(m1)
	clear(b[1:pointLen])
	b[pointLen-1] = 5
	return b
}

func TestRefusals(t *testing.T) {
	sid := []byte("session")
	s, m1, err := NewSender(sid, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 1; return b }
	for _, c := range []struct {
		name, want string
		sid, msg   []byte
	}{
		{"short", "bytes", sid, m1[:Msg1Len-1]},
		{"proof of another session", "proof", []byte("other"), m1},
		{"forged z", "proof", sid, flip(m1, Msg1Len-1)},
		{"A off the curve", "not two points", sid, offCurve(m1)},
	} {
		if _, _, err := Receive(c.sid, c.msg, rand.Reader); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	m2, _, err := Receive(sid, m1, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(m2)
	bad[pointLen*3] = 7 // not a compressed point's tag
	if _, err := s.Finish(bad); err == nil || !strings.Contains(err.Error(), "point 3") {
		t.Fatalf("a bad point: %v", err)
	}
	if _, err := s.Finish(m2); err == nil {
		t.Fatal("a sender finished twice")
	}
}
