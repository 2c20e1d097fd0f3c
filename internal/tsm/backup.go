package tsm

// This file is the one encoder and parser of the share backup format, versions 1 and 2
// (docs/tsm-backup.md), and the consistency check every key state passes.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/sharevault/sharevault/internal/tsm/protocol"
)

const (
	backupMagic    = "SVTS"
	backupV1       = 1 // additive n-of-n (read only)
	backupV2       = 2 // Shamir, t-of-n
	maxBackupBody  = 1 << 16
	maxKeyIDLen    = 64
	maxPlayers     = protocol.MaxParties
	maxDescription = 1024
	chainCodeLen   = 32
)

// keyState is one key on one node: a database row, and what a backup holds.
type keyState struct {
	KeyInfo
	share        []byte   // this node's secret share
	publicShares [][]byte // by node index: Y_1 … Y_n (Shamir), or X_0 … X_{n-1} (additive, v1)
	additive     bool     // a v1 backup's sharing, converted by toShamir before use
}

func (k *keyState) wipe() { clear(k.share) }

func badBackup(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadBackup}, args...)...)
}

// keyShare returns k as the protocol sees it (Shamir keys only). It shares k's memory.
func (k *keyState) keyShare() *protocol.KeyShare {
	return &protocol.KeyShare{ID: k.NodeIndex + 1, Secret: k.share, Public: protocol.Public{
		Curve: protocol.Curve(k.Curve), Threshold: k.Threshold, PublicKey: k.PublicKey, Shares: k.publicShares}}
}

// toShamir returns the Shamir share a v1 (additive) key state is equivalent to.
func (k *keyState) toShamir() (*keyState, error) {
	if !k.additive {
		return nil, errors.New("not an additive key")
	}
	ks, err := protocol.FromAdditive(protocol.Curve(k.Curve), k.NodeIndex, k.share, k.PublicKey, k.publicShares)
	if err != nil {
		return nil, err
	}
	out := &keyState{KeyInfo: k.KeyInfo, share: ks.Secret, publicShares: ks.Shares}
	out.ChainCode = bytes.Clone(k.ChainCode)
	return out, nil
}

// encode returns the backup bytes of k: version 1 for an additive key, 2 otherwise. k
// must have passed check.
func (k *keyState) encode() []byte {
	version := byte(backupV2)
	if k.additive {
		version = backupV1
	}
	var body []byte
	body = append(body, byte(len(k.KeyID)))
	body = append(body, k.KeyID...)
	body = append(body, byte(k.Scheme), byte(k.Curve), byte(k.Players), byte(k.Threshold), byte(k.NodeIndex))
	body = binary.BigEndian.AppendUint32(body, k.Epoch)
	body = binary.BigEndian.AppendUint64(body, uint64(k.Created.Unix()))
	body = append(body, k.share...)
	body = append(body, k.PublicKey...)
	for _, p := range k.publicShares {
		body = append(body, p...)
	}
	body = append(body, byte(len(k.ChainCode)))
	body = append(body, k.ChainCode...)
	body = binary.BigEndian.AppendUint16(body, uint16(len(k.Description)))
	body = append(body, k.Description...)

	out := make([]byte, 0, 9+len(body)+sha256.Size)
	out = append(out, backupMagic...)
	out = append(out, version)
	out = binary.BigEndian.AppendUint32(out, uint32(len(body)))
	out = append(out, body...)
	clear(body)
	sum := sha256.Sum256(out)
	return append(out, sum[:]...)
}

// reader takes bytes off the front of a body, failing once it runs short.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil || n > len(r.b) {
		r.err = badBackup("truncated body")
		return make([]byte, n)
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) byte() int { return int(r.take(1)[0]) }

