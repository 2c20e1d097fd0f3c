package tsm

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"

	decred "github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"

	"github.com/sharevault/sharevault/internal/bip32"
)

// verifyECDSA checks sig over digest with decred, against pub, and that its recovery ID
// gives pub back.
func verifyECDSA(t *testing.T, pub, digest []byte, sig *Signature) {
	t.Helper()
	pk, err := decred.ParsePubKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	var r, s decred.ModNScalar
	r.SetBytes(&sig.R)
	s.SetBytes(&sig.S)
	if s.IsOverHalfOrder() || !ecdsa.NewSignature(&r, &s).Verify(digest, pk) {
		t.Fatal("the signature does not verify with decred, or is not low-S")
	}
	got, _, err := ecdsa.RecoverCompact(append([]byte{27 + 4 + sig.RecoveryID}, sig.Compact()[:64]...), digest)
	if err != nil || !got.IsEqual(pk) {
		t.Fatalf("recovery ID %d does not give the key back: %v", sig.RecoveryID, err)
	}
}

// The lose-the-phone story with an ECDSA key: it signs, the phone is lost and restored from
// its backup (which holds no OT seeds: the phone's pairs are set up again at the first
// signature), it signs again, and a refresh renews every share and the seeds.
func TestECDSALoseThePhone(t *testing.T) {
	c := newCluster(t)
	keyID, err := NewECDSAClient(c.all).GenerateKey("eth")
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := NewECDSAClient(c.all).PublicKey(keyID)
	digest := sha256.Sum256([]byte("pay 1 ether to bob"))
	sig, err := NewECDSAClient(c.all).Sign(keyID, digest[:], nil)
	if err != nil {
		t.Fatal(err)
	}
	verifyECDSA(t, pub, digest[:], sig)
	sig2, err := NewECDSAClient(c.all).Sign(keyID, digest[:], nil)
	if err != nil {
		t.Fatal(err)
	}
	if sig2.R == sig.R {
		t.Fatal("two signatures of one digest share their nonce")
	}

	backup, err := NewECDSAClient(c.phoneClient()).BackupShare(keyID)
	if err != nil {
		t.Fatal(err)
	}
	c.losePhone()
	if _, err := NewECDSAClient(c.phoneClient()).RestoreShare(backup); err != nil {
		t.Fatal(err)
	}
	c.reopenAll()
	local, _ := c.all.embedded()
	if s, _ := local.seeds(keyID, 0); len(s) != 0 {
		t.Fatalf("the restored phone has %d OT seeds", len(s))
	}
	d2 := sha256.Sum256([]byte("after the restore"))
	sig, err = NewECDSAClient(c.all).Sign(keyID, d2[:], nil)
	if err != nil {
		t.Fatalf("the restored phone: %v", err)
	}
	verifyECDSA(t, pub, d2[:], sig)

	if err := NewECDSAClient(c.all).Reshare(keyID); err != nil {
		t.Fatal(err)
	}
	if s, _ := local.seeds(keyID, 1); len(s) != 0 {
		t.Fatal("a refresh left OT seeds")
	}
	sig, err = NewECDSAClient(c.all).Sign(keyID, d2[:], nil)
	if err != nil {
		t.Fatalf("after the refresh: %v", err)
	}
	verifyECDSA(t, pub, d2[:], sig)
	// The pre-refresh share is refused.
	c.losePhone()
	if _, err := NewECDSAClient(c.phoneClient()).RestoreShare(backup); err != nil {
		t.Fatal(err)
	}
	c.reopenAll()
	if _, err := NewECDSAClient(c.all).Sign(keyID, d2[:], nil); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("the pre-refresh share signed: %v", err)
	}
}

// Every pair of a 2-of-3 key signs, a child key under a path signs for the key that BIP-32
// derives from the xpub, and one node alone does not.
func TestECDSAThresholdAndPaths(t *testing.T) {
	c := newCluster(t)
	keyID, err := NewECDSAClient(c.all).GenerateKeyThreshold("2-of-3", 1)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := NewECDSAClient(c.all).KeyInfo(keyID)
	paths := append([]string{c.phone}, c.servers()...)
	path := []uint32{0, 7}
	child, err := bip32.Derive(info.PublicKey, info.ChainCode, path)
	if err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][]int{{0, 1}, {0, 2}, {1, 2}} {
		cl := NewECDSAClient(c.open(paths[pair[0]], paths[pair[1]]))
		digest := sha256.Sum256(fmt.Append(nil, "pair ", pair))
		sig, err := cl.Sign(keyID, digest[:], nil)
		if err != nil {
			t.Fatalf("nodes %v: %v", pair, err)
		}
		verifyECDSA(t, info.PublicKey, digest[:], sig)
		sig, err = cl.Sign(keyID, digest[:], path)
		if err != nil {
			t.Fatalf("nodes %v, path m/0/7: %v", pair, err)
		}
		if string(sig.PublicKey) != string(child.PublicKey) {
			t.Fatal("the signature is for another key than the path's")
		}
		verifyECDSA(t, child.PublicKey, digest[:], sig)
	}
	digest := sha256.Sum256([]byte("all three"))
	if _, err := NewECDSAClient(c.all).Sign(keyID, digest[:], nil); err != nil {
		t.Fatalf("all three: %v", err)
	}
	if _, err := NewECDSAClient(c.open(c.phone)).Sign(keyID, digest[:], nil); err == nil {
		t.Fatal("one node of a 2-of-3 key signed alone")
	}
}

