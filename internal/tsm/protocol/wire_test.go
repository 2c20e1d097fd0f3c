package protocol

import (
	"bytes"
	"crypto/rand"
	"testing"
)

// seedMessages runs a key generation, a refresh and a signature among 3 parties and
// returns every message they exchanged, encoded.
func seedMessages(t testing.TB) [][]byte {
	session := make([]byte, SessionLen)
	rand.Read(session)
	var out [][]byte
	add := func(m *Message) {
		b, err := m.Marshal()
		if err != nil {
			t.Fatalf("marshal type %d: %v", m.Type, err)
		}
		out = append(out, b)
	}
	for _, refresh := range []bool{false, true} {
		typ1, typ2, start := MsgDKGRound1, MsgDKGRound2, NewDKG
		if refresh {
			typ1, typ2, start = MsgRefreshRound1, MsgRefreshRound2, NewRefresh
		}
		d, r1, err := start(DKGParams{Session: session, Curve: Ed25519, Threshold: 1, Parties: 3, ID: 1}, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		add(&Message{Type: typ1, Session: session, Curve: Ed25519, From: 1, Round1: r1})
		_, r1b, _ := start(DKGParams{Session: session, Curve: Ed25519, Threshold: 1, Parties: 3, ID: 2}, rand.Reader)
		_, r1c, _ := start(DKGParams{Session: session, Curve: Ed25519, Threshold: 1, Parties: 3, ID: 3}, rand.Reader)
		r2, err := d.Round2([]*Round1{r1b, r1c})
		if err != nil {
			t.Fatal(err)
		}
		add(&Message{Type: typ2, Session: session, Curve: Ed25519, From: 1, To: r2[0].To, Round2: r2[0]})
	}
	g := edw{}
	x, _ := g.RandomScalar(rand.Reader)
	k := &KeyShare{ID: 2, Secret: x}
	n := commitWith(k, make([]byte, 32), make([]byte, 32))
	add(&Message{Type: MsgCommitment, Session: session, Curve: Ed25519, From: 2, Commitment: &n.Commitment})
	add(&Message{Type: MsgSignRequest, Session: session, Curve: Ed25519, From: 0, Request: &SignRequest{Message: []byte("hello"), Commitments: []Commitment{n.Commitment}}})
	add(&Message{Type: MsgSignShare, Session: session, Curve: Ed25519, From: 2, SigShare: g.ScalarFromInt(0)})
	return out
}

// TestMessageRoundTrip: every message type parses back to the same bytes, and each
// truncation of it is refused.
func TestMessageRoundTrip(t *testing.T) {
	for _, b := range seedMessages(t) {
		m, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("type %d: %v", b[5], err)
		}
		again, err := m.Marshal()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("type %d does not round-trip: %v", b[5], err)
		}
		for i := range len(b) {
			if _, err := Unmarshal(b[:i]); err == nil {
				t.Fatalf("type %d cut at %d of %d bytes parsed", b[5], i, len(b))
			}
		}
		if _, err := Unmarshal(append(bytes.Clone(b), 0)); err == nil {
			t.Fatalf("type %d with a trailing byte parsed", b[5])
		}
	}
}

// FuzzUnmarshal: the parser never panics, and what it accepts encodes back to the same
// bytes (one encoding per message). Seeded from real messages of every type.
func FuzzUnmarshal(f *testing.F) {
	seeds := seedMessages(f)
	if len(seeds) < 7 {
		f.Fatal("no seeds")
	}
	for _, b := range seeds {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Unmarshal(b)
		if err != nil {
			return
		}
		again, err := m.Marshal()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted %x, which encodes as %x (%v)", b, again, err)
		}
	})
}
