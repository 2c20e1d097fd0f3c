// Package sqlite is the node store on one SQLite file (modernc.org/sqlite: pure Go, no cgo,
// fit for phones): the phone's embedded node, and a node service of one process. Writes
// use BEGIN IMMEDIATE and synchronous=FULL in WAL mode, so a committed transaction is on
// disk; secure_delete overwrites what a write frees, and Scrub checkpoints the WAL, so a
// replaced share leaves the files. The schema is versioned with PRAGMA user_version.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"

	"github.com/sharevault/sharevault/internal/nodestore"
	"github.com/sharevault/sharevault/internal/nodestore/sqlstore"
)

// Options are what opening a store may need of its caller.
type Options struct {
	// ConvertAdditive rewrites, in the migration to version 2, every key of a version 1
	// file (additive n-of-n shares) as the Shamir share it is equivalent to: the TSM's
	// arithmetic, which a store does not know. Nil refuses a version 1 file holding keys.
	ConvertAdditive func(nodestore.Tx) error
	// Serve takes the store's "serve" lease before anything is read or migrated, failing at
	// once if another process holds it, and keeps it until Close: the file is served by this
	// process alone (a node service; tsmnode move).
	Serve bool
}

// ErrServed: Options.Serve, and another process serves the file.
var ErrServed = errors.New("another process serves this node database")

// Store is a node store on one SQLite file.
type Store struct {
	path     string
	db       *sql.DB
	prepared map[string]*sql.Stmt
	release  func() // the "serve" lease, with Options.Serve
}

var _ nodestore.Store = (*Store)(nil)

// Open opens (creating it 0600) the SQLite file at path and brings its schema up to date.
func Open(path string, opts Options) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("node database path %q is empty or holds ? or #", path)
	}
	// Create the file 0600 before SQLite does, so it and its -wal and -shm files (which
	// SQLite gives the database file's mode) are private.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open node database: %w", err)
	}
	f.Close()
	s := &Store{path: path, prepared: map[string]*sql.Stmt{}}
	if opts.Serve {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		release, err := s.Lease(ctx, "serve")
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w: %s", ErrServed, path)
		}
		if err != nil {
			return nil, err
		}
		s.release = release
	}
	dsn := path + "?_txlock=immediate&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)" +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=secure_delete(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open node database %s: %w", path, err)
	}
	db.SetMaxOpenConns(1) // one writer per process; readers wait for it rather than fail
	s.db = db
	if err := s.migrate(opts); err != nil {
		s.Close()
		return nil, fmt.Errorf("node database %s: %w", path, err)
	}
	// SQLite's parser costs more than reading a key: the hot queries are prepared once.
	// (Preparing later would need a second connection, which a transaction holding the one
	// does not leave.)
	for _, q := range sqlstore.Hot {
		st, err := db.Prepare(q)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("node database %s: %w", path, err)
		}
		s.prepared[q] = st
	}
	return s, nil
}

// DB is the database, for moving its rows to another store (sqlstore.Copy).
func (s *Store) DB() *sql.DB { return s.db }

func (s *Store) String() string { return s.path }

func (s *Store) migrate(opts Options) error {
	tx, err := s.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("%w (version %d; this release knows %d)", nodestore.ErrNewer, v, len(migrations))
	}
	for ; v < len(migrations); v++ {
		if err := migrations[v](tx, opts); err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
	}
	if _, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", v)); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *Store) tx(tx *sql.Tx) sqlstore.Tx {
	return sqlstore.Tx{Q: tx, Stmt: func(q string) *sql.Stmt {
		if st := s.prepared[q]; st != nil {
			return tx.Stmt(st)
		}
		return nil
	}}
}

func (s *Store) Read(ctx context.Context, fn func(nodestore.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true}) // a deferred BEGIN: no write lock
	if err != nil {
		return sqlstore.Fail(err)
	}
	defer tx.Rollback()
	t := s.tx(tx)
	t.ReadOnly = true
	return fn(t)
}

// Write runs fn once: BEGIN IMMEDIATE takes the write lock first, so writes never conflict.
func (s *Store) Write(ctx context.Context, fn func(nodestore.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return sqlstore.Fail(err)
	}
	defer tx.Rollback()
	if err := fn(s.tx(tx)); err != nil {
		return err
	}
	return sqlstore.Fail(tx.Commit())
}

// Peek reads with no transaction: SQLite reads each statement from one snapshot.
func (s *Store) Peek(ctx context.Context, fn func(nodestore.Tx) error) error {
	return fn(sqlstore.Tx{Q: s.db, Stmt: func(q string) *sql.Stmt { return s.prepared[q] }, ReadOnly: true})
}

// Lease is an exclusive flock on a file beside the database ("<path>.lock" for "refresh",
// "<path>.<name>.lock" for others), which a crash releases.
func (s *Store) Lease(ctx context.Context, name string) (func(), error) {
	file := s.path + ".lock"
	if name != "refresh" {
		file = s.path + "." + name + ".lock"
	}
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lease %s: %w", name, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lease %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lease %s of %s is held by another process: %w", name, s.path, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Admit keeps nothing: one process serves a SQLite store (a node service opens it with
// Options.Serve), and that process remembers what it served.
func (s *Store) Admit(context.Context, []byte, time.Time) error { return nil }

func (s *Store) Shared() bool { return false }

func (s *Store) Scrub(ctx context.Context) error {
	_, err := s.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	return sqlstore.Fail(err)
}

func (s *Store) Version() int { return len(migrations) }

func (s *Store) Ping(ctx context.Context) error { return sqlstore.Fail(s.db.PingContext(ctx)) }

func (s *Store) Close() error {
	for _, st := range s.prepared {
		st.Close()
	}
	var err error
	if s.db != nil {
		err = s.db.Close()
	}
	if s.release != nil {
		s.release()
	}
	return err
}
