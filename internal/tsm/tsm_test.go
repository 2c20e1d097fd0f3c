package tsm

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cluster is a phone node and two server nodes, each with its own SQLite file.
type cluster struct {
	t     *testing.T
	dir   string
	phone string
	all   *Client // every node: key generation, reshare, signing, verification
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	dir := t.TempDir()
	c := &cluster{t: t, dir: dir, phone: filepath.Join(dir, "phone.db")}
	c.all = c.open(c.phone, filepath.Join(dir, "server1.db"), filepath.Join(dir, "server2.db"))
	return c
}

func (c *cluster) open(paths ...string) *Client {
	c.t.Helper()
	cfg := Config{ECDSA: ProtocolConfig{EnableShareBackup: true}, EdDSA: ProtocolConfig{EnableShareBackup: true}}
	for _, p := range paths {
		cfg.Nodes = append(cfg.Nodes, NodeConfig{Database: p})
	}
	cl, err := NewClient(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// phoneClient opens the phone node alone, as the app does for backup and restore.
func (c *cluster) phoneClient() *Client { return c.open(c.phone) }

// losePhone closes every client and deletes the phone's database files.
func (c *cluster) losePhone() {
	c.t.Helper()
	if err := c.all.Close(); err != nil {
		c.t.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(c.phone + suffix); err != nil && !os.IsNotExist(err) {
			c.t.Fatal(err)
		}
	}
}

func (c *cluster) reopenAll() {
	c.all = c.open(c.phone, filepath.Join(c.dir, "server1.db"), filepath.Join(c.dir, "server2.db"))
}

// schemeAPI is what the tests need of ECDSAClient and EDDSAClient alike.
type schemeAPI interface {
	ShareBackup
	GenerateKey(description string) (string, error)
	GenerateKeyThreshold(description string, threshold int) (string, error)
	VerifyShare(keyID string) error
	Reshare(keyID string) error
}

func clientFor(s Scheme, c *Client) schemeAPI {
	if s == ECDSA {
		return NewECDSAClient(c)
	}
	return NewEDDSAClient(c)
}

func TestLoseThePhone(t *testing.T) {
	for _, scheme := range []Scheme{ECDSA, EdDSA} {
		t.Run(scheme.String(), func(t *testing.T) {
			c := newCluster(t)
			keyID, err := clientFor(scheme, c.all).GenerateKey("wallet")
			if err != nil {
				t.Fatal(err)
			}
			phone := clientFor(scheme, c.phoneClient())
			before, err := phone.KeyInfo(keyID)
			if err != nil {
				t.Fatal(err)
			}
			backup, err := phone.BackupShare(keyID)
			if err != nil {
				t.Fatal(err)
			}

			c.losePhone()
			if _, err := os.Stat(c.phone); !os.IsNotExist(err) {
				t.Fatalf("phone database still there: %v", err)
			}
			fresh := clientFor(scheme, c.phoneClient())
			if _, err := fresh.KeyInfo(keyID); !errors.Is(err, ErrKeyNotFound) {
				t.Fatalf("fresh node has the key: %v", err)
			}
			restored, err := fresh.RestoreShare(backup)
			if err != nil {
				t.Fatal(err)
			}
			if restored != keyID {
				t.Fatalf("RestoreShare returned %q, want %q", restored, keyID)
			}
			after, err := fresh.KeyInfo(keyID)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("key info after restore:\n got %+v\nwant %+v", after, before)
			}

			c.reopenAll()
			all := clientFor(scheme, c.all)
			if err := all.VerifyShare(keyID); err != nil {
				t.Fatalf("VerifyShare across the nodes after restore: %v", err)
			}
			if scheme == EdDSA {
				msg := []byte("pay 1 coin to bob")
				sig, err := NewEDDSAClient(c.all).Sign(keyID, msg)
				if err != nil {
					t.Fatal(err)
				}
				if !ed25519.Verify(before.PublicKey, msg, sig) {
					t.Fatal("signature from the restored share does not verify")
				}
			}
		})
	}
}

// TestKeysAcrossNodes: after key generation and each refresh, every node's share checks
// against the public shares, the nodes agree on them, the share changes and the key stays.
func TestKeysAcrossNodes(t *testing.T) {
	for _, scheme := range []Scheme{ECDSA, EdDSA} {
		c := newCluster(t)
		sc := clientFor(scheme, c.all)
		keyID, err := sc.GenerateKey("")
		if err != nil {
			t.Fatal(err)
		}
		var prev []byte
		var created time.Time // the key generation's, on every node and in every backup after
		for epoch := 0; epoch < 3; epoch++ {
			var first *keyState
			for i, n := range c.all.nodes {
				k, err := n.key(keyID, scheme)
				if err != nil {
					t.Fatal(err)
				}
				if created.IsZero() {
					created = k.Created
				} else if !k.Created.Equal(created) {
					t.Fatalf("%s epoch %d node %d: created %v, want the key generation's %v", scheme, epoch, i, k.Created, created)
				}
				if err := k.check(); err != nil || int(k.Epoch) != epoch || k.NodeIndex != i || k.Threshold != 2 {
					t.Fatalf("%s epoch %d node %d: %v (epoch %d, index %d, threshold %d)", scheme, epoch, i, err, k.Epoch, k.NodeIndex, k.Threshold)
				}
				if first == nil {
					first = k
				} else if !first.keyShare().Public.Equal(&k.keyShare().Public) {
					t.Fatalf("%s epoch %d: node %d holds other public shares", scheme, epoch, i)
				}
				if i == 0 {
					if bytes.Equal(k.share, prev) {
						t.Fatalf("%s: the refresh kept the phone's share", scheme)
					}
					prev = bytes.Clone(k.share)
				}
			}
			b, err := clientFor(scheme, c.phoneClient()).BackupShare(keyID)
			if err != nil {
				t.Fatal(err)
			}
			if k, err := decodeBackup(b); err != nil || !k.Created.Equal(created) {
				t.Fatalf("%s epoch %d: the backup's created is not the key generation's (%v)", scheme, epoch, err)
			}
			before := first.PublicKey
			if err := sc.Reshare(keyID); err != nil {
				t.Fatal(err)
			}
			if pk, _ := sc.PublicKey(keyID); !bytes.Equal(pk, before) {
				t.Fatalf("%s: the refresh changed the public key", scheme)
			}
		}
	}
}

func TestRefusals(t *testing.T) {
	c := newCluster(t)
	keyID, err := NewEDDSAClient(c.all).GenerateKey("")
	if err != nil {
		t.Fatal(err)
	}
	backup, err := NewEDDSAClient(c.phoneClient()).BackupShare(keyID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewEDDSAClient(c.all).BackupShare(keyID); !errors.Is(err, ErrMultipleNodes) {
		t.Errorf("backup with 3 nodes: got %v, want ErrMultipleNodes", err)
	}
	if _, err := NewEDDSAClient(c.all).RestoreShare(backup); !errors.Is(err, ErrMultipleNodes) {
		t.Errorf("restore with 3 nodes: got %v, want ErrMultipleNodes", err)
	}
	disabled, err := NewClient(Config{Nodes: []NodeConfig{{Database: c.phone}}, ECDSA: ProtocolConfig{EnableShareBackup: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer disabled.Close()
	if _, err := NewEDDSAClient(disabled).BackupShare(keyID); !errors.Is(err, ErrBackupDisabled) {
		t.Errorf("backup with EdDSA backup disabled: got %v, want ErrBackupDisabled", err)
	}
	if _, err := NewEDDSAClient(disabled).RestoreShare(backup); !errors.Is(err, ErrBackupDisabled) {
		t.Errorf("restore with EdDSA backup disabled: got %v, want ErrBackupDisabled", err)
	}
	if _, err := NewECDSAClient(c.phoneClient()).BackupShare(keyID); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("ECDSA backup of an EdDSA key: got %v, want ErrKeyNotFound", err)
	}
	if _, err := NewECDSAClient(c.phoneClient()).RestoreShare(backup); !errors.Is(err, ErrBadBackup) {
		t.Errorf("ECDSA restore of an EdDSA backup: got %v, want ErrBadBackup", err)
	}
	if _, err := NewEDDSAClient(c.phoneClient()).GenerateKey(""); err == nil {
		t.Error("key generation on one node succeeded")
	}
	if _, err := NewClient(Config{}); err == nil {
		t.Error("a client with no nodes was built")
	}
}

func TestStaleEpoch(t *testing.T) {
	c := newCluster(t)
	all := NewEDDSAClient(c.all)
	keyID, _ := all.GenerateKey("")
	old, err := NewEDDSAClient(c.phoneClient()).BackupShare(keyID)
	if err != nil {
		t.Fatal(err)
	}
	if err := all.Reshare(keyID); err != nil {
		t.Fatal(err)
	}
	// The phone still has epoch 1: restoring the epoch-0 backup over it is refused.
	if _, err := NewEDDSAClient(c.phoneClient()).RestoreShare(old); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("restore over a newer share: got %v, want ErrStaleEpoch", err)
	}
	// The phone is lost; the old backup restores into a fresh node, but cannot sign.
	c.losePhone()
	if _, err := NewEDDSAClient(c.phoneClient()).RestoreShare(old); err != nil {
		t.Fatal(err)
	}
	c.reopenAll()
	all = NewEDDSAClient(c.all)
	if err := all.VerifyShare(keyID); !errors.Is(err, ErrStaleEpoch) {
		t.Errorf("VerifyShare: got %v, want ErrStaleEpoch", err)
	}
	if _, err := all.Sign(keyID, []byte("m")); !errors.Is(err, ErrStaleEpoch) {
		t.Errorf("Sign: got %v, want ErrStaleEpoch", err)
	}
}

func TestRestoreExisting(t *testing.T) {
	c := newCluster(t)
	keyID, _ := NewECDSAClient(c.all).GenerateKey("")
	phone := NewECDSAClient(c.phoneClient())
	backup, _ := phone.BackupShare(keyID)
	if id, err := phone.RestoreShare(backup); err != nil || id != keyID {
		t.Fatalf("identical restore: %q, %v; want a no-op", id, err)
	}
	other := newCluster(t)
	k2, _ := NewECDSAClient(other.all).GenerateKey("")
	b2, _ := NewECDSAClient(other.phoneClient()).BackupShare(k2)
	// Same key ID, other content: rename the second key's backup to the first's ID.
	ks, err := decodeBackup(b2)
	if err != nil {
		t.Fatal(err)
	}
	ks.KeyID = keyID
	if _, err := phone.RestoreShare(ks.encode()); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("restore of other content: got %v, want ErrKeyExists", err)
	}
}

// dump returns every row of a node's database, to show a failed restore changed nothing.
func dump(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b strings.Builder
	for _, q := range []string{"SELECT key_id, scheme, epoch, hex(secret_share), hex(public_key), description FROM keys ORDER BY key_id",
		"SELECT key_id, node_index, hex(point) FROM public_shares ORDER BY key_id, node_index", "PRAGMA user_version"} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			rows.Scan(ptrs...)
			fmt.Fprintln(&b, vals...)
		}
		rows.Close()
	}
	return b.String()
}