// decodeBackup parses a backup of either version strictly and checks its consistency. A
// version 1 backup comes back additive: toShamir makes it usable.
func decodeBackup(b []byte) (*keyState, error) {
	if len(b) < 5 || string(b[:4]) != backupMagic {
		return nil, badBackup("no SVTS magic")
	}
	if b[4] != backupV1 && b[4] != backupV2 {
		return nil, fmt.Errorf("%w: version %d", ErrUnsupportedBackup, b[4])
	}
	if len(b) < 9 {
		return nil, badBackup("truncated")
	}
	n := binary.BigEndian.Uint32(b[5:9])
	if n < 1 || n > maxBackupBody {
		return nil, badBackup("body length %d out of range", n)
	}
	if uint64(len(b)) != 9+uint64(n)+sha256.Size {
		return nil, badBackup("length %d, want %d", len(b), 9+n+sha256.Size)
	}
	if sum := sha256.Sum256(b[:9+n]); !bytes.Equal(sum[:], b[9+n:]) {
		return nil, badBackup("checksum mismatch")
	}
	r := &reader{b: b[9 : 9+n]}
	k := &keyState{additive: b[4] == backupV1}
	k.KeyID = string(r.take(r.byte()))
	k.Scheme, k.Curve = Scheme(r.byte()), Curve(r.byte())
	k.Players, k.Threshold, k.NodeIndex = r.byte(), r.byte(), r.byte()
	k.Epoch = binary.BigEndian.Uint32(r.take(4))
	created := binary.BigEndian.Uint64(r.take(8))
	if created > math.MaxInt64 {
		return nil, badBackup("created time out of range")
	}
	k.Created = time.Unix(int64(created), 0).UTC()
	g := protocol.GroupOf(protocol.Curve(k.Curve))
	if g == nil || curveOf(k.Scheme) != k.Curve || (k.Scheme != ECDSA && k.Scheme != EdDSA) {
		return nil, badBackup("scheme %d with curve %d", k.Scheme, k.Curve)
	}
	if k.Players < 2 || k.Players > maxPlayers {
		return nil, badBackup("%d players out of range 2..%d", k.Players, maxPlayers)
	}
	k.share = bytes.Clone(r.take(32))
	k.PublicKey = bytes.Clone(r.take(g.PointLen()))
	for range k.Players {
		k.publicShares = append(k.publicShares, bytes.Clone(r.take(g.PointLen())))
	}
	k.ChainCode = bytes.Clone(r.take(r.byte()))
	k.Description = string(r.take(int(binary.BigEndian.Uint16(r.take(2)))))
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, badBackup("%d bytes after the body's fields", len(r.b))
	}
	if err := k.check(); err != nil {
		k.wipe()
		return nil, fmt.Errorf("%w: %w", ErrBadBackup, err)
	}
	return k, nil
}

// check validates every field of a key state and its consistency: the share matches
// this node's public share, and the public shares are one sharing of the public key
// (for v2, points of one polynomial of degree t with the key at 0; for v1, a sum).
func (k *keyState) check() error {
	if err := validKeyID(k.KeyID); err != nil {
		return err
	}
	g := protocol.GroupOf(protocol.Curve(k.Curve))
	switch {
	case g == nil || curveOf(k.Scheme) != k.Curve:
		return fmt.Errorf("scheme %s with curve %s", k.Scheme, k.Curve)
	case k.Players < 2 || k.Players > maxPlayers || len(k.publicShares) != k.Players:
		return fmt.Errorf("%d players with %d public shares", k.Players, len(k.publicShares))
	case k.Threshold < 1 || k.Threshold >= k.Players || k.additive && k.Threshold != k.Players-1:
		return fmt.Errorf("threshold %d out of range", k.Threshold)
	case k.NodeIndex < 0 || k.NodeIndex >= k.Players:
		return fmt.Errorf("node index %d out of range", k.NodeIndex)
	case k.Created.Unix() < 0:
		return fmt.Errorf("created before 1970")
	case len(k.ChainCode) != 0 && len(k.ChainCode) != chainCodeLen:
		return fmt.Errorf("chain code of %d bytes", len(k.ChainCode))
	case len(k.Description) > maxDescription || !utf8.ValidString(k.Description):
		return fmt.Errorf("description is not UTF-8 of at most %d bytes", maxDescription)
	}
	if !k.additive {
		return k.keyShare().Check()
	}
	switch {
	case !g.ValidScalar(k.share):
		return fmt.Errorf("secret share is not a valid scalar")
	case !g.ValidPoint(k.PublicKey):
		return fmt.Errorf("public key is not a valid point")
	}
	for i, p := range k.publicShares {
		if !g.ValidPoint(p) {
			return fmt.Errorf("public share %d is not a valid point", i)
		}
	}
	if !bytes.Equal(g.BaseMult(k.share), k.publicShares[k.NodeIndex]) {
		return ErrShareMismatch
	}
	if sum, err := g.AddPoints(k.publicShares...); err != nil || !bytes.Equal(sum, k.PublicKey) {
		return fmt.Errorf("public shares do not sum to the public key")
	}
	return nil
}

func validKeyID(id string) error {
	if len(id) < 1 || len(id) > maxKeyIDLen {
		return fmt.Errorf("key ID length %d out of range 1..%d", len(id), maxKeyIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("key ID byte %d is not A-Z, a-z, 0-9, _ or -", i)
		}
	}
	return nil
}
