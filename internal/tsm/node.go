package tsm

// A node persists to its own SQLite database (modernc.org/sqlite: pure Go, no cgo, fit for
// phones). Writes use BEGIN IMMEDIATE and synchronous=FULL in WAL mode, so a committed
// transaction is on disk; secure_delete overwrites what a write frees, and a refresh ends
// with a WAL checkpoint, so a replaced share leaves the files. The schema is versioned with
// PRAGMA user_version.

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"modernc.org/sqlite"
)

// migrations[i] takes the schema from version i to i+1. Append only.
var migrations = []func(tx *sql.Tx) error{
	sqlMigration(`CREATE TABLE keys (
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
	) STRICT;`),
	// Version 2: threshold keys. Every v1 key (additive n-of-n) becomes the Shamir share of
	// degree n−1 it is equivalent to (protocol.FromAdditive), and a refresh keeps its next
	// share in pending until every node has it.
	func(tx *sql.Tx) error {
		if _, err := tx.Exec(`CREATE TABLE pending (
			key_id        TEXT PRIMARY KEY REFERENCES keys(key_id) ON DELETE CASCADE,
			session       BLOB NOT NULL,
			epoch         INTEGER NOT NULL,
			secret_share  BLOB NOT NULL,
			public_shares BLOB NOT NULL
		) STRICT`); err != nil {
			return err
		}
		return convertAdditive(tx)
	},
	// Version 3: the node's long-term identity (NodeKey), for nodes that keep it in their
	// database (embedded ones; a service may keep it in a file instead).
	sqlMigration(`CREATE TABLE node_key (
		id   INTEGER PRIMARY KEY CHECK (id = 1),
		seed BLOB NOT NULL
	) STRICT`),
	// Version 4: which party of a key coordinated its generation (the phone's place): a node
	// serving remote coordinators takes steps on the key from that party alone. Keys without
	// a row (embedded, or from before) have the phone at index 0.
	sqlMigration(`CREATE TABLE key_owner (
		key_id TEXT PRIMARY KEY REFERENCES keys(key_id) ON DELETE CASCADE,
		owner  INTEGER NOT NULL
	) STRICT`),
	// Version 5: the public shares of a key's earlier epochs (public points, kept at each
	// refresh's commit), so that a node checks a proof from an older epoch before it says
	// the share is stale; and the node IDs a phone pinned for its server nodes' URLs.
	sqlMigration(`CREATE TABLE public_share_history (
		key_id     TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
		epoch      INTEGER NOT NULL,
		node_index INTEGER NOT NULL,
		point      BLOB NOT NULL,
		PRIMARY KEY (key_id, epoch, node_index)
	) STRICT;
	CREATE TABLE node_pins (
		url     TEXT PRIMARY KEY,
		node_id TEXT NOT NULL
	) STRICT`),
	// Version 6: the refresh sessions a node has finished and how (a session is used once,
	// so no replay of its steps prepares it again; the decider's outcome is what the other
	// parties follow), and for a prepared refresh the node ID of its decider, whose signed
	// word a switch or discard of it needs.
	sqlMigration(`CREATE TABLE refresh_done (
		key_id  TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
		session BLOB NOT NULL,
		outcome INTEGER NOT NULL CHECK (outcome IN (1, 2)),
		PRIMARY KEY (key_id, session)
	) STRICT;
	ALTER TABLE pending ADD COLUMN decider TEXT NOT NULL DEFAULT '';
	ALTER TABLE key_owner ADD COLUMN roster TEXT NOT NULL DEFAULT ''`),
	// Version 7: threshold ECDSA's OT seeds, with each other party of a key, as made at the
	// key's epoch (a refresh deletes them; a backup never holds them: docs/tsm-backup.md).
	sqlMigration(`CREATE TABLE ecdsa_seeds (
		key_id   TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
		peer     INTEGER NOT NULL,
		epoch    INTEGER NOT NULL,
		seeds_id BLOB NOT NULL,
		receiver BLOB NOT NULL,
		sender   BLOB NOT NULL,
		PRIMARY KEY (key_id, peer)
	) STRICT`),
}

