// Package blobstoretest is the conformance suite every blobstore.Store passes, and the
// benchmarks every backend runs (as gocloud's drivertest and restic's backend suite).
package blobstoretest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sharevault/sharevault/internal/blobstore"
)

// Run runs the suite. newStore returns an empty store for one subtest.
func Run(t *testing.T, newStore func(t *testing.T) blobstore.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s blobstore.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"NotFound", testNotFound},
		{"CreateOnly", testCreateOnly},
		{"ConcurrentCreateOnly", testConcurrentCreateOnly},
		{"CompareAndSwap", testCompareAndSwap},
		{"NoLostUpdate", testNoLostUpdate},
		{"Overwrite", testOverwrite},
		{"List", testList},
		{"Delete", testDelete},
		{"CancelMidUpload", testCancelMidUpload},
		{"BadBodies", testBadBodies},
		{"InvalidNames", testInvalidNames},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

var ctx = context.Background()

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func put(t *testing.T, s blobstore.Store, name string, data []byte, cond blobstore.Condition) (blobstore.Attrs, error) {
	t.Helper()
	return s.Put(ctx, name, bytes.NewReader(data), int64(len(data)), cond)
}

func mustPut(t *testing.T, s blobstore.Store, name string, data []byte, cond blobstore.Condition) blobstore.Attrs {
	t.Helper()
	a, err := put(t, s, name, data, cond)
	if err != nil {
		t.Fatalf("Put(%s, %d bytes): %v", name, len(data), err)
	}
	return a
}

// read returns a blob's content and attributes.
func read(t *testing.T, s blobstore.Store, name string) ([]byte, blobstore.Attrs) {
	t.Helper()
	r, err := s.Get(ctx, name)
	if err != nil {
		t.Fatalf("Get(%s): %v", name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading %s: %v", name, err)
	}
	return b, r.Attrs
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got %v, want %v", what, err, want)
	}
}

func testRoundTrip(t *testing.T, s blobstore.Store) {
	for _, n := range []int{0, 1, 4 << 10, 1 << 20, blobstore.MaxSize} {
		name := "round/trip-" + strconv.Itoa(n)
		data := random(n)
		a := mustPut(t, s, name, data, blobstore.Condition{IfNoneMatch: true})
		if a.Size != int64(n) || a.SHA256 != sha256.Sum256(data) || a.ETag == "" || a.Name != name {
			t.Errorf("Put attrs %+v do not describe %d bytes", a, n)
		}
		got, ga := read(t, s, name)
		if !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: Get returned other bytes", n)
		}
		st, err := s.Stat(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range []blobstore.Attrs{ga, st} {
			if x.Size != a.Size || x.ETag != a.ETag || x.SHA256 != a.SHA256 || x.Name != name {
				t.Errorf("%d bytes: attrs %+v, want size, ETag and SHA-256 of %+v", n, x, a)
			}
			if d := time.Since(x.Modified); d < -time.Minute || d > time.Hour {
				t.Errorf("%d bytes: modified %v is not about now", n, x.Modified)
			}
		}
	}
}

func testNotFound(t *testing.T, s blobstore.Store) {
	_, err := s.Get(ctx, "no/such/blob")
	wantErr(t, "Get", err, blobstore.ErrNotFound)
	_, err = s.Stat(ctx, "no/such/blob")
	wantErr(t, "Stat", err, blobstore.ErrNotFound)
	wantErr(t, "Delete", s.Delete(ctx, "no/such/blob"), blobstore.ErrNotFound)
	_, err = put(t, s, "no/such/blob", []byte("x"), blobstore.Condition{IfMatch: "0123456789abcdef0123456789abcdef"})
	wantErr(t, "Put If-Match on a missing blob", err, blobstore.ErrPreconditionFailed)
	if _, err := s.Stat(ctx, "no/such/blob"); !errors.Is(err, blobstore.ErrNotFound) {
		t.Errorf("a failed If-Match Put created the blob: %v", err)
	}
	page, more, err := s.List(ctx, "no/such/", "", 10)
	if err != nil || len(page) != 0 || more {
		t.Errorf("List of an empty prefix: %v, %v, %v", page, more, err)
	}
}

