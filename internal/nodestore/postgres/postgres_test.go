package postgres

import (
	"context"
	"errors"
	"testing"

	"github.com/sharevault/sharevault/internal/nodestore"
	"github.com/sharevault/sharevault/internal/nodestore/storetest"
	"github.com/sharevault/sharevault/internal/pgtest"
)

func TestConformance(t *testing.T) {
	pg := pgtest.Must(t)
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		dsn := pg.Database(t)
		return func() nodestore.Store {
			s, err := Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	})
}

// TestSchema: replicas starting at once migrate once; a schema newer than this code is
// refused, unchanged.
func TestSchema(t *testing.T) {
	pg := pgtest.Must(t)
	dsn := pg.Database(t)
	ctx := context.Background()
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := Open(ctx, dsn)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().Exec(`UPDATE sharevault_schema SET version = 99`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(ctx, dsn); !errors.Is(err, nodestore.ErrNewer) {
		t.Fatalf("a newer schema: %v, want ErrNewer", err)
	}
}

// TestDurableCommits: every connection commits synchronously, even when the URL asks not to.
func TestDurableCommits(t *testing.T) {
	pg := pgtest.Must(t)
	for url, want := range map[string]string{pg.Database(t): "on", pg.Database(t) + "?synchronous_commit=off": "on",
		pg.Database(t) + "?synchronous_commit=remote_apply": "remote_apply"} {
		s, err := Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		var got string
		err = s.DB().QueryRow(`SHOW synchronous_commit`).Scan(&got)
		s.Close()
		if err != nil || got != want {
			t.Fatalf("%s: synchronous_commit %q, %v; want %q", url, got, err, want)
		}
	}
}
