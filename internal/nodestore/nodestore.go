// Package nodestore is a TSM node's durable state behind one interface: its keys and their
// shares by epoch, a refresh's pending share and outcome, the keys' owners and rosters, the
// public shares of earlier epochs, threshold ECDSA's OT seeds, the node's own key and the
// phone's pins, the refresh lease and the schema version. Two implementations keep it:
// sqlite (the phone's embedded node and small deployments) and postgres (a provider's node,
// served by several replicas). storetest is the conformance suite both pass.
//
// The store holds secrets (shares, seeds, the node key) as the caller gives them; it never
// logs them. It never holds a nonce or any other session secret: those live in the memory
// of the process that made them, so a store restored from a snapshot brings none back.
package nodestore

import (
	"context"
	"errors"
	"time"
)

// Store is a node's state. It is safe for concurrent use, and several processes may open
// one store at once (on SQLite they serialize; on PostgreSQL they are a node's replicas).
type Store interface {
	// Read runs fn on one consistent state of the store, read-only.
	Read(ctx context.Context, fn func(Tx) error) error
	// Write runs fn in one transaction, serializable with every other Write of any process:
	// of two that conflict, one wins and the other runs fn again on the new state (fn must
	// have no effect outside the transaction). It returns nil only once the transaction is
	// durable. An error leaves the store as it was, but for one: the connection lost during
	// the commit itself (ErrStore), after which the transaction may or may not have
	// committed; every write of a node is one that can be run again, or checked, after it.
	Write(ctx context.Context, fn func(Tx) error) error
	// Peek runs fn, read-only, outside a transaction where the store allows: each read of
	// fn is consistent on its own, two may see different states. For one read on the hot
	// path of every signing step (a key, or its pending refresh's epoch).
	Peek(ctx context.Context, fn func(Tx) error) error
	// Lease takes the store-wide exclusive lease called name, waiting until ctx is done;
	// release gives it back. A process that dies loses its leases. (The phone's refreshes
	// and recoveries hold "refresh" across the steps they send.)
	Lease(ctx context.Context, name string) (release func(), err error)
	// Admit records the request id as served until expires, and is ErrReplay if a record of
	// it is there that has not expired by more than replicas' clocks may differ (2 minutes):
	// a replica refuses what another replica served.
	// A store that one process serves at a time (Shared false) keeps nothing and is nil.
	Admit(ctx context.Context, id []byte, expires time.Time) error
	// Shared tells whether several processes may serve the store as one node at once.
	Shared() bool
	// Scrub removes from the store's files what earlier writes freed, as far as the store
	// can (SQLite checkpoints its WAL over zeroed pages; PostgreSQL leaves that to VACUUM).
	Scrub(ctx context.Context) error
	// Version is the schema version the store is at (the migrations it ran, in order).
	Version() int
	// Ping checks that the store answers.
	Ping(ctx context.Context) error
	Close() error
}

// Tx reads and writes the state in one transaction (Store.Read or Store.Write). The
// byte slices it returns are the caller's. A write through a Read's Tx fails.
type Tx interface {
	// Key returns the key with its public shares by node index, or ErrNotFound.
	Key(keyID string) (*Key, error)
	// KeyIDs lists the IDs of the keys of scheme, in order.
	KeyIDs(scheme uint8) ([]string, error)
	// InsertKey stores a new key, or is ErrExists if a key of its ID (of any scheme) is there.
	InsertKey(k *Key) error
	// UpdateShare writes the key's share, epoch, threshold and public shares (a refresh's
	// switch), or is ErrNotFound.
	UpdateShare(keyID string, share []byte, epoch uint32, threshold int, publicShares [][]byte) error
	// DeleteNewKey deletes the key if it is at epoch 0 (a failed key generation's), and
	// everything kept about it.
	DeleteNewKey(keyID string) error

	// Owner returns the index of the party that coordinates the key and its roster (as
	// stored), ok false if none was stored.
	Owner(keyID string) (owner int, roster string, ok bool, err error)
	// SetOwner stores the key's owner and roster.
	SetOwner(keyID string, owner int, roster string) error

	// Pending returns the key's prepared refresh, or nil.
	Pending(keyID string) (*Pending, error)
	// InsertPending stores the key's prepared refresh, or is ErrExists if one is there.
	InsertPending(keyID string, p *Pending) error
	// DeletePending deletes the key's prepared refresh of session (nil: whichever it is).
	DeletePending(keyID string, session []byte) error
	// Outcome returns how this node finished the key's refresh session (0: it has not).
	Outcome(keyID string, session []byte) (uint8, error)
	// SetOutcome records how this node finished the session; a recorded outcome stays.
	SetOutcome(keyID string, session []byte, outcome uint8) error

	// History returns the key's public shares at an earlier epoch, or nil.
	History(keyID string, epoch uint32) ([][]byte, error)
	// SetHistory keeps the key's public shares of an earlier epoch (replacing any).
	SetHistory(keyID string, epoch uint32, points [][]byte) error

	// Seeds returns the key's OT seeds made at epoch, with each peer.
	Seeds(keyID string, epoch uint32) ([]Seeds, error)
	// PutSeeds stores seeds with s.Peer, in place of any before.
	PutSeeds(keyID string, s *Seeds) error
	// DeleteSeeds deletes the key's seeds with peer of that ID; peer < 0: all of the key's.
	DeleteSeeds(keyID string, peer int, id []byte) error

	// Behind returns the epoch a peer's signed word put the key at when this node's state of
	// it was older (its database restored from before a refresh), ok false if none was kept.
	Behind(keyID string) (epoch uint32, peer string, ok bool, err error)
	// SetBehind keeps that word, unless one of a later epoch is kept.
	SetBehind(keyID string, epoch uint32, peer string) error
	// ClearBehind forgets the key's word (the operator's tsmnode behind --clear).
	ClearBehind(keyID string) error

	// NodeKey returns the node key's seed kept in the store, or nil.
	NodeKey() ([]byte, error)
	// SetNodeKey keeps the node key's seed, or is ErrExists if one is kept.
	SetNodeKey(seed []byte) error
	// Pin returns the node ID pinned for a server node's URL, ok false if none.
	Pin(url string) (id string, ok bool, err error)
	// SetPin pins id for url: over an existing pin only if replace.
	SetPin(url, id string, replace bool) error
}

// Key is a node's share of a key and the key's public state.
type Key struct {
	ID           string
	Scheme       uint8
	Curve        uint8
	NodeIndex    int
	Players      int
	Threshold    int
	Epoch        uint32
	Created      int64 // Unix seconds
	Share        []byte
	PublicKey    []byte
	Description  string
	ChainCode    []byte
	PublicShares [][]byte // by node index
}

// Pending is a key's prepared refresh: the share at its next epoch, kept until the switch.
type Pending struct {
	Session      []byte
	Epoch        uint32
	Share        []byte
	PublicShares []byte // concatenated, by node index
	Decider      string // the decider's node ID ("" if this node decides)
}

// Seeds are the OT seeds of a threshold ECDSA key with one peer.
type Seeds struct {
	Peer     int
	Epoch    uint32
	ID       []byte
	Receiver []byte
	Sender   []byte
}

var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already there")
	ErrReplay   = errors.New("this request was served already")
	// ErrStore wraps every failure of the store itself (not of what fn returned): the
	// database is down, full or broken. A node answers it 503 with Retry-After.
	ErrStore = errors.New("the node's database failed; retry later")
	// ErrNewer: the store's schema is newer than this code knows.
	ErrNewer = errors.New("the database's schema is newer than this release knows")
)