// rechecksum fixes the checksum of an edited backup, so the consistency checks are
// what must catch the edit.
func rechecksum(b []byte) []byte {
	n := len(b) - sha256.Size
	sum := sha256.Sum256(b[:n])
	return append(b[:n:n], sum[:]...)
}

func TestCorruptBackupsChangeNothing(t *testing.T) {
	c := newCluster(t)
	keyID, _ := NewEDDSAClient(c.all).GenerateKey("kept")
	other, _ := NewEDDSAClient(c.all).GenerateKey("to be restored")
	phone := NewEDDSAClient(c.phoneClient())
	backup, _ := phone.BackupShare(other)
	// Remove `other` from the phone so a restore of it would write.
	c.all.nodes[0].rawExec(t, "DELETE FROM keys WHERE key_id = ?", other)
	idOff := 10 + len(other) // first byte after the key ID
	shareOff := idOff + 5 + 4 + 8
	set := func(i int, v byte) []byte { b := bytes.Clone(backup); b[i] = v; return b }
	flip := func(i int) []byte { b := bytes.Clone(backup); b[i] ^= 1; return b }
	tests := []struct {
		name  string
		input []byte
		want  error
	}{
		{"empty", nil, ErrBadBackup},
		{"truncated", backup[:len(backup)-1], ErrBadBackup},
		{"truncated to the header", backup[:9], ErrBadBackup},
		{"trailing byte", append(bytes.Clone(backup), 0), ErrBadBackup},
		{"bad magic", set(0, 'X'), ErrBadBackup},
		{"version 3", set(4, 3), ErrUnsupportedBackup},
		{"labelled version 1, checksum fixed", rechecksum(set(4, 1)), ErrBadBackup},
		{"threshold 0, checksum fixed", rechecksum(set(idOff+3, 0)), ErrBadBackup},
		{"threshold 3 of 3 players, checksum fixed", rechecksum(set(idOff+3, 3)), ErrBadBackup},
		{"flipped bit", flip(len(backup) / 2), ErrBadBackup},
		{"flipped checksum", flip(len(backup) - 1), ErrBadBackup},
		{"share changed, checksum fixed", rechecksum(flip(shareOff + 5)), ErrBadBackup},
		{"players 40, checksum fixed", rechecksum(set(idOff+2, 40)), ErrBadBackup},
		{"node index changed, checksum fixed", rechecksum(set(idOff+4, 1)), ErrBadBackup},
		{"key ID with a slash, checksum fixed", rechecksum(set(10, '/')), ErrBadBackup},
		{"scheme ECDSA on Ed25519, checksum fixed", rechecksum(set(idOff, 1)), ErrBadBackup},
		{"body length too large", set(5, 0xff), ErrBadBackup},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := dump(t, c.phone)
			_, err := phone.RestoreShare(tc.input)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if after := dump(t, c.phone); after != before {
				t.Fatalf("database changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	if !strings.Contains(dump(t, c.phone), keyID) {
		t.Fatal("the kept key is gone")
	}
	if id, err := phone.RestoreShare(backup); err != nil || id != other {
		t.Fatalf("the intact backup does not restore: %v", err)
	}
}

func TestDatabaseFiles(t *testing.T) {
	c := newCluster(t)
	NewEDDSAClient(c.all).GenerateKey("")
	for _, suffix := range []string{"", "-wal"} {
		fi, err := os.Stat(c.phone + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(c.phone+suffix), fi.Mode().Perm())
		}
	}
	garbage := filepath.Join(c.dir, "garbage.db")
	os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 1000), 0o600)
	if _, err := NewClient(Config{Nodes: []NodeConfig{{Database: garbage}}}); err == nil || !strings.Contains(err.Error(), "garbage.db") {
		t.Errorf("garbage database: got %v, want an error naming the file", err)
	}
	newer := filepath.Join(c.dir, "newer.db")
	db, _ := sql.Open("sqlite", newer)
	db.Exec("PRAGMA user_version = 99")
	db.Close()
	if _, err := NewClient(Config{Nodes: []NodeConfig{{Database: newer}}}); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("newer schema: got %v, want an error", err)
	}
	if _, err := NewClient(Config{Nodes: []NodeConfig{{Database: filepath.Join(c.dir, "no", "such", "dir.db")}}}); err == nil {
		t.Error("a database in a missing directory opened")
	}
}

