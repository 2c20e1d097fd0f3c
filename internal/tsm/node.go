package tsm

// A node keeps its state in a nodestore.Store: its own SQLite file (nodestore/sqlite) for
// an embedded node and a small service, or PostgreSQL (nodestore/postgres) for a service of
// several replicas. What this file does with it is the TSM's: a key's shares by epoch, the
// two phases of a refresh, the owners and rosters, the public shares of earlier epochs.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sharevault/sharevault/internal/nodestore"
	"github.com/sharevault/sharevault/internal/nodestore/sqlite"
)

// querier is a transaction of the node's store (nodestore.Store.Read or Write).
type querier = nodestore.Tx

// ErrStore is wrapped by a failure of the node's own database: an answer says only that,
// and the operator's log has the rest.
var ErrStore = nodestore.ErrStore

// storeError marks an error of the database itself (not a refusal of the step).
func storeError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrStore) {
		return fmt.Errorf("%w: %w", ErrStore, err)
	}
	return err
}

type node struct {
	name  string // the database: a SQLite file's path, or a PostgreSQL database's name
	store nodestore.Store
}

// openNode opens the SQLite file at path (an embedded node, or with serve a service on one
// file, which holds its "serve" lease).
func openNode(path string, serve ...bool) (*node, error) {
	s, err := sqlite.Open(path, sqlite.Options{ConvertAdditive: convertAdditive, Serve: len(serve) > 0 && serve[0]})
	if err != nil {
		return nil, fmt.Errorf("tsm: %w", err)
	}
	return &node{name: path, store: s}, nil
}

func (n *node) close() error { return n.store.Close() }

// OpenStore opens a node's SQLite file as a node service does (its "serve" lease first,
// then a version 1 file's keys become threshold shares): for moving it to another store.
func OpenStore(path string) (*sqlite.Store, error) {
	return sqlite.Open(path, sqlite.Options{ConvertAdditive: convertAdditive, Serve: true})
}

// storeWait bounds one read or write of the node's store: past it, the store is down.
const storeWait = 10 * time.Second

func (n *node) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), storeWait)
}

// view runs fn on one state of the store: never a key from before a switch with the
// pending row after it.
func (n *node) view(fn func(q querier) error) error {
	ctx, cancel := n.ctx()
	defer cancel()
	return n.store.Read(ctx, fn)
}

// write runs fn in one transaction (again, if it lost to another replica's).
func (n *node) write(fn func(tx querier) error) error {
	ctx, cancel := n.ctx()
	defer cancel()
	return n.store.Write(ctx, fn)
}

// nodeKey returns the node's identity kept in its database, made on first use.
func (n *node) nodeKey() (*NodeKey, error) {
	var k *NodeKey
	err := n.write(func(tx querier) error {
		seed, err := tx.NodeKey()
		if err != nil {
			return err
		}
		if seed == nil {
			k = GenerateNodeKey()
			return tx.SetNodeKey(k.seed)
		}
		defer clear(seed)
		k, err = NewNodeKey(seed)
		return err
	})
	return k, err
}

