// Package tsm is the phone's embedded TSM node (threshold signing) and the client API of
// Builder Vault's "Backup/Restore of Key Shares": the source of what sharevault backs up
// and the place it restores into.
//
// # Clients and nodes
//
// A Client is built from a Config listing one or more nodes, each a SQLite database of its
// own, and a section per protocol. NewECDSAClient and NewEDDSAClient wrap it:
//
//	client, _ := tsm.NewClient(tsm.Config{
//		Nodes: []tsm.NodeConfig{{Database: "phone.db"}},
//		EdDSA: tsm.ProtocolConfig{EnableShareBackup: true},
//	})
//	ed := tsm.NewEDDSAClient(client)
//	backup, _ := ed.BackupShare(keyID)        // unencrypted: seal it before it goes anywhere
//	keyID, _ = ed.RestoreShare(backup)         // the same key ID
//
// As the seed says, BackupShare and RestoreShare refuse to run unless EnableShareBackup is
// set for the protocol and exactly one node is configured, since the share comes back
// unencrypted. Key generation, refresh, VerifyShare and signing run across the nodes of a
// client (in this process: the phone and, for the demonstration, the server nodes).
//
// # Parties and the coordinator
//
// Each node is a party (party.go) that holds only its own share and answers protocol steps
// with messages; the coordinator (coordinator.go) carries messages between parties through
// a Peer and never holds a share. The protocols themselves are pure state machines in
// package protocol: Pedersen DKG with proofs of knowledge, FROST(Ed25519, SHA-512) signing
// (RFC 9591) and proactive refresh. docs/tsm-protocol.md specifies them.
//
// # Keys
//
// A key of n nodes with threshold t is a Shamir sharing: any t+1 nodes sign. The default is
// n-of-n (t = n−1: the phone plus two server nodes, and every signature needs the phone);
// GenerateKeyThreshold makes others, such as 2-of-3. ECDSA keys on secp256k1 get key
// generation, refresh, backup, restore and VerifyShare; threshold ECDSA signing is out of
// scope. EdDSA keys on Ed25519 sign by FROST, giving standard Ed25519 signatures.
//
// A refresh switches every node to a new share of the same key, by a two-phase commit that
// one node (the key's decider) decides and every other party follows on its signed word; a
// crash, a lost message or a relay at any point is finished or rolled back on every node by
// Recover, which every operation across nodes runs first (docs/tsm-protocol.md). The backup format is docs/tsm-backup.md (version 2;
// version 1 backups, of the additive n-of-n keys before, still restore).
package tsm

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/sharevault/sharevault/internal/tsm/protocol"
)

// Scheme is a signature scheme. Its values match the envelope's (docs/envelope.md).
type Scheme uint8

const (
	ECDSA Scheme = 1
	EdDSA Scheme = 2
)

func (s Scheme) String() string {
	switch s {
	case ECDSA:
		return "ECDSA"
	case EdDSA:
		return "EdDSA"
	}
	return fmt.Sprintf("Scheme(%d)", uint8(s))
}

// Curve is the curve of a key.
type Curve uint8

const (
	Secp256k1 Curve = 1
	Ed25519   Curve = 2
)

func (c Curve) String() string {
	switch c {
	case Secp256k1:
		return "secp256k1"
	case Ed25519:
		return "Ed25519"
	}
	return fmt.Sprintf("Curve(%d)", uint8(c))
}

func curveOf(s Scheme) Curve {
	if s == EdDSA {
		return Ed25519
	}
	return Secp256k1
}

var (
	// ErrBackupDisabled: EnableShareBackup is off for the protocol.
	ErrBackupDisabled = errors.New("share backup is not enabled for this protocol: set EnableShareBackup in its section of the configuration")
	// ErrMultipleNodes: BackupShare and RestoreShare need a client with exactly one node.
	ErrMultipleNodes = errors.New("share backup and restore refuse to run with more than one node configured, since the share is returned unencrypted")
	// ErrKeyNotFound: the node has no key with that ID (and scheme).
	ErrKeyNotFound = errors.New("key not found")
	// ErrKeyExists: a restore found the key with other content at the same or an older epoch.
	ErrKeyExists = errors.New("the key already exists on this node with different content")
	// ErrStaleEpoch: the share is from an older epoch than the key's other holders; the
	// key was reshared after this backup was made, and the backup can no longer sign.
	ErrStaleEpoch = errors.New("the share is from an older epoch: the key was reshared after this backup was made")
	// ErrBadBackup is wrapped by every error about a backup's bytes.
	ErrBadBackup = errors.New("invalid share backup")
	// ErrUnsupportedBackup: the backup is of a newer format version.
	ErrUnsupportedBackup = errors.New("share backup format version is not supported")
	// ErrShareMismatch: a share does not match the public share the other nodes hold.
	ErrShareMismatch = protocol.ErrShareMismatch
)

