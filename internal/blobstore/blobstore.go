// Package blobstore keeps opaque blobs by name: the storage the vault stands on.
//
// A Store is implemented by an embedded Pebble database (pebblestore, the default) and by
// S3 (s3store: AWS, MinIO, Ceph RGW). Both pass the same conformance suite
// (blobstoretest).
//
// # Names
//
// A name is 1 to 512 bytes of A-Z a-z 0-9 . _ - and /, with no empty, "." or ".." path
// segment and no leading or trailing slash. Names sort by their bytes. A name must not
// also be a directory of another ("a/b" beside "a/b/c"): MinIO cannot hold both.
//
// # Errors
//
// Backends map their own errors onto the sentinels below; callers use errors.Is.
package blobstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"
)

// MaxSize is the largest blob a Store accepts.
const MaxSize = 8 << 20

var (
	// ErrNotFound: no blob has that name.
	ErrNotFound = errors.New("blob not found")
	// ErrPreconditionFailed: a conditional Put found the name in another state than the
	// condition asked for.
	ErrPreconditionFailed = errors.New("blob precondition failed")
	// ErrInvalidName: the name breaks the naming rule.
	ErrInvalidName = errors.New("invalid blob name")
	// ErrTooLarge: the blob is over MaxSize.
	ErrTooLarge = errors.New("blob too large")
	// ErrCorrupt: a blob's bytes do not match its stored SHA-256.
	ErrCorrupt = errors.New("blob checksum mismatch")
	// ErrUnavailable: the store did not answer (down, unreachable, overloaded). Retry later.
	ErrUnavailable = errors.New("blob store unavailable")
)

// Attrs describes a stored blob.
type Attrs struct {
	Name     string
	Size     int64
	ETag     string    // opaque; changes with every write
	SHA256   [32]byte  // of the content; zero in List results
	Modified time.Time // when it was written, as the store reports it
}

// Condition makes a Put conditional. The zero value is an unconditional write.
type Condition struct {
	// IfNoneMatch makes the Put create-only: it fails if the name exists.
	IfNoneMatch bool
	// IfMatch, if set, makes the Put replace only the blob with this ETag; it fails if
	// the name is absent or has another ETag.
	IfMatch string
}

// Ordered is implemented by stores whose writes become durable in the order they are made,
// as through one write-ahead log (the embedded store). PutLazy is Put, except that it may
// return before the blob is durable: the blob is durable once any Put begun after PutLazy
// returned has succeeded, and a crash before then may lose it, and nothing else. A caller
// that acknowledges nothing before such a Put returns can spare a disk sync this way.
type Ordered interface {
	PutLazy(ctx context.Context, name string, r io.Reader, size int64, cond Condition) (Attrs, error)
}

// Capacity is implemented by stores that can say how much room they take: used is the bytes
// the store holds on disk, free the bytes still available to it on that disk. A store
// whose room is managed elsewhere (S3: bucket quotas, the provider's limits) does not
// implement it.
type Capacity interface {
	Capacity(ctx context.Context) (used, free int64, err error)
}

// Store keeps blobs. Its methods are safe for concurrent use.
type Store interface {
	// Put stores exactly size bytes read from r under name, if cond holds. It is atomic:
	// readers see the old blob or the whole new one, never a part. It returns only after
	// the blob is durable (synced to disk, or acknowledged by S3). If r fails, gives
	// other than size bytes, or ctx ends before the write, nothing is visible. A failed
	// condition is ErrPreconditionFailed and changes nothing. Put is not idempotent
	// under a condition: repeating a create-only Put fails.
	Put(ctx context.Context, name string, r io.Reader, size int64, cond Condition) (Attrs, error)
	// Get opens a blob for streaming. The Reader fails with ErrCorrupt at the end of
	// the stream (or at once) if the bytes do not match the stored SHA-256. A missing
	// name is ErrNotFound. The caller must Close the Reader.
	Get(ctx context.Context, name string) (*Reader, error)
	// Stat returns a blob's attributes, or ErrNotFound.
	Stat(ctx context.Context, name string) (Attrs, error)
	// List returns up to limit blobs whose names start with prefix and sort after
	// `after` (all if after is empty), in byte order of the name, and whether more
	// follow. A prefix with nothing under it gives an empty page, not an error.
	List(ctx context.Context, prefix, after string, limit int) (page []Attrs, more bool, err error)
	// Delete removes a blob, or returns ErrNotFound. Deleting is idempotent in effect:
	// once it succeeds, the name stays absent until the next Put.
	Delete(ctx context.Context, name string) error
	// Close releases the store, which must not be used after.
	Close() error
}

// Reader streams a blob's content.
type Reader struct {
	Attrs
	io.ReadCloser
}

// ValidName checks a name against the naming rule.
func ValidName(name string) error {
	if len(name) < 1 || len(name) > 512 {
		return fmt.Errorf("%w: length %d", ErrInvalidName, len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' || c == '/') {
			return fmt.Errorf("%w: byte %d", ErrInvalidName, i)
		}
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: empty, . or .. segment", ErrInvalidName)
		}
	}
	return nil
}

// Validate checks a Condition's fields.
func (c Condition) Validate() error {
	if c.IfNoneMatch && c.IfMatch != "" {
		return errors.New("blobstore: a condition has IfNoneMatch and IfMatch")
	}
	return nil
}

// PreparePut does what every backend's Put does first: it checks the name and the
// condition, and reads exactly size bytes from r, with their SHA-256. It fails if r gives
// fewer or more, if size is out of range, or if ctx ends first.
func PreparePut(ctx context.Context, name string, r io.Reader, size int64, cond Condition) ([]byte, [32]byte, error) {
	var sum [32]byte
	if err := ValidName(name); err != nil {
		return nil, sum, err
	}
	if err := cond.Validate(); err != nil {
		return nil, sum, err
	}
	if size < 0 || size > MaxSize {
		return nil, sum, fmt.Errorf("%w: %d bytes", ErrTooLarge, size)
	}
	buf := make([]byte, size+1) // one more, to notice a reader that gives too much
	n, err := io.ReadFull(ctxReader{ctx, r}, buf)
	switch {
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		if int64(n) != size {
			return nil, sum, fmt.Errorf("blobstore: body has %d bytes, want %d", n, size)
		}
	case err != nil:
		return nil, sum, fmt.Errorf("blobstore: reading body: %w", err)
	default:
		return nil, sum, fmt.Errorf("blobstore: body is longer than %d bytes", size)
	}
	if err := ctx.Err(); err != nil {
		return nil, sum, err
	}
	buf = buf[:size]
	return buf, sha256.Sum256(buf), nil
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// NewVerifyingReader wraps a stream that should hold size bytes with the given SHA-256.
// Its Read returns ErrCorrupt instead of io.EOF if they do not match.
func NewVerifyingReader(rc io.ReadCloser, size int64, sum [32]byte) io.ReadCloser {
	return &verifying{rc: rc, want: sum, size: size, h: sha256.New()}
}

type verifying struct {
	rc   io.ReadCloser
	h    hash.Hash
	n    int64
	size int64
	want [32]byte
}

func (v *verifying) Read(p []byte) (int, error) {
	n, err := v.rc.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if err == io.EOF && (v.n != v.size || !bytes.Equal(v.h.Sum(nil), v.want[:])) {
		return n, fmt.Errorf("%w: %d bytes read of %d", ErrCorrupt, v.n, v.size)
	}
	return n, err
}

func (v *verifying) Close() error { return v.rc.Close() }
