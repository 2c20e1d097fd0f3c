// Package postgres is the node store on PostgreSQL (github.com/jackc/pgx/v5), for a
// provider's node: several tsmnode replicas over one database are one node. Writes are
// SERIALIZABLE transactions, run again when PostgreSQL says they conflicted, so two
// replicas can never both win the same refresh; a commit is acknowledged only once
// PostgreSQL has it durable (every connection sets synchronous_commit on, or keeps a stronger
// level its URL gives: remote_write, remote_apply). Migrations run at open, one replica at a time (an advisory lock), and are
// versioned in the table sharevault_schema.
package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	neturl "net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sharevault/sharevault/internal/nodestore"
	"github.com/sharevault/sharevault/internal/nodestore/sqlstore"
)

// Store is a node store on a PostgreSQL database.
type Store struct {
	name  string // the database and host, for messages (never the password)
	db    *sql.DB
	swept atomic.Int64 // Unix seconds of this replica's last sweep of expired records of Admit
}

var _ nodestore.Store = (*Store)(nil)

// IsURL tells whether a node's database setting names PostgreSQL (postgres:// or
// postgresql://) rather than a SQLite file.
func IsURL(database string) bool {
	return strings.HasPrefix(database, "postgres://") || strings.HasPrefix(database, "postgresql://")
}

// Open connects to the database at url (postgres://user@host:port/db?…) and brings its
// schema up to date.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("node database: %w", err)
	}
	// A commit is acknowledged once durable: synchronous_commit on for every connection
	// (whatever the server's default), unless the URL asks for one that waits for more.
	switch cfg.RuntimeParams["synchronous_commit"] {
	case "on", "remote_write", "remote_apply":
	default:
		cfg.RuntimeParams["synchronous_commit"] = "on"
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := &Store{db: db, name: "PostgreSQL"}
	if u, err := neturl.Parse(url); err == nil {
		s.name = fmt.Sprintf("PostgreSQL database %s on %s", strings.TrimPrefix(u.Path, "/"), u.Host)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("node database: %w", err)
	}
	return s, nil
}

func (s *Store) String() string { return s.name }

// DB is the database, for moving rows into it (sqlstore.Copy).
func (s *Store) DB() *sql.DB { return s.db }

// lockKey is the advisory lock of a name: one bigint per name, in a space of this schema's.
func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("sharevault node store: " + name))
	return int64(h.Sum64())
}

func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey("migrate")); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS sharevault_schema (version integer NOT NULL)`); err != nil {
		return err
	}
	var v int
	switch err := tx.QueryRowContext(ctx, `SELECT version FROM sharevault_schema`).Scan(&v); {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO sharevault_schema (version) VALUES (0)`); err != nil {
			return err
		}
	case err != nil:
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("%w (version %d; this release knows %d)", nodestore.ErrNewer, v, len(migrations))
	}
	for ; v < len(migrations); v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE sharevault_schema SET version = $1`, v); err != nil {
		return err
	}
	return tx.Commit()
}

// Read is a REPEATABLE READ snapshot: every query of fn sees the same state.
func (s *Store) Read(ctx context.Context, fn func(nodestore.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return sqlstore.Fail(err)
	}
	defer tx.Rollback()
	return fn(sqlstore.Tx{Q: tx, ReadOnly: true})
}

// maxTries bounds how often Write runs fn when its transaction keeps conflicting.
const maxTries = 20

func (s *Store) Write(ctx context.Context, fn func(nodestore.Tx) error) error {
	for try := 1; ; try++ {
		err := s.write(ctx, fn)
		if err == nil || !conflict(err) || try == maxTries {
			return err
		}
		select { // another replica's transaction won: after a moment, again on the new state
		case <-ctx.Done():
			return sqlstore.Fail(ctx.Err())
		case <-time.After(time.Duration(rand.IntN(try*2)+1) * time.Millisecond):
		}
	}
}

func (s *Store) write(ctx context.Context, fn func(nodestore.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable})
	if err != nil {
		return sqlstore.Fail(err)
	}
	defer tx.Rollback()
	if err := fn(sqlstore.Tx{Q: tx}); err != nil {
		return err
	}
	return sqlstore.Fail(tx.Commit())
}

// conflict tells a transaction that lost to a concurrent one: a serialization failure, a
// deadlock, or a unique key that another inserted first (PostgreSQL reports most of those
// as serialization failures too).
func conflict(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01" || pe.Code == "23505")
}

// Peek reads with no transaction: PostgreSQL runs each statement on one snapshot.
func (s *Store) Peek(ctx context.Context, fn func(nodestore.Tx) error) error {
	return fn(sqlstore.Tx{Q: s.db, ReadOnly: true})
}

// Lease is a session-level advisory lock, held on a connection of its own: a replica that
// dies, or loses its connection, loses the lease.
func (s *Store) Lease(ctx context.Context, name string) (func(), error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, sqlstore.Fail(err)
	}
	for {
		var ok bool
		if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, lockKey(name)).Scan(&ok); err != nil {
			conn.Close()
			return nil, sqlstore.Fail(err)
		}
		if ok {
			return func() {
				if _, err := conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, lockKey(name)); err != nil {
					// The connection may still hold the lock: never back to the pool.
					conn.Raw(func(any) error { return driver.ErrBadConn })
				}
				conn.Close()
			}, nil
		}
		select {
		case <-ctx.Done():
			conn.Close()
			return nil, fmt.Errorf("lease %s is held by another replica: %w", name, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// sweepEvery is how often a replica deletes the expired records of Admit; skew is how far
// apart replicas' clocks may be: a record is deleted, or taken over, only that long after it
// expired by this replica's clock, so a replica whose clock is behind still finds it.
const (
	sweepEvery = 10
	skew       = 120
)

// Admit records id in the table served, durably; a record that has expired is taken over.
func (s *Store) Admit(ctx context.Context, id []byte, expires time.Time) error {
	now := time.Now().Unix()
	if last := s.swept.Load(); now-last >= sweepEvery && s.swept.CompareAndSwap(last, now) {
		if _, err := s.db.ExecContext(ctx, `DELETE FROM served WHERE expires < $1`, now-skew); err != nil {
			return sqlstore.Fail(err)
		}
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO served (id, expires) VALUES ($1, $2)
		ON CONFLICT (id) DO UPDATE SET expires = excluded.expires WHERE served.expires < $3`, id, expires.Unix(), now-skew)
	if err != nil {
		return sqlstore.Fail(err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return nodestore.ErrReplay
	}
	return nil
}

func (s *Store) Shared() bool { return true }

// Scrub does nothing: a replaced share stays in PostgreSQL's files (dead tuples, WAL)
// until VACUUM and the WAL's recycling (docs/operations.md, "A node on PostgreSQL").
func (s *Store) Scrub(context.Context) error { return nil }

func (s *Store) Version() int { return len(migrations) }

func (s *Store) Ping(ctx context.Context) error { return sqlstore.Fail(s.db.PingContext(ctx)) }

func (s *Store) Close() error { return s.db.Close() }
