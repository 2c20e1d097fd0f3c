package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestServer: a real PostgreSQL starts, takes a committed write, and still holds it after a
// fast shutdown and after a SIGKILL (its WAL is synced), each time on the same DSN.
func TestServer(t *testing.T) {
	s := Must(t)
	ctx := context.Background()
	exec := func(sql string, args ...any) {
		t.Helper()
		conn, err := pgx.Connect(ctx, s.DSN)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		t.Helper()
		conn, err := pgx.Connect(ctx, s.DSN)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM kept`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	exec(`CREATE TABLE kept (v bytea NOT NULL)`)
	exec(`INSERT INTO kept (v) VALUES ($1)`, []byte("acknowledged"))
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("after a restart: %d rows, want 1", n)
	}
	exec(`INSERT INTO kept (v) VALUES ($1)`, []byte("acknowledged before the kill"))
	s.Kill()
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 2 {
		t.Fatalf("after a SIGKILL: %d rows, want 2", n)
	}
}
