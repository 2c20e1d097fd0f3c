package tsm

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/sharevault/sharevault/internal/tsm/protocol"
)

// restoreLostPhone backs the phone's share of an EdDSA key up, loses the phone and restores
// the backup into a new one.
func (c *cluster) restoreLostPhone(keyID string) {
	c.t.Helper()
	backup, err := NewEDDSAClient(c.phoneClient()).BackupShare(keyID)
	if err != nil {
		c.t.Fatal(err)
	}
	c.losePhone()
	if _, err := NewEDDSAClient(c.phoneClient()).RestoreShare(backup); err != nil {
		c.t.Fatal(err)
	}
}

// roster is the node IDs of every node of the cluster, in order.
func (c *cluster) roster() []NodeID {
	var r []NodeID
	for _, p := range c.all.peers {
		id, _ := p.ID(c.t.Context())
		r = append(r, id)
	}
	return r
}

func (c *cluster) servers() []string {
	return []string{filepath.Join(c.dir, "server1.db"), filepath.Join(c.dir, "server2.db")}
}

// TestThreshold2of3: a 2-of-3 key signs with every pair of nodes, in either order, not
// with one node alone, and the phone's share of it backs up and restores like any other.
func TestThreshold2of3(t *testing.T) {
	c := newCluster(t)
	keyID, err := NewEDDSAClient(c.all).GenerateKeyThreshold("2-of-3", 1)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := NewEDDSAClient(c.all).PublicKey(keyID)
	paths := append([]string{c.phone}, c.servers()...)
	for _, pair := range [][]int{{0, 1}, {0, 2}, {1, 2}, {2, 0}} {
		cl := NewEDDSAClient(c.open(paths[pair[0]], paths[pair[1]]))
		msg := []byte(fmt.Sprint("signed by nodes ", pair))
		sig, err := cl.Sign(keyID, msg)
		if err != nil || !ed25519.Verify(pub, msg, sig) {
			t.Fatalf("nodes %v: %v", pair, err)
		}
	}
	if _, err := NewEDDSAClient(c.open(c.phone)).Sign(keyID, []byte("alone")); err == nil {
		t.Fatal("one node of a 2-of-3 key signed alone")
	}
	if info, _ := NewEDDSAClient(c.all).KeyInfo(keyID); info.Threshold != 1 || info.Players != 3 {
		t.Fatalf("key info %+v, want threshold 1 of 3 players", info)
	}
	c.restoreLostPhone(keyID)
	cl := NewEDDSAClient(c.open(c.phone, paths[2]))
	if sig, err := cl.Sign(keyID, []byte("restored")); err != nil || !ed25519.Verify(pub, []byte("restored"), sig) {
		t.Fatalf("the restored phone with server 2: %v", err)
	}
	if _, err := NewEDDSAClient(c.all).GenerateKeyThreshold("", 3); err == nil {
		t.Error("a threshold of 3 among 3 nodes was accepted")
	}
}

// crash is what faultHook panics with to stop everything at one point, as a power cut would.
type crash struct{ node, step string }

// TestRefreshCrash kills a refresh at every step (each node, before and after each of its
// two writes), restarts every node, and proves the key is at one epoch everywhere, still
// signs, and that a backup of the phone taken then restores into a new phone that signs.
func TestRefreshCrash(t *testing.T) {
	t.Cleanup(func() { faultHook = nil })
	for node := range 3 {
		for _, step := range []string{"prepare-before", "prepare-after", "commit-before", "commit-after"} {
			t.Run(fmt.Sprintf("node %d %s", node, step), func(t *testing.T) {
				c := newCluster(t)
				all := NewEDDSAClient(c.all)
				keyID, err := all.GenerateKey("crash")
				if err != nil {
					t.Fatal(err)
				}
				pub, _ := all.PublicKey(keyID)
				target := c.all.nodes[node].name
				faultHook = func(path, s string) error {
					if path == target && s == step {
						panic(crash{path, s})
					}
					return nil
				}
				func() {
					defer func() {
						if r := recover(); r == nil {
							t.Fatal("the refresh did not reach the crash point")
						} else if _, ok := r.(crash); !ok {
							panic(r)
						}
					}()
					all.Reshare(keyID)
				}()
				faultHook = nil
				c.all.Close() // every node goes down with what it wrote
				c.reopenAll()

				// The refresh was decided exactly when the decider (node 1, the lowest
				// server party) switched: the crash came after any node's commit, or before
				// the commit of a node after the decider (the phone, then node 2).
				want := uint32(0)
				if step == "commit-after" || step == "commit-before" && node != 1 {
					want = 1
				}
				all = NewEDDSAClient(c.all)
				sig, err := all.Sign(keyID, []byte("after the crash"))
				if err != nil || !ed25519.Verify(pub, []byte("after the crash"), sig) {
					t.Fatalf("signing after the crash: %v", err)
				}
				for i, n := range c.all.nodes {
					k, err := n.key(keyID, EdDSA)
					if err != nil {
						t.Fatal(err)
					}
					p, _, _ := n.pendingEpoch(keyID)
					if k.Epoch != want || p != 0 {
						t.Fatalf("node %d at epoch %d (pending %d), want %d and nothing pending", i, k.Epoch, p, want)
					}
				}
				c.restoreLostPhone(keyID)
				c.reopenAll()
				if _, err := NewEDDSAClient(c.all).Sign(keyID, []byte("restored")); err != nil {
					t.Fatalf("signing with the restored phone: %v", err)
				}
				if err := NewEDDSAClient(c.all).Reshare(keyID); err != nil {
					t.Fatalf("a refresh after the crash: %v", err)
				}
			})
		}
	}
}