func FuzzDecodeBackup(f *testing.F) {
	dir := f.TempDir()
	seeds := 0
	for _, scheme := range []Scheme{ECDSA, EdDSA} {
		paths := []string{filepath.Join(dir, scheme.String()+"0.db"), filepath.Join(dir, scheme.String()+"1.db")}
		cl, err := NewClient(Config{Nodes: []NodeConfig{{Database: paths[0]}, {Database: paths[1]}}})
		if err != nil {
			f.Fatal(err)
		}
		keyID, err := clientFor(scheme, cl).GenerateKey("fuzz seed")
		if err != nil {
			f.Fatal(err)
		}
		for _, n := range cl.nodes {
			k, err := n.key(keyID, scheme)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(k.encode())
			seeds++
		}
		cl.Close()
	}
	for _, path := range []string{"testdata/backup-v1.json", "testdata/backup-v2.json"} {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		var file struct{ Vectors []backupVector }
		json.Unmarshal(b, &file)
		for _, v := range file.Vectors {
			raw, _ := hex.DecodeString(v.Backup)
			f.Add(raw)
			seeds++
		}
	}
	if seeds < 10 {
		f.Fatal("no seeds")
	}
	f.Add([]byte("SVTS\x01\x00\x00\x00\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := decodeBackup(b)
		if err != nil {
			return
		}
		if got := k.encode(); !bytes.Equal(got, b) {
			t.Fatalf("decode then encode changed the bytes")
		}
		if binary.BigEndian.Uint32(b[5:9]) == 0 {
			t.Fatal("accepted an empty body")
		}
	})
}
