// Package pebblestore is the embedded blobstore.Store: a Pebble database in one directory.
//
// Each blob is one key, "b/" + name, whose value is a small header (format version,
// SHA-256, ETag, write time) followed by the content. Writes go through the WAL with
// pebble.Sync, so Put returns only once the write is on disk (PutLazy: once a later Put
// is). Conditional writes hold a per-name lock across their read-check-write; Pebble's
// LOCK file keeps other processes out of the directory. Get checks the SHA-256 before it
// returns.
package pebblestore

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/sharevault/sharevault/internal/blobstore"
)

const (
	valueVersion = 1
	headerLen    = 1 + 32 + 16 + 8 // version, SHA-256, ETag, write time (Unix ns)
	keyPrefix    = "b/"
)

// Store is a blobstore.Store on Pebble.
type Store struct {
	dir   string
	db    *pebble.DB
	seed  maphash.Seed
	locks [256]sync.Mutex
}

var (
	_ blobstore.Store    = (*Store)(nil)
	_ blobstore.Capacity = (*Store)(nil)
)

// Open opens or creates the store in dir (created 0700). A directory in use by another
// process, or a store Pebble cannot read, is an error; Open never panics.
func Open(dir string) (s *Store, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pebblestore: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil { // also when it existed before
		return nil, fmt.Errorf("pebblestore: %w", err)
	}
	defer func() {
		if p := recover(); p != nil { // Pebble reports some corruption by panicking
			s, err = nil, fmt.Errorf("pebblestore: %s is corrupt: %v", dir, p)
		}
	}()
	// A 16 MiB memtable (docs/performance.md): 64 MiB measured 167 MiB of RSS under load,
	// Pebble's default 4 MiB flushed so often that open-loop p99s doubled; 16 MiB kept
	// RSS at 77 MiB with tails between the two.
	db, err := pebble.Open(dir, &pebble.Options{Logger: logger{}, MemTableSize: 16 << 20})
	if err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EAGAIN) {
			return nil, fmt.Errorf("pebblestore: %s is in use by another process: %w", dir, err)
		}
		return nil, fmt.Errorf("pebblestore: cannot open %s: %w", dir, err)
	}
	return &Store{dir: dir, db: db, seed: maphash.MakeSeed()}, nil
}

// logger sends Pebble's errors to slog and drops its chatter. Fatalf panics rather than
// exit, so Open can turn it into an error.
type logger struct{}

func (logger) Infof(string, ...any) {}
func (logger) Errorf(format string, args ...any) {
	slog.Error("pebble: " + fmt.Sprintf(format, args...))
}
func (logger) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

func (s *Store) lock(name string) *sync.Mutex {
	return &s.locks[maphash.String(s.seed, name)%uint64(len(s.locks))]
}

func key(name string) []byte { return []byte(keyPrefix + name) }

// Put implements blobstore.Store.
func (s *Store) Put(ctx context.Context, name string, r io.Reader, size int64, cond blobstore.Condition) (blobstore.Attrs, error) {
	return s.put(ctx, name, r, size, cond, pebble.Sync)
}

// PutLazy implements blobstore.Ordered: the write goes to the WAL unsynced. Pebble's WAL
// is one log, written in order, and a synced write syncs all of it before its own record
// (a WAL that is rotated away is synced when it is closed), so the next Put makes this
// one durable too. (WAL failover, which would write to a second log, is not configured.)
func (s *Store) PutLazy(ctx context.Context, name string, r io.Reader, size int64, cond blobstore.Condition) (blobstore.Attrs, error) {
	return s.put(ctx, name, r, size, cond, pebble.NoSync)
}

func (s *Store) put(ctx context.Context, name string, r io.Reader, size int64, cond blobstore.Condition, sync *pebble.WriteOptions) (blobstore.Attrs, error) {
	data, sum, err := blobstore.PreparePut(ctx, name, r, size, cond)
	if err != nil {
		return blobstore.Attrs{}, err
	}
	a := blobstore.Attrs{Name: name, Size: size, SHA256: sum, Modified: time.Now().UTC()}
	var tag [16]byte
	rand.Read(tag[:])
	a.ETag = hex.EncodeToString(tag[:])
	val := make([]byte, headerLen, headerLen+len(data))
	val[0] = valueVersion
	copy(val[1:33], sum[:])
	copy(val[33:49], tag[:])
	binary.BigEndian.PutUint64(val[49:], uint64(a.Modified.UnixNano()))
	val = append(val, data...)

	mu := s.lock(name)
	mu.Lock()
	defer mu.Unlock()
	if cond != (blobstore.Condition{}) {
		cur, err := s.Stat(ctx, name)
		switch {
		case errors.Is(err, blobstore.ErrNotFound):
			if cond.IfMatch != "" {
				return blobstore.Attrs{}, blobstore.ErrPreconditionFailed
			}
		case err != nil:
			return blobstore.Attrs{}, err
		case cond.IfNoneMatch || cur.ETag != cond.IfMatch:
			return blobstore.Attrs{}, blobstore.ErrPreconditionFailed
		}
	}
	if err := ctx.Err(); err != nil {
		return blobstore.Attrs{}, err
	}
	if err := s.db.Set(key(name), val, sync); err != nil {
		return blobstore.Attrs{}, fmt.Errorf("pebblestore: put: %w", err)
	}
	return a, nil
}

