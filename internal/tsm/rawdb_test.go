package tsm

import (
	"database/sql"
	"testing"
)

// rawExec runs q on node n's SQLite file through a connection of its own (a test that
// tampers with what a node keeps, as someone with the file would).
func (n *node) rawExec(t testing.TB, q string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite", n.name+"?_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatal(err)
	}
}
