// Package client is the phone app's side of sharevault, importable by an app (gomobile
// bind accepts its exported API: plain types, no maps or channels): fresh words, the
// backup of a TSM key share to the vault, and its restore with the words alone.
//
// # Flows
//
//	words, _ := client.NewWords(24)            // show words.Phrase() once; quiz the user
//	keys, _ := words.Keys("")                  // keep keys.Marshal() in the Keychain
//	phone, _ := client.OpenPhone("phone.db", client.NewVault(url))
//	report, _ := phone.Backup(keys, keyID)     // BackupShare, seal, signed upload
//
//	// A new phone:
//	found, _ := client.FindKeys(vault, typedWords, "")       // corrects one wrong word
//	restored, _ := phone.Restore(found.Keys, keyID)          // RestoreShare: same key ID
//
// # Errors
//
// Errors are single lines meant for the user. Wrong words surface as
// *mnemonic-style word errors from KeysFromWords, as ErrWrongWords when no vault answers
// to them, and as ErrCannotOpen when a backup does not open.
package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sharevault/sharevault/api"
	"github.com/sharevault/sharevault/internal/envelope"
	"github.com/sharevault/sharevault/internal/mnemonic"
	"github.com/sharevault/sharevault/internal/recovery"
	"github.com/sharevault/sharevault/internal/tsm"
)

var (
	// ErrWrongWords: the words parse, but no vault exists for them or any one-word fix.
	ErrWrongWords = errors.New("no backup exists for these words: check each word against your sheet (words replaced by a rotation no longer restore: use the newer sheet)")
	// ErrCannotOpen: a backup did not decrypt (wrong passphrase, or a damaged backup).
	ErrCannotOpen = errors.New("the backup does not open with these words and passphrase, or it is damaged")
	// ErrNoSuchKey: the phone (its TSM node) has no key of that ID.
	ErrNoSuchKey = tsm.ErrKeyNotFound
	// ErrNodeDown: a TSM server node did not answer (down, refused, or too slow).
	ErrNodeDown = tsm.ErrNodeUnreachable
	// ErrNodeChanged: a server node's URL answered with another node ID than the one
	// configured or pinned when the phone first reached it; nothing was done there.
	ErrNodeChanged = tsm.ErrNodeChanged
	// ErrStale: the backup is from before a reshare; restoring it would give a share that
	// can no longer sign with the other nodes.
	ErrStale = errors.New("this backup is older than the key's last reshare, so its share can no longer sign; back up again from a phone that has the current share, or reshare with the other nodes")
)

// Phone is the app: its embedded TSM node (one SQLite file), the TSM server nodes it signs
// with (by URL, AddRemoteNode; the package's tests also run them in their own process), and
// its vault.
type Phone struct {
	path    string
	node    *tsm.Client
	servers []tsm.NodeConfig
	vault   *Vault
}

// OpenPhone opens (or creates) the phone's TSM node database.
func OpenPhone(dbPath string, vault *Vault) (*Phone, error) {
	cfg := tsm.Config{Nodes: []tsm.NodeConfig{{Database: dbPath}},
		ECDSA: tsm.ProtocolConfig{EnableShareBackup: true}, EdDSA: tsm.ProtocolConfig{EnableShareBackup: true}}
	n, err := tsm.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	return &Phone{path: dbPath, node: n, vault: vault}, nil
}

// AddRemoteNode adds a TSM server node (cmd/tsmnode) by its URL, and the node ID it must
// have ("" to take the one it tells). A node of several replicas is "URL|URL", with its ID.
func (p *Phone) AddRemoteNode(url, id string) {
	p.servers = append(p.servers, tsm.NodeConfig{URL: url, ID: id})
}

// Key describes the phone's own key keyID (ErrNoSuchKey if it has none); it asks no node.
func (p *Phone) Key(keyID string) (*KeyInfo, error) {
	s, err := p.node.SchemeOf(keyID)
	if err != nil {
		return nil, err
	}
	i, err := ops(s, p.node).KeyInfo(keyID)
	if err != nil {
		return nil, err
	}
	return infoOf(i), nil
}

