package tsmnode_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"

	decred "github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"

	"github.com/sharevault/sharevault/internal/tsm"
	"github.com/sharevault/sharevault/internal/tsm/protocol"
	"github.com/sharevault/sharevault/internal/tsmnode/tsmnodetest"
)

func checkECDSA(t testing.TB, sig *tsm.Signature, digest []byte) {
	t.Helper()
	pk, err := decred.ParsePubKey(sig.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	var r, s decred.ModNScalar
	r.SetBytes(&sig.R)
	s.SetBytes(&sig.S)
	if !ecdsa.NewSignature(&r, &s).Verify(digest, pk) {
		t.Fatal("the signature does not verify with decred")
	}
}

// An ECDSA key across the phone and two tsmnode processes: it signs (for the key and a
// child of it), the phone is lost and restored from its backup, and the restored phone
// signs with the same nodes; a 2-of-3 key signs with the phone and either node.
func TestECDSAAcrossProcesses(t *testing.T) {
	c := tsmnodetest.Must(t, 2)
	dir := t.TempDir()
	db := filepath.Join(dir, "phone.db")
	all := tsm.NewECDSAClient(phone(t, db, c, 0, 1))
	keyID, err := all.GenerateKey("eth")
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := all.PublicKey(keyID)
	digest := sha256.Sum256([]byte("pay bob 1 ether"))
	sig, err := all.Sign(keyID, digest[:], nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, c.Nodes[0].Log())
	}
	if string(sig.PublicKey) != string(pub) {
		t.Fatal("signed for another key")
	}
	checkECDSA(t, sig, digest[:])
	if sig, err = all.Sign(keyID, digest[:], []uint32{0, 7}); err != nil {
		t.Fatal(err)
	}
	checkECDSA(t, sig, digest[:])

	backup, err := tsm.NewECDSAClient(phone(t, db, c)).BackupShare(keyID)
	if err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(dir, "new-phone.db")
	if _, err := tsm.NewECDSAClient(phone(t, fresh, c)).RestoreShare(backup); err != nil {
		t.Fatal(err)
	}
	again := tsm.NewECDSAClient(phone(t, fresh, c, 0, 1))
	if sig, err = again.Sign(keyID, digest[:], nil); err != nil {
		t.Fatalf("the restored phone: %v", err)
	}
	checkECDSA(t, sig, digest[:])

	k2, err := all.GenerateKeyThreshold("2-of-3", 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, server := range []int{0, 1} {
		sig, err := tsm.NewECDSAClient(phone(t, db, c, server)).Sign(k2, digest[:], nil)
		if err != nil {
			t.Fatalf("2-of-3 with node %d: %v", server, err)
		}
		checkECDSA(t, sig, digest[:])
	}
}

// The server nodes sign only in a set with the key's owner (the phone), even for a key
// whose threshold the two of them meet.
func TestECDSASetWithoutThePhone(t *testing.T) {
	c := tsmnodetest.Must(t, 2)
	db := filepath.Join(t.TempDir(), "phone.db")
	cl := phone(t, db, c, 0, 1)
	keyID, err := tsm.NewECDSAClient(cl).GenerateKeyThreshold("2-of-3", 1)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("sets up the pairs"))
	if _, err := tsm.NewECDSAClient(cl).Sign(keyID, digest[:], nil); err != nil {
		t.Fatal(err)
	}
	backup, err := tsm.NewECDSAClient(phone(t, db, c)).BackupShare(keyID)
	if err != nil {
		t.Fatal(err)
	}
	key, err := tsm.EmbeddedNodeKey(db)
	if err != nil {
		t.Fatal(err)
	}
	start := func(signers ...int) (int, string) {
		session := make([]byte, protocol.SessionLen)
		session[0] = byte(len(signers) + signers[0])
		set, _ := (&protocol.Message{Type: protocol.MsgSigningSet, Session: session, Curve: protocol.Secp256k1, Signers: signers}).Marshal()
		st := &tsm.Step{Op: tsm.OpECDSAStart, KeyID: keyID, Scheme: tsm.ECDSA, Session: session,
			Roster: []tsm.NodeID{key.ID(), c.Nodes[0].ID, c.Nodes[1].ID}, In: [][]byte{set}}
		if err := tsm.AuthorizeStep(st, key, c.Nodes[0].ID, backup); err != nil {
			t.Fatal(err)
		}
		b, _ := tsm.EncodeStep(st)
		return post(t, c.Nodes[0].URL, b)
	}
	if status, problem := start(1, 2); status != 200 {
		t.Fatalf("the phone with node 1: %d %s", status, problem)
	}
	if status, problem := start(2, 3); status != 403 || problem != "forbidden" {
		t.Fatalf("a signing set without the phone: %d %s, want 403 forbidden", status, problem)
	}
}

// tripCounter counts requests, and round trips as the most requests any one node got
// (steps to the nodes run at once; on loopback two of them need not overlap in time).
type tripCounter struct {
	mu       sync.Mutex
	requests int
	perNode  map[string]int
}

func (c *tripCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.requests++
	if c.perNode == nil {
		c.perNode = map[string]int{}
	}
	c.perNode[req.URL.Host]++
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

// take returns the round trips, as the most requests any node got, and the requests,
// and starts again.
func (c *tripCounter) take() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	most := 0
	for _, n := range c.perNode {
		most = max(most, n)
	}
	r := c.requests
	c.requests, c.perNode = 0, nil
	return most, r
}

// TestSignInOneRoundTrip: the first FROST signature is two rounds from the state the key's
// generation kept on the phone; every one after it is one request to each node, at once,
// on the commitments the last one's answers handed out; a node restarted in between has
// none, and the signature takes two rounds again and succeeds.
func TestSignInOneRoundTrip(t *testing.T) {
	c := tsmnodetest.Must(t, 2)
	count := &tripCounter{}
	e := tsm.NewEDDSAClient(through(t, c, count))
	keyID, err := e.GenerateKey("one round")
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := e.PublicKey(keyID)
	sign := func(msg string) (int, int) {
		t.Helper()
		count.take()
		sig, err := e.Sign(keyID, []byte(msg))
		if err != nil || !ed25519.Verify(pub, []byte(msg), sig) {
			t.Fatalf("sign %q: %v", msg, err)
		}
		return count.take()
	}
	if trips, _ := sign("first"); trips != 2 {
		t.Errorf("the first signature: %d round trips, want 2 (commitments, shares, from the state its generation kept)", trips)
	}
	for i := range 3 {
		if trips, requests := sign(fmt.Sprint("ahead ", i)); trips != 1 || requests != 2 {
			t.Errorf("signature %d on commitments ahead: %d round trips, %d requests; want 1 and 2", i, trips, requests)
		}
	}
	c.Nodes[0].Kill()
	if err := c.Nodes[0].Start(); err != nil {
		t.Fatal(err)
	}
	if trips, _ := sign("after a restart"); trips != 3 {
		t.Errorf("after node 1 restarted: %d round trips; want 3: the one round refused (its commitment is gone), then two from the key's state kept on the phone (no info round)", trips)
	}
	if trips, _ := sign("ahead again"); trips != 1 {
		t.Errorf("and then: %d round trips, want 1", trips)
	}
}
