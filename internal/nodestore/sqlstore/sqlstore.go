// Package sqlstore is the SQL that the sqlite and postgres node stores share: one schema
// (table and column names alike; each package has its own DDL and types), queried with
// $n placeholders and ON CONFLICT, which both databases read the same way. Each package
// opens its database, runs its migrations and begins its transactions; this one does what
// a nodestore.Tx does in them.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/sharevault/sharevault/internal/nodestore"
)

// Queryer is a database or a transaction.
type Queryer interface {
	QueryRow(query string, args ...any) *sql.Row
	Query(query string, args ...any) (*sql.Rows, error)
	Exec(query string, args ...any) (sql.Result, error)
}

// Tx is a nodestore.Tx on a transaction. Stmt, if set, returns a statement prepared for a
// query (nil: the query runs as it is).
type Tx struct {
	Q        Queryer
	Stmt     func(query string) *sql.Stmt
	ReadOnly bool // a Read's: every write fails
}

var errReadOnly = errors.New("nodestore: a write in a read-only transaction")

// Fail marks err as the store's own failure (nodestore.ErrStore), once.
func Fail(err error) error {
	if err == nil || errors.Is(err, nodestore.ErrStore) {
		return err
	}
	return fmt.Errorf("%w: %w", nodestore.ErrStore, err)
}

func (t Tx) query(q string, args ...any) (*sql.Rows, error) {
	if t.Stmt != nil {
		if s := t.Stmt(q); s != nil {
			return s.Query(args...)
		}
	}
	return t.Q.Query(q, args...)
}

func (t Tx) exec(q string, args ...any) error {
	if t.ReadOnly {
		return errReadOnly
	}
	_, err := t.Q.Exec(q, args...)
	return Fail(err)
}

// scan reads one row into dest: found false for none.
func (t Tx) scan(q string, args []any, dest ...any) (found bool, err error) {
	err = t.Q.QueryRow(q, args...).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, Fail(err)
}

// QueryKey reads a key with its public shares, one row per share in their order; the
// secret share is in the first row only (no copy of it per share).
const QueryKey = `SELECT k.key_id, k.scheme, k.curve, k.node_index, k.players, k.threshold, k.epoch, k.created,
	CASE WHEN p.node_index = 0 THEN k.secret_share END, k.public_key, k.description, k.chain_code, p.node_index, p.point
	FROM keys k JOIN public_shares p ON p.key_id = k.key_id WHERE k.key_id = $1 ORDER BY p.node_index`

// QueryPending reads a key's prepared refresh.
const QueryPending = `SELECT session, epoch, secret_share, public_shares, decider FROM pending WHERE key_id = $1`

// Hot are the queries of every signing step, which a store may prepare.
var Hot = []string{QueryKey, QueryPending}

func (t Tx) Key(keyID string) (*nodestore.Key, error) {
	rows, err := t.query(QueryKey, keyID)
	if err != nil {
		return nil, Fail(err)
	}
	defer rows.Close()
	k := &nodestore.Key{}
	for rows.Next() {
		var i int
		var share, point []byte
		if err := rows.Scan(&k.ID, &k.Scheme, &k.Curve, &k.NodeIndex, &k.Players, &k.Threshold, &k.Epoch, &k.Created,
			&share, &k.PublicKey, &k.Description, &k.ChainCode, &i, &point); err != nil {
			clear(k.Share)
			clear(share)
			return nil, Fail(err)
		}
		if i != len(k.PublicShares) {
			clear(k.Share)
			return nil, Fail(fmt.Errorf("key %q: public share %d missing", keyID, len(k.PublicShares)))
		}
		if i == 0 {
			k.Share = share
		}
		k.PublicShares = append(k.PublicShares, point)
	}
	if err := rows.Err(); err != nil {
		clear(k.Share)
		return nil, Fail(err)
	}
	if len(k.PublicShares) == 0 {
		return nil, fmt.Errorf("key %q: %w", keyID, nodestore.ErrNotFound)
	}
	return k, nil
}

