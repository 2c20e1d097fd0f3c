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