// TestOldShareGoneFromDisk: after a refresh, the share it replaced is in none of the
// node's files (secure_delete and the WAL checkpoint).
func TestOldShareGoneFromDisk(t *testing.T) {
	c := newCluster(t)
	all := NewEDDSAClient(c.all)
	keyID, _ := all.GenerateKey("")
	old, err := c.all.nodes[0].key(keyID, EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	found := func(secret []byte) bool {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			b, err := os.ReadFile(c.phone + suffix)
			if err == nil && bytes.Contains(b, secret) {
				return true
			}
		}
		return false
	}
	if !found(old.share) {
		t.Fatal("the current share is not in the files: the test cannot see anything")
	}
	if err := all.Reshare(keyID); err != nil {
		t.Fatal(err)
	}
	if found(old.share) {
		t.Error("the share from before the refresh is still in the node's files")
	}
}

// TestNoncesNotInBackup: a signing session's nonces live in the party's memory only: a
// backup taken in the middle of one is the backup taken before it, and a node restored
// from it has no session to answer round two with.
func TestNoncesNotInBackup(t *testing.T) {
	c := newCluster(t)
	keyID, _ := NewEDDSAClient(c.all).GenerateKey("")
	phone := c.phoneClient()
	before, err := NewEDDSAClient(phone).BackupShare(keyID)
	if err != nil {
		t.Fatal(err)
	}
	session := newSession()
	roster := c.roster()
	if _, err := phone.peers[0].Step(t.Context(), &Step{Op: OpSignCommit, KeyID: keyID, Scheme: EdDSA, Session: session, Roster: roster}); err != nil {
		t.Fatal(err)
	}
	during, err := NewEDDSAClient(phone).BackupShare(keyID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, during) {
		t.Fatal("a backup taken during a signing session differs from one taken before it")
	}
	c.losePhone()
	restored := c.phoneClient()
	if _, err := NewEDDSAClient(restored).RestoreShare(during); err != nil {
		t.Fatal(err)
	}
	_, err = restored.peers[0].Step(t.Context(), &Step{Op: OpSignShare, KeyID: keyID, Scheme: EdDSA, Session: session})
	if err == nil {
		t.Fatal("the restored node answered round two of a session begun before the backup")
	}
}

// TestV1DatabaseMigrates: a node database written by the v1 code (additive n-of-n) opens
// as Shamir shares of the same key, which sign.
func TestV1DatabaseMigrates(t *testing.T) {
	c := newCluster(t)
	all := NewEDDSAClient(c.all)
	keyID, _ := all.GenerateKey("v1")
	pub, _ := all.PublicKey(keyID)
	c.all.Close()
	// Rewrite every node as v1 left it: additive shares x_i = λ_i·s_i, X_i = λ_i·Y_i, and
	// schema version 1.
	paths := append([]string{c.phone}, c.servers()...)
	for i, p := range paths {
		n, err := openNode(p)
		if err != nil {
			t.Fatal(err)
		}
		k, _ := n.key(keyID, EdDSA)
		v1 := toAdditiveForTest(t, k)
		err = n.write(func(tx querier) error { return replaceShare(tx, v1) })
		n.close()
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		n.rawExec(t, `DROP TABLE pending; DROP TABLE node_key; DROP TABLE key_owner; DROP TABLE public_share_history; DROP TABLE node_pins; DROP TABLE refresh_done; DROP TABLE ecdsa_seeds; DROP TABLE key_behind; PRAGMA user_version = 1`)
	}
	c.reopenAll()
	sig, err := NewEDDSAClient(c.all).Sign(keyID, []byte("migrated"))
	if err != nil || !ed25519.Verify(pub, []byte("migrated"), sig) {
		t.Fatalf("signing after the migration: %v", err)
	}
}

