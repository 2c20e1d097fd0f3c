package client

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/sharevault/sharevault/internal/blobstore/pebblestore"
	"github.com/sharevault/sharevault/internal/vault"
)

// testPhones starts a vault on loopback and returns an opener of phones on it, each with
// the same two server nodes in this process.
func testPhones(t *testing.T) func(db string) *Phone {
	store, err := pebblestore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	h, err := vault.New(store, vault.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RateIP: 1e6, BurstIP: 1e6})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	return func(db string) *Phone {
		p, err := OpenPhone(filepath.Join(dir, db), NewVault(srv.URL))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		p.AddServerNode(filepath.Join(dir, "s1.db"))
		p.AddServerNode(filepath.Join(dir, "s2.db"))
		return p
	}
}

// TestBackupRacesRefresh: a refresh that lands while a backup is being made (here, just
// before the share is read) cannot make the envelope's header disagree with the share
// inside: key ID, scheme and epoch come from the backup bytes. The backup opens, and is
// of the new epoch.
func TestBackupRacesRefresh(t *testing.T) {
	phone := testPhones(t)("phone.db")
	keyID, err := phone.KeyGen("eddsa", "race")
	if err != nil {
		t.Fatal(err)
	}
	words, _ := NewWords(12)
	keys, _ := words.Keys("")
	t.Cleanup(func() { testHookBeforeShare = nil })
	for i := range 3 {
		testHookBeforeShare = func() {
			if _, err := phone.Reshare(keys, keyID); err != nil {
				t.Fatal(err)
			}
		}
		info, err := phone.Backup(keys, keyID)
		testHookBeforeShare = nil
		if err != nil {
			t.Fatalf("backup %d: %v", i, err)
		}
		if info.Epoch != int64(i+1) {
			t.Fatalf("backup %d is of epoch %d, want %d (the refresh came first)", i, info.Epoch, i+1)
		}
		got, err := phone.Verify(keys, keyID)
		if err != nil || got.Epoch != info.Epoch {
			t.Fatalf("backup %d: %v (epoch %d)", i, err, got.Epoch)
		}
	}
}

// TestBackupBesideReshare: a backup started while a reshare is between its own backup and
// its switch waits for the switch (the refresh's lock), so it never leaves the old share as
// the vault's latest version.
func TestBackupBesideReshare(t *testing.T) {
	phone := testPhones(t)("phone.db")
	keyID, err := phone.KeyGen("eddsa", "beside")
	if err != nil {
		t.Fatal(err)
	}
	words, _ := NewWords(12)
	keys, _ := words.Keys("")
	if _, err := phone.Backup(keys, keyID); err != nil {
		t.Fatal(err)
	}
	backedUp := make(chan error, 1)
	testHookAfterReshareUpload = func() {
		go func() { _, err := phone.Backup(keys, keyID); backedUp <- err }()
		time.Sleep(300 * time.Millisecond) // time enough for a backup that does not wait
	}
	t.Cleanup(func() { testHookAfterReshareUpload = nil })
	if _, err := phone.Reshare(keys, keyID); err != nil {
		t.Fatal(err)
	}
	testHookAfterReshareUpload = nil
	if err := <-backedUp; err != nil {
		t.Fatalf("the backup beside the reshare: %v", err)
	}
	got, err := phone.Verify(keys, keyID)
	if err != nil || got.Epoch != 1 {
		t.Fatalf("the vault's latest version: %+v, %v", got, err)
	}
}