func testCreateOnly(t *testing.T, s blobstore.Store) {
	first := mustPut(t, s, "create/only", []byte("first"), blobstore.Condition{IfNoneMatch: true})
	_, err := put(t, s, "create/only", []byte("second"), blobstore.Condition{IfNoneMatch: true})
	wantErr(t, "second create-only Put", err, blobstore.ErrPreconditionFailed)
	got, a := read(t, s, "create/only")
	if string(got) != "first" || a.ETag != first.ETag {
		t.Errorf("after a failed create: %q, ETag %s; want first, %s", got, a.ETag, first.ETag)
	}
}

// testConcurrentCreateOnly: 64 create-only writers of one name, exactly one wins.
func testConcurrentCreateOnly(t *testing.T, s blobstore.Store) {
	const writers = 64
	var wins atomic.Int32
	var winner atomic.Value
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	start := make(chan struct{})
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			data := []byte("writer " + strconv.Itoa(i))
			_, err := s.Put(ctx, "race/one", bytes.NewReader(data), int64(len(data)), blobstore.Condition{IfNoneMatch: true})
			switch {
			case err == nil:
				wins.Add(1)
				winner.Store(string(data))
			case !errors.Is(err, blobstore.ErrPreconditionFailed):
				errs <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a losing writer got %v, want ErrPreconditionFailed", err)
	}
	if n := wins.Load(); n != 1 {
		t.Fatalf("%d writers won, want exactly 1", n)
	}
	if got, _ := read(t, s, "race/one"); string(got) != winner.Load().(string) {
		t.Errorf("stored %q, but the winner wrote %q", got, winner.Load())
	}
}

func testCompareAndSwap(t *testing.T, s blobstore.Store) {
	a := mustPut(t, s, "cas", []byte("v1"), blobstore.Condition{IfNoneMatch: true})
	b := mustPut(t, s, "cas", []byte("v2"), blobstore.Condition{IfMatch: a.ETag})
	if b.ETag == a.ETag {
		t.Errorf("ETag did not change on write")
	}
	_, err := put(t, s, "cas", []byte("v3"), blobstore.Condition{IfMatch: a.ETag})
	wantErr(t, "Put with a stale ETag", err, blobstore.ErrPreconditionFailed)
	if got, _ := read(t, s, "cas"); string(got) != "v2" {
		t.Errorf("after a stale CAS: %q, want v2", got)
	}
}