// readRoster returns the node IDs of a key's parties as its generation named them, by
// identifier (nil for a key from before they were kept, or on a node without an owner row).
func readRoster(q querier, keyID string) ([]NodeID, error) {
	_, r, _, err := q.Owner(keyID)
	if err != nil || r == "" {
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

// readPendingDecider returns the decider's node ID recorded with the key's prepared refresh of
// session ("" if this node decides, or for a refresh prepared before it was recorded), its
// epoch, and whether one is prepared.
func readPendingDecider(q querier, keyID string, session []byte) (string, uint32, bool, error) {
	p, err := q.Pending(keyID)
	if err != nil || p == nil || !bytes.Equal(p.Session, session) {
		return "", 0, false, err
	}
	clear(p.Share)
	return p.Decider, p.Epoch, true, nil
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

// pin returns the node ID this node (a phone) has pinned for a server node's URL, pinning
// id there first if it has none.
func (n *node) pin(url, id string) (have string, err error) {
	err = n.write(func(tx querier) error {
		if err := tx.SetPin(url, id, false); err != nil {
			return err
		}
		have, _, err = tx.Pin(url)
		return err
	})
	return have, err
}

// pinned returns the node ID pinned for url, if there is one.
func (n *node) pinned(url string) (id string, ok bool) {
	n.view(func(q querier) (err error) { id, ok, err = q.Pin(url); return err })
	return id, ok
}

// repin replaces the pin for url with id (the configuration named it).
func (n *node) repin(url, id string) error {
	return n.write(func(tx querier) error { return tx.SetPin(url, id, true) })
}

// ownerOf returns the index of the party that coordinates keyID (0 if none was recorded).
func (n *node) ownerOf(keyID string) (owner int, err error) {
	err = n.view(func(q querier) error { owner, err = readOwner(q, keyID); return err })
	return owner, err
}

func readOwner(q querier, keyID string) (int, error) {
	owner, _, _, err := q.Owner(keyID)
	return owner, err
}

// convertAdditive rewrites every key of a v1 database as its Shamir equivalent (the SQLite
// store's migration to version 2).
func convertAdditive(tx querier) error {
	for _, s := range []Scheme{ECDSA, EdDSA} {
		ids, err := tx.KeyIDs(uint8(s))
		if err != nil {
			return err
		}
		for _, id := range ids {
			k, err := readKey(tx, id, s)
			if err != nil {
				return err
			}
			k.additive = true
			sh, err := k.toShamir()
			k.wipe()
			if err != nil {
				return fmt.Errorf("key %q: %w", id, err)
			}
			err = replaceShare(tx, sh)
			sh.wipe()
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// key reads keyID of the given scheme; another scheme's key is not found. It is one read
// of the store, without a transaction where the store allows.
func (n *node) key(keyID string, scheme Scheme) (*keyState, error) {
	ctx, cancel := n.ctx()
	defer cancel()
	var r *nodestore.Key
	err := n.store.Peek(ctx, func(q querier) (err error) { r, err = q.Key(keyID); return err })
	return fromRecord(r, err, keyID, scheme)
}

func readKey(q querier, keyID string, scheme Scheme) (*keyState, error) {
	r, err := q.Key(keyID)
	return fromRecord(r, err, keyID, scheme)
}

func fromRecord(r *nodestore.Key, err error, keyID string, scheme Scheme) (*keyState, error) {
	if errors.Is(err, nodestore.ErrNotFound) || err == nil && Scheme(r.Scheme) != scheme {
		if r != nil {
			clear(r.Share)
		}
		return nil, fmt.Errorf("%w: %s key %q", ErrKeyNotFound, scheme, keyID)
	}
	if err != nil {
		return nil, err
	}
	return &keyState{KeyInfo: KeyInfo{KeyID: r.ID, Scheme: Scheme(r.Scheme), Curve: Curve(r.Curve), NodeIndex: r.NodeIndex,
		Players: r.Players, Threshold: r.Threshold, Epoch: r.Epoch, Created: time.Unix(r.Created, 0).UTC(),
		PublicKey: r.PublicKey, Description: r.Description, ChainCode: r.ChainCode},
		share: r.Share, publicShares: r.PublicShares}, nil
}

func insertKey(tx querier, k *keyState) error {
	return tx.InsertKey(&nodestore.Key{ID: k.KeyID, Scheme: uint8(k.Scheme), Curve: uint8(k.Curve), NodeIndex: k.NodeIndex,
		Players: k.Players, Threshold: k.Threshold, Epoch: k.Epoch, Created: k.Created.Unix(), Share: k.share,
		PublicKey: k.PublicKey, Description: k.Description, ChainCode: k.ChainCode, PublicShares: k.publicShares})
}

// replaceShare writes k's share, epoch, threshold and public shares over the key's row.
func replaceShare(tx querier, k *keyState) error {
	err := tx.UpdateShare(k.KeyID, k.share, k.Epoch, k.Threshold, k.publicShares)
	if errors.Is(err, nodestore.ErrNotFound) {
		return fmt.Errorf("key %q is gone", k.KeyID)
	}
	return err
}

// restore writes k in one transaction; see schemeClient.RestoreShare for the rules.
func (n *node) restore(k *keyState) error {
	return n.write(func(tx querier) error {
		old, err := readKey(tx, k.KeyID, k.Scheme)
		switch {
		case errors.Is(err, ErrKeyNotFound):
			if err := insertKey(tx, k); errors.Is(err, nodestore.ErrExists) {
				return fmt.Errorf("%w (as another scheme)", ErrKeyExists)
			} else if err != nil {
				return err
			}
			return nil
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
	})
}

func (n *node) keyIDs(scheme Scheme) (ids []string, err error) {
	err = n.view(func(q querier) error { ids, err = q.KeyIDs(uint8(scheme)); return err })
	return ids, err
}

// faultHook, when set (by tests only), is called before and after each write of a refresh
// with the node's database name and the step ("prepare-before", …, "commit-after"); an
// error it returns stops the step there, as a crash would.
var faultHook func(name, step string) error

func (n *node) fault(step string) error {
	if faultHook == nil {
		return nil
	}
	return faultHook(n.name, step)
}

func concat(ps [][]byte) []byte { return bytes.Join(ps, nil) }

// pendingEpoch returns the epoch and session of the key's prepared refresh, or 0 and nil.
func (n *node) pendingEpoch(keyID string) (epoch uint32, session []byte, err error) {
	ctx, cancel := n.ctx()
	defer cancel()
	err = n.store.Peek(ctx, func(q querier) error { epoch, session, err = readPendingEpoch(q, keyID); return err })
	return epoch, session, err
}

func readPendingEpoch(q querier, keyID string) (uint32, []byte, error) {
	p, err := q.Pending(keyID)
	if err != nil || p == nil {
		return 0, nil, err
	}
	clear(p.Share)
	return p.Epoch, p.Session, nil
}

// prepare stores next (the key at its next epoch) as the key's pending share, durably, with
// the node ID of the refresh's decider ("" if this node is it).
func (n *node) prepare(next *keyState, session []byte, decider string) error {
	if err := n.fault("prepare-before"); err != nil {
		return err
	}
	err := n.write(func(tx querier) error {
		cur, err := readKey(tx, next.KeyID, next.Scheme)
		if err != nil {
			return err
		}
		cur.wipe()
		if cur.Epoch+1 != next.Epoch {
			return fmt.Errorf("key %q moved to epoch %d during the refresh", next.KeyID, cur.Epoch)
		}
		switch done, err := tx.Outcome(next.KeyID, session); {
		case err != nil:
			return err
		case done != 0:
			return errSessionOver
		}
		err = tx.InsertPending(next.KeyID, &nodestore.Pending{Session: session, Epoch: next.Epoch, Share: next.share,
			PublicShares: concat(next.publicShares), Decider: decider})
		if errors.Is(err, nodestore.ErrExists) {
			return fmt.Errorf("key %q has another refresh prepared: it must be finished or discarded first", next.KeyID)
		}
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
	p, err := q.Pending(keyID)
	if err != nil || p == nil {
		return nil, err
	}
	next := &keyState{KeyInfo: k.KeyInfo, share: p.Share}
	next.Epoch = p.Epoch
	pl := len(k.publicShares[0])
	for i := 0; i+pl <= len(p.PublicShares); i += pl {
		next.publicShares = append(next.publicShares, p.PublicShares[i:i+pl])
	}
	if p.Epoch != k.Epoch+1 {
		next.wipe()
		return nil, fmt.Errorf("key %q: prepared epoch %d does not follow %d", keyID, p.Epoch, k.Epoch)
	}
	if err := next.check(); err != nil {
		next.wipe()
		return nil, fmt.Errorf("key %q: the prepared share does not check: %w", keyID, err)
	}
	return next, nil
}

// commitPending switches the key to its pending share of the given refresh session, then
// scrubs the store so the old share is gone from its files where the store can (SQLite:
// secure_delete zeroes what the switch frees, and the WAL is checkpointed).
func (n *node) commitPending(keyID string, session []byte) error {
	if err := n.fault("commit-before"); err != nil {
		return err
	}
	err := n.write(func(tx querier) error {
		r, err := tx.Key(keyID)
		if err != nil {
			return fmt.Errorf("%w: %q", ErrKeyNotFound, keyID)
		}
		clear(r.Share)
		if p, err := tx.Pending(keyID); err != nil || p == nil || !bytes.Equal(p.Session, session) {
			return errors.Join(err, fmt.Errorf("key %q has no refresh of this session prepared to commit", keyID))
		}
		next, err := readPending(tx, keyID, Scheme(r.Scheme))
		if err != nil {
			return err
		}
		defer next.wipe()
		if err := tx.SetHistory(keyID, r.Epoch, r.PublicShares); err != nil {
			return err
		}
		if err := replaceShare(tx, next); err != nil {
			return err
		}
		if err := tx.SetOutcome(keyID, session, Committed); err != nil {
			return err
		}
		if err := tx.DeleteSeeds(keyID, -1, nil); err != nil { // renewed at the new epoch
			return err
		}
		return tx.DeletePending(keyID, nil)
	})
	if err != nil {
		return err
	}
	ctx, cancel := n.ctx()
	defer cancel()
	if err := n.store.Scrub(ctx); err != nil {
		return err
	}
	return n.fault("commit-after")
}

// abortPending discards the key's prepared refresh of the given session, if any, and ends
// the session on this node: it is never prepared here again. A session this node committed
// stays committed.
func (n *node) abortPending(keyID string, session []byte) error {
	return n.write(func(tx querier) error {
		if session == nil {
			return nil
		}
		if err := tx.DeletePending(keyID, session); err != nil {
			return err
		}
		switch r, err := tx.Key(keyID); {
		case errors.Is(err, nodestore.ErrNotFound):
			return nil
		case err != nil:
			return err
		default:
			clear(r.Share)
		}
		return tx.SetOutcome(keyID, session, Aborted)
	})
}
