package tsm

// A node persists to its own SQLite database (modernc.org/sqlite: pure Go, no cgo, fit for
// phones). Writes use BEGIN IMMEDIATE and synchronous=FULL in WAL mode, so a committed
// transaction is on disk. The schema is versioned with PRAGMA user_version.

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	_ "modernc.org/sqlite"
)

// migrations[i] takes the schema from version i to i+1. Append only.
var migrations = []string{
	`CREATE TABLE keys (
		key_id       TEXT PRIMARY KEY,
		scheme       INTEGER NOT NULL,
		curve        INTEGER NOT NULL,
		node_index   INTEGER NOT NULL,
		players      INTEGER NOT NULL,
		threshold    INTEGER NOT NULL,
		epoch        INTEGER NOT NULL,
		created      INTEGER NOT NULL,
		secret_share BLOB NOT NULL,
		public_key   BLOB NOT NULL,
		description  TEXT NOT NULL,
		chain_code   BLOB NOT NULL
	) STRICT;
	CREATE TABLE public_shares (
		key_id     TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
		node_index INTEGER NOT NULL,
		point      BLOB NOT NULL,
		PRIMARY KEY (key_id, node_index)
	) STRICT;`,
}

type node struct {
	path string
	db   *sql.DB
}

func openNode(path string) (*node, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("tsm: node database path %q is empty or holds ? or #", path)
	}
	// Create the file 0600 before SQLite does, so it and its -wal and -shm files (which
	// SQLite gives the database file's mode) are private.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("tsm: open node database: %w", err)
	}
	f.Close()
	dsn := path + "?_txlock=immediate&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)" +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("tsm: open node database %s: %w", path, err)
	}
	db.SetMaxOpenConns(1) // one writer per process; readers wait for it rather than fail
	n := &node{path: path, db: db}
	if err := n.migrate(); err != nil {
		db.Close()
		return nil, fmt.Errorf("tsm: node database %s: %w", path, err)
	}
	return n, nil
}

func (n *node) close() error { return n.db.Close() }

func (n *node) migrate() error {
	tx, err := n.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this code knows (%d)", v, len(migrations))
	}
	for ; v < len(migrations); v++ {
		if _, err := tx.Exec(migrations[v]); err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
	}
	if _, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", v)); err != nil {
		return err
	}
	return tx.Commit()
}

// querier is what reads need: the database or a transaction.
type querier interface {
	QueryRow(query string, args ...any) *sql.Row
	Query(query string, args ...any) (*sql.Rows, error)
}

// key reads keyID of the given scheme; another scheme's key is not found.
func (n *node) key(keyID string, scheme Scheme) (*keyState, error) {
	return readKey(n.db, keyID, scheme)
}

func readKey(q querier, keyID string, scheme Scheme) (*keyState, error) {
	k := &keyState{}
	var created int64
	err := q.QueryRow(`SELECT key_id, scheme, curve, node_index, players, threshold, epoch, created,
		secret_share, public_key, description, chain_code FROM keys WHERE key_id = ?`, keyID).Scan(
		&k.KeyID, &k.Scheme, &k.Curve, &k.NodeIndex, &k.Players, &k.Threshold, &k.Epoch, &created,
		&k.share, &k.PublicKey, &k.Description, &k.ChainCode)
	if errors.Is(err, sql.ErrNoRows) || err == nil && k.Scheme != scheme {
		return nil, fmt.Errorf("%w: %s key %q", ErrKeyNotFound, scheme, keyID)
	}
	if err != nil {
		return nil, err
	}
	k.Created = time.Unix(created, 0).UTC()
	rows, err := q.Query(`SELECT node_index, point FROM public_shares WHERE key_id = ? ORDER BY node_index`, keyID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var i int
		var p []byte
		if err := rows.Scan(&i, &p); err != nil {
			return nil, err
		}
		if i != len(k.publicShares) {
			return nil, fmt.Errorf("key %q: public share %d missing", keyID, len(k.publicShares))
		}
		k.publicShares = append(k.publicShares, p)
	}
	return k, rows.Err()
}

func insertKey(tx *sql.Tx, k *keyState) error {
	_, err := tx.Exec(`INSERT INTO keys (key_id, scheme, curve, node_index, players, threshold, epoch,
		created, secret_share, public_key, description, chain_code) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`,
		k.KeyID, k.Scheme, k.Curve, k.NodeIndex, k.Players, k.Threshold, k.Epoch, k.Created.Unix(),
		k.share, k.PublicKey, k.Description, k.ChainCode)
	if err != nil {
		return err
	}
	return insertPublicShares(tx, k.KeyID, k.publicShares)
}

func insertPublicShares(tx *sql.Tx, keyID string, points [][]byte) error {
	for i, p := range points {
		if _, err := tx.Exec(`INSERT INTO public_shares (key_id, node_index, point) VALUES (?,?,?)`, keyID, i, p); err != nil {
			return err
		}
	}
	return nil
}

// updateShare replaces a key's share and public shares and raises its epoch by one, if
// the key is still at epoch `from`.
func updateShare(tx *sql.Tx, keyID string, from uint32, share []byte, points [][]byte) error {
	res, err := tx.Exec(`UPDATE keys SET secret_share = ?, epoch = epoch + 1 WHERE key_id = ? AND epoch = ?`, share, keyID, from)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("key %q changed during the reshare", keyID)
	}
	if _, err := tx.Exec(`DELETE FROM public_shares WHERE key_id = ?`, keyID); err != nil {
		return err
	}
	return insertPublicShares(tx, keyID, points)
}

// restore writes k in one transaction; see schemeClient.RestoreShare for the rules.
func (n *node) restore(k *keyState) error {
	tx, err := n.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	old, err := readKey(tx, k.KeyID, k.Scheme)
	switch {
	case errors.Is(err, ErrKeyNotFound):
		var exists bool // a key of the other scheme with this ID
		if err := tx.QueryRow(`SELECT EXISTS (SELECT 1 FROM keys WHERE key_id = ?)`, k.KeyID).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return fmt.Errorf("%w (as another scheme)", ErrKeyExists)
		}
		if err := insertKey(tx, k); err != nil {
			return err
		}
		return tx.Commit()
	case err != nil:
		return err
	}
	defer old.wipe()
	switch {
	case old.Epoch > k.Epoch:
		return fmt.Errorf("%w (backup at epoch %d, node at %d)", ErrStaleEpoch, k.Epoch, old.Epoch)
	case string(old.encode()) == string(k.encode()):
		return nil // identical: nothing to do
	}
	return ErrKeyExists
}

func (n *node) keyIDs(scheme Scheme) ([]string, error) {
	rows, err := n.db.Query(`SELECT key_id FROM keys WHERE scheme = ? ORDER BY key_id`, scheme)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// writeAll runs fn on every node inside a transaction of its own, then commits them in
// order. An error before the first commit leaves every node unchanged. (Across separate
// databases there is no atomic commit; a failure between two commits is reported.)
func writeAll(nodes []*node, fn func(i int, tx *sql.Tx) error) error {
	txs := make([]*sql.Tx, 0, len(nodes))
	defer func() {
		for _, tx := range txs {
			tx.Rollback() // a no-op after Commit
		}
	}()
	for i, n := range nodes {
		tx, err := n.db.Begin()
		if err != nil {
			return err
		}
		txs = append(txs, tx)
		if err := fn(i, tx); err != nil {
			return err
		}
	}
	for i, tx := range txs {
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("commit on node %d of %d: %w", i+1, len(txs), err)
		}
	}
	return nil
}
