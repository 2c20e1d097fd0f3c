package tsm

// The protocols that run across every node of a client: key generation, reshare, share
// verification and EdDSA signing. The nodes are in this process; each one checks what
// the others publish with the same check a restore uses.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

var keyIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newKeyID returns 26 random characters of a-z and 2-7 (128 bits).
func newKeyID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return keyIDEncoding.EncodeToString(b)
}

func (s *schemeClient) multiNode() error {
	n := len(s.c.nodes)
	if n < 2 || n > maxPlayers {
		return fmt.Errorf("tsm: this needs 2 to %d nodes, the client has %d", maxPlayers, n)
	}
	seen := map[string]bool{}
	for _, nd := range s.c.nodes {
		p, _ := filepath.Abs(nd.path)
		if seen[p] {
			return fmt.Errorf("tsm: node database %s is configured twice", nd.path)
		}
		seen[p] = true
	}
	return nil
}

// GenerateKey creates a key shared additively across every node of the client (n-of-n)
// and returns its ID. Node i of the configuration gets player index i.
func (s *schemeClient) GenerateKey(description string) (string, error) {
	if err := s.multiNode(); err != nil {
		return "", err
	}
	g := groupOf(curveOf(s.scheme))
	n := len(s.c.nodes)
	shares, points := make([][]byte, n), make([][]byte, n)
	for i := range n {
		shares[i] = g.randomScalar()
		points[i] = g.baseMult(shares[i])
	}
	defer func() {
		for _, sh := range shares {
			clear(sh)
		}
	}()
	pub, err := g.addPoints(points...)
	if err != nil {
		return "", err
	}
	chain := make([]byte, chainCodeLen)
	rand.Read(chain)
	info := KeyInfo{KeyID: newKeyID(), Scheme: s.scheme, Curve: curveOf(s.scheme), Players: n, Threshold: n - 1,
		Created: time.Now().Truncate(time.Second).UTC(), PublicKey: pub, Description: description, ChainCode: chain}
	err = writeAll(s.c.nodes, func(i int, tx *sql.Tx) error {
		k := &keyState{KeyInfo: info, share: shares[i], publicShares: points}
		k.NodeIndex = i
		if err := k.check(); err != nil { // node i checks every public share it is given
			return fmt.Errorf("node %d: %w", i, err)
		}
		return insertKey(tx, k)
	})
	if err != nil {
		return "", fmt.Errorf("tsm: generate key: %w", err)
	}
	return info.KeyID, nil
}

