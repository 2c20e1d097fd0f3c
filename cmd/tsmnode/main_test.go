package main

import (
	"bytes"
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sharevault/sharevault/internal/nodestore"
	"github.com/sharevault/sharevault/internal/nodestore/postgres"
	"github.com/sharevault/sharevault/internal/nodestore/storetest"
	"github.com/sharevault/sharevault/internal/pgtest"
	"github.com/sharevault/sharevault/internal/tsm"
)

// TestMove: tsmnode move copies a node's SQLite file into an empty PostgreSQL database, key
// for key, refuses a database that holds a node already, and refuses a file being served.
func TestMove(t *testing.T) {
	pg := pgtest.Must(t)
	dir := t.TempDir()
	dbs := []string{filepath.Join(dir, "phone.db"), filepath.Join(dir, "s1.db"), filepath.Join(dir, "s2.db")}
	var cfg tsm.Config
	for _, d := range dbs {
		cfg.Nodes = append(cfg.Nodes, tsm.NodeConfig{Database: d})
	}
	c, err := tsm.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 3 {
		id, err := tsm.NewEDDSAClient(c).GenerateKey("moved")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := tsm.NewEDDSAClient(c).Reshare(ids[0]); err != nil {
		t.Fatal(err)
	}
	c.Close()
	ctx := context.Background()
	to := pg.Database(t)
	var out bytes.Buffer
	if err := run(ctx, []string{"move", "--from", dbs[1], "--to", to}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "moved 3 keys") {
		t.Fatalf("move said %q", out.String())
	}
	src, err := tsm.OpenStore(dbs[1])
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := postgres.Open(ctx, to)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	for _, id := range ids {
		a, err1 := storetest.Key(src, id)
		b, err2 := storetest.Key(dst, id)
		if err1 != nil || err2 != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("key %s: %v %v\n%+v\n%+v", id, err1, err2, a, b)
		}
	}
	dst.Read(ctx, func(tx nodestore.Tx) error {
		if h, err := tx.History(ids[0], 0); err != nil || len(h) != 3 {
			t.Fatalf("the refreshed key's epoch 0 public shares: %d, %v", len(h), err)
		}
		return nil
	})
	err = run(ctx, []string{"move", "--from", dbs[2], "--to", to}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "must be empty") {
		t.Fatalf("a move into a node's database: %v", err)
	}
	// src, open here, holds the file's "serve" lease, as a running node does.
	err = run(ctx, []string{"move", "--from", dbs[1], "--to", pg.Database(t)}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "stop its tsmnode first") {
		t.Fatalf("a move of a file being served: %v", err)
	}
}
