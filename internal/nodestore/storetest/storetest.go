// Package storetest is the conformance suite every nodestore.Store passes (as blobstoretest
// is the blob stores').
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/sharevault/sharevault/internal/nodestore"
)

// Opener opens a handle on one store; each call is another handle (another connection or
// process's view) on the same state.
type Opener func() nodestore.Store

// Run runs the suite. newStore returns the opener of an empty store for one subtest.
func Run(t *testing.T, newStore func(t *testing.T) Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"Keys", testKeys},
		{"DeleteNewKey", testDeleteNewKey},
		{"Pending", testPending},
		{"Outcomes", testOutcomes},
		{"History", testHistory},
		{"Seeds", testSeeds},
		{"OwnerNodeKeyPins", testOwnerNodeKeyPins},
		{"WriteIsAtomic", testWriteIsAtomic},
		{"ReadIsReadOnly", testReadIsReadOnly},
		{"Durable", testDurable},
		{"OnePrepareWins", testOnePrepareWins},
		{"NoLostUpdate", testNoLostUpdate},
		{"Lease", testLease},
		{"Admit", testAdmit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

var ctx = context.Background()

func handle(t *testing.T, open Opener) nodestore.Store {
	t.Helper()
	s := open()
	t.Cleanup(func() { s.Close() })
	return s
}

func write(t *testing.T, s nodestore.Store, fn func(tx nodestore.Tx) error) {
	t.Helper()
	if err := s.Write(ctx, fn); err != nil {
		t.Fatal(err)
	}
}

// NewKey is a key of id at epoch 0 with three public shares (the suite's and callers').
func NewKey(id string, scheme uint8) *nodestore.Key {
	return &nodestore.Key{ID: id, Scheme: scheme, Curve: 2, NodeIndex: 1, Players: 3, Threshold: 1, Epoch: 0,
		Created: 1700000000, Share: bytes.Repeat([]byte{7}, 32), PublicKey: bytes.Repeat([]byte{8}, 32),
		Description: "wallet ☂", ChainCode: bytes.Repeat([]byte{9}, 32),
		PublicShares: [][]byte{bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32), bytes.Repeat([]byte{3}, 32)}}
}

// Key reads a key through s.Peek.
func Key(s nodestore.Store, id string) (k *nodestore.Key, err error) {
	err = s.Peek(ctx, func(tx nodestore.Tx) error { k, err = tx.Key(id); return err })
	return k, err
}

