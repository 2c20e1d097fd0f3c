package sqlite

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sharevault/sharevault/internal/nodestore"
	"github.com/sharevault/sharevault/internal/nodestore/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		path := filepath.Join(t.TempDir(), "node.db")
		return func() nodestore.Store {
			s, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	})
}

// TestFile: the file is private, and a schema newer than this code is refused, unchanged.
func TestFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, f := range []string{path, path + "-wal"} {
		if fi, err := os.Stat(f); err == nil && fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s is %v, want 0600", f, fi.Mode().Perm())
		}
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	db.Exec("PRAGMA user_version = 99")
	db.Close()
	if _, err := Open(path, Options{}); !errors.Is(err, nodestore.ErrNewer) {
		t.Fatalf("a newer schema: %v, want ErrNewer", err)
	}
}