// loadAll reads keyID from every node, ordered by player index, and checks that they
// agree: every player present once, one epoch, one public key, the same public shares,
// and each share matching the public share the others hold.
func (s *schemeClient) loadAll(keyID string) ([]*keyState, error) {
	if err := s.multiNode(); err != nil {
		return nil, err
	}
	ks := make([]*keyState, len(s.c.nodes))
	for i, n := range s.c.nodes {
		k, err := n.key(keyID, s.scheme)
		if err != nil {
			wipeAll(ks)
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		ks[i] = k
	}
	if err := agree(ks); err != nil {
		wipeAll(ks)
		return nil, err
	}
	byIndex := make([]*keyState, len(ks))
	for _, k := range ks {
		byIndex[k.NodeIndex] = k
	}
	return byIndex, nil
}

func agree(ks []*keyState) error {
	first := ks[0]
	var maxEpoch uint32
	for _, k := range ks {
		maxEpoch = max(maxEpoch, k.Epoch)
	}
	seen := make([]bool, len(ks))
	for i, k := range ks {
		switch {
		case k.Epoch < maxEpoch:
			return fmt.Errorf("node %d (player %d): %w (epoch %d, others at %d)", i, k.NodeIndex, ErrStaleEpoch, k.Epoch, maxEpoch)
		case k.Players != len(ks) || k.NodeIndex >= len(ks) || seen[k.NodeIndex]:
			return fmt.Errorf("node %d: key has %d players, player %d; the client's nodes do not hold it as one set", i, k.Players, k.NodeIndex)
		case !bytes.Equal(k.PublicKey, first.PublicKey):
			return fmt.Errorf("node %d: holds another public key for this key ID", i)
		}
		seen[k.NodeIndex] = true
		for j, p := range k.publicShares {
			if !bytes.Equal(p, first.publicShares[j]) {
				return fmt.Errorf("node %d: public share of player %d differs from node 0's", i, j)
			}
		}
		if err := k.check(); err != nil {
			return fmt.Errorf("node %d (player %d): %w", i, k.NodeIndex, err)
		}
	}
	return nil
}

func wipeAll(ks []*keyState) {
	for _, k := range ks {
		if k != nil {
			k.wipe()
		}
	}
}

// VerifyShare proves that the shares of keyID work. On a client with every node of the
// key, each node's secret share times the generator must equal the public share the
// others hold, at one epoch: a share restored from before a reshare gives ErrStaleEpoch.
// On a single node it checks that node's share against its own copy of the public
// shares.
func (s *schemeClient) VerifyShare(keyID string) error {
	if len(s.c.nodes) == 1 {
		k, err := s.c.nodes[0].key(keyID, s.scheme)
		if err != nil {
			return err
		}
		defer k.wipe()
		return k.check()
	}
	ks, err := s.loadAll(keyID)
	wipeAll(ks)
	return err
}

// Reshare re-randomizes every node's share: node i adds δ_i, with Σ δ_i = 0, so the
// public key stays and the epoch goes up by one. Backups from earlier epochs are stale.
func (s *schemeClient) Reshare(keyID string) error {
	ks, err := s.loadAll(keyID)
	if err != nil {
		return err
	}
	defer wipeAll(ks)
	g := groupOf(curveOf(s.scheme))
	n := len(ks)
	shares, points := make([][]byte, n), make([][]byte, n)
	for {
		// δ_1 … δ_{n−1} at random, δ_0 = −(δ_1 + … + δ_{n−1}).
		deltas := make([][]byte, n)
		rest := g.randomScalar()
		deltas[1] = rest
		for i := 2; i < n; i++ {
			deltas[i] = g.randomScalar()
			rest = g.addScalars(rest, deltas[i])
		}
		deltas[0] = g.negScalar(rest)
		ok := true
		for i := range n {
			shares[i] = g.addScalars(ks[i].share, deltas[i])
			ok = ok && g.validScalar(deltas[i]) && g.validScalar(shares[i])
		}
		if ok { // a zero anywhere has a probability of about n/2^252: draw again
			break
		}
	}
	for i := range n {
		points[i] = g.baseMult(shares[i])
	}
	defer func() {
		for _, sh := range shares {
			clear(sh)
		}
	}()
	err = writeAll(s.c.nodes, func(i int, tx *sql.Tx) error {
		k, err := readKey(tx, keyID, s.scheme)
		if err != nil {
			return err
		}
		defer k.wipe()
		next := &keyState{KeyInfo: k.KeyInfo, share: shares[k.NodeIndex], publicShares: points}
		next.Epoch++
		if err := next.check(); err != nil { // node i checks the new public shares
			return fmt.Errorf("node %d: %w", i, err)
		}
		return updateShare(tx, keyID, k.Epoch, next.share, points)
	})
	if err != nil {
		return fmt.Errorf("tsm: reshare: %w", err)
	}
	return nil
}

// Sign signs msg with keyID across every node of the client, n-of-n, and returns a
// standard 64-byte Ed25519 signature that crypto/ed25519.Verify accepts.
func (c *EDDSAClient) Sign(keyID string, msg []byte) ([]byte, error) {
	ks, err := c.loadAll(keyID)
	if err != nil {
		return nil, err
	}
	defer wipeAll(ks)
	g := edw{}
	nonces, commits := make([][]byte, len(ks)), make([][]byte, len(ks))
	for i := range ks {
		nonces[i] = g.randomScalar()
		commits[i] = g.baseMult(nonces[i])
	}
	r, err := g.addPoints(commits...)
	if err != nil {
		return nil, err
	}
	k := edChallenge(r, ks[0].PublicKey, msg)
	parts := make([][]byte, len(ks))
	for i := range ks {
		parts[i] = edPartialSig(nonces[i], ks[i].share, k)
		clear(nonces[i])
	}
	sum, err := edSumScalars(parts)
	if err != nil {
		return nil, err
	}
	sig := append(r, sum...)
	if !ed25519.Verify(ks[0].PublicKey, msg, sig) {
		return nil, errors.New("tsm: the combined signature does not verify")
	}
	return sig, nil
}