func readKey(t *testing.T, s nodestore.Store, id string) *nodestore.Key {
	t.Helper()
	k, err := Key(s, id)
	if err != nil {
		t.Fatal(err)
	}
	var in *nodestore.Key
	if err := s.Read(ctx, func(tx nodestore.Tx) (err error) { in, err = tx.Key(id); return err }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(k, in) {
		t.Fatalf("Key read by Peek and by Read differ:\n%+v\n%+v", k, in)
	}
	return k
}

func testKeys(t *testing.T, open Opener) {
	s := handle(t, open)
	if s.Version() < 1 {
		t.Fatalf("schema version %d", s.Version())
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := Key(s, "none"); !errors.Is(err, nodestore.ErrNotFound) {
		t.Fatalf("a missing key: %v, want ErrNotFound", err)
	}
	a, b, c := NewKey("b", 2), NewKey("a", 2), NewKey("c", 1)
	write(t, s, func(tx nodestore.Tx) error {
		for _, k := range []*nodestore.Key{a, b, c} {
			if err := tx.InsertKey(k); err != nil {
				return err
			}
		}
		return nil
	})
	if got := readKey(t, s, "b"); !reflect.DeepEqual(got, a) {
		t.Fatalf("read back\n%+v\nwant\n%+v", got, a)
	}
	err := s.Write(ctx, func(tx nodestore.Tx) error { return tx.InsertKey(NewKey("b", 1)) })
	if !errors.Is(err, nodestore.ErrExists) {
		t.Fatalf("a second key of an ID (another scheme): %v, want ErrExists", err)
	}
	s.Read(ctx, func(tx nodestore.Tx) error {
		ids, err := tx.KeyIDs(2)
		if err != nil || !reflect.DeepEqual(ids, []string{"a", "b"}) {
			t.Fatalf("KeyIDs(2) = %q, %v", ids, err)
		}
		return nil
	})
	next := [][]byte{bytes.Repeat([]byte{4}, 32), bytes.Repeat([]byte{5}, 32), bytes.Repeat([]byte{6}, 32)}
	write(t, s, func(tx nodestore.Tx) error { return tx.UpdateShare("b", []byte("new share"), 1, 2, next) })
	got := readKey(t, s, "b")
	if string(got.Share) != "new share" || got.Epoch != 1 || got.Threshold != 2 || !reflect.DeepEqual(got.PublicShares, next) {
		t.Fatalf("after UpdateShare: %+v", got)
	}
	err = s.Write(ctx, func(tx nodestore.Tx) error { return tx.UpdateShare("none", []byte("x"), 1, 1, next) })
	if !errors.Is(err, nodestore.ErrNotFound) {
		t.Fatalf("UpdateShare of a missing key: %v, want ErrNotFound", err)
	}
	big := NewKey("epochs", 1)
	big.Epoch = 1<<32 - 1
	write(t, s, func(tx nodestore.Tx) error { return tx.InsertKey(big) })
	if got := readKey(t, s, "epochs"); got.Epoch != 1<<32-1 {
		t.Fatalf("epoch %d, want the largest", got.Epoch)
	}
}

func testDeleteNewKey(t *testing.T, open Opener) {
	s := handle(t, open)
	old := NewKey("old", 2)
	old.Epoch = 3
	write(t, s, func(tx nodestore.Tx) error {
		for _, k := range []*nodestore.Key{NewKey("new", 2), old} {
			if err := tx.InsertKey(k); err != nil {
				return err
			}
			if err := tx.SetOwner(k.ID, 0, "r"); err != nil {
				return err
			}
			if err := tx.PutSeeds(k.ID, &nodestore.Seeds{Peer: 1, Epoch: k.Epoch, ID: []byte("i"), Receiver: []byte("r"), Sender: []byte("s")}); err != nil {
				return err
			}
		}
		return nil
	})
	write(t, s, func(tx nodestore.Tx) error {
		if err := tx.DeleteNewKey("new"); err != nil {
			return err
		}
		return tx.DeleteNewKey("old") // refreshed: stays
	})
	if _, err := Key(s, "new"); !errors.Is(err, nodestore.ErrNotFound) {
		t.Fatalf("a deleted new key: %v", err)
	}
	readKey(t, s, "old")
	s.Read(ctx, func(tx nodestore.Tx) error {
		if _, _, ok, _ := tx.Owner("new"); ok {
			t.Fatal("the deleted key's owner stayed")
		}
		if sd, _ := tx.Seeds("new", 0); len(sd) != 0 {
			t.Fatal("the deleted key's seeds stayed")
		}
		return nil
	})
	// A key of the deleted one's ID can be made again.
	write(t, s, func(tx nodestore.Tx) error { return tx.InsertKey(NewKey("new", 2)) })
}

func testPending(t *testing.T, open Opener) {
	s := handle(t, open)
	write(t, s, func(tx nodestore.Tx) error { return tx.InsertKey(NewKey("k", 2)) })
	p := &nodestore.Pending{Session: []byte("session-1"), Epoch: 1, Share: []byte("next"), PublicShares: []byte("points"), Decider: "d"}
	s.Read(ctx, func(tx nodestore.Tx) error {
		if got, err := tx.Pending("k"); got != nil || err != nil {
			t.Fatalf("no refresh prepared: %+v, %v", got, err)
		}
		return nil
	})
	write(t, s, func(tx nodestore.Tx) error { return tx.InsertPending("k", p) })
	err := s.Write(ctx, func(tx nodestore.Tx) error {
		return tx.InsertPending("k", &nodestore.Pending{Session: []byte("session-2"), Epoch: 1, Share: []byte("x"), PublicShares: []byte("y")})
	})
	if !errors.Is(err, nodestore.ErrExists) {
		t.Fatalf("a second prepared refresh: %v, want ErrExists", err)
	}
	read := func() *nodestore.Pending {
		var got *nodestore.Pending
		s.Read(ctx, func(tx nodestore.Tx) (err error) { got, err = tx.Pending("k"); return err })
		return got
	}
	if got := read(); !reflect.DeepEqual(got, p) {
		t.Fatalf("read back %+v, want %+v", got, p)
	}
	write(t, s, func(tx nodestore.Tx) error { return tx.DeletePending("k", []byte("session-2")) })
	if read() == nil {
		t.Fatal("deleting another session's prepared refresh deleted this one")
	}
	write(t, s, func(tx nodestore.Tx) error { return tx.DeletePending("k", []byte("session-1")) })
	if read() != nil {
		t.Fatal("the prepared refresh stayed")
	}
	write(t, s, func(tx nodestore.Tx) error { return tx.InsertPending("k", p) })
	write(t, s, func(tx nodestore.Tx) error { return tx.DeletePending("k", nil) })
	if read() != nil {
		t.Fatal("DeletePending(nil) left the prepared refresh")
	}
}

func testOutcomes(t *testing.T, open Opener) {
	s := handle(t, open)
	write(t, s, func(tx nodestore.Tx) error { return tx.InsertKey(NewKey("k", 2)) })
	outcome := func(session string) uint8 {
		var o uint8
		if err := s.Read(ctx, func(tx nodestore.Tx) (err error) { o, err = tx.Outcome("k", []byte(session)); return err }); err != nil {
			t.Fatal(err)
		}
		return o
	}
	if outcome("s") != 0 {
		t.Fatal("an outcome of a session never finished")
	}
	write(t, s, func(tx nodestore.Tx) error { return tx.SetOutcome("k", []byte("s"), 1) })
	write(t, s, func(tx nodestore.Tx) error { return tx.SetOutcome("k", []byte("s"), 2) })
	if o := outcome("s"); o != 1 {
		t.Fatalf("outcome %d, want the first recorded, 1", o)
	}
	if outcome("t") != 0 {
		t.Fatal("another session has an outcome")
	}
}

func testHistory(t *testing.T, open Opener) {
	s := handle(t, open)
	write(t, s, func(tx nodestore.Tx) error { return tx.InsertKey(NewKey("k", 2)) })
	pts := [][]byte{[]byte("p0"), []byte("p1")}
	write(t, s, func(tx nodestore.Tx) error { return tx.SetHistory("k", 4, [][]byte{[]byte("x")}) })
	write(t, s, func(tx nodestore.Tx) error { return tx.SetHistory("k", 4, pts) })
	s.Read(ctx, func(tx nodestore.Tx) error {
		if got, err := tx.History("k", 4); err != nil || !reflect.DeepEqual(got, pts) {
			t.Fatalf("History(4) = %q, %v; want %q", got, err, pts)
		}
		if got, err := tx.History("k", 3); err != nil || got != nil {
			t.Fatalf("History(3) = %q, %v; want none", got, err)
		}
		return nil
	})
}

func testSeeds(t *testing.T, open Opener) {
	s := handle(t, open)
	write(t, s, func(tx nodestore.Tx) error { return tx.InsertKey(NewKey("k", 1)) })
	sd := func(peer int, epoch uint32, id string) *nodestore.Seeds {
		return &nodestore.Seeds{Peer: peer, Epoch: epoch, ID: []byte(id), Receiver: []byte("r" + id), Sender: []byte("s" + id)}
	}
	write(t, s, func(tx nodestore.Tx) error {
		for _, x := range []*nodestore.Seeds{sd(2, 0, "a"), sd(0, 0, "b"), sd(2, 0, "c")} { // c replaces a
			if err := tx.PutSeeds("k", x); err != nil {
				return err
			}
		}
		return nil
	})
	seeds := func(epoch uint32) []nodestore.Seeds {
		var out []nodestore.Seeds
		s.Read(ctx, func(tx nodestore.Tx) (err error) { out, err = tx.Seeds("k", epoch); return err })
		return out
	}
	if got, want := seeds(0), []nodestore.Seeds{*sd(0, 0, "b"), *sd(2, 0, "c")}; !reflect.DeepEqual(got, want) {
		t.Fatalf("seeds %+v, want %+v", got, want)
	}
	if len(seeds(1)) != 0 {
		t.Fatal("seeds of another epoch")
	}
	write(t, s, func(tx nodestore.Tx) error { return tx.DeleteSeeds("k", 2, []byte("a")) }) // replaced: nothing
	if len(seeds(0)) != 2 {
		t.Fatal("deleting seeds of an old ID deleted newer ones")
	}
	write(t, s, func(tx nodestore.Tx) error { return tx.DeleteSeeds("k", 2, []byte("c")) })
	if len(seeds(0)) != 1 {
		t.Fatal("the seeds with peer 2 stayed")
	}
	write(t, s, func(tx nodestore.Tx) error { return tx.DeleteSeeds("k", -1, nil) })
	if len(seeds(0)) != 0 {
		t.Fatal("DeleteSeeds(-1) left seeds")
	}
}

func testOwnerNodeKeyPins(t *testing.T, open Opener) {
	s := handle(t, open)
	write(t, s, func(tx nodestore.Tx) error {
		if err := tx.InsertKey(NewKey("k", 2)); err != nil {
			return err
		}
		return tx.SetOwner("k", 2, "id0,id1,id2")
	})
	write(t, s, func(tx nodestore.Tx) error {
		if seed, err := tx.NodeKey(); err != nil || seed != nil {
			return fmt.Errorf("a node key before one was kept: %x, %v", seed, err)
		}
		if err := tx.SetNodeKey([]byte("seed")); err != nil {
			return err
		}
		if err := tx.SetPin("http://a", "one", false); err != nil {
			return err
		}
		if err := tx.SetPin("http://a", "two", false); err != nil { // kept: the first
			return err
		}
		return tx.SetPin("http://b", "three", true)
	})
	if err := s.Write(ctx, func(tx nodestore.Tx) error { return tx.SetNodeKey([]byte("other")) }); !errors.Is(err, nodestore.ErrExists) {
		t.Fatalf("a second node key: %v, want ErrExists", err)
	}
	write(t, s, func(tx nodestore.Tx) error { return tx.SetPin("http://b", "four", true) })
	write(t, s, func(tx nodestore.Tx) error {
		if err := tx.SetBehind("k", 3, "peer-a"); err != nil {
			return err
		}
		return tx.SetBehind("k", 5, "peer-b")
	})
	write(t, s, func(tx nodestore.Tx) error { return tx.SetBehind("k", 4, "peer-c") }) // an earlier epoch: kept as it was
	s.Read(ctx, func(tx nodestore.Tx) error {
		if e, peer, ok, err := tx.Behind("k"); e != 5 || peer != "peer-b" || !ok || err != nil {
			t.Fatalf("Behind = %d %q %v %v, want the latest epoch's", e, peer, ok, err)
		}
		return nil
	})
	write(t, s, func(tx nodestore.Tx) error { return tx.ClearBehind("k") })
	s.Read(ctx, func(tx nodestore.Tx) error {
		if _, _, ok, err := tx.Behind("k"); ok || err != nil {
			t.Fatalf("a cleared key still behind: %v, %v", ok, err)
		}
		return nil
	})
	s.Read(ctx, func(tx nodestore.Tx) error {
		if o, r, ok, err := tx.Owner("k"); o != 2 || r != "id0,id1,id2" || !ok || err != nil {
			t.Fatalf("Owner = %d %q %v %v", o, r, ok, err)
		}
		if _, _, ok, _ := tx.Owner("none"); ok {
			t.Fatal("an owner of no key")
		}
		if _, _, ok, err := tx.Behind("none"); ok || err != nil {
			t.Fatalf("a key behind that was never set: %v, %v", ok, err)
		}
		if seed, err := tx.NodeKey(); string(seed) != "seed" || err != nil {
			t.Fatalf("NodeKey = %q, %v", seed, err)
		}
		for url, want := range map[string]string{"http://a": "one", "http://b": "four"} {
			if id, ok, err := tx.Pin(url); id != want || !ok || err != nil {
				t.Fatalf("Pin(%s) = %q %v %v, want %q", url, id, ok, err, want)
			}
		}
		if _, ok, _ := tx.Pin("http://c"); ok {
			t.Fatal("a pin never set")
		}
		return nil
	})
}

func testWriteIsAtomic(t *testing.T, open Opener) {
	s := handle(t, open)
	mine := errors.New("the caller's error")
	err := s.Write(ctx, func(tx nodestore.Tx) error {
		if err := tx.InsertKey(NewKey("k", 2)); err != nil {
			return err
		}
		return mine
	})
	if err != mine {
		t.Fatalf("Write returned %v, want fn's error as it is", err)
	}
	if _, err := Key(s, "k"); !errors.Is(err, nodestore.ErrNotFound) {
		t.Fatalf("a failed Write left its key: %v", err)
	}
}

func testReadIsReadOnly(t *testing.T, open Opener) {
	s := handle(t, open)
	err := s.Read(ctx, func(tx nodestore.Tx) error { return tx.InsertKey(NewKey("k", 2)) })
	if err == nil {
		t.Fatal("a write through Read succeeded")
	}
	if s.Peek(ctx, func(tx nodestore.Tx) error { return tx.SetPin("u", "id", true) }) == nil {
		t.Fatal("a write through Peek succeeded")
	}
	if _, err := Key(s, "k"); !errors.Is(err, nodestore.ErrNotFound) {
		t.Fatalf("a write through Read stayed: %v", err)
	}
}

func testDurable(t *testing.T, open Opener) {
	s := open()
	write(t, s, func(tx nodestore.Tx) error { return tx.InsertKey(NewKey("k", 2)) })
	if err := s.Scrub(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if got := readKey(t, handle(t, open), "k"); !reflect.DeepEqual(got, NewKey("k", 2)) {
		t.Fatalf("after reopening: %+v", got)
	}
}

// testOnePrepareWins: replicas (handles) that prepare a refresh of one key at once, each
// after seeing none prepared: exactly one wins.
func testOnePrepareWins(t *testing.T, open Opener) {
	a, b := handle(t, open), handle(t, open)
	write(t, a, func(tx nodestore.Tx) error { return tx.InsertKey(NewKey("k", 2)) })
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			s := []nodestore.Store{a, b}[i%2]
			errs[i] = s.Write(ctx, func(tx nodestore.Tx) error {
				if p, err := tx.Pending("k"); err != nil || p != nil {
					return errors.Join(err, nodestore.ErrExists)
				}
				return tx.InsertPending("k", &nodestore.Pending{Session: []byte{byte(i)}, Epoch: 1, Share: []byte("s"), PublicShares: []byte("p")})
			})
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, nodestore.ErrExists):
			t.Fatalf("a losing prepare: %v, want ErrExists", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d prepares won, want 1", won)
	}
}

// testNoLostUpdate: writes of two handles that read a key's epoch and write the next, at
// once: none is lost.
func testNoLostUpdate(t *testing.T, open Opener) {
	a, b := handle(t, open), handle(t, open)
	write(t, a, func(tx nodestore.Tx) error { return tx.InsertKey(NewKey("k", 2)) })
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			s := []nodestore.Store{a, b}[i%2]
			errs <- s.Write(ctx, func(tx nodestore.Tx) error {
				k, err := tx.Key("k")
				if err != nil {
					return err
				}
				return tx.UpdateShare("k", k.Share, k.Epoch+1, k.Threshold, k.PublicShares)
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := readKey(t, b, "k"); got.Epoch != n {
		t.Fatalf("epoch %d after %d increments: updates were lost", got.Epoch, n)
	}
}

func testLease(t *testing.T, open Opener) {
	a, b := handle(t, open), handle(t, open)
	release, err := a.Lease(ctx, "refresh")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if r, err := b.Lease(short, "refresh"); err == nil {
		r()
		t.Fatal("a lease taken twice")
	}
	other, err := b.Lease(ctx, "serve") // another name is another lease
	if err != nil {
		t.Fatal(err)
	}
	other()
	got := make(chan error, 1)
	go func() {
		r, err := b.Lease(ctx, "refresh")
		if err == nil {
			r()
		}
		got <- err
	}()
	time.Sleep(50 * time.Millisecond)
	release()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a released lease was not taken by its waiter")
	}
}

func testAdmit(t *testing.T, open Opener) {
	a, b := handle(t, open), handle(t, open)
	if !a.Shared() {
		if err := a.Admit(ctx, []byte("id"), time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		t.Log("this store is served by one process at a time: it remembers nothing (Admit is nil)")
		return
	}
	later := time.Now().Add(time.Minute)
	if err := a.Admit(ctx, []byte("id"), later); err != nil {
		t.Fatal(err)
	}
	if err := b.Admit(ctx, []byte("id"), later); !errors.Is(err, nodestore.ErrReplay) {
		t.Fatalf("a request served by another replica: %v, want ErrReplay", err)
	}
	if err := b.Admit(ctx, []byte("other"), later); err != nil {
		t.Fatal(err)
	}
	if err := a.Admit(ctx, []byte("old"), time.Now().Add(-10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := b.Admit(ctx, []byte("old"), later); err != nil {
		t.Fatalf("a record long expired was not taken over: %v", err)
	}
	// Just expired by this clock, it may not be by another replica's: still refused.
	if err := a.Admit(ctx, []byte("recent"), time.Now().Add(-2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := b.Admit(ctx, []byte("recent"), later); !errors.Is(err, nodestore.ErrReplay) {
		t.Fatalf("a record expired 2 s ago: %v, want ErrReplay (clocks of replicas differ)", err)
	}
}
