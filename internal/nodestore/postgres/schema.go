package postgres

// migrations[i] takes the schema from version i to i+1. Append only. Version 1 is the
// SQLite store's version 7 (the same tables and columns, which sqlstore queries), and the
// record of served requests that replicas share (Store.Admit).
var migrations = []string{
	`CREATE TABLE keys (
		key_id       text PRIMARY KEY,
		scheme       integer NOT NULL,
		curve        integer NOT NULL,
		node_index   integer NOT NULL,
		players      integer NOT NULL,
		threshold    integer NOT NULL,
		epoch        bigint NOT NULL,
		created      bigint NOT NULL,
		secret_share bytea NOT NULL,
		public_key   bytea NOT NULL,
		description  text NOT NULL,
		chain_code   bytea NOT NULL
	);
	CREATE TABLE public_shares (
		key_id     text NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
		node_index integer NOT NULL,
		point      bytea NOT NULL,
		PRIMARY KEY (key_id, node_index)
	);
	CREATE TABLE pending (
		key_id        text PRIMARY KEY REFERENCES keys(key_id) ON DELETE CASCADE,
		session       bytea NOT NULL,
		epoch         bigint NOT NULL,
		secret_share  bytea NOT NULL,
		public_shares bytea NOT NULL,
		decider       text NOT NULL DEFAULT ''
	);
	CREATE TABLE node_key (
		id   integer PRIMARY KEY CHECK (id = 1),
		seed bytea NOT NULL
	);
	CREATE TABLE key_owner (
		key_id text PRIMARY KEY REFERENCES keys(key_id) ON DELETE CASCADE,
		owner  integer NOT NULL,
		roster text NOT NULL DEFAULT ''
	);
	CREATE TABLE public_share_history (
		key_id     text NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
		epoch      bigint NOT NULL,
		node_index integer NOT NULL,
		point      bytea NOT NULL,
		PRIMARY KEY (key_id, epoch, node_index)
	);
	CREATE TABLE node_pins (
		url     text PRIMARY KEY,
		node_id text NOT NULL
	);
	CREATE TABLE refresh_done (
		key_id  text NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
		session bytea NOT NULL,
		outcome integer NOT NULL CHECK (outcome IN (1, 2)),
		PRIMARY KEY (key_id, session)
	);
	CREATE TABLE ecdsa_seeds (
		key_id   text NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
		peer     integer NOT NULL,
		epoch    bigint NOT NULL,
		seeds_id bytea NOT NULL,
		receiver bytea NOT NULL,
		sender   bytea NOT NULL,
		PRIMARY KEY (key_id, peer)
	);
	CREATE TABLE served (
		id      bytea PRIMARY KEY,
		expires bigint NOT NULL
	)`,
	// Version 2: the SQLite store's version 8 (key_behind).
	`CREATE TABLE key_behind (
		key_id text PRIMARY KEY REFERENCES keys(key_id) ON DELETE CASCADE,
		epoch  bigint NOT NULL,
		peer   text NOT NULL
	)`,
}
