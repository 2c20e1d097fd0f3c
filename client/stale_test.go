package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
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

// TestStaleWithoutAnEpoch: a stale refusal of a backup's share without its epoch (which a
// node never gives the key's owner: it tells the epoch, signed; a relay can make one up) is
// one line that says so, never a stale backup, nor "the key is at 0".
func TestStaleWithoutAnEpoch(t *testing.T) {
	p := testPhones(t)("phone.db")
	keyID, err := p.KeyGen("eddsa", "")
	if err != nil {
		t.Fatal(err)
	}
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusConflict)
		io.WriteString(w, `{"type":"urn:sharevault:tsm:problem:stale-epoch","title":"Conflict","status":409,"detail":"made up"}`)
	}))
	t.Cleanup(fake.Close)
	p.AddRemoteNode(fake.URL, tsm.GenerateNodeKey().ID().String())
	words, _ := NewWords(12)
	keys, _ := words.Keys("")
	_, err = p.Backup(keys, keyID)
	if err == nil || errors.Is(err, ErrStale) || strings.Contains(err.Error(), "is at 0") || strings.Contains(err.Error(), "\n") ||
		!strings.Contains(err.Error(), "without telling its epoch") {
		t.Fatalf("a stale refusal without an epoch: %v", err)
	}
}