// A node whose seeds with another were lost (or ended by a refusal) is set up again by the
// coordinator on the next signature; a digest of the wrong length is refused up front.
func TestECDSASeedsRepaired(t *testing.T) {
	c := newCluster(t)
	keyID, err := NewECDSAClient(c.all).GenerateKey("seeds")
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("x"))
	if _, err := NewECDSAClient(c.all).Sign(keyID, digest[:], nil); err != nil {
		t.Fatal(err)
	}
	local, _ := c.all.embedded()
	seeds, err := local.seeds(keyID, 0)
	if err != nil || seeds[2] == nil {
		t.Fatalf("no seeds with party 2: %v", err)
	}
	if err := local.dropSeeds(keyID, 2, seeds[2].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := NewECDSAClient(c.all).Sign(keyID, digest[:], nil); err != nil {
		t.Fatalf("after losing one pair's seeds: %v", err)
	}
	if _, err := NewECDSAClient(c.all).Sign(keyID, digest[:31], nil); err == nil {
		t.Fatal("a 31-byte digest was signed")
	}
}

// A server node whose extension fails the phone's check (its stored seeds corrupted, so its
// envelopes are its own): the phone names it, ends its seeds with it, and the next
// signature sets the pair up again. The refusal also ends every live signing session that
// holds a copy of those seeds.
func TestECDSARefusedExtension(t *testing.T) {
	c := newCluster(t)
	keyID, err := NewECDSAClient(c.all).GenerateKey("refused")
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("x"))
	if _, err := NewECDSAClient(c.all).Sign(keyID, digest[:], nil); err != nil {
		t.Fatal(err)
	}
	phone, server := c.all.peers[0].(*party), c.all.peers[1].(*party)
	before, _ := phone.n.seeds(keyID, 0)
	// A live session of the phone holding the same seeds with party 2.
	live := &session{kind: "ecdsa", keyID: keyID, requester: NodeID{Sign: []byte("someone")}, seedIDs: map[int]string{2: string(before[2].ID)}}
	if err := phone.put(make([]byte, 16), live); err != nil {
		t.Fatal(err)
	}
	bad := make([]byte, 8192) // party 2's seeds as Bob towards the phone, now garbage
	server.n.rawExec(t, `UPDATE ecdsa_seeds SET receiver = ? WHERE key_id = ? AND peer = 1`, bad, keyID)
	_, err = NewECDSAClient(c.all).Sign(keyID, digest[:], nil)
	if err == nil || !strings.Contains(err.Error(), "party 2: its OT extension failed its consistency check") {
		t.Fatalf("a bad extension: %v", err)
	}
	after, _ := phone.n.seeds(keyID, 0)
	if after[2] != nil || after[3] == nil {
		t.Fatal("the phone kept its seeds with party 2, or lost those with party 3")
	}
	phone.mu.Lock()
	n := len(phone.sessions)
	phone.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d sessions left; the live one with the refused seeds should be gone", n)
	}
	if _, err := NewECDSAClient(c.all).Sign(keyID, digest[:], nil); err != nil {
		t.Fatalf("after the refusal: %v", err)
	}
}

// TestPresign: a presignature (rounds one and two ahead) signs whatever digest and path
// come after it, once: the signature takes it, and round three on it again finds no half
// on any node. A refresh ends every party's halves, and the signature after it signs in
// three rounds.
func TestPresign(t *testing.T) {
	c := newCluster(t)
	e := NewECDSAClient(c.all)
	keyID, err := e.GenerateKey("ahead")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := e.PublicKey(keyID)
	if err != nil {
		t.Fatal(err)
	}
	held := func() *presigned {
		presignatures.Lock()
		defer presignatures.Unlock()
		return presignatures.m[e.keptKey(keyID)]
	}
	if err := e.Presign(keyID); err != nil {
		t.Fatal(err)
	}
	ps := held()
	if ps == nil {
		t.Fatal("no presignature kept")
	}
	digest := sha256.Sum256([]byte("chosen after the presignature"))
	sig, err := e.Sign(keyID, digest[:], []uint32{0, 7})
	if err != nil {
		t.Fatal(err)
	}
	child, err := bip32.Derive(pub, ps.chainCode, []uint32{0, 7})
	if err != nil {
		t.Fatal(err)
	}
	verifyECDSA(t, child.PublicKey, digest[:], sig)
	if held() != nil {
		t.Fatal("the presignature is still held after its signature")
	}
	other := sha256.Sum256([]byte("another digest on the same nonces"))
	if _, err := e.round3(ps, other[:], nil); err == nil {
		t.Fatal("a presignature signed twice")
	}
	ecdsaSessions := func() (n int) {
		for _, peer := range c.all.peers {
			p := peer.(*party)
			p.mu.Lock()
			for _, s := range p.sessions {
				if s.keyID == keyID && s.kind == "ecdsa" {
					n++
				}
			}
			p.mu.Unlock()
		}
		return n
	}
	if err := e.Presign(keyID); err != nil {
		t.Fatal(err)
	}
	if n := ecdsaSessions(); n != 2 || held() == nil || held().mine == nil {
		t.Fatalf("%d halves of a presignature on the server parties (want 2), and the phone's kept: %v", n, held() != nil)
	}
	mine := held().mine
	if err := e.Reshare(keyID); err != nil {
		t.Fatal(err)
	}
	if n := ecdsaSessions(); n != 0 {
		t.Fatalf("after a refresh, %d halves of a presignature are left", n)
	}
	if held() != nil || !mine.signer.Wiped() {
		t.Fatal("the phone's half of a presignature from before the refresh is still kept, or not wiped")
	}
	sig, err = e.Sign(keyID, digest[:], nil)
	if err != nil {
		t.Fatal(err)
	}
	verifyECDSA(t, pub, digest[:], sig)
}
