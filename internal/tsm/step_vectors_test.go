package tsm

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"testing"
	"time"
)

// The pinned vectors of docs/tsm-api.md's request and answer signatures
// (testdata/step-v1.json): a step's JSON body, its digest, the auth digest its requester
// signed, and an answer's JSON body, its answer digest and the node's signature. Written
// once by -tsm.genvectors (never overwritten); Ed25519 is deterministic, so every byte is
// fixed by the seeds.
type stepVector struct {
	Name         string `json:"name"`
	RequesterKey string `json:"requester_seed"` // node key seeds (hex)
	NodeKey      string `json:"node_seed"`
	Step         string `json:"step"` // the JSON body
	StepDigest   string `json:"step_digest"`
	AuthDigest   string `json:"auth_digest"`
	Answer       string `json:"answer"` // the JSON body, with its sig
	AnswerDigest string `json:"answer_digest"`
}

func stepVectorKeys() (*NodeKey, *NodeKey) {
	r, _ := NewNodeKey(bytes.Repeat([]byte{0x11}, 32))
	n, _ := NewNodeKey(bytes.Repeat([]byte{0x22}, 32))
	return r, n
}

func genStepVectors(t *testing.T) []stepVector {
	req, node := stepVectorKeys()
	at := time.Unix(1767225600, 0).UTC()
	mk := func(name string, st *Step, res *StepResult) stepVector {
		st.Auth = &Auth{Node: req.ID(), Target: node.ID(), Time: at.Unix(), Party: -1, Nonce: bytes.Repeat([]byte{0x5a}, AuthNonceLen)}
		req.signAuth(st.digest(), st.Auth)
		node.signAnswer(st.digest(), st.Auth, res)
		sb, err := EncodeStep(st)
		if err != nil {
			t.Fatal(err)
		}
		ab, err := EncodeResult(res)
		if err != nil {
			t.Fatal(err)
		}
		return stepVector{Name: name, RequesterKey: hex.EncodeToString(bytes.Repeat([]byte{0x11}, 32)), NodeKey: hex.EncodeToString(bytes.Repeat([]byte{0x22}, 32)),
			Step: string(sb), StepDigest: hex.EncodeToString(st.digest()), AuthDigest: hex.EncodeToString(authDigest(st.digest(), st.Auth)),
			Answer: string(ab), AnswerDigest: hex.EncodeToString(answerDigest(st.digest(), st.Auth, res))}
	}
	session := bytes.Repeat([]byte{0x33}, 16)
	return []stepVector{
		mk("keygen/start with its parameters and roster; the answer carries one envelope",
			&Step{Op: OpKeyGenStart, KeyID: "abcdefghijklmnopqrstuvwxyz", Scheme: EdDSA, Session: session, Roster: []NodeID{req.ID(), node.ID()},
				KeyGen: &KeyGenParams{Threshold: 1, Parties: 2, Index: 1, Description: "wallet", Created: at, ChainCode: bytes.Repeat([]byte{0x44}, 32)}},
			&StepResult{Out: [][]byte{[]byte("an envelope's bytes")}}),
		mk("info; the answer carries the key's public state and a pending refresh",
			&Step{Op: OpInfo, KeyID: "abcdefghijklmnopqrstuvwxyz", Scheme: EdDSA},
			&StepResult{Info: &KeyInfo{KeyID: "abcdefghijklmnopqrstuvwxyz", Scheme: EdDSA, Curve: Ed25519, NodeIndex: 1, Players: 2, Threshold: 1,
				Epoch: 3, Created: at, PublicKey: bytes.Repeat([]byte{0x55}, 32), Description: "wallet", ChainCode: bytes.Repeat([]byte{0x44}, 32)},
				PublicShares: [][]byte{bytes.Repeat([]byte{0x66}, 32), bytes.Repeat([]byte{0x77}, 32)}, Pending: 4, PendingOf: session}),
		mk("refresh/commit; the answer is empty but for its signature",
			&Step{Op: OpRefreshCommit, KeyID: "abcdefghijklmnopqrstuvwxyz", Scheme: ECDSA, Session: session},
			&StepResult{}),
		// Appended later (the ones above are unchanged).
		mk("info naming a refresh this node prepared; the answer names the public shares it prepared",
			&Step{Op: OpInfo, KeyID: "abcdefghijklmnopqrstuvwxyz", Scheme: EdDSA, Session: session},
			&StepResult{Info: &KeyInfo{KeyID: "abcdefghijklmnopqrstuvwxyz", Scheme: EdDSA, Curve: Ed25519, NodeIndex: 1, Players: 2, Threshold: 1,
				Epoch: 3, Created: at, PublicKey: bytes.Repeat([]byte{0x55}, 32), Description: "wallet", ChainCode: bytes.Repeat([]byte{0x44}, 32)},
				PublicShares: [][]byte{bytes.Repeat([]byte{0x66}, 32), bytes.Repeat([]byte{0x77}, 32)}, Pending: 4, PendingOf: session,
				PendingShares: [][]byte{bytes.Repeat([]byte{0x88}, 32), bytes.Repeat([]byte{0x99}, 32)}}),
		mk("refresh/commit; the answer says the refresh is committed here (a decider's, its word)",
			&Step{Op: OpRefreshCommit, KeyID: "abcdefghijklmnopqrstuvwxyz", Scheme: EdDSA, Session: session},
			&StepResult{Done: Committed}),
		mk("info/ahead; the answer carries the key's state and a commitment's envelope",
			&Step{Op: OpInfoAhead, KeyID: "abcdefghijklmnopqrstuvwxyz", Scheme: EdDSA, Session: session},
			&StepResult{Out: [][]byte{[]byte("an envelope's bytes")}, Info: &KeyInfo{KeyID: "abcdefghijklmnopqrstuvwxyz", Scheme: EdDSA, Curve: Ed25519,
				NodeIndex: 1, Players: 2, Threshold: 1, Epoch: 3, Created: at, PublicKey: bytes.Repeat([]byte{0x55}, 32), Description: "wallet",
				ChainCode: bytes.Repeat([]byte{0x44}, 32)}, PublicShares: [][]byte{bytes.Repeat([]byte{0x66}, 32), bytes.Repeat([]byte{0x77}, 32)}}),
	}
}