// KeyInfo describes one key as one node holds it. It holds no secret.
type KeyInfo struct {
	KeyID       string
	Scheme      Scheme
	Curve       Curve
	NodeIndex   int // this node's player index
	Players     int
	Threshold   int // any Threshold+1 shares sign
	Epoch       uint32
	Created     time.Time
	PublicKey   []byte // compressed secp256k1 point, or Ed25519 public key
	Description string
	ChainCode   []byte
}

// ShareBackup is what sharevault's backup flow needs of a TSM node. *ECDSAClient and
// *EDDSAClient implement it; an adapter over the vendor's SDK would too.
type ShareBackup interface {
	// BackupShare returns the node's database state for keyID, unencrypted.
	BackupShare(keyID string) ([]byte, error)
	// RestoreShare writes a backup into the node and returns its key ID, always the one
	// given to BackupShare. It changes nothing if it fails.
	RestoreShare(backup []byte) (keyID string, err error)
	// PublicKey returns the key's public key.
	PublicKey(keyID string) ([]byte, error)
	// KeyInfo describes the key as the node holds it.
	KeyInfo(keyID string) (KeyInfo, error)
}

var (
	_ ShareBackup = (*ECDSAClient)(nil)
	_ ShareBackup = (*EDDSAClient)(nil)
)

// Config configures a client: its nodes and a section per protocol.
type Config struct {
	Nodes []NodeConfig
	ECDSA ProtocolConfig
	EdDSA ProtocolConfig
	// HTTPClient reaches remote nodes (nil: one with short dial and answer timeouts).
	HTTPClient *http.Client
}

// NodeConfig names one node, as the seed's SDK does: an embedded node by the SQLite file it
// persists to (created with mode 0600 if absent; its directory must exist), or a remote
// node (cmd/tsmnode) by its URL, optionally with the node ID it must have.
type NodeConfig struct {
	Database string
	URL      string
	ID       string
}

// ProtocolConfig is a protocol's section of the configuration.
type ProtocolConfig struct {
	// EnableShareBackup enables BackupShare and RestoreShare. Off by default.
	EnableShareBackup bool
}

// Client is a connection to one or more nodes. It is safe for concurrent use.
type Client struct {
	cfg   Config
	nodes []*node // the embedded nodes (nil where peers[i] is remote)
	peers []Peer  // every node as a party
	local *party  // the first embedded node: it proves to remote nodes who asks
}

// NewClient opens every embedded node of cfg; remote nodes are reached when first used.
func NewClient(cfg Config) (*Client, error) {
	if len(cfg.Nodes) == 0 {
		return nil, errors.New("tsm: no nodes configured")
	}
	c := &Client{cfg: cfg}
	for _, nc := range cfg.Nodes {
		if (nc.Database == "") == (nc.URL == "") {
			c.Close()
			return nil, errors.New("tsm: a node is configured by its database or by its URL, not both")
		}
		if nc.URL != "" {
			if strings.Contains(nc.URL, "|") && nc.ID == "" {
				c.Close()
				return nil, fmt.Errorf("tsm: node %s: a node of several replicas needs its node ID (URL|URL#NODE-ID)", nc.URL)
			}
			var pin NodeID
			if nc.ID != "" {
				var err error
				if pin, err = ParseNodeID(nc.ID); err != nil {
					c.Close()
					return nil, fmt.Errorf("tsm: node %s: %w", nc.URL, err)
				}
			}
			c.nodes = append(c.nodes, nil)
			c.peers = append(c.peers, newRemotePeer(nc.URL, pin, cfg.HTTPClient))
			continue
		}
		n, err := openNode(nc.Database)
		if err != nil {
			c.Close()
			return nil, err
		}
		key, err := n.nodeKey()
		if err != nil {
			n.close()
			c.Close()
			return nil, fmt.Errorf("tsm: node key of %s: %w", nc.Database, err)
		}
		p := newParty(n, key)
		if c.local == nil {
			c.local = p
		}
		c.nodes = append(c.nodes, n)
		c.peers = append(c.peers, p)
	}
	for _, p := range c.peers {
		if rp, ok := p.(*remotePeer); ok && c.local != nil {
			rp.pins = c.local.n // the phone keeps the node IDs it has seen
		}
	}
	return c, nil
}

// Failover tells whether a node of several replicas had one of them stop answering this
// client, which went on with another: that replica's sessions are gone with it, so an
// operation that failed on it is run once more (on a new client), where it completes.
func (c *Client) Failover() bool {
	for _, p := range c.peers {
		if r, ok := p.(*remotePeer); ok && r.moved.Load() {
			return true
		}
	}
	return false
}

