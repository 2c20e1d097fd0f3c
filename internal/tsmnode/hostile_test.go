package tsmnode_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hpke"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sharevault/sharevault/internal/tsm"
	"github.com/sharevault/sharevault/internal/tsmnode/tsmnodetest"
)

// recorder is an HTTP transport that keeps every step a client sends, and may rewrite one
// before it leaves (as a malicious coordinator would, re-signing its Auth).
type recorder struct {
	mu      sync.Mutex
	steps   [][]byte
	rewrite func(st *tsm.Step) bool // true: re-encode (the test re-authorizes)
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == "POST" && strings.HasSuffix(req.URL.Path, "/v1/step") {
		b, _ := io.ReadAll(req.Body)
		if r.rewrite != nil {
			if st, err := tsm.DecodeStep(bytes.NewReader(b)); err == nil && r.rewrite(st) {
				b, _ = tsm.EncodeStep(st)
			}
		}
		r.mu.Lock()
		r.steps = append(r.steps, b)
		r.mu.Unlock()
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.ContentLength = int64(len(b))
	}
	return http.DefaultTransport.RoundTrip(req)
}

// last returns the last recorded step of op that was for the node target.
func (r *recorder) last(op tsm.Op, target tsm.NodeID) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.steps) - 1; i >= 0; i-- {
		if st, _ := tsm.DecodeStep(bytes.NewReader(r.steps[i])); st != nil && st.Op == op && st.Auth.Target.Equal(target) {
			return r.steps[i]
		}
	}
	return nil
}

