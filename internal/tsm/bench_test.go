package tsm

import (
	"crypto/ed25519"
	"crypto/rand"
	"path/filepath"
	"testing"
)

// The protocols across 3 nodes in one process, each node on its own SQLite file (synced
// writes), beside a plain Ed25519 signature in the same run.

func BenchmarkEd25519Sign(b *testing.B) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := []byte("pay 1 coin to bob")
	for b.Loop() {
		ed25519.Sign(priv, msg)
	}
}

func benchClient(b *testing.B) *EDDSAClient {
	dir := b.TempDir()
	var cfg Config
	for _, n := range []string{"phone.db", "s1.db", "s2.db"} {
		cfg.Nodes = append(cfg.Nodes, NodeConfig{Database: filepath.Join(dir, n)})
	}
	c, err := NewClient(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return NewEDDSAClient(c)
}

func BenchmarkKeyGen3Nodes(b *testing.B) {
	c := benchClient(b)
	for b.Loop() {
		if _, err := c.GenerateKey("bench"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSign3Nodes(b *testing.B) {
	c := benchClient(b)
	id, err := c.GenerateKey("bench")
	if err != nil {
		b.Fatal(err)
	}
	msg := []byte("pay 1 coin to bob")
	for b.Loop() {
		if _, err := c.Sign(id, msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRefresh3Nodes(b *testing.B) {
	c := benchClient(b)
	id, err := c.GenerateKey("bench")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := c.Reshare(id); err != nil {
			b.Fatal(err)
		}
	}
}