// Close closes every embedded node's database.
func (c *Client) Close() error {
	var errs []error
	for _, n := range c.nodes {
		if n != nil {
			errs = append(errs, n.close())
		}
	}
	return errors.Join(errs...)
}

// embedded returns the client's first embedded node.
func (c *Client) embedded() (*node, error) {
	if c.local == nil {
		return nil, errors.New("tsm: this needs an embedded node, and the client has only remote ones")
	}
	return c.local.n, nil
}

// ECDSAClient runs the ECDSA (secp256k1) protocol on a client's nodes.
type ECDSAClient struct{ schemeClient }

// EDDSAClient runs the EdDSA (Ed25519) protocol on a client's nodes.
type EDDSAClient struct{ schemeClient }

// NewECDSAClient wraps c for ECDSA.
func NewECDSAClient(c *Client) *ECDSAClient {
	return &ECDSAClient{schemeClient{c, ECDSA, c.cfg.ECDSA}}
}

// NewEDDSAClient wraps c for EdDSA.
func NewEDDSAClient(c *Client) *EDDSAClient {
	return &EDDSAClient{schemeClient{c, EdDSA, c.cfg.EdDSA}}
}

// schemeClient holds what the two protocol clients share.
type schemeClient struct {
	c      *Client
	scheme Scheme
	cfg    ProtocolConfig
}

// BackupShare returns the database state of keyID on the client's single node,
// unencrypted (docs/tsm-backup.md). Protect it before it goes anywhere.
func (s *schemeClient) BackupShare(keyID string) ([]byte, error) {
	n, err := s.backupNode()
	if err != nil {
		return nil, err
	}
	k, err := n.key(keyID, s.scheme)
	if err != nil {
		return nil, err
	}
	defer k.wipe()
	return k.encode(), nil
}

// RestoreShare writes a backup into the client's single node, in one transaction, and
// returns the key ID. A corrupt, truncated, tampered or wrong-version backup, or one for
// another scheme, changes nothing. An identical key already there is a no-op; the key at
// a newer epoch gives ErrStaleEpoch; other content gives ErrKeyExists.
func (s *schemeClient) RestoreShare(backup []byte) (string, error) {
	n, err := s.backupNode()
	if err != nil {
		return "", err
	}
	k, err := decodeBackup(backup)
	if err != nil {
		return "", err
	}
	defer k.wipe()
	if k.Scheme != s.scheme {
		return "", fmt.Errorf("%w: it holds an %s key, not %s", ErrBadBackup, k.Scheme, s.scheme)
	}
	if k.additive { // a version 1 backup: the Shamir share it is equivalent to
		sh, err := k.toShamir()
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrBadBackup, err)
		}
		defer sh.wipe()
		k = sh
	}
	if err := n.restore(k); err != nil {
		return "", err
	}
	return k.KeyID, nil
}

func (s *schemeClient) backupNode() (*node, error) {
	if !s.cfg.EnableShareBackup {
		return nil, fmt.Errorf("%s: %w", s.scheme, ErrBackupDisabled)
	}
	if len(s.c.peers) != 1 {
		return nil, fmt.Errorf("%w (%d nodes)", ErrMultipleNodes, len(s.c.peers))
	}
	return s.c.embedded()
}

// KeyInfo describes keyID as the client's first embedded node holds it.
func (s *schemeClient) KeyInfo(keyID string) (KeyInfo, error) {
	n, err := s.c.embedded()
	if err != nil {
		return KeyInfo{}, err
	}
	k, err := n.key(keyID, s.scheme)
	if err != nil {
		return KeyInfo{}, err
	}
	defer k.wipe()
	return k.KeyInfo, nil
}

// PublicKey returns the public key of keyID.
func (s *schemeClient) PublicKey(keyID string) ([]byte, error) {
	info, err := s.KeyInfo(keyID)
	return info.PublicKey, err
}

// Keys lists the IDs of this scheme's keys on the client's first embedded node, in order.
func (s *schemeClient) Keys() ([]string, error) {
	n, err := s.c.embedded()
	if err != nil {
		return nil, err
	}
	return n.keyIDs(s.scheme)
}

// InspectBackup parses and checks a backup without restoring it, and describes its key.
func InspectBackup(backup []byte) (KeyInfo, error) {
	k, err := decodeBackup(backup)
	if err != nil {
		return KeyInfo{}, err
	}
	defer k.wipe()
	return k.KeyInfo, nil
}

// SchemeOf returns the scheme of keyID on the client's first embedded node.
func (c *Client) SchemeOf(keyID string) (Scheme, error) {
	n, err := c.embedded()
	if err != nil {
		return 0, err
	}
	for _, s := range []Scheme{ECDSA, EdDSA} {
		if _, err := n.key(keyID, s); err == nil {
			return s, nil
		}
	}
	return 0, fmt.Errorf("%w: %q", ErrKeyNotFound, keyID)
}