func post(t *testing.T, url string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(url+"/v1/step", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct{ Type string }
	json.NewDecoder(resp.Body).Decode(&p)
	return resp.StatusCode, strings.TrimPrefix(p.Type, "urn:sharevault:tsm:problem:")
}

// TestHostileParties sends a node every kind of request a party of another key, a relay
// or a stale phone could send. Each is refused with its status, and the keys are
// unchanged: every one still signs at the epoch it had.
func TestHostileParties(t *testing.T) {
	c := tsmnodetest.Must(t, 2)
	dir := t.TempDir()
	rec := &recorder{}
	open := func(db string) *tsm.EDDSAClient {
		cfg := tsm.Config{Nodes: []tsm.NodeConfig{{Database: db}, {URL: c.Nodes[0].URL}, {URL: c.Nodes[1].URL}},
			EdDSA: tsm.ProtocolConfig{EnableShareBackup: true}, HTTPClient: &http.Client{Transport: rec, Timeout: 10 * time.Second}}
		cl, err := tsm.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		return tsm.NewEDDSAClient(cl)
	}
	backupOf := func(db, keyID string) []byte {
		cl, err := tsm.NewClient(tsm.Config{Nodes: []tsm.NodeConfig{{Database: db}}, EdDSA: tsm.ProtocolConfig{EnableShareBackup: true}})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		b, err := tsm.NewEDDSAClient(cl).BackupShare(keyID)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	dbA, dbB := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")
	phoneA, phoneB := open(dbA), open(dbB)
	keyA, err := phoneA.GenerateKey("A")
	if err != nil {
		t.Fatal(err)
	}
	keyB, err := phoneB.GenerateKey("B")
	if err != nil {
		t.Fatal(err)
	}
	staleA := backupOf(dbA, keyA)
	if err := phoneA.Reshare(keyA); err != nil {
		t.Fatal(err)
	}
	currentA := backupOf(dbA, keyA)
	nodeKeyA, _ := tsm.EmbeddedNodeKey(dbA)
	if _, err := phoneA.Sign(keyA, []byte("record a signature")); err != nil {
		t.Fatal(err)
	}
	url := c.Nodes[0].URL
	// A dishonest server node: node 2's key file and its share of key A.
	node2Key, err := tsm.LoadNodeKey(filepath.Join(c.Nodes[1].Dir, "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	node2Share := backupOf(filepath.Join(c.Nodes[1].Dir, "node.db"), keyA)
	asNode2 := func(st *tsm.Step) []byte {
		if err := tsm.AuthorizeStep(st, node2Key, c.Nodes[0].ID, node2Share); err != nil {
			t.Fatal(err)
		}
		b, _ := tsm.EncodeStep(st)
		return b
	}
	keyGenOf := func(keyID, desc string, chain []byte) []byte {
		st := &tsm.Step{Op: tsm.OpKeyGenStart, KeyID: keyID, Scheme: tsm.EdDSA, Session: make([]byte, 16),
			Roster: nil, KeyGen: &tsm.KeyGenParams{Threshold: 1, Parties: 2, Index: 1, Description: desc, Created: time.Now(), ChainCode: chain}}
		k := tsm.GenerateNodeKey()
		st.Roster = []tsm.NodeID{k.ID(), c.Nodes[0].ID}
		tsm.AuthorizeStep(st, k, c.Nodes[0].ID, nil)
		b, _ := tsm.EncodeStep(st)
		return b
	}
	freshKeyGen := func(desc string) []byte { return keyGenOf("k"+strings.Repeat("x", 10), desc, make([]byte, 32)) }
	info := func(keyID string) *tsm.Step { return &tsm.Step{Op: tsm.OpInfo, KeyID: keyID, Scheme: tsm.EdDSA} }
	authorized := func(st *tsm.Step, backup []byte) []byte {
		if err := tsm.AuthorizeStep(st, nodeKeyA, c.Nodes[0].ID, backup); err != nil {
			t.Fatal(err)
		}
		b, _ := tsm.EncodeStep(st)
		return b
	}
	tests := []struct {
		name    string
		body    func() []byte
		status  int
		problem string
	}{
		{"no Auth", func() []byte {
			b, _ := json.Marshal(map[string]any{"op": "info", "key_id": keyA, "scheme": 2})
			return b
		}, 401, "unauthorized"},
		{"Auth signed by another key than it names", func() []byte {
			b := authorized(info(keyA), currentA)
			st, _ := tsm.DecodeStep(bytes.NewReader(b))
			st.Auth.Node = tsm.GenerateNodeKey().ID()
			out, _ := tsm.EncodeStep(st)
			return out
		}, 401, "unauthorized"},
		{"Auth from ten minutes ago", func() []byte {
			st := info(keyA)
			tsm.AuthorizeStep(st, nodeKeyA, c.Nodes[0].ID, currentA)
			st.Auth.Time -= 600
			b, _ := tsm.EncodeStep(st)
			return b
		}, 401, "unauthorized"},
		{"the phone of key A acting on key B", func() []byte { return authorized(info(keyB), currentA) }, 403, "not-a-party"},
		{"a share from before the refresh", func() []byte {
			return authorized(&tsm.Step{Op: tsm.OpCheck, KeyID: keyA, Scheme: tsm.EdDSA}, staleA)
		}, 409, "stale-epoch"},
		{"a share from before the refresh asks the key's state: told, signed", func() []byte { return authorized(info(keyA), staleA) }, 200, ""},
		{"a refreshed key, asked with a proof of no share of it: not told it exists or its epoch", func() []byte {
			return authorized(info(keyA), backupOf(dbB, keyB))
		}, 403, "not-a-party"},
		{"a replayed signing round (the node remembers every request of its window)", func() []byte { return rec.last(tsm.OpSignShareAhead, c.Nodes[0].ID) }, 401, "unauthorized"},
		{"a replayed refresh commit", func() []byte { return rec.last(tsm.OpRefreshCommit, c.Nodes[0].ID) }, 401, "unauthorized"},
		{"a step for the other node, replayed to this one", func() []byte { return rec.last(tsm.OpSignCommit, c.Nodes[1].ID) }, 401, "unauthorized"},
		{"a request altered in transit", func() []byte {
			b := rec.last(tsm.OpSignCommit, c.Nodes[0].ID)
			return bytes.Replace(b, []byte(keyA), []byte(keyB), 1)
		}, 401, "unauthorized"},
		{"key generation naming a node this one does not work with", func() []byte {
			st := &tsm.Step{Op: tsm.OpKeyGenStart, KeyID: "evilkey", Scheme: tsm.EdDSA, Session: make([]byte, 16),
				Roster: []tsm.NodeID{nodeKeyA.ID(), c.Nodes[0].ID, tsm.GenerateNodeKey().ID()},
				KeyGen: &tsm.KeyGenParams{Threshold: 2, Parties: 3, Index: 1, Created: time.Now(), ChainCode: make([]byte, 32)}}
			return authorized(st, nil)
		}, 403, "forbidden"},
		{"a key that does not exist: the same answer as one not ours", func() []byte { return authorized(info("nosuchkey"), currentA) }, 403, "not-a-party"},
		{"a server node refreshing in the phone's place (roster with itself twice)", func() []byte {
			return asNode2(&tsm.Step{Op: tsm.OpRefreshStart, KeyID: keyA, Scheme: tsm.EdDSA, Session: make([]byte, 16),
				Roster: []tsm.NodeID{node2Key.ID(), c.Nodes[0].ID, node2Key.ID()}})
		}, 403, "forbidden"},
		{"a server node coordinating a refresh with its own share", func() []byte {
			return asNode2(&tsm.Step{Op: tsm.OpRefreshStart, KeyID: keyA, Scheme: tsm.EdDSA, Session: make([]byte, 16),
				Roster: []tsm.NodeID{nodeKeyA.ID(), c.Nodes[0].ID, node2Key.ID()}})
		}, 403, "forbidden"},
		{"a server node aborting the phone's refresh", func() []byte {
			return asNode2(&tsm.Step{Op: tsm.OpRefreshAbort, KeyID: keyA, Scheme: tsm.EdDSA, Session: make([]byte, 16)})
		}, 403, "forbidden"},
		{"key generation with a 250 KB description", func() []byte { return freshKeyGen(strings.Repeat("d", 250<<10)) }, 400, "bad-request"},
		{"key generation without a chain code: refused before anything is kept", func() []byte { return keyGenOf("nochain", "", nil) }, 400, "bad-request"},
		{"key generation with an existing key's ID: started as any other (existence is not told)", func() []byte { return keyGenOf(keyA, "", make([]byte, 32)) }, 200, ""},
		{"malformed JSON", func() []byte { return []byte(`{"op": "info", `) }, 400, "bad-request"},
		{"an unknown field", func() []byte { return []byte(`{"op":"info","key_id":"k","scheme":2,"auth":{},"extra":1}`) }, 400, "bad-request"},
		{"oversize", func() []byte { return append([]byte(`{"op":"`), bytes.Repeat([]byte("a"), tsm.MaxStepBody+1<<10)...) }, 413, "too-large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body()
			if body == nil {
				t.Fatal("nothing recorded to replay")
			}
			status, problem := post(t, url, body)
			if status != tc.status || problem != tc.problem {
				t.Errorf("got %d %s, want %d %s", status, problem, tc.status, tc.problem)
			}
		})
	}

	// One requester, or one key, cannot fill the node's session table: every step that
	// opens a session is held to a cap per requester (16) and per key (8), past which a new
	// session replaces that requester's or key's oldest; other phones keep working.
	t.Run("sessions per requester and per key", func(t *testing.T) {
		detail := func(body []byte) string {
			resp, err := http.Post(url+"/v1/step", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var p struct{ Detail string }
			json.NewDecoder(resp.Body).Decode(&p)
			return fmt.Sprint(resp.StatusCode, " ", p.Detail)
		}
		k := tsm.GenerateNodeKey()
		keygen := func(i int) *tsm.Step {
			return &tsm.Step{Op: tsm.OpKeyGenStart, KeyID: fmt.Sprint("flood", i), Scheme: tsm.EdDSA, Session: bytes.Repeat([]byte{byte(i + 1)}, 16),
				Roster: []tsm.NodeID{k.ID(), c.Nodes[0].ID}, KeyGen: &tsm.KeyGenParams{Threshold: 1, Parties: 2, Index: 1, Created: time.Now(), ChainCode: make([]byte, 32)}}
		}
		for i := range 20 {
			st := keygen(i)
			tsm.AuthorizeStep(st, k, c.Nodes[0].ID, nil)
			b, _ := tsm.EncodeStep(st)
			if got := detail(b); !strings.HasPrefix(got, "200") {
				t.Fatalf("key generation %d: %s", i, got)
			}
		}
		round2 := func(i int) string {
			st := &tsm.Step{Op: tsm.OpKeyGenRound2, KeyID: fmt.Sprint("flood", i), Scheme: tsm.EdDSA, Session: bytes.Repeat([]byte{byte(i + 1)}, 16)}
			tsm.AuthorizeStep(st, k, c.Nodes[0].ID, nil)
			b, _ := tsm.EncodeStep(st)
			return detail(b)
		}
		if got := round2(0); !strings.Contains(got, "no such session") {
			t.Errorf("the requester's oldest of 20 sessions: %s, want it replaced", got)
		}
		if got := round2(19); strings.Contains(got, "no such session") {
			t.Errorf("the requester's newest session: %s, want it kept", got)
		}
		// Key B's phone opens 100 signing sessions: they replace each other past 8.
		nodeKeyB, _ := tsm.EmbeddedNodeKey(dbB)
		current := backupOf(dbB, keyB)
		roster := []tsm.NodeID{nodeKeyB.ID(), c.Nodes[0].ID, c.Nodes[1].ID}
		for i := range 100 {
			st := &tsm.Step{Op: tsm.OpSignCommit, KeyID: keyB, Scheme: tsm.EdDSA, Session: binary.BigEndian.AppendUint64(make([]byte, 8), uint64(i)), Roster: roster}
			if err := tsm.AuthorizeStep(st, nodeKeyB, c.Nodes[0].ID, current); err != nil {
				t.Fatal(err)
			}
			b, _ := tsm.EncodeStep(st)
			if got := detail(b); !strings.HasPrefix(got, "200") {
				t.Fatalf("sign/commit %d of key B: %s", i, got)
			}
		}
		share := func(i int) string {
			st := &tsm.Step{Op: tsm.OpSignShare, KeyID: keyB, Scheme: tsm.EdDSA, Session: binary.BigEndian.AppendUint64(make([]byte, 8), uint64(i))}
			if err := tsm.AuthorizeStep(st, nodeKeyB, c.Nodes[0].ID, current); err != nil {
				t.Fatal(err)
			}
			b, _ := tsm.EncodeStep(st)
			return detail(b)
		}
		if got := share(91); !strings.Contains(got, "no such session") {
			t.Errorf("key B's 92nd of 100 signing sessions: %s, want it replaced (8 per key)", got)
		}
		if got := share(99); strings.Contains(got, "no such session") {
			t.Errorf("key B's newest signing session: %s, want it kept", got)
		}
		if _, err := phoneA.Sign(keyA, []byte("while key B floods")); err != nil {
			t.Fatalf("key A after key B's flood: %v", err)
		}

		// Key generations name any key ID, so they count for no key: eight strangers'
		// key generations naming key A do not replace key A's signing session.
		roster = []tsm.NodeID{nodeKeyA.ID(), c.Nodes[0].ID, c.Nodes[1].ID}
		opened := &tsm.Step{Op: tsm.OpSignCommit, KeyID: keyA, Scheme: tsm.EdDSA, Session: bytes.Repeat([]byte{0xaa}, 16), Roster: roster}
		if err := tsm.AuthorizeStep(opened, nodeKeyA, c.Nodes[0].ID, currentA); err != nil {
			t.Fatal(err)
		}
		b, _ := tsm.EncodeStep(opened)
		if got := detail(b); !strings.HasPrefix(got, "200") {
			t.Fatalf("key A's sign/commit: %s", got)
		}
		for i := range 8 {
			st := keygen(100 + i)
			st.KeyID = keyA
			k := tsm.GenerateNodeKey()
			st.Roster = []tsm.NodeID{k.ID(), c.Nodes[0].ID}
			tsm.AuthorizeStep(st, k, c.Nodes[0].ID, nil)
			b, _ := tsm.EncodeStep(st)
			detail(b)
		}
		st := &tsm.Step{Op: tsm.OpSignShare, KeyID: keyA, Scheme: tsm.EdDSA, Session: bytes.Repeat([]byte{0xaa}, 16)}
		if err := tsm.AuthorizeStep(st, nodeKeyA, c.Nodes[0].ID, currentA); err != nil {
			t.Fatal(err)
		}
		b, _ = tsm.EncodeStep(st)
		if got := detail(b); strings.Contains(got, "no such session") {
			t.Errorf("key A's signing session after strangers' key generations naming key A: %s", got)
		}

		// Strangers, each with a node key of its own, fill the key generations' share of the
		// table (a quarter): past it key generations are refused, and phones still sign.
		refused := 0
		for i := range 1100 {
			k := tsm.GenerateNodeKey()
			st := &tsm.Step{Op: tsm.OpKeyGenStart, KeyID: fmt.Sprint("sybil", i), Scheme: tsm.EdDSA, Session: bytes.Repeat([]byte{0x0b}, 16),
				Roster: []tsm.NodeID{k.ID(), c.Nodes[0].ID}, KeyGen: &tsm.KeyGenParams{Threshold: 1, Parties: 2, Index: 1, Created: time.Now(), ChainCode: make([]byte, 32)}}
			tsm.AuthorizeStep(st, k, c.Nodes[0].ID, nil)
			b, _ := tsm.EncodeStep(st)
			if got := detail(b); strings.HasPrefix(got, "403") {
				refused++
			}
		}
		if refused < 1100-1024 {
			t.Errorf("%d of 1100 strangers' key generations refused, want at least %d past a quarter of the table", refused, 1100-1024)
		}
		for _, k := range []struct {
			cl *tsm.EDDSAClient
			id string
		}{{phoneA, keyA}, {phoneB, keyB}} {
			if _, err := k.cl.Sign(k.id, []byte("beside the strangers")); err != nil {
				t.Fatalf("key %s beside a full share of key generations: %v", k.id, err)
			}
		}
	})

	// Private refresh messages cannot be read or swapped by whoever carries them: a
	// coordinator that re-seals node 1's value to node 2 itself (anyone can encrypt to a
	// public key) and re-signs its own Auth is refused by node 2, which checks node 1's
	// signature on the envelope; so is one that flips a byte of the sealed value.
	for _, tamper := range []struct {
		name string
		edit func(env []byte, to tsm.NodeID) []byte
	}{
		{"re-encrypted", func(env []byte, to tsm.NodeID) []byte {
			pub, _ := ecdh.X25519().NewPublicKey(to.Seal)
			hp, _ := hpke.NewDHKEMPublicKey(pub)
			ct, _ := hpke.Seal(hp, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), []byte("anything"), make([]byte, 80))
			head := env[:4+1+16+3]
			out := append(bytes.Clone(head), binary.BigEndian.AppendUint32(nil, uint32(len(ct)))...)
			out = append(out, ct...)
			return append(out, env[len(env)-64:]...) // the sender's signature, now over other bytes
		}},
		{"flipped", func(env []byte, _ tsm.NodeID) []byte {
			env = bytes.Clone(env)
			env[len(env)-70] ^= 1
			return env
		}},
	} {
		t.Run("refresh value "+tamper.name, func(t *testing.T) {
			before, _ := phoneB.KeyInfo(keyB)
			current := backupOf(dbB, keyB)
			nodeKeyB, _ := tsm.EmbeddedNodeKey(dbB)
			rec.rewrite = func(st *tsm.Step) bool {
				if st.Op != tsm.OpRefreshPrep || st.Roster == nil && len(st.In) == 0 {
					return false
				}
				for i, env := range st.In {
					if len(env) > 5+16+1 && env[5+16] == 2 && env[5+16+1] == 3 { // from party 2 (node 1) to party 3 (node 2)
						st.In[i] = tamper.edit(env, c.Nodes[1].ID)
						tsm.AuthorizeStep(st, nodeKeyB, c.Nodes[1].ID, current)
						return true
					}
				}
				return false
			}
			err := phoneB.Reshare(keyB)
			rec.rewrite = nil
			if err == nil || !strings.Contains(err.Error(), "party 2") {
				t.Fatalf("a refresh with a %s value: %v, want node 2 to refuse it, naming party 2", tamper.name, err)
			}
			if after, _ := phoneB.KeyInfo(keyB); after.Epoch != before.Epoch {
				t.Fatalf("epoch %d after a refused refresh, want %d", after.Epoch, before.Epoch)
			}
		})
	}

	// Nothing changed: both keys sign, every node at one epoch.
	for _, k := range []struct {
		cl *tsm.EDDSAClient
		id string
	}{{phoneA, keyA}, {phoneB, keyB}} {
		if _, err := k.cl.Sign(k.id, []byte("after the matrix")); err != nil {
			t.Fatalf("key %s after the matrix: %v", k.id, err)
		}
		if err := k.cl.VerifyShare(k.id); err != nil {
			t.Fatal(err)
		}
	}
}
