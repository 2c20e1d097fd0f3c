package tsmnode_test

import (
	"crypto/ed25519"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sharevault/sharevault/internal/tsm"
	"github.com/sharevault/sharevault/internal/tsmnode/tsmnodetest"
)

// copyDB copies a SQLite database with its WAL files (those that exist) from one path to
// another, as a disk snapshot of a stopped node would.
func copyDB(t *testing.T, from, to string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(to + suffix)
		b, err := os.ReadFile(from + suffix)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRestoredDatabaseRefused: node 2's database restored from a snapshot taken before a
// refresh of a 2-of-3 key. The holder of the share of before the refresh (a stolen old
// backup) could sign with node 2 alone: the refresh is undone there. Once the phone's
// info round shows node 2 node 1's signed word of the key's epoch, node 2 says it is
// behind, in one line, and serves the key to no one (the old share included), until its
// database is at the key's epoch again.
func TestRestoredDatabaseRefused(t *testing.T) {
	c := tsmnodetest.Must(t, 2)
	dir := t.TempDir()
	db := filepath.Join(dir, "phone.db")
	all := tsm.NewEDDSAClient(phone(t, db, c, 0, 1))
	keyID, err := all.GenerateKeyThreshold("2-of-3", 1)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := all.PublicKey(keyID)
	old, err := tsm.NewEDDSAClient(phone(t, db, c)).BackupShare(keyID)
	if err != nil {
		t.Fatal(err)
	}
	n2 := c.Nodes[1]
	node2DB := filepath.Join(n2.Dir, "node.db")
	n2.Kill()
	copyDB(t, node2DB, filepath.Join(dir, "snapshot.db"))
	if err := n2.Start(); err != nil {
		t.Fatal(err)
	}
	if err := all.Reshare(keyID); err != nil {
		t.Fatal(err)
	}
	// The snapshot comes back.
	n2.Kill()
	copyDB(t, filepath.Join(dir, "snapshot.db"), node2DB)
	if err := n2.Start(); err != nil {
		t.Fatal(err)
	}
	thiefDB := filepath.Join(dir, "thief.db")
	if _, err := tsm.NewEDDSAClient(phone(t, thiefDB, c)).RestoreShare(old); err != nil {
		t.Fatal(err)
	}
	thief := tsm.NewEDDSAClient(phone(t, thiefDB, c, 1))
	if sig, err := thief.Sign(keyID, []byte("before the phone comes")); err != nil || !ed25519.Verify(pub, []byte("before the phone comes"), sig) {
		t.Fatalf("the old share with the restored node: %v (the danger this test shows was not there)", err)
	}

	_, err = all.Sign(keyID, []byte("the phone"))
	if !errors.Is(err, tsm.ErrNodeBehind) || !strings.Contains(err.Error(), "node 2") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("the phone with a node restored from before a refresh: %v, want one line naming node 2 as behind", err)
	}
	t.Logf("the phone is told: %v", err)
	if _, err := thief.Sign(keyID, []byte("after")); !errors.Is(err, tsm.ErrNodeBehind) {
		t.Fatalf("the old share once node 2 knows it is behind: %v, want ErrNodeBehind", err)
	}
	// The phone signs with node 1 (its threshold allows).
	if _, err := tsm.NewEDDSAClient(phone(t, db, c, 0)).Sign(keyID, []byte("with node 1")); err != nil {
		t.Fatal(err)
	}
	// The operator clears the mark (tsmnode behind --clear): node 2 serves its state of the
	// key again, the old share's too, until the phone's next info round marks it again.
	bin, err := tsmnodetest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "behind", "--config", n2.Config, "--clear", keyID).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "no longer kept as behind (its peers had it at epoch 1)") {
		t.Fatalf("tsmnode behind --clear: %v: %s", err, out)
	}
	if _, err := thief.Sign(keyID, []byte("cleared")); err != nil {
		t.Fatalf("the old share after the operator cleared the mark: %v", err)
	}
	if _, err := tsm.NewEDDSAClient(phone(t, db, c, 0, 1)).Sign(keyID, []byte("again")); !errors.Is(err, tsm.ErrNodeBehind) {
		t.Fatalf("the phone after the mark was cleared: %v, want ErrNodeBehind again", err)
	}
	if _, err := thief.Sign(keyID, []byte("marked again")); !errors.Is(err, tsm.ErrNodeBehind) {
		t.Fatalf("the old share once marked again: %v", err)
	}
}