// readRoster returns the node IDs of a key's parties as its generation named them, by
// identifier (nil for a key from before they were kept, or on a node without an owner row).
func readRoster(q querier, keyID string) ([]NodeID, error) {
	var r string
	err := q.QueryRow(`SELECT roster FROM key_owner WHERE key_id = ?`, keyID).Scan(&r)
	if errors.Is(err, sql.ErrNoRows) || err == nil && r == "" {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []NodeID
	for _, f := range strings.Split(r, ",") {
		id, err := ParseNodeID(f)
		if err != nil {
			return nil, fmt.Errorf("key %q: its roster: %w", keyID, err)
		}
		out = append(out, id)
	}
	return out, nil
}

// Outcomes of a refresh session on a node (StepResult.Done).
const (
	Committed uint8 = 1
	Aborted   uint8 = 2
)

// errSessionOver: a refresh session this node committed or aborted is not run again.
var errSessionOver = errors.New("this refresh session is over on this node (committed or aborted): start a new one")

// refreshOutcome returns how this node finished the refresh session of keyID (0: it has not).
func refreshOutcome(q querier, keyID string, session []byte) (uint8, error) {
	var o uint8
	err := q.QueryRow(`SELECT outcome FROM refresh_done WHERE key_id = ? AND session = ?`, keyID, session).Scan(&o)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return o, err
}

// readPendingDecider returns the decider's node ID recorded with the key's prepared refresh of
// session ("" if this node decides, or for a refresh prepared before it was recorded), its
// epoch, and whether one is prepared.
func readPendingDecider(q querier, keyID string, session []byte) (string, uint32, bool, error) {
	var d string
	var e uint32
	err := q.QueryRow(`SELECT decider, epoch FROM pending WHERE key_id = ? AND session = ?`, keyID, session).Scan(&d, &e)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, false, nil
	}
	return d, e, err == nil, err
}

// readParties returns the index of the party that coordinates keyID and the key's roster
// (readOwner, readRoster).
func readParties(q querier, keyID string) (int, []NodeID, error) {
	owner, err := readOwner(q, keyID)
	if err != nil {
		return 0, nil, err
	}
	roster, err := readRoster(q, keyID)
	return owner, roster, err
}

// readPublicSharesAt returns the key's public shares at an earlier epoch, or nil if this node
// has none kept for it.
func readPublicSharesAt(q querier, keyID string, epoch uint32) ([][]byte, error) {
	rows, err := q.Query(`SELECT node_index, point FROM public_share_history WHERE key_id = ? AND epoch = ? ORDER BY node_index`, keyID, epoch)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var i int
		var p []byte
		if err := rows.Scan(&i, &p); err != nil {
			return nil, err
		}
		if i != len(out) {
			return nil, nil
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// pin returns the node ID this node (a phone) has pinned for a server node's URL, pinning
// id there first if it has none.
func (n *node) pin(url, id string) (string, error) {
	if _, err := n.db.Exec(`INSERT INTO node_pins (url, node_id) VALUES (?, ?) ON CONFLICT (url) DO NOTHING`, url, id); err != nil {
		return "", err
	}
	var have string
	err := n.db.QueryRow(`SELECT node_id FROM node_pins WHERE url = ?`, url).Scan(&have)
	return have, err
}

// pinned returns the node ID pinned for url, if there is one.
func (n *node) pinned(url string) (string, bool) {
	var have string
	err := n.db.QueryRow(`SELECT node_id FROM node_pins WHERE url = ?`, url).Scan(&have)
	return have, err == nil
}

// repin replaces the pin for url with id (the configuration named it).
func (n *node) repin(url, id string) error {
	_, err := n.db.Exec(`INSERT INTO node_pins (url, node_id) VALUES (?, ?) ON CONFLICT (url) DO UPDATE SET node_id = excluded.node_id`, url, id)
	return err
}

// ownerOf returns the index of the party that coordinates keyID (0 if none was recorded).
func (n *node) ownerOf(keyID string) (int, error) { return readOwner(n.db, keyID) }

func readOwner(q querier, keyID string) (int, error) {
	var owner int
	err := q.QueryRow(`SELECT owner FROM key_owner WHERE key_id = ?`, keyID).Scan(&owner)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return owner, err
}

func sqlMigration(q string) func(tx *sql.Tx) error {
	return func(tx *sql.Tx) error { _, err := tx.Exec(q); return err }
}

// convertAdditive rewrites every key of a v1 database as its Shamir equivalent.
func convertAdditive(tx *sql.Tx) error {
	rows, err := tx.Query(`SELECT key_id, scheme FROM keys`)
	if err != nil {
		return err
	}
	type id struct {
		key    string
		scheme Scheme
	}
	var ids []id
	for rows.Next() {
		var i id
		if err := rows.Scan(&i.key, &i.scheme); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, i)
	}
	rows.Close()
	for _, i := range ids {
		k, err := readKey(tx, i.key, i.scheme)
		if err != nil {
			return err
		}
		k.additive = true
		s, err := k.toShamir()
		k.wipe()
		if err != nil {
			return fmt.Errorf("key %q: %w", i.key, err)
		}
		err = replaceShare(tx, s)
		s.wipe()
		if err != nil {
			return err
		}
	}
	return nil
}

// ErrStore is wrapped by a failure of the node's own database: an answer says only that,
// and the operator's log has the rest.
var ErrStore = errors.New("the node's database failed; retry later")

// storeError marks an error of the database itself (not a refusal of the step).
func storeError(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) || errors.Is(err, sql.ErrConnDone) || errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("%w: %w", ErrStore, err)
	}
	return err
}

