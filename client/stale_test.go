package client

import (
	"context"
	"errors"
	"testing"

	"github.com/sharevault/sharevault/internal/tsm"
)

// TestDeviceLeftBehindAReshare: two devices hold the phone's share; one reshares. The other
// cannot back its stale share up, and if a stale version reaches the vault anyway (backed
// up while the nodes were down), a restore and the drill pass over it to the newest version
// the nodes accept.
func TestDeviceLeftBehindAReshare(t *testing.T) {
	open := testPhones(t)
	a := open("a.db")
	keyID, err := a.KeyGen("eddsa", "two devices")
	if err != nil {
		t.Fatal(err)
	}
	words, _ := NewWords(12)
	keys, _ := words.Keys("")
	if _, err := a.Backup(keys, keyID); err != nil {
		t.Fatal(err)
	}
	b := open("b.db")
	if _, err := b.Restore(keys, keyID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Reshare(keys, keyID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Backup(keys, keyID); !errors.Is(err, ErrStale) {
		t.Fatalf("the device left behind backs up: %v", err)
	}
	stale, err := ops(tsm.EdDSA, b.node).BackupShare(keyID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.upload(context.Background(), keys, keyID, stale); err != nil {
		t.Fatal(err)
	}
	v, err := a.Verify(keys, keyID)
	if err != nil || v.Epoch != 1 || v.Sequence != 2 {
		t.Fatalf("the drill with a stale newest version: %+v, %v", v, err)
	}
	c := open("c.db")
	got, err := c.Restore(keys, keyID)
	if err != nil || got.Epoch != 1 || got.Sequence != 2 {
		t.Fatalf("restore with a stale newest version: %+v, %v", got, err)
	}
	if _, err := c.Sign(keyID, "restored past a stale version"); err != nil {
		t.Fatal(err)
	}
}
