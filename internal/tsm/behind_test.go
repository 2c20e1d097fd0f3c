package tsm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPeerWordsChecked: a node whose state of a key went back (a copy of its database from
// before a refresh) takes the word that it is behind only from every other server party of
// the key, agreeing, with the phone's proof of its current share: a word from a configured
// peer that is not the key's, one about another epoch, or a proof of the old share changes
// nothing (not-a-party, and the key is not kept as behind).
func TestPeerWordsChecked(t *testing.T) {
	c := newCluster(t)
	e := NewEDDSAClient(c.all)
	keyID, err := e.GenerateKeyThreshold("words", 1)
	if err != nil {
		t.Fatal(err)
	}
	oldBackup, _ := NewEDDSAClient(c.phoneClient()).BackupShare(keyID)
	s2 := c.servers()[1]
	c.all.nodes[2].rawExec(t, `PRAGMA wal_checkpoint(TRUNCATE)`)
	snapshot := filepath.Join(c.dir, "snapshot.db")
	b, err := os.ReadFile(s2)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(snapshot, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.Reshare(keyID); err != nil {
		t.Fatal(err)
	}
	backup, _ := NewEDDSAClient(c.phoneClient()).BackupShare(keyID)
	phoneKey := c.all.local.key
	s1Key, _ := c.all.nodes[1].nodeKey()
	s2Key, _ := c.all.nodes[2].nodeKey()
	outsider := GenerateNodeKey()

	svc, err := OpenNode(ServiceConfig{Database: snapshot, Key: s2Key, Peers: []NodeID{s1Key.ID(), outsider.ID()}})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	roster := strings.Join([]string{phoneKey.ID().String(), s1Key.ID().String(), s2Key.ID().String()}, ",")
	if err := svc.p.n.write(func(tx querier) error { return tx.SetOwner(keyID, 0, roster) }); err != nil {
		t.Fatal(err)
	}
	now, _ := NewEDDSAClient(c.all).KeyInfo(keyID)
	pub := c.all.nodes[1]
	k1, _ := pub.key(keyID, EdDSA)
	defer k1.wipe()

	// word is signer's signed info answer at epoch, with the key's current public shares.
	word := func(signer *NodeKey, epoch uint32) []byte {
		st := &Step{Op: OpInfo, KeyID: keyID, Scheme: EdDSA}
		if err := AuthorizeStep(st, phoneKey, signer.ID(), backup); err != nil {
			t.Fatal(err)
		}
		info := now
		info.Epoch = epoch
		res := &StepResult{Info: &info, PublicShares: k1.publicShares}
		signer.signAnswer(st.digest(), st.Auth, res)
		w, err := EncodeEvidence(st, res)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	ask := func(proof []byte, words ...[]byte) error {
		st := &Step{Op: OpInfo, KeyID: keyID, Scheme: EdDSA, In: words}
		if err := AuthorizeStep(st, phoneKey, svc.ID(), proof); err != nil {
			t.Fatal(err)
		}
		_, err := svc.Serve(context.Background(), st)
		return err
	}
	for _, tc := range []struct {
		name  string
		proof []byte
		words [][]byte
	}{
		{"a word from a configured peer that is not the key's", backup, [][]byte{word(outsider, 1)}},
		{"the key's peer and a stranger", backup, [][]byte{word(s1Key, 1), word(outsider, 1)}},
		{"a word of another epoch", backup, [][]byte{word(s1Key, 2)}},
		{"the old share, with the peer's word", oldBackup, [][]byte{word(s1Key, 1)}},
		{"no word", backup, nil},
	} {
		err := ask(tc.proof, tc.words...)
		if errors.Is(err, ErrNodeBehind) {
			t.Fatalf("%s: the node took it as behind", tc.name)
		}
		if old := string(tc.proof) == string(oldBackup); old {
			if err != nil {
				t.Fatalf("%s: %v (the old share is this node's state: it answers)", tc.name, err)
			}
		} else if !errors.Is(err, ErrNotAParty) {
			t.Fatalf("%s: %v, want not-a-party", tc.name, err)
		}
	}
	if err := ask(oldBackup); err != nil {
		t.Fatalf("the old share, after the refused words: %v (the key was kept as behind)", err)
	}
	if err := ask(backup, word(s1Key, 1)); !errors.Is(err, ErrNodeBehind) {
		t.Fatalf("the key's other server party's word with the phone's proof: %v, want ErrNodeBehind", err)
	}
	if err := ask(oldBackup); !errors.Is(err, ErrNodeBehind) {
		t.Fatalf("the old share once the node knows it is behind: %v", err)
	}
}