type node struct {
	path string
	db   *sql.DB

	prepared map[string]*sql.Stmt // hotQueries, prepared at open
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
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=secure_delete(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("tsm: open node database %s: %w", path, err)
	}
	db.SetMaxOpenConns(1) // one writer per process; readers wait for it rather than fail
	n := &node{path: path, db: db, prepared: map[string]*sql.Stmt{}}
	if err := n.migrate(); err != nil {
		db.Close()
		return nil, fmt.Errorf("tsm: node database %s: %w", path, err)
	}
	for _, q := range hotQueries {
		s, err := db.Prepare(q)
		if err != nil {
			n.close()
			return nil, fmt.Errorf("tsm: node database %s: %w", path, err)
		}
		n.prepared[q] = s
	}
	return n, nil
}

func (n *node) close() error {
	for _, s := range n.prepared {
		s.Close()
	}
	return n.db.Close()
}

// nodeKey returns the node's identity kept in its database, made on first use.
func (n *node) nodeKey() (*NodeKey, error) {
	var seed []byte
	err := n.db.QueryRow(`SELECT seed FROM node_key WHERE id = 1`).Scan(&seed)
	if errors.Is(err, sql.ErrNoRows) {
		k := GenerateNodeKey()
		if _, err := n.db.Exec(`INSERT INTO node_key (id, seed) VALUES (1, ?)`, k.seed); err != nil {
			return nil, err
		}
		return k, nil
	}
	if err != nil {
		return nil, err
	}
	defer clear(seed)
	return NewNodeKey(seed)
}

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
		if err := migrations[v](tx); err != nil {
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

// key reads keyID of the given scheme; another scheme's key is not found. It is one
// statement, so one state (SQLite reads a statement from one snapshot), and no transaction.
func (n *node) key(keyID string, scheme Scheme) (*keyState, error) {
	return readKey(preparedQ{n, n.db}, keyID, scheme)
}

// view runs fn in one read transaction, so that what it reads in several queries is one
// state: never a key from before a switch with the pending row after it.
func (n *node) view(fn func(q querier) error) error {
	tx, err := n.db.BeginTx(context.Background(), &sql.TxOptions{ReadOnly: true}) // a deferred BEGIN: no write lock
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(preparedQ{n, tx})
}

// preparedQ runs the hot queries (every signing step's) as statements prepared when the
// node opened, on q (the database or a transaction): SQLite's parser costs more than
// reading a key. Other queries go to q as they are.
type preparedQ struct {
	n *node
	q querier
}

// hotQueries are prepared when the node opens. (Preparing later would need a second
// connection, which a transaction holding the one does not leave.)
var hotQueries = []string{queryKey, queryPendingEpoch}

func (p preparedQ) stmt(query string) *sql.Stmt {
	s := p.n.prepared[query]
	if tx, ok := p.q.(*sql.Tx); ok && s != nil {
		return tx.Stmt(s)
	}
	return s
}

func (p preparedQ) QueryRow(query string, args ...any) *sql.Row {
	if s := p.stmt(query); s != nil {
		return s.QueryRow(args...)
	}
	return p.q.QueryRow(query, args...)
}

func (p preparedQ) Query(query string, args ...any) (*sql.Rows, error) {
	if s := p.stmt(query); s != nil {
		return s.Query(args...)
	}
	return p.q.Query(query, args...)
}

// queryKey reads a key with its public shares, one row per share in their order; the
// secret share is in the first row only (no copy of it per share).
const queryKey = `SELECT k.key_id, k.scheme, k.curve, k.node_index, k.players, k.threshold, k.epoch, k.created,
	CASE WHEN p.node_index = 0 THEN k.secret_share END, k.public_key, k.description, k.chain_code, p.node_index, p.point
	FROM keys k JOIN public_shares p ON p.key_id = k.key_id WHERE k.key_id = ? ORDER BY p.node_index`

func readKey(q querier, keyID string, scheme Scheme) (*keyState, error) {
	rows, err := q.Query(queryKey, keyID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	k := &keyState{}
	for rows.Next() {
		var created int64
		var i int
		var share, point []byte
		if err := rows.Scan(&k.KeyID, &k.Scheme, &k.Curve, &k.NodeIndex, &k.Players, &k.Threshold, &k.Epoch, &created,
			&share, &k.PublicKey, &k.Description, &k.ChainCode, &i, &point); err != nil {
			k.wipe()
			clear(share)
			return nil, err
		}
		if i != len(k.publicShares) {
			k.wipe()
			return nil, fmt.Errorf("key %q: public share %d missing", keyID, len(k.publicShares))
		}
		if i == 0 {
			k.share = share
		}
		k.Created = time.Unix(created, 0).UTC()
		k.publicShares = append(k.publicShares, point)
	}
	if err := rows.Err(); err != nil {
		k.wipe()
		return nil, err
	}
	if len(k.publicShares) == 0 || k.Scheme != scheme {
		k.wipe()
		return nil, fmt.Errorf("%w: %s key %q", ErrKeyNotFound, scheme, keyID)
	}
	return k, nil
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

// replaceShare writes k's share, epoch, threshold and public shares over the key's row.
func replaceShare(tx *sql.Tx, k *keyState) error {
	res, err := tx.Exec(`UPDATE keys SET secret_share = ?, epoch = ?, threshold = ? WHERE key_id = ?`, k.share, k.Epoch, k.Threshold, k.KeyID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("key %q is gone", k.KeyID)
	}
	if _, err := tx.Exec(`DELETE FROM public_shares WHERE key_id = ?`, k.KeyID); err != nil {
		return err
	}
	return insertPublicShares(tx, k.KeyID, k.publicShares)
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

// faultHook, when set (by tests only), is called before and after each write of a refresh
// with the node's path and the step ("prepare-before", …, "commit-after"); an error it
// returns stops the step there, as a crash would.
var faultHook func(path, step string) error

func (n *node) fault(step string) error {
	if faultHook == nil {
		return nil
	}
	return faultHook(n.path, step)
}

func concat(ps [][]byte) []byte { return bytes.Join(ps, nil) }

// pendingEpoch returns the epoch and session of the key's prepared refresh, or 0 and nil.
func (n *node) pendingEpoch(keyID string) (uint32, []byte, error) {
	return readPendingEpoch(preparedQ{n, n.db}, keyID)
}

const queryPendingEpoch = `SELECT epoch, session FROM pending WHERE key_id = ?`

func readPendingEpoch(q querier, keyID string) (uint32, []byte, error) {
	var e uint32
	var session []byte
	err := q.QueryRow(queryPendingEpoch, keyID).Scan(&e, &session)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, nil
	}
	return e, session, err
}

// prepare stores next (the key at its next epoch) as the key's pending share, durably, with
// the node ID of the refresh's decider ("" if this node is it).
func (n *node) prepare(next *keyState, session []byte, decider string) error {
	if err := n.fault("prepare-before"); err != nil {
		return err
	}
	err := n.write(func(tx *sql.Tx) error {
		cur, err := readKey(tx, next.KeyID, next.Scheme)
		if err != nil {
			return err
		}
		cur.wipe()
		if cur.Epoch+1 != next.Epoch {
			return fmt.Errorf("key %q moved to epoch %d during the refresh", next.KeyID, cur.Epoch)
		}
		switch done, err := refreshOutcome(tx, next.KeyID, session); {
		case err != nil:
			return err
		case done != 0:
			return errSessionOver
		}
		var other []byte
		switch err := tx.QueryRow(`SELECT session FROM pending WHERE key_id = ?`, next.KeyID).Scan(&other); {
		case err == nil:
			return fmt.Errorf("key %q has another refresh prepared: it must be finished or discarded first", next.KeyID)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		_, err = tx.Exec(`INSERT INTO pending (key_id, session, epoch, secret_share, public_shares, decider) VALUES (?,?,?,?,?,?)`,
			next.KeyID, session, next.Epoch, next.share, concat(next.publicShares), decider)
		return err
	})
	if err != nil {
		return err
	}
	return n.fault("prepare-after")
}

// pendingKey returns the key as its prepared refresh would make it, or nil if there is none.
func (n *node) pendingKey(keyID string, scheme Scheme) (k *keyState, err error) {
	err = n.view(func(q querier) error {
		k, err = readPending(q, keyID, scheme)
		return err
	})
	return k, err
}

func readPending(q querier, keyID string, scheme Scheme) (*keyState, error) {
	k, err := readKey(q, keyID, scheme)
	if err != nil {
		return nil, err
	}
	defer k.wipe()
	var epoch uint32
	var share, points []byte
	err = q.QueryRow(`SELECT epoch, secret_share, public_shares FROM pending WHERE key_id = ?`, keyID).Scan(&epoch, &share, &points)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	next := &keyState{KeyInfo: k.KeyInfo, share: share}
	next.Epoch = epoch
	pl := len(k.publicShares[0])
	for i := 0; i+pl <= len(points); i += pl {
		next.publicShares = append(next.publicShares, points[i:i+pl])
	}
	if epoch != k.Epoch+1 {
		next.wipe()
		return nil, fmt.Errorf("key %q: prepared epoch %d does not follow %d", keyID, epoch, k.Epoch)
	}
	if err := next.check(); err != nil {
		next.wipe()
		return nil, fmt.Errorf("key %q: the prepared share does not check: %w", keyID, err)
	}
	return next, nil
}

// commitPending switches the key to its pending share of the given refresh session, then
// checkpoints the WAL so the old share is gone from the files (secure_delete zeroes what
// the switch frees).
func (n *node) commitPending(keyID string, session []byte) error {
	if err := n.fault("commit-before"); err != nil {
		return err
	}
	err := n.write(func(tx *sql.Tx) error {
		var scheme Scheme
		if err := tx.QueryRow(`SELECT scheme FROM keys WHERE key_id = ?`, keyID).Scan(&scheme); err != nil {
			return fmt.Errorf("%w: %q", ErrKeyNotFound, keyID)
		}
		var prepared []byte
		if err := tx.QueryRow(`SELECT session FROM pending WHERE key_id = ?`, keyID).Scan(&prepared); err != nil || !bytes.Equal(prepared, session) {
			return fmt.Errorf("key %q has no refresh of this session prepared to commit", keyID)
		}
		next, err := readPending(tx, keyID, scheme)
		if err != nil {
			return err
		}
		defer next.wipe()
		var epoch uint32
		if err := tx.QueryRow(`SELECT epoch FROM keys WHERE key_id = ?`, keyID).Scan(&epoch); err != nil {
			return err
		}
		if _, err := tx.Exec(`INSERT OR REPLACE INTO public_share_history (key_id, epoch, node_index, point)
			SELECT key_id, ?, node_index, point FROM public_shares WHERE key_id = ?`, epoch, keyID); err != nil {
			return err
		}
		if err := replaceShare(tx, next); err != nil {
			return err
		}
		if _, err := tx.Exec(`INSERT OR IGNORE INTO refresh_done (key_id, session, outcome) VALUES (?, ?, 1)`, keyID, session); err != nil {
			return err
		}
		if _, err := tx.Exec(`DELETE FROM ecdsa_seeds WHERE key_id = ?`, keyID); err != nil { // renewed at the new epoch
			return err
		}
		_, err = tx.Exec(`DELETE FROM pending WHERE key_id = ?`, keyID)
		return err
	})
	if err != nil {
		return err
	}
	if _, err := n.db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return err
	}
	return n.fault("commit-after")
}

// abortPending discards the key's prepared refresh of the given session, if any, and ends
// the session on this node: it is never prepared here again. A session this node committed
// stays committed.
func (n *node) abortPending(keyID string, session []byte) error {
	return n.write(func(tx *sql.Tx) error {
		if _, err := tx.Exec(`DELETE FROM pending WHERE key_id = ? AND session = ?`, keyID, session); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(`SELECT EXISTS (SELECT 1 FROM keys WHERE key_id = ?)`, keyID).Scan(&exists); err != nil || !exists || session == nil {
			return err
		}
		_, err := tx.Exec(`INSERT OR IGNORE INTO refresh_done (key_id, session, outcome) VALUES (?, ?, 2)`, keyID, session)
		return err
	})
}