// TestCheatingNodeNamed: a node whose stored share was altered (a faulty or malicious
// node) is named by the signature-share check, and nothing is signed.
func TestCheatingNodeNamed(t *testing.T) {
	c := newCluster(t)
	keyID, _ := NewEDDSAClient(c.all).GenerateKey("")
	other := make([]byte, 32)
	rand.Read(other)
	other[31] &= 0x0f // canonical
	c.all.nodes[2].rawExec(t, `UPDATE keys SET secret_share = ? WHERE key_id = ?`, other, keyID)
	_, err := NewEDDSAClient(c.all).Sign(keyID, []byte("m"))
	if err == nil {
		t.Fatal("signed with a wrong share")
	}
	if !errors.Is(err, ErrShareMismatch) && !bytes.Contains([]byte(err.Error()), []byte("party 3")) {
		t.Fatalf("got %v, want node 2 (party 3) named", err)
	}
}

// toAdditiveForTest turns an n-of-n Shamir key state into the additive one v1 kept:
// x_i = λ_i·s_i and X_j = λ_j·Y_j, with λ the Lagrange coefficients at 0 of all parties.
func toAdditiveForTest(t *testing.T, k *keyState) *keyState {
	t.Helper()
	g := protocol.GroupOf(protocol.Curve(k.Curve))
	lambda := func(i int) []byte {
		num, den := g.ScalarFromInt(1), g.ScalarFromInt(1)
		for j := 1; j <= k.Players; j++ {
			if j != i {
				num = g.MulScalars(num, g.ScalarFromInt(j))
				den = g.MulScalars(den, g.SubScalars(g.ScalarFromInt(j), g.ScalarFromInt(i)))
			}
		}
		return g.MulScalars(num, g.InvertScalar(den))
	}
	out := &keyState{KeyInfo: k.KeyInfo, additive: true, share: g.MulScalars(lambda(k.NodeIndex+1), k.share)}
	for j, y := range k.publicShares {
		x, err := g.ScalarMult(lambda(j+1), y)
		if err != nil {
			t.Fatal(err)
		}
		out.publicShares = append(out.publicShares, x)
	}
	if err := out.check(); err != nil {
		t.Fatalf("the additive form does not check: %v", err)
	}
	return out
}

// TestConcurrentRefreshAndSign: refreshes and signatures (each of which recovers first) by
// separate clients at once leave the key at one epoch on every node, signing. (A recovery
// that took a refresh in flight for an interrupted one would brick the key.)
func TestConcurrentRefreshAndSign(t *testing.T) {
	c := newCluster(t)
	keyID, _ := NewEDDSAClient(c.all).GenerateKey("")
	paths := append([]string{c.phone}, c.servers()...)
	done := make(chan error, 2)
	go func() {
		cl := NewEDDSAClient(c.open(paths...))
		for range 10 {
			if err := cl.Reshare(keyID); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	go func() {
		cl := NewEDDSAClient(c.open(paths...))
		for range 20 {
			if _, err := cl.Sign(keyID, []byte("m")); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := NewEDDSAClient(c.all).Sign(keyID, []byte("after")); err != nil {
		t.Fatal(err)
	}
	for i, n := range c.all.nodes {
		if k, _ := n.key(keyID, EdDSA); k.Epoch != 10 {
			t.Errorf("node %d at epoch %d, want 10", i, k.Epoch)
		}
	}
}

// TestStepOfAnotherProtocol: a step can only continue a session of its own protocol: a
// refresh step on a signing session is refused, and does not crash the node.
func TestStepOfAnotherProtocol(t *testing.T) {
	c := newCluster(t)
	keyID, _ := NewEDDSAClient(c.all).GenerateKey("")
	roster := c.roster()
	session := newSession()
	p := c.all.peers[1]
	if _, err := p.Step(t.Context(), &Step{Op: OpSignCommit, KeyID: keyID, Scheme: EdDSA, Session: session, Roster: roster}); err != nil {
		t.Fatal(err)
	}
	for _, op := range []Op{OpRefreshRound2, OpRefreshPrep, OpKeyGenFinish} {
		if _, err := p.Step(t.Context(), &Step{Op: op, KeyID: keyID, Scheme: EdDSA, Session: session}); err == nil {
			t.Errorf("%s took a signing session", op)
		}
	}
}