// get reads a value and its attributes, checking the SHA-256.
func (s *Store) get(name string) (blobstore.Attrs, []byte, error) {
	if err := blobstore.ValidName(name); err != nil {
		return blobstore.Attrs{}, nil, err
	}
	v, closer, err := s.db.Get(key(name))
	if errors.Is(err, pebble.ErrNotFound) {
		return blobstore.Attrs{}, nil, blobstore.ErrNotFound
	}
	if err != nil {
		return blobstore.Attrs{}, nil, fmt.Errorf("pebblestore: get: %w", err)
	}
	defer closer.Close()
	a, err := decodeAttrs(name, v)
	if err != nil {
		return a, nil, err
	}
	data := bytes.Clone(v[headerLen:])
	if sha256.Sum256(data) != a.SHA256 {
		return a, nil, fmt.Errorf("%w: %s", blobstore.ErrCorrupt, name)
	}
	return a, data, nil
}

func decodeAttrs(name string, v []byte) (blobstore.Attrs, error) {
	if len(v) < headerLen || v[0] != valueVersion {
		return blobstore.Attrs{}, fmt.Errorf("%w: %s has a bad header", blobstore.ErrCorrupt, name)
	}
	a := blobstore.Attrs{Name: name, Size: int64(len(v) - headerLen), ETag: hex.EncodeToString(v[33:49]),
		Modified: time.Unix(0, int64(binary.BigEndian.Uint64(v[49:57]))).UTC()}
	copy(a.SHA256[:], v[1:33])
	return a, nil
}

// Get implements blobstore.Store. The content is read and checked before it returns.
func (s *Store) Get(ctx context.Context, name string) (*blobstore.Reader, error) {
	a, data, err := s.get(name)
	if err != nil {
		return nil, err
	}
	return &blobstore.Reader{Attrs: a, ReadCloser: io.NopCloser(bytes.NewReader(data))}, nil
}

// Stat implements blobstore.Store.
func (s *Store) Stat(ctx context.Context, name string) (blobstore.Attrs, error) {
	if err := blobstore.ValidName(name); err != nil {
		return blobstore.Attrs{}, err
	}
	v, closer, err := s.db.Get(key(name))
	if errors.Is(err, pebble.ErrNotFound) {
		return blobstore.Attrs{}, blobstore.ErrNotFound
	}
	if err != nil {
		return blobstore.Attrs{}, fmt.Errorf("pebblestore: stat: %w", err)
	}
	defer closer.Close()
	return decodeAttrs(name, v)
}

// List implements blobstore.Store.
func (s *Store) List(ctx context.Context, prefix, after string, limit int) ([]blobstore.Attrs, bool, error) {
	if limit < 1 {
		return nil, false, errors.New("pebblestore: list limit must be positive")
	}
	lower := key(prefix)
	if after != "" && after >= prefix {
		lower = append(key(after), 0) // the first key after `after`
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(key(prefix))})
	if err != nil {
		return nil, false, fmt.Errorf("pebblestore: list: %w", err)
	}
	defer it.Close()
	var page []blobstore.Attrs
	for ok := it.First(); ok; ok = it.Next() {
		if len(page) == limit {
			return page, true, nil
		}
		name := string(it.Key()[len(keyPrefix):])
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, false, fmt.Errorf("pebblestore: list: %w", err)
		}
		a, err := decodeAttrs(name, v)
		if err != nil {
			return nil, false, err
		}
		a.SHA256 = [32]byte{} // List leaves it zero, as every backend does
		page = append(page, a)
	}
	return page, false, it.Error()
}

// prefixEnd returns the smallest key above every key that starts with p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// Delete implements blobstore.Store.
func (s *Store) Delete(ctx context.Context, name string) error {
	mu := s.lock(name)
	mu.Lock()
	defer mu.Unlock()
	if _, err := s.Stat(ctx, name); err != nil {
		return err
	}
	if err := s.db.Delete(key(name), pebble.Sync); err != nil {
		return fmt.Errorf("pebblestore: delete: %w", err)
	}
	return nil
}

// Close implements blobstore.Store.
// Capacity returns Pebble's disk space usage and the space left on the directory's
// file system for an unprivileged writer. Pebble counts the live WAL at the size it had
// when it was opened; what was written to it since (its logical size past that) is added.
func (s *Store) Capacity(ctx context.Context) (used, free int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.dir, &st); err != nil {
		return 0, 0, fmt.Errorf("pebblestore: %w", err)
	}
	m := s.db.Metrics()
	used = int64(m.DiskSpaceUsage())
	if m.WAL.Size > m.WAL.PhysicalSize {
		used += int64(m.WAL.Size - m.WAL.PhysicalSize)
	}
	return used, int64(st.Bavail) * st.Bsize, nil
}

// Flush writes what Pebble holds in memory to its tables, so that its write-ahead log
// of those writes can go (the vault does so when the store looks full).
func (s *Store) Flush() error { return s.db.Flush() }

func (s *Store) Close() error { return s.db.Close() }
