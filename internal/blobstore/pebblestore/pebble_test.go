package pebblestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/sharevault/sharevault/internal/blobstore"
	"github.com/sharevault/sharevault/internal/blobstore/blobstoretest"
)

func open(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	blobstoretest.Run(t, func(t *testing.T) blobstore.Store { return open(t, t.TempDir()) })
}

func TestReopenKeepsData(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	a, err := s.Put(context.Background(), "kept", bytes.NewReader([]byte("durable")), 7, blobstore.Condition{IfNoneMatch: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dir)
	defer s.Close()
	st, err := s.Stat(context.Background(), "kept")
	if err != nil || st.ETag != a.ETag || st.SHA256 != a.SHA256 {
		t.Fatalf("after reopen: %+v, %v", st, err)
	}
	fi, _ := os.Stat(dir)
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("store directory mode %v, want 0700", fi.Mode().Perm())
	}
}

func TestChecksumCheckedOnRead(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Put(ctx, "x", bytes.NewReader([]byte("hello")), 5, blobstore.Condition{}); err != nil {
		t.Fatal(err)
	}
	v, closer, err := s.db.Get(key("x"))
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(v)
	closer.Close()
	bad[len(bad)-1] ^= 1 // rot one bit of the content
	if err := s.db.Set(key("x"), bad, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "x"); !errors.Is(err, blobstore.ErrCorrupt) {
		t.Fatalf("Get of a rotten value: got %v, want ErrCorrupt", err)
	}
}

// TestLockedByAnotherProcess opens a store held by a child process.
func TestLockedByAnotherProcess(t *testing.T) {
	if dir := os.Getenv("PEBBLESTORE_HOLD"); dir != "" {
		s := open(t, dir)
		os.WriteFile(filepath.Join(dir, "held"), nil, 0o600)
		time.Sleep(30 * time.Second) // killed by the parent long before
		s.Close()
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockedByAnotherProcess$")
	cmd.Env = append(os.Environ(), "PEBBLESTORE_HOLD="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, "held")); err == nil {
			break
		}
		if time.Since(start) > 20*time.Second {
			t.Fatal("child never opened the store")
		}
	}
	_, err := Open(dir)
	if err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("Open of a locked store: got %v, want 'in use by another process'", err)
	}
}

func TestCorruptStore(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	s.Put(context.Background(), "x", bytes.NewReader([]byte("x")), 1, blobstore.Condition{})
	s.Close()
	entries, _ := os.ReadDir(dir)
	manifests := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "MANIFEST") {
			os.WriteFile(filepath.Join(dir, e.Name()), bytes.Repeat([]byte{0xde, 0xad}, 100), 0o600)
			manifests++
		}
	}
	if manifests == 0 {
		t.Fatal("no MANIFEST to corrupt: the test no longer matches Pebble's layout")
	}
	if _, err := Open(dir); err == nil {
		t.Fatal("Open of a corrupt store succeeded")
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, []byte("x"), 0o600)
	if _, err := Open(file); err == nil {
		t.Fatal("Open of a file as a directory succeeded")
	}
}

func BenchmarkPebble(b *testing.B) {
	s := open(b, b.TempDir())
	defer s.Close()
	blobstoretest.Bench(b, s)
}

// TestLazyPutDurableWithNext: a blob written with PutLazy is on disk once a later Put has
// returned, even if the process is killed at once after (no Close, nothing flushed).
func TestLazyPutDurableWithNext(t *testing.T) {
	if dir := os.Getenv("PEBBLESTORE_LAZY"); dir != "" {
		s := open(t, dir)
		ctx := context.Background()
		if _, err := s.PutLazy(ctx, "lazy", strings.NewReader("first"), 5, blobstore.Condition{IfNoneMatch: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(ctx, "synced", strings.NewReader("second"), 6, blobstore.Condition{IfNoneMatch: true}); err != nil {
			t.Fatal(err)
		}
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLazyPutDurableWithNext$")
	cmd.Env = append(os.Environ(), "PEBBLESTORE_LAZY="+dir)
	if out, err := cmd.CombinedOutput(); !strings.Contains(fmt.Sprint(err), "killed") {
		t.Fatalf("child: %v, want killed; output:\n%s", err, out)
	}
	s := open(t, dir)
	defer s.Close()
	for name, want := range map[string]string{"lazy": "first", "synced": "second"} {
		r, err := s.Get(context.Background(), name)
		if err != nil {
			t.Fatalf("%s after the kill: %v", name, err)
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil || string(b) != want {
			t.Errorf("%s after the kill: %q (%v), want %q", name, b, err, want)
		}
	}
	if _, err := s.PutLazy(context.Background(), "lazy", strings.NewReader("again"), 5, blobstore.Condition{IfNoneMatch: true}); !errors.Is(err, blobstore.ErrPreconditionFailed) {
		t.Errorf("create-only PutLazy over a blob: %v, want a failed precondition", err)
	}
}
