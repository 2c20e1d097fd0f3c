package sqlite

import (
	"database/sql"
	"errors"

	"github.com/sharevault/sharevault/internal/nodestore/sqlstore"
)

// migrations[i] takes the schema from version i to i+1. Append only.
var migrations = []func(tx *sql.Tx, opts Options) error{
	exec(`CREATE TABLE keys (
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
	// degree n−1 it is equivalent to (Options.ConvertAdditive), and a refresh keeps its next
	// share in pending until every node has it.
	func(tx *sql.Tx, opts Options) error {
		if _, err := tx.Exec(`CREATE TABLE pending (
			key_id        TEXT PRIMARY KEY REFERENCES keys(key_id) ON DELETE CASCADE,
			session       BLOB NOT NULL,
			epoch         INTEGER NOT NULL,
			secret_share  BLOB NOT NULL,
			public_shares BLOB NOT NULL
		) STRICT`); err != nil {
			return err
		}
		if opts.ConvertAdditive == nil {
			var n int
			if err := tx.QueryRow(`SELECT count(*) FROM keys`).Scan(&n); err != nil || n == 0 {
				return err
			}
			return errors.New("a version 1 database with keys needs their conversion to threshold shares")
		}
		// The pending table has no decider column yet: the conversion reads keys only.
		return opts.ConvertAdditive(sqlstore.Tx{Q: tx})
	},
	// Version 3: the node's long-term identity (NodeKey), for nodes that keep it in their
	// database (embedded ones; a service may keep it in a file instead).
	exec(`CREATE TABLE node_key (
		id   INTEGER PRIMARY KEY CHECK (id = 1),
		seed BLOB NOT NULL
	) STRICT`),
	// Version 4: which party of a key coordinated its generation (the phone's place): a node
	// serving remote coordinators takes steps on the key from that party alone. Keys without
	// a row (embedded, or from before) have the phone at index 0.
	exec(`CREATE TABLE key_owner (
		key_id TEXT PRIMARY KEY REFERENCES keys(key_id) ON DELETE CASCADE,
		owner  INTEGER NOT NULL
	) STRICT`),
	// Version 5: the public shares of a key's earlier epochs (public points, kept at each
	// refresh's commit), so that a node checks a proof from an older epoch before it says
	// the share is stale; and the node IDs a phone pinned for its server nodes' URLs.
	exec(`CREATE TABLE public_share_history (
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
	exec(`CREATE TABLE refresh_done (
		key_id  TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
		session BLOB NOT NULL,
		outcome INTEGER NOT NULL CHECK (outcome IN (1, 2)),
		PRIMARY KEY (key_id, session)
	) STRICT;
	ALTER TABLE pending ADD COLUMN decider TEXT NOT NULL DEFAULT '';
	ALTER TABLE key_owner ADD COLUMN roster TEXT NOT NULL DEFAULT ''`),
	// Version 7: threshold ECDSA's OT seeds, with each other party of a key, as made at the
	// key's epoch (a refresh deletes them; a backup never holds them: docs/tsm-backup.md).
	exec(`CREATE TABLE ecdsa_seeds (
		key_id   TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
		peer     INTEGER NOT NULL,
		epoch    INTEGER NOT NULL,
		seeds_id BLOB NOT NULL,
		receiver BLOB NOT NULL,
		sender   BLOB NOT NULL,
		PRIMARY KEY (key_id, peer)
	) STRICT`),
	// Version 8: a key this node's state is older than (a peer's signed word put it at a
	// later epoch, which a proof of the requester's share at that epoch confirmed): the node
	// refuses to serve it until its own state reaches that epoch (docs/operations.md, "A
	// node's database restored from before a refresh").
	exec(`CREATE TABLE key_behind (
		key_id TEXT PRIMARY KEY REFERENCES keys(key_id) ON DELETE CASCADE,
		epoch  INTEGER NOT NULL,
		peer   TEXT NOT NULL
	) STRICT`),
}

func exec(q string) func(*sql.Tx, Options) error {
	return func(tx *sql.Tx, _ Options) error { _, err := tx.Exec(q); return err }
}