func (t Tx) KeyIDs(scheme uint8) ([]string, error) {
	rows, err := t.Q.Query(`SELECT key_id FROM keys WHERE scheme = $1 ORDER BY key_id`, scheme)
	if err != nil {
		return nil, Fail(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, Fail(err)
		}
		ids = append(ids, id)
	}
	return ids, Fail(rows.Err())
}

func (t Tx) exists(keyID string) (bool, error) {
	var e bool
	_, err := t.scan(`SELECT EXISTS (SELECT 1 FROM keys WHERE key_id = $1)`, []any{keyID}, &e)
	return e, err
}

func (t Tx) InsertKey(k *nodestore.Key) error {
	switch e, err := t.exists(k.ID); {
	case err != nil:
		return err
	case e:
		return fmt.Errorf("key %q: %w", k.ID, nodestore.ErrExists)
	}
	if t.ReadOnly {
		return errReadOnly
	}
	if err := t.exec(`INSERT INTO keys (key_id, scheme, curve, node_index, players, threshold, epoch,
		created, secret_share, public_key, description, chain_code) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)`,
		k.ID, k.Scheme, k.Curve, k.NodeIndex, k.Players, k.Threshold, k.Epoch, k.Created,
		k.Share, k.PublicKey, k.Description, k.ChainCode); err != nil {
		return err
	}
	return t.insertPublicShares(k.ID, k.PublicShares)
}

func (t Tx) insertPublicShares(keyID string, points [][]byte) error {
	for i, p := range points {
		if err := t.exec(`INSERT INTO public_shares (key_id, node_index, point) VALUES ($1, $2, $3)`, keyID, i, p); err != nil {
			return err
		}
	}
	return nil
}