// testNoLostUpdate: concurrent read-modify-write increments under If-Match; every
// increment must survive.
func testNoLostUpdate(t *testing.T, s blobstore.Store) {
	const workers, each = 8, 10
	mustPut(t, s, "counter", []byte("0"), blobstore.Condition{IfNoneMatch: true})
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done := 0; done < each; {
				r, err := s.Get(ctx, "counter")
				if err != nil {
					errs <- err
					return
				}
				b, err := io.ReadAll(r)
				r.Close()
				if err != nil {
					errs <- err
					return
				}
				n, _ := strconv.Atoi(string(b))
				next := []byte(strconv.Itoa(n + 1))
				_, err = s.Put(ctx, "counter", bytes.NewReader(next), int64(len(next)), blobstore.Condition{IfMatch: r.ETag})
				switch {
				case err == nil:
					done++
				case !errors.Is(err, blobstore.ErrPreconditionFailed):
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got, _ := read(t, s, "counter"); string(got) != strconv.Itoa(workers*each) {
		t.Fatalf("counter is %s after %d increments: an update was lost", got, workers*each)
	}
}

func testOverwrite(t *testing.T, s blobstore.Store) {
	a := mustPut(t, s, "over", []byte("one"), blobstore.Condition{})
	b := mustPut(t, s, "over", []byte("two"), blobstore.Condition{})
	if got, ga := read(t, s, "over"); string(got) != "two" || ga.ETag != b.ETag || a.ETag == b.ETag {
		t.Errorf("unconditional overwrite: %q", got)
	}
}

func testList(t *testing.T, s blobstore.Store) {
	var names []string
	for i := range 23 {
		names = append(names, fmt.Sprintf("list/k%02d", i))
	}
	names = append(names, "list/k05x/child", "list/k1", "listx", "lis")
	shuffled := slices.Clone(names)
	for i := range shuffled { // put in random order
		j, _ := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		shuffled[i], shuffled[j.Int64()] = shuffled[j.Int64()], shuffled[i]
	}
	for _, n := range shuffled {
		mustPut(t, s, n, []byte(n), blobstore.Condition{})
	}
	var want []string
	for _, n := range names {
		if len(n) >= 5 && n[:5] == "list/" {
			want = append(want, n)
		}
	}
	slices.Sort(want)
	for _, limit := range []int{1, 3, 7, 100} {
		var got []string
		after := ""
		for pages := 0; ; pages++ {
			page, more, err := s.List(ctx, "list/", after, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > limit || pages > len(want) {
				t.Fatalf("limit %d: page of %d, or too many pages", limit, len(page))
			}
			for _, a := range page {
				got = append(got, a.Name)
				if a.Size != int64(len(a.Name)) || a.ETag == "" {
					t.Errorf("List attrs %+v", a)
				}
			}
			if !more {
				break
			}
			after = page[len(page)-1].Name
		}
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: listed\n %v\nwant\n %v", limit, got, want)
		}
	}
	page, _, err := s.List(ctx, "list/k1", "list/k10", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) == 0 || page[0].Name != "list/k11" {
		t.Errorf("List after list/k10 starts at %v, want list/k11", page)
	}
}

func testDelete(t *testing.T, s blobstore.Store) {
	mustPut(t, s, "del/a", []byte("a"), blobstore.Condition{})
	mustPut(t, s, "del/b", []byte("b"), blobstore.Condition{})
	if err := s.Delete(ctx, "del/a"); err != nil {
		t.Fatal(err)
	}
	_, err := s.Get(ctx, "del/a")
	wantErr(t, "Get after Delete", err, blobstore.ErrNotFound)
	wantErr(t, "second Delete", s.Delete(ctx, "del/a"), blobstore.ErrNotFound)
	if got, _ := read(t, s, "del/b"); string(got) != "b" {
		t.Error("Delete removed a neighbour")
	}
	mustPut(t, s, "del/a", []byte("again"), blobstore.Condition{IfNoneMatch: true})
}

// blockingReader gives half of its bytes, then blocks until ctx ends.
type blockingReader struct {
	ctx  context.Context
	data []byte
	sent chan struct{}
	once sync.Once
}

func (r *blockingReader) Read(p []byte) (int, error) {
	if len(r.data) > 0 {
		n := copy(p, r.data)
		r.data = r.data[n:]
		return n, nil
	}
	r.once.Do(func() { close(r.sent) })
	<-r.ctx.Done()
	return 0, r.ctx.Err()
}

func testCancelMidUpload(t *testing.T, s blobstore.Store) {
	cctx, cancel := context.WithCancel(ctx)
	r := &blockingReader{ctx: cctx, data: random(64 << 10), sent: make(chan struct{})}
	errc := make(chan error, 1)
	go func() {
		_, err := s.Put(cctx, "cancel/me", r, 128<<10, blobstore.Condition{IfNoneMatch: true})
		errc <- err
	}()
	<-r.sent
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("Put succeeded after its context was cancelled mid-upload")
	}
	_, err := s.Stat(ctx, "cancel/me")
	wantErr(t, "Stat after a cancelled upload", err, blobstore.ErrNotFound)
	// A Put whose context is already done writes nothing either.
	_, err = s.Put(cctx, "cancel/me", bytes.NewReader([]byte("x")), 1, blobstore.Condition{})
	if err == nil {
		t.Fatal("Put with a cancelled context succeeded")
	}
	_, err = s.Stat(ctx, "cancel/me")
	wantErr(t, "Stat after a Put with a cancelled context", err, blobstore.ErrNotFound)
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func testBadBodies(t *testing.T, s blobstore.Store) {
	cases := []struct {
		name string
		r    io.Reader
		size int64
	}{
		{"short", bytes.NewReader([]byte("abc")), 4},
		{"long", bytes.NewReader([]byte("abcde")), 4},
		{"failing", failingReader{}, 4},
		{"negative size", bytes.NewReader(nil), -1},
		{"over MaxSize", bytes.NewReader(nil), blobstore.MaxSize + 1},
	}
	for _, c := range cases {
		if _, err := s.Put(ctx, "bad/"+c.name[:4], c.r, c.size, blobstore.Condition{}); err == nil {
			t.Errorf("%s body: Put succeeded", c.name)
		}
		_, err := s.Stat(ctx, "bad/"+c.name[:4])
		wantErr(t, c.name+" body left a blob", err, blobstore.ErrNotFound)
	}
	_, err := s.Put(ctx, "bad/over", bytes.NewReader(nil), blobstore.MaxSize+1, blobstore.Condition{})
	wantErr(t, "over MaxSize", err, blobstore.ErrTooLarge)
	_, err = s.Put(ctx, "bad/cond", bytes.NewReader(nil), 0, blobstore.Condition{IfNoneMatch: true, IfMatch: "x"})
	if err == nil {
		t.Error("a Put with both conditions succeeded")
	}
}

func testInvalidNames(t *testing.T, s blobstore.Store) {
	for _, name := range []string{"", "/abs", "trailing/", "a//b", "../up", "a/../b", "./a", "sp ace", "nul\x00", "é", string(make([]byte, 513))} {
		_, err := put(t, s, name, []byte("x"), blobstore.Condition{})
		wantErr(t, fmt.Sprintf("Put(%q)", name), err, blobstore.ErrInvalidName)
		_, err = s.Get(ctx, name)
		wantErr(t, fmt.Sprintf("Get(%q)", name), err, blobstore.ErrInvalidName)
	}
}

// Bench runs Put and Get at 4 KiB and 1 MiB, serial and parallel, on one store.
func Bench(b *testing.B, s blobstore.Store) {
	for _, size := range []int{4 << 10, 1 << 20} {
		data := random(size)
		label := fmt.Sprintf("%dKiB", size>>10)
		var seq atomic.Int64
		b.Run("Put/"+label+"/serial", func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				benchPut(b, s, fmt.Sprintf("bench/%s/%d", label, seq.Add(1)), data)
			}
		})
		b.Run("Put/"+label+"/parallel", func(b *testing.B) {
			b.SetBytes(int64(size))
			b.SetParallelism(8) // 8 x GOMAXPROCS writers
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					benchPut(b, s, fmt.Sprintf("bench/%s/%d", label, seq.Add(1)), data)
				}
			})
		})
		name := "bench/get/" + label
		benchPut(b, s, name, data)
		b.Run("Get/"+label+"/serial", func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				benchGet(b, s, name)
			}
		})
		b.Run("Get/"+label+"/parallel", func(b *testing.B) {
			b.SetBytes(int64(size))
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					benchGet(b, s, name)
				}
			})
		})
	}
}

func benchPut(b *testing.B, s blobstore.Store, name string, data []byte) {
	if _, err := s.Put(ctx, name, bytes.NewReader(data), int64(len(data)), blobstore.Condition{IfNoneMatch: true}); err != nil {
		b.Fatal(err)
	}
}

func benchGet(b *testing.B, s blobstore.Store, name string) {
	r, err := s.Get(ctx, name)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		b.Fatal(err)
	}
	r.Close()
}
