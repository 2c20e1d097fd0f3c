package tsm

import (
	"bytes"
	"testing"
)

// FuzzDecodeStep: the step parser of the node API never panics, and what it accepts encodes
// to JSON it accepts again, with the same digest (what an Auth signs).
func FuzzDecodeStep(f *testing.F) {
	key := GenerateNodeKey()
	st := &Step{Op: OpSignCommit, KeyID: "abc", Scheme: EdDSA, Session: make([]byte, 16), In: [][]byte{[]byte("x")},
		Roster: []NodeID{key.ID(), {}}, KeyGen: &KeyGenParams{Threshold: 1, Parties: 2, Description: "d"}}
	if err := AuthorizeStep(st, key, key.ID(), nil); err != nil {
		f.Fatal(err)
	}
	seed, err := EncodeStep(st)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"op":"info","key_id":"k","scheme":2,"auth":{"node":"","target":"","time":0,"party":0,"epoch":0,"sig":""}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeStep(bytes.NewReader(b))
		if err != nil {
			return
		}
		again, err := EncodeStep(s)
		if err != nil {
			t.Fatalf("an accepted step does not encode: %v", err)
		}
		s2, err := DecodeStep(bytes.NewReader(again))
		if err != nil || !bytes.Equal(s.digest(), s2.digest()) {
			t.Fatalf("an accepted step does not round-trip: %v", err)
		}
	})
}

// FuzzEnvelope: the envelope parser never panics, and nothing but the sender's own
// envelope, unchanged, opens.
func FuzzEnvelope(f *testing.F) {
	sender, receiver := GenerateNodeKey(), GenerateNodeKey()
	session := make([]byte, 16)
	roster := []NodeID{sender.ID(), receiver.ID()}
	msg := []byte("SVTP\x01\x02") // not a valid message: opening must still fail cleanly
	b, err := sender.wrap(msg, session, 1, 2, &roster[1])
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	bc, _ := sender.wrap(msg, session, 1, 0, nil)
	f.Add(bc)
	f.Fuzz(func(t *testing.T, b []byte) {
		parseEnvelope(b)
		if out, err := receiver.unwrap(b, session, 2, roster); err == nil {
			t.Fatalf("opened %x to %v, which is not a protocol message", b, out)
		}
	})
}