func (t Tx) UpdateShare(keyID string, share []byte, epoch uint32, threshold int, publicShares [][]byte) error {
	if t.ReadOnly {
		return errReadOnly
	}
	res, err := t.Q.Exec(`UPDATE keys SET secret_share = $1, epoch = $2, threshold = $3 WHERE key_id = $4`, share, epoch, threshold, keyID)
	if err != nil {
		return Fail(err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("key %q: %w", keyID, nodestore.ErrNotFound)
	}
	if err := t.exec(`DELETE FROM public_shares WHERE key_id = $1`, keyID); err != nil {
		return err
	}
	return t.insertPublicShares(keyID, publicShares)
}

// dependents are the tables that hold rows about a key (deleted with it).
var dependents = []string{"public_shares", "public_share_history", "pending", "key_owner", "refresh_done", "ecdsa_seeds", "key_behind"}

func (t Tx) DeleteNewKey(keyID string) error {
	var epoch uint32
	switch found, err := t.scan(`SELECT epoch FROM keys WHERE key_id = $1`, []any{keyID}, &epoch); {
	case err != nil || !found || epoch != 0:
		return err
	}
	for _, d := range dependents { // not left to ON DELETE CASCADE: SQLite needs foreign_keys on for it
		if err := t.exec(`DELETE FROM `+d+` WHERE key_id = $1`, keyID); err != nil {
			return err
		}
	}
	return t.exec(`DELETE FROM keys WHERE key_id = $1`, keyID)
}

func (t Tx) Owner(keyID string) (int, string, bool, error) {
	var owner int
	var roster string
	found, err := t.scan(`SELECT owner, roster FROM key_owner WHERE key_id = $1`, []any{keyID}, &owner, &roster)
	return owner, roster, found, err
}

func (t Tx) SetOwner(keyID string, owner int, roster string) error {
	return t.exec(`INSERT INTO key_owner (key_id, owner, roster) VALUES ($1, $2, $3)
		ON CONFLICT (key_id) DO UPDATE SET owner = excluded.owner, roster = excluded.roster`, keyID, owner, roster)
}

func (t Tx) Pending(keyID string) (*nodestore.Pending, error) {
	rows, err := t.query(QueryPending, keyID)
	if err != nil {
		return nil, Fail(err)
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, Fail(rows.Err())
	}
	p := &nodestore.Pending{}
	if err := rows.Scan(&p.Session, &p.Epoch, &p.Share, &p.PublicShares, &p.Decider); err != nil {
		return nil, Fail(err)
	}
	return p, nil
}

func (t Tx) InsertPending(keyID string, p *nodestore.Pending) error {
	var one int
	switch found, err := t.scan(`SELECT 1 FROM pending WHERE key_id = $1`, []any{keyID}, &one); {
	case err != nil:
		return err
	case found:
		return fmt.Errorf("key %q: a refresh is prepared: %w", keyID, nodestore.ErrExists)
	}
	return t.exec(`INSERT INTO pending (key_id, session, epoch, secret_share, public_shares, decider) VALUES ($1,$2,$3,$4,$5,$6)`,
		keyID, p.Session, p.Epoch, p.Share, p.PublicShares, p.Decider)
}

func (t Tx) DeletePending(keyID string, session []byte) error {
	if session == nil {
		return t.exec(`DELETE FROM pending WHERE key_id = $1`, keyID)
	}
	return t.exec(`DELETE FROM pending WHERE key_id = $1 AND session = $2`, keyID, session)
}

func (t Tx) Outcome(keyID string, session []byte) (uint8, error) {
	var o uint8
	_, err := t.scan(`SELECT outcome FROM refresh_done WHERE key_id = $1 AND session = $2`, []any{keyID, session}, &o)
	return o, err
}

func (t Tx) SetOutcome(keyID string, session []byte, outcome uint8) error {
	return t.exec(`INSERT INTO refresh_done (key_id, session, outcome) VALUES ($1, $2, $3) ON CONFLICT (key_id, session) DO NOTHING`,
		keyID, session, outcome)
}

func (t Tx) History(keyID string, epoch uint32) ([][]byte, error) {
	rows, err := t.Q.Query(`SELECT node_index, point FROM public_share_history WHERE key_id = $1 AND epoch = $2 ORDER BY node_index`, keyID, epoch)
	if err != nil {
		return nil, Fail(err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var i int
		var p []byte
		if err := rows.Scan(&i, &p); err != nil {
			return nil, Fail(err)
		}
		if i != len(out) {
			return nil, nil
		}
		out = append(out, p)
	}
	return out, Fail(rows.Err())
}

func (t Tx) SetHistory(keyID string, epoch uint32, points [][]byte) error {
	if err := t.exec(`DELETE FROM public_share_history WHERE key_id = $1 AND epoch = $2`, keyID, epoch); err != nil {
		return err
	}
	for i, p := range points {
		if err := t.exec(`INSERT INTO public_share_history (key_id, epoch, node_index, point) VALUES ($1, $2, $3, $4)`, keyID, epoch, i, p); err != nil {
			return err
		}
	}
	return nil
}

func (t Tx) Seeds(keyID string, epoch uint32) ([]nodestore.Seeds, error) {
	rows, err := t.Q.Query(`SELECT peer, seeds_id, receiver, sender FROM ecdsa_seeds WHERE key_id = $1 AND epoch = $2 ORDER BY peer`, keyID, epoch)
	if err != nil {
		return nil, Fail(err)
	}
	defer rows.Close()
	var out []nodestore.Seeds
	for rows.Next() {
		s := nodestore.Seeds{Epoch: epoch}
		if err := rows.Scan(&s.Peer, &s.ID, &s.Receiver, &s.Sender); err != nil {
			return nil, Fail(err)
		}
		out = append(out, s)
	}
	return out, Fail(rows.Err())
}

func (t Tx) PutSeeds(keyID string, s *nodestore.Seeds) error {
	return t.exec(`INSERT INTO ecdsa_seeds (key_id, peer, epoch, seeds_id, receiver, sender) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (key_id, peer) DO UPDATE SET epoch = excluded.epoch, seeds_id = excluded.seeds_id,
		receiver = excluded.receiver, sender = excluded.sender`, keyID, s.Peer, s.Epoch, s.ID, s.Receiver, s.Sender)
}

func (t Tx) DeleteSeeds(keyID string, peer int, id []byte) error {
	if peer < 0 {
		return t.exec(`DELETE FROM ecdsa_seeds WHERE key_id = $1`, keyID)
	}
	return t.exec(`DELETE FROM ecdsa_seeds WHERE key_id = $1 AND peer = $2 AND seeds_id = $3`, keyID, peer, id)
}

func (t Tx) Behind(keyID string) (uint32, string, bool, error) {
	var e uint32
	var peer string
	found, err := t.scan(`SELECT epoch, peer FROM key_behind WHERE key_id = $1`, []any{keyID}, &e, &peer)
	return e, peer, found, err
}

func (t Tx) SetBehind(keyID string, epoch uint32, peer string) error {
	return t.exec(`INSERT INTO key_behind (key_id, epoch, peer) VALUES ($1, $2, $3)
		ON CONFLICT (key_id) DO UPDATE SET epoch = excluded.epoch, peer = excluded.peer WHERE key_behind.epoch < excluded.epoch`, keyID, epoch, peer)
}

func (t Tx) ClearBehind(keyID string) error {
	return t.exec(`DELETE FROM key_behind WHERE key_id = $1`, keyID)
}

func (t Tx) NodeKey() ([]byte, error) {
	var seed []byte
	_, err := t.scan(`SELECT seed FROM node_key WHERE id = 1`, nil, &seed)
	return seed, err
}

func (t Tx) SetNodeKey(seed []byte) error {
	if have, err := t.NodeKey(); err != nil || have != nil {
		clear(have)
		if err == nil {
			err = fmt.Errorf("the node key: %w", nodestore.ErrExists)
		}
		return err
	}
	return t.exec(`INSERT INTO node_key (id, seed) VALUES (1, $1)`, seed)
}

func (t Tx) Pin(url string) (string, bool, error) {
	var id string
	found, err := t.scan(`SELECT node_id FROM node_pins WHERE url = $1`, []any{url}, &id)
	return id, found, err
}

func (t Tx) SetPin(url, id string, replace bool) error {
	q := `INSERT INTO node_pins (url, node_id) VALUES ($1, $2) ON CONFLICT (url) DO NOTHING`
	if replace {
		q = `INSERT INTO node_pins (url, node_id) VALUES ($1, $2) ON CONFLICT (url) DO UPDATE SET node_id = excluded.node_id`
	}
	return t.exec(q, url, id)
}

// Tables are the node's tables, each after those it refers to: what Copy moves.
var Tables = []string{"keys", "public_shares", "public_share_history", "pending", "key_owner", "refresh_done", "ecdsa_seeds", "key_behind", "node_key", "node_pins"}

// Copy copies every row of the node's tables from src into dst (a transaction of an empty
// store: it refuses one that holds a key or a node key), by column name, and returns how
// many keys it copied.
func Copy(ctx context.Context, src *sql.Tx, dst *sql.Tx) (int, error) {
	for _, t := range []string{"keys", "node_key"} {
		var n int
		if err := dst.QueryRowContext(ctx, `SELECT count(*) FROM `+t).Scan(&n); err != nil {
			return 0, Fail(err)
		}
		if n != 0 {
			return 0, fmt.Errorf("the target database already holds a node's state (its %s table is not empty): it must be empty", t)
		}
	}
	keys := 0
	for _, t := range Tables {
		rows, err := src.QueryContext(ctx, `SELECT * FROM `+t)
		if err != nil {
			return 0, Fail(err)
		}
		cols, err := rows.Columns()
		if err != nil {
			rows.Close()
			return 0, Fail(err)
		}
		marks := make([]string, len(cols))
		for i := range cols {
			marks[i] = fmt.Sprintf("$%d", i+1)
		}
		insert := `INSERT INTO ` + t + ` (` + strings.Join(cols, ", ") + `) VALUES (` + strings.Join(marks, ", ") + `)`
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return 0, Fail(err)
			}
			_, err := dst.ExecContext(ctx, insert, vals...)
			for _, v := range vals {
				if b, ok := v.([]byte); ok {
					clear(b)
				}
			}
			if err != nil {
				rows.Close()
				return 0, Fail(fmt.Errorf("%s: %w", t, err))
			}
			if t == "keys" {
				keys++
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return 0, Fail(err)
		}
	}
	return keys, nil
}
