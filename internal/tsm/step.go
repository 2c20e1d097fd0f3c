package tsm

// The one encoder and parser of steps as they cross a network (docs/tsm-api.md, "Steps"):
// JSON bodies for POST /v1/step and its answers, and the digest an Auth signs.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sharevault/sharevault/internal/tsm/protocol"
)

// digest is SHA-256 over every field of the step but its Auth, each length-framed.
func (s *Step) digest() []byte {
	h := sha256.New()
	field := func(b []byte) {
		binary.Write(h, binary.BigEndian, uint32(len(b)))
		h.Write(b)
	}
	field([]byte(s.Op))
	field([]byte(s.KeyID))
	field([]byte{byte(s.Scheme)})
	field(s.Session)
	binary.Write(h, binary.BigEndian, uint32(len(s.In)))
	for _, m := range s.In {
		field(m)
	}
	if kg := s.KeyGen; kg != nil {
		binary.Write(h, binary.BigEndian, []int64{int64(kg.Threshold), int64(kg.Parties), int64(kg.Index), kg.Created.Unix()})
		field([]byte(kg.Description))
		field(kg.ChainCode)
	} else {
		field(nil)
	}
	binary.Write(h, binary.BigEndian, uint32(len(s.Roster)))
	for _, id := range s.Roster {
		field(id.Sign)
		field(id.Seal)
	}
	return h.Sum(nil)
}

// stepJSON is a Step on the wire.
type stepJSON struct {
	Op      Op          `json:"op"`
	KeyID   string      `json:"key_id,omitempty"`
	Scheme  Scheme      `json:"scheme"`
	Session []byte      `json:"session,omitempty"`
	In      [][]byte    `json:"in,omitempty"`
	KeyGen  *keyGenJSON `json:"keygen,omitempty"`
	Roster  []string    `json:"roster,omitempty"`
	Auth    *authJSON   `json:"auth"`
}

type keyGenJSON struct {
	Threshold   int    `json:"threshold"`
	Parties     int    `json:"parties"`
	Index       int    `json:"index"`
	Description string `json:"description"`
	Created     int64  `json:"created"`
	ChainCode   []byte `json:"chain_code"`
}

type authJSON struct {
	Node   string `json:"node"`
	Target string `json:"target"`
	Time   int64  `json:"time"`
	Party  int    `json:"party"`
	Epoch  uint32 `json:"epoch"`
	ProofR []byte `json:"proof_r,omitempty"`
	ProofZ []byte `json:"proof_z,omitempty"`
	Nonce  []byte `json:"nonce"`
	Sig    []byte `json:"sig"`
}

// MaxStepBody bounds an encoded step or answer.
const MaxStepBody = 1 << 20

// EncodeStep returns the JSON body of s.
func EncodeStep(s *Step) ([]byte, error) {
	j := stepJSON{Op: s.Op, KeyID: s.KeyID, Scheme: s.Scheme, Session: s.Session, In: s.In}
	if kg := s.KeyGen; kg != nil {
		j.KeyGen = &keyGenJSON{kg.Threshold, kg.Parties, kg.Index, kg.Description, kg.Created.Unix(), kg.ChainCode}
	}
	for _, id := range s.Roster {
		if id.Sign == nil {
			j.Roster = append(j.Roster, "")
		} else {
			j.Roster = append(j.Roster, id.String())
		}
	}
	if a := s.Auth; a != nil {
		j.Auth = &authJSON{a.Node.String(), a.Target.String(), a.Time, a.Party, a.Epoch, a.ProofR, a.ProofZ, a.Nonce, a.Sig}
	}
	return json.Marshal(j)
}

// DecodeStep parses a step's JSON body strictly: known fields only, every field in range.
func DecodeStep(r io.Reader) (*Step, error) {
	var j stepJSON
	d := json.NewDecoder(io.LimitReader(r, MaxStepBody+1))
	d.DisallowUnknownFields()
	if err := d.Decode(&j); err != nil {
		return nil, fmt.Errorf("not a step: %w", err)
	}
	if d.More() {
		return nil, errors.New("not a step: data after the JSON object")
	}
	s := &Step{Op: j.Op, KeyID: j.KeyID, Scheme: j.Scheme, Session: j.Session, In: j.In}
	switch {
	case !knownOps[s.Op]:
		return nil, fmt.Errorf("unknown op %q", s.Op)
	case s.Scheme != ECDSA && s.Scheme != EdDSA:
		return nil, fmt.Errorf("unknown scheme %d", s.Scheme)
	case validKeyID(s.KeyID) != nil:
		return nil, errors.New("no valid key ID")
	case s.Session != nil && len(s.Session) != protocol.SessionLen:
		return nil, errors.New("a session ID is 16 bytes")
	case len(s.In) > 2*maxPlayers || len(j.Roster) > maxPlayers:
		return nil, errors.New("too many messages or roster entries")
	case j.Auth == nil:
		return nil, ErrUnauthorized
	}
	if kg := j.KeyGen; kg != nil {
		s.KeyGen = &KeyGenParams{Threshold: kg.Threshold, Parties: kg.Parties, Index: kg.Index, Description: kg.Description,
			Created: time.Unix(kg.Created, 0).UTC(), ChainCode: kg.ChainCode}
	}
	for _, r := range j.Roster {
		if r == "" {
			s.Roster = append(s.Roster, NodeID{})
			continue
		}
		id, err := ParseNodeID(r)
		if err != nil {
			return nil, fmt.Errorf("roster: %w", err)
		}
		s.Roster = append(s.Roster, id)
	}
	node, err := ParseNodeID(j.Auth.Node)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	target, err := ParseNodeID(j.Auth.Target)
	if err != nil {
		return nil, fmt.Errorf("auth target: %w", err)
	}
	if err := checkKeyGen(s.KeyGen); s.KeyGen != nil && err != nil {
		return nil, err
	}
	s.Auth = &Auth{Node: node, Target: target, Time: j.Auth.Time, Party: j.Auth.Party, Epoch: j.Auth.Epoch, ProofR: j.Auth.ProofR, ProofZ: j.Auth.ProofZ, Nonce: j.Auth.Nonce, Sig: j.Auth.Sig}
	return s, nil
}