// TestStepVectors: every pinned step and answer parses with the one codec, gives the
// pinned digests, and its signatures verify; an answer given to another request (another
// nonce) or changed in any field does not.
func TestStepVectors(t *testing.T) {
	const path = "testdata/step-v1.json"
	var f struct {
		Vectors []stepVector `json:"vectors"`
	}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
	case !errors.Is(err, os.ErrNotExist) || !*genVectors:
		t.Fatal(err)
	}
	if *genVectors { // vectors new by name are appended; pinned ones never change
		n := len(f.Vectors)
		for _, v := range genStepVectors(t) {
			if !slices.ContainsFunc(f.Vectors[:n], func(o stepVector) bool { return o.Name == v.Name }) {
				f.Vectors = append(f.Vectors, v)
			}
		}
		if len(f.Vectors) > n {
			b, _ := json.MarshalIndent(f, "", " ")
			if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(f.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range f.Vectors {
		node, err := NewNodeKey(mustHexT(t, v.NodeKey))
		if err != nil {
			t.Fatal(err)
		}
		req, err := NewNodeKey(mustHexT(t, v.RequesterKey))
		if err != nil {
			t.Fatal(err)
		}
		st, err := DecodeStep(bytes.NewReader([]byte(v.Step)))
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		if got := hex.EncodeToString(st.digest()); got != v.StepDigest {
			t.Errorf("%s: step digest %s, pinned %s", v.Name, got, v.StepDigest)
		}
		if got := hex.EncodeToString(authDigest(st.digest(), st.Auth)); got != v.AuthDigest {
			t.Errorf("%s: auth digest %s, pinned %s", v.Name, got, v.AuthDigest)
		}
		if !st.Auth.Node.Equal(req.ID()) || !st.Auth.Target.Equal(node.ID()) {
			t.Errorf("%s: the request is not from the requester's seed to the node's", v.Name)
		}
		if err := verifyAuth(st.digest(), st.Auth, nil, nil); err != nil {
			t.Errorf("%s: the request's signature: %v", v.Name, err)
		}
		res, err := DecodeResult(bytes.NewReader([]byte(v.Answer)))
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		if got := hex.EncodeToString(answerDigest(st.digest(), st.Auth, res)); got != v.AnswerDigest {
			t.Errorf("%s: answer digest %s, pinned %s", v.Name, got, v.AnswerDigest)
		}
		if err := VerifyAnswer(node.ID(), st, res); err != nil {
			t.Errorf("%s: the answer's signature: %v", v.Name, err)
		}
		if re, _ := EncodeResult(res); string(re) != v.Answer {
			t.Errorf("%s: the answer does not encode back to its bytes", v.Name)
		}
		other := *st.Auth
		other.Nonce = bytes.Repeat([]byte{0xa5}, AuthNonceLen)
		if verifyAnswer(node.ID(), st.digest(), &other, res) == nil {
			t.Errorf("%s: the answer verifies for another request", v.Name)
		}
		changed := *res
		changed.Pending++
		if verifyAnswer(node.ID(), st.digest(), st.Auth, &changed) == nil {
			t.Errorf("%s: a changed answer verifies", v.Name)
		}
		changed = *res
		changed.PendingShares = append(slices.Clone(res.PendingShares), bytes.Repeat([]byte{0xee}, 32))
		if verifyAnswer(node.ID(), st.digest(), st.Auth, &changed) == nil {
			t.Errorf("%s: an answer with other pending shares verifies", v.Name)
		}
		if !ed25519.Verify(node.ID().Sign, mustHexT(t, v.AnswerDigest), res.Sig) {
			t.Errorf("%s: the signature is not over the pinned answer digest", v.Name)
		}
	}
}

func mustHexT(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