// CheckNodes asks every TSM server node whether it answers (GET /readyz, unsigned): nil,
// or ErrNodeDown naming the first that does not. Apps call it before asking for the words.
func (p *Phone) CheckNodes() error {
	for i, s := range p.servers {
		if err := ready(s); err != nil {
			return fmt.Errorf("%w: node %d at %s: %v", ErrNodeDown, i+1, s.URL, err)
		}
	}
	return nil
}

// answering returns the server nodes that answer /readyz.
func (p *Phone) answering() []tsm.NodeConfig {
	var up []tsm.NodeConfig
	for _, s := range p.servers {
		if ready(s) == nil {
			up = append(up, s)
		}
	}
	return up
}

// nodeTransport carries every phone's steps to its server nodes: one pool of connections
// for the process, so an operation does not open new connections (a round trip each on a
// phone's link) where the last one left some. A node that does not take a connection within
// 3 s is down.
var nodeTransport http.RoundTripper = &http.Transport{
	DialContext:           (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
	ResponseHeaderTimeout: 30 * time.Second, MaxIdleConnsPerHost: 8, IdleConnTimeout: 90 * time.Second}

var nodeHTTP = &http.Client{Timeout: 30 * time.Second, Transport: roundTripperFunc(func(r *http.Request) (*http.Response, error) {
	return nodeTransport.RoundTrip(r)
})}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// WrapTransport wraps the transport of every request to the vault and the server nodes
// (for measurement: vaultbench counts a flow's round trips with it). Apps do not call it.
func WrapTransport(wrap func(http.RoundTripper) http.RoundTripper) {
	nodeTransport = wrap(nodeTransport)
	vaultTransport = wrap(vaultTransport)
}

// ready asks a server node whether it answers (a node in this process always does); a
// node of several replicas ("URL|URL") answers if one of them does.
func ready(s tsm.NodeConfig) error {
	if s.URL == "" {
		return nil // a node in this process (the package's tests)
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	var err error
	for _, u := range strings.Split(s.URL, "|") {
		var resp *http.Response
		if resp, err = hc.Get(strings.TrimRight(u, "/") + "/readyz"); err != nil {
			err = errors.New(shortNetError(err))
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
		err = fmt.Errorf("answered HTTP %d", resp.StatusCode)
	}
	return err
}

// Close closes the phone's node.
func (p *Phone) Close() error { return p.node.Close() }

func (p *Phone) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Minute)
}

// withAll runs fn on a client of every node: the phone and the server nodes.
func (p *Phone) withAll(fn func(c *tsm.Client) error) error { return p.withNodes(p.servers, fn) }

// withNodes runs fn on a client of the phone and the given server nodes.
func (p *Phone) withNodes(servers []tsm.NodeConfig, fn func(c *tsm.Client) error) error {
	if len(servers) == 0 {
		return errors.New("no TSM server nodes configured")
	}
	cfg := tsm.Config{Nodes: append([]tsm.NodeConfig{{Database: p.path}}, servers...), HTTPClient: nodeHTTP}
	c, err := tsm.NewClient(cfg)
	if err != nil {
		return err
	}
	err = fn(c)
	c.Close()
	if err != nil && c.Failover() && (errors.Is(err, tsm.ErrNodeUnreachable) || errors.Is(err, tsm.ErrNoSession)) {
		// A replica of a server node went away in the middle, with the sessions it held:
		// once more, on the replica that took over (docs/operations.md, "Replicas").
		if c, err = tsm.NewClient(cfg); err != nil {
			return err
		}
		defer c.Close()
		return fn(c)
	}
	return err
}

type schemeOps interface {
	GenerateKeyThreshold(description string, threshold int) (string, error)
	ReshareWithBackup(keyID string, keep func(backup []byte) error, decided func()) error
	VerifyShare(keyID string) error
	Recover(keyID string) error
	CurrentEpoch(backup []byte) (uint32, error)
	KeyInfo(keyID string) (tsm.KeyInfo, error)
	tsm.ShareBackup
}

func ops(s tsm.Scheme, c *tsm.Client) schemeOps {
	if s == tsm.ECDSA {
		return tsm.NewECDSAClient(c)
	}
	return tsm.NewEDDSAClient(c)
}

// parseScheme reads "ecdsa" or "eddsa".
func parseScheme(s string) (tsm.Scheme, error) {
	switch strings.ToLower(s) {
	case "ecdsa":
		return tsm.ECDSA, nil
	case "eddsa":
		return tsm.EdDSA, nil
	}
	return 0, fmt.Errorf("unknown scheme %q: want ecdsa or eddsa", s)
}

// KeyGen creates a key across the phone and the server nodes and returns its ID: an
// n-of-n key, so every signature needs the phone and every server node.
func (p *Phone) KeyGen(scheme, description string) (string, error) {
	return p.KeyGenThreshold(scheme, description, len(p.servers))
}

// KeyGenThreshold creates a key that any threshold+1 of the n parties (the phone and the
// server nodes) sign with; threshold is 1..n-1 (n-1: KeyGen's n-of-n key).
func (p *Phone) KeyGenThreshold(scheme, description string, threshold int) (string, error) {
	s, err := parseScheme(scheme)
	if err != nil {
		return "", err
	}
	if n := len(p.servers) + 1; n > 1 && (threshold < 1 || threshold >= n) {
		return "", fmt.Errorf("threshold %d: want 1..%d, so that any threshold+1 of the %d parties sign", threshold, n-1, n)
	}
	var id string
	err = p.withAll(func(c *tsm.Client) error {
		id, err = ops(s, c).GenerateKeyThreshold(description, threshold)
		return err
	})
	return id, err
}

// Reshare refreshes a key's shares on every node (proactive secret sharing: the public key
// stays, every share changes) and ends with a backup of the new share in the vault: the
// phone's next share is sealed and uploaded before any node switches to it, so a crash at
// any point leaves a backup the nodes accept. Once every node has switched, the key's older
// versions in the vault are deleted (their shares can no longer sign). It needs the vault's
// keys (the words'); without them it refuses, since a refresh would leave no backup.
func (p *Phone) Reshare(keys *Keys, keyID string) (*KeyInfo, error) {
	if keys == nil {
		return nil, errors.New("a reshare needs this phone's backup keys, so that it can back up the new share: back the key up first")
	}
	s, err := p.node.SchemeOf(keyID)
	if err != nil {
		return nil, err
	}
	ctx, cancel := p.ctx()
	// The vault lists the key's versions while the refresh runs: the new share's upload
	// needs the latest, and the older versions are deleted once the refresh is decided,
	// beside the other nodes' switch.
	listed := p.listVersions(ctx, keys, keyID)
	defer func() { cancel(); listed.result() }() // not left running past the reshare
	var up *KeyInfo
	var vl *api.VersionList // what the prune deletes from
	relisted, decided, recovered := false, false, false
	var pruneErr error
	prune := func() error {
		if relisted || vl == nil { // another upload came between, or the listing failed
			var err error
			if vl, err = p.vault.versions(ctx, keys, keyID); err != nil {
				return err
			}
		}
		return p.prune(ctx, keys, keyID, vl, uint64(up.Sequence))
	}
	err = p.withAll(func(c *tsm.Client) error {
		if up != nil {
			// Run again on another replica after its new share was backed up (from there on,
			// it is decided only by the decider, whose answer may be lost): recover it, which
			// finishes or undoes it, never a second refresh.
			recovered = true
			return ops(s, c).Recover(keyID)
		}
		return ops(s, c).ReshareWithBackup(keyID, func(share []byte) error {
			var err error
			vl, err = listed.result()
			up, err = p.uploadListed(ctx, keys, keyID, share, vl, err)
			if errors.Is(err, ErrConflict) { // another upload since the listing
				relisted = true
				up, err = p.upload(ctx, keys, keyID, share)
			}
			if err == nil && testHookAfterReshareUpload != nil {
				testHookAfterReshareUpload()
			}
			return err
		}, func() {
			decided = true
			pruneErr = prune()
		})
	})
	if err != nil && up != nil && !decided {
		// The decision may have landed with its answer lost: recover now; if that leaves the
		// phone at the new epoch, the refresh is done, and the older versions go.
		rerr := p.withAll(func(c *tsm.Client) error { return ops(s, c).Recover(keyID) })
		if info, kerr := ops(s, p.node).KeyInfo(keyID); rerr == nil && kerr == nil && int64(info.Epoch) == up.Epoch {
			err, pruneErr = nil, prune()
		}
	}
	if err == nil && recovered && !decided {
		// The run again only recovered: done if that left the phone at the new epoch.
		if info, kerr := ops(s, p.node).KeyInfo(keyID); kerr != nil || int64(info.Epoch) != up.Epoch {
			return nil, errors.New("the reshare was interrupted (a replica of a server node went away) and undone: nothing changed; run it again")
		}
		pruneErr = prune()
	}
	if err != nil {
		if errors.Is(err, tsm.ErrStaleEpoch) {
			return nil, ErrStale
		}
		return nil, err
	}
	if pruneErr != nil {
		return up, fmt.Errorf("reshared and backed up as version %d, but older versions are still in the vault: %w", up.Sequence, pruneErr)
	}
	return up, nil
}

// prune deletes every version of keyID in vl before seq, all at once: after a refresh to
// seq's epoch, none of them holds a share that signs.
func (p *Phone) prune(ctx context.Context, keys *Keys, keyID string, vl *api.VersionList, seq uint64) error {
	var wg sync.WaitGroup
	errs := make([]error, len(vl.Versions))
	for i, v := range vl.Versions {
		if v.Sequence >= seq {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.vault.deleteVersion(ctx, keys, keyID, v.Sequence); !errors.Is(err, ErrNotFound) {
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Sign signs message with an EdDSA key across the phone and the server nodes and returns
// the hex Ed25519 signature, checked with crypto/ed25519: proof that the share works. (An
// ECDSA key signs a digest: SignDigest, SignEthereumMessage.)
func (p *Phone) Sign(keyID, message string) (string, error) {
	var sig []byte
	err := p.signWith(keyID, tsm.EdDSA, func(c *tsm.Client) (err error) {
		sig, err = tsm.NewEDDSAClient(c).Sign(keyID, []byte(message))
		return err
	})
	return hex.EncodeToString(sig), err
}

// signWith runs sign on a client of the phone and the server nodes, for a key of scheme
// want; when some nodes are down, a threshold key signs with the phone and the server
// nodes that answer, if they are enough.
func (p *Phone) signWith(keyID string, want tsm.Scheme, sign func(c *tsm.Client) error) error {
	s, err := p.node.SchemeOf(keyID)
	if err != nil {
		return err
	}
	if s != want {
		return fmt.Errorf("%s is an %s key: %s", keyID, s, map[tsm.Scheme]string{tsm.EdDSA: "sign a message", tsm.ECDSA: "sign a digest"}[s])
	}
	err = p.withAll(sign)
	if errors.Is(err, tsm.ErrNodeUnreachable) {
		info, ierr := ops(s, p.node).KeyInfo(keyID)
		if up := p.answering(); ierr == nil && len(up) < len(p.servers) && len(up) >= info.Threshold {
			err = p.withNodes(up, sign)
		}
	}
	if errors.Is(err, tsm.ErrNodeBehind) {
		// A node whose database went back (it says so, and serves the key no more): a
		// threshold key signs without it, leaving out one node at a time.
		info, ierr := ops(s, p.node).KeyInfo(keyID)
		for i := range p.servers {
			others := slices.Delete(slices.Clone(p.servers), i, i+1)
			if ierr != nil || len(others) < info.Threshold {
				break
			}
			if p.withNodes(others, sign) == nil {
				return nil
			}
		}
	}
	if errors.Is(err, tsm.ErrStaleEpoch) {
		return ErrStale
	}
	return err
}

// KeyInfo describes a key on the phone (or in a backup).
type KeyInfo struct {
	KeyID     string
	Scheme    string
	PublicKey string // hex
	Epoch     int64
	Sequence  int64 // the backup's sequence in the vault, where it applies
}

func infoOf(i tsm.KeyInfo) *KeyInfo {
	return &KeyInfo{KeyID: i.KeyID, Scheme: i.Scheme.String(), PublicKey: hex.EncodeToString(i.PublicKey), Epoch: int64(i.Epoch)}
}

// testHookAfterReshareUpload, set by tests only, runs between a reshare's backup and its
// switch.
var testHookAfterReshareUpload func()

// testHookBeforeShare, set by tests only, runs just before Backup reads the share: where a
// refresh racing the backup can land.
var testHookBeforeShare func()

// Backup seals the phone's share of keyID and uploads it as the vault's next version.
func (p *Phone) Backup(keys *Keys, keyID string) (*KeyInfo, error) {
	ctx, cancel := p.ctx()
	defer cancel()
	s, err := p.node.SchemeOf(keyID)
	if err != nil {
		return nil, err
	}
	if testHookBeforeShare != nil {
		testHookBeforeShare()
	}
	var out *KeyInfo
	err = p.node.Exclusive(func() error { // no refresh between reading the share and its upload
		share, err := ops(s, p.node).BackupShare(keyID)
		if err != nil {
			return err
		}
		defer clear(share)
		info, err := tsm.InspectBackup(share)
		if err != nil {
			return err
		}
		// A phone left behind a reshare (another device ran it) must not upload its stale
		// share over the current one. The nodes are asked while the vault lists the key's
		// versions: one round trip for both.
		listed := p.listVersions(ctx, keys, keyID)
		err = p.checkEpoch(&opened{share: share, key: info})
		vl, vlErr := listed.result()
		switch {
		case errors.Is(err, ErrStale):
			return fmt.Errorf("this phone's share is older than the key's (it was reshared on another device): restore the key from the vault instead: %w", err)
		case errors.Is(err, tsm.ErrNodeUnreachable):
			// A backup is worth more than the check; a restore passes over a stale version.
			p.vault.step("the server nodes did not answer: backing up without checking the share against them")
		case err != nil:
			return err
		}
		out, err = p.uploadListed(ctx, keys, keyID, share, vl, vlErr)
		return err
	})
	return out, err
}

// listing is a listing of a key's versions, made on a goroutine of its own (beside steps to
// the nodes: one round trip for both); result waits for it.
type listing struct {
	done chan struct{}
	vl   *api.VersionList
	err  error
}

func (p *Phone) listVersions(ctx context.Context, keys *Keys, keyID string) *listing {
	l := &listing{done: make(chan struct{})}
	go func() {
		defer close(l.done)
		l.vl, l.err = p.vault.versions(ctx, keys, keyID)
	}()
	return l
}

func (l *listing) result() (*api.VersionList, error) {
	<-l.done
	return l.vl, l.err
}

// upload seals a share backup and stores it as the vault's next version of keyID, with
// the vault's compare-and-swap on the latest version.
func (p *Phone) upload(ctx context.Context, keys *Keys, keyID string, share []byte) (*KeyInfo, error) {
	vl, err := p.vault.versions(ctx, keys, keyID)
	return p.uploadListed(ctx, keys, keyID, share, vl, err)
}

// uploadListed is upload with the key's versions listed already (or the listing's error).
// The header's key ID, scheme and epoch come from the backup bytes themselves, never from a
// separate read that a refresh could overtake.
func (p *Phone) uploadListed(ctx context.Context, keys *Keys, keyID string, share []byte, vl *api.VersionList, err error) (*KeyInfo, error) {
	info, ierr := tsm.InspectBackup(share)
	if ierr != nil {
		return nil, ierr
	}
	if info.KeyID != keyID {
		return nil, errors.New("the share is of another key")
	}
	seq, prev := uint64(1), ""
	switch {
	case err == nil && len(vl.Versions) > 0:
		last := vl.Versions[len(vl.Versions)-1]
		seq, prev = last.Sequence+1, last.ETag
	case err != nil && !errors.Is(err, ErrNotFound):
		return nil, err
	}
	env, err := envelope.Seal(keys.root, envelope.Header{Scheme: envelope.Scheme(info.Scheme), VaultID: keys.id.VaultID(),
		KeyID: keyID, Epoch: info.Epoch, Sequence: seq}, share)
	if err != nil {
		return nil, err
	}
	p.vault.step("uploading version %d of %s (%d bytes)", seq, keyID, len(env))
	if err := p.vault.upload(ctx, keys, keyID, env, prev); err != nil {
		return nil, err
	}
	out := infoOf(info)
	out.Sequence = int64(seq)
	return out, nil
}

// opened is a backup downloaded and opened: the share (wipe it when done), the
// envelope's header, and the key the share describes (checked against the header).
type opened struct {
	share  []byte
	header *envelope.Header
	key    tsm.KeyInfo
	env    []byte // the envelope as the vault holds it
}

// open downloads and opens the latest backup of keyID; it changes nothing.
func (p *Phone) open(keys *Keys, keyID string) (*opened, error) {
	ctx, cancel := p.ctx()
	defer cancel()
	env, err := p.vault.latest(ctx, keys, keyID)
	if err != nil {
		return nil, err
	}
	return openEnvelope(keys, keyID, env)
}

func openEnvelope(keys *Keys, keyID string, env []byte) (*opened, error) {
	h, err := envelope.ParseHeader(env)
	if err != nil {
		return nil, fmt.Errorf("the backup is damaged: %w", err)
	}
	if h.VaultID != keys.id.VaultID() || (keyID != "" && h.KeyID != keyID) {
		return nil, errors.New("the backup belongs to another vault or key")
	}
	root, err := keys.rootFor(h.KDF)
	if err != nil {
		return nil, err
	}
	_, share, err := envelope.Open(root, env)
	if err != nil {
		return nil, ErrCannotOpen
	}
	info, err := tsm.InspectBackup(share)
	if err != nil {
		clear(share)
		return nil, fmt.Errorf("the backup opened but its share is damaged: %w", err)
	}
	if info.KeyID != h.KeyID || info.Epoch != h.Epoch || tsm.Scheme(h.Scheme) != info.Scheme {
		clear(share)
		return nil, errors.New("the backup's header does not match the share inside")
	}
	return &opened{share: share, header: h, key: info, env: env}, nil
}

// checkEpoch refuses a backup from before the key's last refresh, as the server nodes
// know it: the phone asks them through their API, proving with the backup's share that it
// is a party of the key (nothing to check without server nodes).
func (p *Phone) checkEpoch(o *opened) error {
	if len(p.servers) == 0 {
		return nil
	}
	var cur uint32
	err := p.withAll(func(c *tsm.Client) error {
		var err error
		cur, err = ops(o.key.Scheme, c).CurrentEpoch(o.share)
		return err
	})
	if errors.Is(err, tsm.ErrStaleEpoch) {
		return fmt.Errorf("%w (backup at epoch %d, the key is at %d)", ErrStale, o.key.Epoch, cur)
	}
	return err
}

// restoreShare writes an opened share into the phone; the caller has checked its epoch.
func (p *Phone) restoreShare(o *opened) (*KeyInfo, error) {
	defer clear(o.share)
	c := ops(o.key.Scheme, p.node)
	id, err := c.RestoreShare(o.share)
	if errors.Is(err, tsm.ErrStaleEpoch) {
		return nil, ErrStale
	}
	if err != nil {
		return nil, err
	}
	info, err := c.KeyInfo(id)
	if err != nil {
		return nil, err
	}
	out := infoOf(info)
	out.Sequence = int64(o.header.Sequence)
	return out, nil
}

// Restore restores the share of keyID into the phone's node from the newest backup in the
// vault that the server nodes accept: the latest, unless a refresh uploaded its backup and
// was then undone (a crash before it switched), whose share no node takes; then the one
// before it. The key ID it returns is always keyID.
func (p *Phone) Restore(keys *Keys, keyID string) (*KeyInfo, error) {
	o, err := p.accepted(keys, keyID)
	if err != nil {
		return nil, err
	}
	return p.restoreShare(o)
}

// accepted downloads and opens the newest version of keyID whose share the server nodes
// accept (checkEpoch), passing over versions whose share no node takes (an undone
// refresh's) and stale ones (a device left behind a reshare that backed up after it); it
// changes nothing.
func (p *Phone) accepted(keys *Keys, keyID string) (*opened, error) {
	ctx, cancel := p.ctx()
	defer cancel()
	// The latest first, in one request: it is the one the nodes take but after an undone
	// refresh or a device left behind; only then are the versions listed.
	env, err := p.vault.latest(ctx, keys, keyID)
	if err != nil {
		return nil, err
	}
	latest, err := openEnvelope(keys, keyID, env)
	if err != nil {
		return nil, err
	}
	first := p.checkEpoch(latest)
	if first == nil {
		return latest, nil
	}
	clear(latest.share)
	if !errors.Is(first, tsm.ErrNotAParty) && !errors.Is(first, ErrStale) {
		return nil, first
	}
	vl, err := p.vault.versions(ctx, keys, keyID)
	if err != nil {
		return nil, err
	}
	for i := len(vl.Versions) - 1; i >= 0; i-- {
		if vl.Versions[i].Sequence == latest.header.Sequence {
			continue
		}
		env, err := p.vault.version(ctx, keys, keyID, vl.Versions[i].Sequence)
		if err != nil {
			return nil, err
		}
		o, err := openEnvelope(keys, keyID, env)
		if err != nil {
			return nil, err
		}
		err = p.checkEpoch(o)
		if err == nil {
			p.vault.step("version %d is of an undone refresh (the nodes do not take its share): using version %d",
				latest.header.Sequence, o.header.Sequence)
			return o, nil
		}
		clear(o.share)
		if !errors.Is(err, tsm.ErrNotAParty) && !errors.Is(err, ErrStale) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("no backup of this key is accepted by the server nodes: %w", first)
}

// Verify is the restore drill: it finds the backup of keyID that a restore would take (the
// newest the server nodes accept), opens it and checks its key ID, public key and epoch
// against the phone's node. It changes nothing.
func (p *Phone) Verify(keys *Keys, keyID string) (*KeyInfo, error) {
	o, err := p.accepted(keys, keyID)
	if err != nil {
		return nil, err
	}
	defer clear(o.share)
	b := o.key
	out := infoOf(b)
	out.Sequence = int64(o.header.Sequence)
	mine, err := ops(b.Scheme, p.node).KeyInfo(keyID)
	switch {
	case errors.Is(err, tsm.ErrKeyNotFound):
		return out, nil // nothing on this phone to compare with: the backup itself is sound
	case err != nil:
		return nil, err
	case !bytes.Equal(mine.PublicKey, b.PublicKey):
		return out, errors.New("the backup holds another public key than this phone's share")
	case mine.Epoch > b.Epoch:
		return out, fmt.Errorf("%w (backup at epoch %d, this phone at %d)", ErrStale, b.Epoch, mine.Epoch)
	}
	return out, nil
}

// KeyList is a list of keys (a gomobile-friendly slice).
type KeyList struct{ items []*KeyInfo }

// Len is the number of keys.
func (l *KeyList) Len() int { return len(l.items) }

// At returns key i (0-based).
func (l *KeyList) At(i int) *KeyInfo { return l.items[i] }

// List lists the vault's keys (ID and latest sequence only: the rest is inside the
// encrypted backups).
func (p *Phone) List(keys *Keys) (*KeyList, error) {
	ctx, cancel := p.ctx()
	defer cancel()
	kl, err := p.vault.keys(ctx, keys)
	if err != nil {
		return nil, err
	}
	out := &KeyList{}
	for _, k := range kl.Keys {
		out.items = append(out.items, &KeyInfo{KeyID: k.KeyID, Sequence: int64(k.LatestSequence)})
	}
	return out, nil
}

// Versions lists the versions of keyID in the vault, oldest first, each downloaded and
// opened to tell its epoch and sequence.
func (p *Phone) Versions(keys *Keys, keyID string) (*KeyList, error) {
	ctx, cancel := p.ctx()
	defer cancel()
	vl, err := p.vault.versions(ctx, keys, keyID)
	if err != nil {
		return nil, err
	}
	out := &KeyList{}
	for _, v := range vl.Versions {
		env, err := p.vault.version(ctx, keys, keyID, v.Sequence)
		if err != nil {
			return nil, err
		}
		o, err := openEnvelope(keys, keyID, env)
		if err != nil {
			return nil, fmt.Errorf("version %d: %w", v.Sequence, err)
		}
		clear(o.share)
		i := infoOf(o.key)
		i.Sequence = int64(o.header.Sequence)
		out.items = append(out.items, i)
	}
	return out, nil
}

// Export returns, as armored text, the backup of keyID that a restore would take (the
// newest the server nodes accept): an offline copy, still encrypted, for paper or a QR code.
func (p *Phone) Export(keys *Keys, keyID string) (string, error) {
	o, err := p.accepted(keys, keyID) // never export what does not open, or would not restore
	if err != nil {
		return "", err
	}
	clear(o.share)
	return string(envelope.Armor(o.env)), nil
}

// Import opens an armored backup (from Export) and restores it into the phone's node.
func (p *Phone) Import(keys *Keys, armored string) (*KeyInfo, error) {
	env, err := envelope.Dearmor([]byte(armored))
	if err != nil {
		return nil, err
	}
	o, err := openEnvelope(keys, "", env)
	if err != nil {
		return nil, err
	}
	if err := p.checkEpoch(o); err != nil {
		clear(o.share)
		return nil, err
	}
	return p.restoreShare(o)
}

// Rotate re-encrypts the latest backup of every key in the old vault under new keys, into
// the new vault, and checks each one opens there. It does not delete the old vault:
// DeleteVault does, once the user has confirmed the new words are written down.
func (p *Phone) Rotate(old, next *Keys) (*KeyList, error) {
	ctx, cancel := p.ctx()
	defer cancel()
	kl, err := p.vault.keys(ctx, old)
	if err != nil {
		return nil, err
	}
	out := &KeyList{}
	for _, k := range kl.Keys {
		o, err := p.accepted(old, k.KeyID) // the version a restore would take
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", k.KeyID, err)
		}
		h := o.header
		env, err := envelope.Seal(next.root, envelope.Header{Scheme: h.Scheme, VaultID: next.id.VaultID(), KeyID: h.KeyID, Epoch: h.Epoch, Sequence: 1}, o.share)
		clear(o.share)
		if err != nil {
			return nil, err
		}
		if err := p.vault.upload(ctx, next, k.KeyID, env, ""); err != nil {
			return nil, fmt.Errorf("key %s: %w", k.KeyID, err)
		}
		check, err := p.open(next, k.KeyID)
		if err != nil {
			return nil, fmt.Errorf("key %s does not open in the new vault: %w", k.KeyID, err)
		}
		clear(check.share)
		out.items = append(out.items, &KeyInfo{KeyID: k.KeyID, Sequence: 1, Epoch: int64(h.Epoch)})
	}
	return out, nil
}

// DeleteVault deletes every version of every key in the vault of keys.
func (p *Phone) DeleteVault(keys *Keys) error {
	ctx, cancel := p.ctx()
	defer cancel()
	kl, err := p.vault.keys(ctx, keys)
	if err != nil {
		return err
	}
	for _, k := range kl.Keys {
		vl, err := p.vault.versions(ctx, keys, k.KeyID)
		if err != nil {
			return err
		}
		for _, v := range vl.Versions {
			if err := p.vault.deleteVersion(ctx, keys, k.KeyID, v.Sequence); err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
		}
	}
	return nil
}

// Found is what FindKeys found: the keys, and which word it corrected (Position 0: none).
type Found struct {
	Keys     *Keys
	Position int
	Word     string
}

// FindKeys turns typed words into keys whose vault exists. If the words do not parse
// because of one unknown word, or parse but name no vault, it tries every single-word
// change that passes the checksum against the vault and takes the one whose vault
// exists. Other typing errors come back as the mnemonic package's errors.
func FindKeys(v *Vault, typed, passphrase string) (*Found, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	keys, err := KeysFromWords(typed, passphrase)
	var we *mnemonic.WordError
	switch {
	case err == nil:
		if _, err := v.keys(ctx, keys); err == nil {
			return &Found{Keys: keys}, nil
		} else if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	case errors.As(err, &we) && we.Unknown == 1, errors.Is(err, mnemonic.ErrChecksum):
	default:
		return nil, err
	}
	cands, cerr := mnemonic.Candidates(typed)
	if cerr != nil {
		return nil, cerr
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].Position < cands[j].Position })
	v.step("checking %d one-word corrections against the vault", len(cands))
	ids := make([]string, len(cands))
	for i, c := range cands {
		id, err := recovery.NewIdentity(c.Secret.Bytes()) // the vault ID alone: no Argon2id per candidate
		if err != nil {
			return nil, err
		}
		ids[i] = id.VaultID().String()
		id.Wipe()
	}
	found, err := v.exists(ctx, ids)
	if err != nil {
		return nil, err
	}
	for i, c := range cands {
		if !found[ids[i]] {
			continue
		}
		k, err := newKeys(c.Secret, passphrase)
		if err != nil {
			return nil, err
		}
		if _, err := v.keys(ctx, k); err == nil { // a vault with backups, the words' own
			return &Found{Keys: k, Position: c.Position, Word: c.Word}, nil
		} else if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	return nil, ErrWrongWords
}