var knownOps = map[Op]bool{OpInfo: true, OpInfoAhead: true, OpCheck: true, OpKeyGenStart: true, OpKeyGenRound2: true, OpKeyGenFinish: true,
	OpKeyGenDiscard: true, OpSignCommit: true, OpSignShare: true, OpSignShareAhead: true, OpRefreshStart: true, OpRefreshRound2: true,
	OpRefreshPrep: true, OpRefreshCommit: true, OpRefreshAbort: true, OpECDSASetupStart: true, OpECDSASetupAnswer: true,
	OpECDSASetupFinish: true, OpECDSAStart: true, OpECDSARound2: true, OpECDSAFinish: true}

type resultJSON struct {
	Out           [][]byte     `json:"out,omitempty"`
	Info          *keyInfoJSON `json:"info,omitempty"`
	PublicShares  [][]byte     `json:"public_shares,omitempty"`
	Pending       uint32       `json:"pending,omitempty"`
	PendingOf     []byte       `json:"pending_session,omitempty"`
	Done          uint8        `json:"session_done,omitempty"`
	PendingShares [][]byte     `json:"pending_public_shares,omitempty"`
	Sig           []byte       `json:"sig,omitempty"`
}

type keyInfoJSON struct {
	KeyID       string `json:"key_id"`
	Scheme      Scheme `json:"scheme"`
	Curve       Curve  `json:"curve"`
	NodeIndex   int    `json:"node_index"`
	Players     int    `json:"players"`
	Threshold   int    `json:"threshold"`
	Epoch       uint32 `json:"epoch"`
	Created     int64  `json:"created"`
	PublicKey   []byte `json:"public_key"`
	Description string `json:"description"`
	ChainCode   []byte `json:"chain_code"`
}

// EncodeResult returns the JSON body of r.
func EncodeResult(r *StepResult) ([]byte, error) {
	j := resultJSON{Out: r.Out, PublicShares: r.PublicShares, Pending: r.Pending, PendingOf: r.PendingOf, Done: r.Done, PendingShares: r.PendingShares, Sig: r.Sig}
	if i := r.Info; i != nil {
		j.Info = &keyInfoJSON{i.KeyID, i.Scheme, i.Curve, i.NodeIndex, i.Players, i.Threshold, i.Epoch, i.Created.Unix(), i.PublicKey, i.Description, i.ChainCode}
	}
	return json.Marshal(j)
}

// DecodeResult parses an answer's JSON body.
func DecodeResult(r io.Reader) (*StepResult, error) {
	var j resultJSON
	d := json.NewDecoder(io.LimitReader(r, MaxStepBody+1))
	d.DisallowUnknownFields()
	if err := d.Decode(&j); err != nil {
		return nil, fmt.Errorf("not a step result: %w", err)
	}
	out := &StepResult{Out: j.Out, PublicShares: j.PublicShares, Pending: j.Pending, PendingOf: j.PendingOf, Done: j.Done, PendingShares: j.PendingShares, Sig: j.Sig}
	if i := j.Info; i != nil {
		out.Info = &KeyInfo{KeyID: i.KeyID, Scheme: i.Scheme, Curve: i.Curve, NodeIndex: i.NodeIndex, Players: i.Players,
			Threshold: i.Threshold, Epoch: i.Epoch, Created: time.Unix(i.Created, 0).UTC(), PublicKey: i.PublicKey,
			Description: i.Description, ChainCode: i.ChainCode}
	}
	return out, nil
}

// evidenceJSON is a node's signed answer to a step, carried to another node as proof of
// what the first said (a decider's outcome of a refresh: Node.checkDecision).
type evidenceJSON struct {
	Step   json.RawMessage `json:"step"`
	Answer json.RawMessage `json:"answer"`
}

// EncodeEvidence returns the evidence of st (as sent, with its Auth) and its answer r.
func EncodeEvidence(st *Step, r *StepResult) ([]byte, error) {
	sb, err := EncodeStep(st)
	if err != nil {
		return nil, err
	}
	rb, err := EncodeResult(r)
	if err != nil {
		return nil, err
	}
	return json.Marshal(evidenceJSON{sb, rb})
}

// DecodeEvidence parses EncodeEvidence's form with the one step and answer parsers.
func DecodeEvidence(b []byte) (*Step, *StepResult, error) {
	var j evidenceJSON
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&j); err != nil || d.More() {
		return nil, nil, errors.New("not a node's signed answer")
	}
	st, err := DecodeStep(bytes.NewReader(j.Step))
	if err != nil {
		return nil, nil, err
	}
	r, err := DecodeResult(bytes.NewReader(j.Answer))
	return st, r, err
}
