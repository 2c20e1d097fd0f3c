package vault

// The manifest (docs/api.md, "Storage layout"): one JSON blob per vault naming its keys and
// versions. Every change to a vault is a compare-and-swap of it.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"time"

	"github.com/sharevault/sharevault/internal/blobstore"
	"github.com/sharevault/sharevault/internal/recovery"
)

const (
	manifestFormat = 1
	maxManifest    = 4 << 20
	maxCASAttempts = 8
)

type manifest struct {
	Format int                  `json:"format"`
	Keys   map[string]*keyState `json:"keys"`
}

// keyState is a key's versions and highest sequence. A key whose every version was deleted
// stays as a tombstone (no versions, Deleted set) so that its highest sequence still holds:
// a captured old upload cannot bring it back. At most QuotaKeys tombstones are kept; the
// oldest is forgotten past that.
type keyState struct {
	High     uint64    `json:"high"`             // highest sequence ever stored (anti-rollback)
	Versions []version `json:"versions"`         // oldest first; empty only in a tombstone
	Deleted  time.Time `json:"deleted,omitzero"` // when a tombstone's last version went
}

type version struct {
	Seq     uint64    `json:"seq"`
	Size    int64     `json:"size"`
	SHA256  string    `json:"sha256"` // hex; also the ETag
	Created time.Time `json:"created"`
}

func (k *keyState) latest() *version { return &k.Versions[len(k.Versions)-1] }

// live says whether k has a version to serve (it is not nil and not a tombstone).
func (k *keyState) live() bool { return k != nil && len(k.Versions) > 0 }

// liveKeys counts the keys of m that are not tombstones.
func (m *manifest) liveKeys() int {
	n := 0
	for _, k := range m.Keys {
		if k.live() {
			n++
		}
	}
	return n
}

func (k *keyState) find(seq uint64) (int, *version) {
	for i := range k.Versions {
		if k.Versions[i].Seq == seq {
			return i, &k.Versions[i]
		}
	}
	return -1, nil
}

func manifestName(vault recovery.VaultID) string { return "v1/" + vault.String() + "/manifest" }

func versionName(vault recovery.VaultID, key string, v *version) string {
	return fmt.Sprintf("v1/%s/k/%s/%020d.%s", vault, key, v.Seq, v.SHA256)
}

// loadManifest reads a vault's manifest and its store ETag ("" if the vault is absent).
func (s *Server) loadManifest(ctx context.Context, vault recovery.VaultID) (*manifest, string, error) {
	m := &manifest{Format: manifestFormat, Keys: map[string]*keyState{}}
	r, err := s.store.Get(ctx, manifestName(vault))
	if errors.Is(err, blobstore.ErrNotFound) {
		return m, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxManifest+1))
	if err != nil {
		return nil, "", err
	}
	if len(b) > maxManifest {
		return nil, "", fmt.Errorf("manifest of %s over %d bytes", vault, maxManifest)
	}
	if err := json.Unmarshal(b, m); err != nil || m.Format != manifestFormat {
		return nil, "", fmt.Errorf("manifest of %s unreadable (format %d): %v", vault, m.Format, err)
	}
	return m, r.ETag, nil
}

// saveManifest writes m if the manifest is still at etag; ErrPreconditionFailed otherwise.
func (s *Server) saveManifest(ctx context.Context, vault recovery.VaultID, m *manifest, etag string) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	cond := blobstore.Condition{IfMatch: etag, IfNoneMatch: etag == ""}
	_, err = s.store.Put(ctx, manifestName(vault), bytes.NewReader(b), int64(len(b)), cond)
	return err
}

// precondition is a PUT's If-None-Match: * (create) or If-Match (etag of the latest).
type precondition struct {
	create bool
	etag   string
}

// checkUpload says whether v may become key's latest version, and which versions
// retention then drops.
func (s *Server) checkUpload(m *manifest, key string, v version, pre precondition) ([]version, error) {
	k := m.Keys[key]
	switch {
	case pre.create && k.live(), !pre.create && (!k.live() || k.latest().SHA256 != pre.etag):
		return nil, errPrecondition
	case k != nil && v.Seq <= k.High:
		return nil, newProblem(http.StatusConflict, "conflict", "sequence %d is not above %d, the key's highest", v.Seq, k.High)
	case !k.live() && m.liveKeys() >= s.cfg.QuotaKeys:
		return nil, newProblem(http.StatusForbidden, "quota-exceeded", "the vault holds its maximum of %d keys", s.cfg.QuotaKeys)
	}
	var dropped []version
	if k != nil && len(k.Versions)+1 > s.cfg.Retention {
		dropped = k.Versions[:len(k.Versions)+1-s.cfg.Retention]
	}
	total := v.Size
	for _, ks := range m.Keys {
		for _, x := range ks.Versions {
			total += x.Size
		}
	}
	for _, x := range dropped {
		total -= x.Size
	}
	if total > s.cfg.QuotaBytes {
		return nil, newProblem(http.StatusForbidden, "quota-exceeded", "the vault would hold %d bytes, over its quota of %d", total, s.cfg.QuotaBytes)
	}
	return dropped, nil
}

// casBackoff waits before another compare-and-swap attempt: a few milliseconds, jittered,
// growing with the attempt, so racing replicas spread out.
func casBackoff(ctx context.Context, attempt int) error {
	d := time.Duration(1+rand.IntN(1<<min(attempt, 6))) * time.Millisecond
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// changeManifest applies change to the vault's manifest and saves it with a
// compare-and-swap; on a conflict with another change to the vault it reads the manifest
// again and applies change again, so change must decide from m (and exists: whether the
// vault has a manifest yet) alone. change returns the blobs the saved manifest no longer
// names, deleted once it is saved. It waits for the vault's lock no longer than ctx lasts.
func (s *Server) changeManifest(ctx context.Context, vault recovery.VaultID, change func(m *manifest, exists bool) (unnamed []string, err error)) error {
	unlock, err := s.locks.lock(ctx, vault)
	if err != nil {
		return err
	}
	defer unlock()
	for attempt := range maxCASAttempts {
		if attempt > 0 {
			if err := casBackoff(ctx, attempt); err != nil {
				return err
			}
		}
		m, etag, err := s.loadManifest(ctx, vault)
		if err != nil {
			return err
		}
		unnamed, err := change(m, etag != "")
		if err != nil {
			return err
		}
		switch err := s.saveManifest(ctx, vault, m, etag); {
		case errors.Is(err, blobstore.ErrPreconditionFailed):
			continue // another change to this vault came first
		case err != nil:
			return err
		}
		for _, name := range unnamed {
			s.deleteBlob(ctx, name)
		}
		return nil
	}
	return errBusy
}

// upload stores env as a new version of key: the checks against the manifest (and, for a
// vault's first upload, the admission of a new vault from client), the version blob
// (create-only, content-addressed, written once), then the manifest.
func (s *Server) upload(ctx context.Context, vault recovery.VaultID, key string, env []byte, v version, pre precondition, client string) error {
	written, admitted, created := false, false, false
	err := s.changeManifest(ctx, vault, func(m *manifest, exists bool) ([]string, error) {
		dropped, err := s.checkUpload(m, key, v, pre)
		if err != nil {
			return nil, err
		}
		if why := s.storageFull(); why != "" && exists { // new vaults are refused in admitVault
			s.metrics.refused.WithLabelValues("storage-" + why).Inc()
			return nil, errStorageFull
		}
		if created = !exists; created && !admitted {
			if err := s.admitVault(client); err != nil {
				return nil, err
			}
			admitted = true
		}
		if !written {
			_, err := s.store.Put(ctx, versionName(vault, key, &v), bytes.NewReader(env), int64(len(env)), blobstore.Condition{IfNoneMatch: true})
			if err != nil && !errors.Is(err, blobstore.ErrPreconditionFailed) { // these very bytes are already there
				return nil, err
			}
			written = true
		}
		k := m.Keys[key]
		if k == nil {
			k = &keyState{}
			m.Keys[key] = k
		}
		var unnamed []string
		for _, d := range dropped {
			unnamed = append(unnamed, versionName(vault, key, &d))
		}
		k.Versions = append(k.Versions[len(dropped):], v)
		k.High, k.Deleted = v.Seq, time.Time{}
		return unnamed, nil
	})
	if err == nil && created {
		s.metrics.vaultsCreated.Inc()
	}
	return err
}

// remove deletes version seq of key from the manifest, then its blob. A key whose last
// version goes becomes a tombstone.
func (s *Server) remove(ctx context.Context, vault recovery.VaultID, key string, seq uint64) error {
	return s.changeManifest(ctx, vault, func(m *manifest, _ bool) ([]string, error) {
		k := m.Keys[key]
		if !k.live() {
			return nil, errNotFound
		}
		i, v := k.find(seq)
		if v == nil {
			return nil, errNotFound
		}
		name := versionName(vault, key, v)
		k.Versions = slices.Delete(k.Versions, i, i+1)
		if len(k.Versions) == 0 {
			k.Deleted = time.Now().UTC().Truncate(time.Second)
			s.forgetOldTombstones(m)
		}
		return []string{name}, nil
	})
}

// forgetOldTombstones keeps the QuotaKeys newest tombstones of m.
func (s *Server) forgetOldTombstones(m *manifest) {
	var ids []string
	for id, k := range m.Keys {
		if !k.live() {
			ids = append(ids, id)
		}
	}
	if len(ids) <= s.cfg.QuotaKeys {
		return
	}
	slices.SortFunc(ids, func(a, b string) int { return m.Keys[a].Deleted.Compare(m.Keys[b].Deleted) })
	for _, id := range ids[:len(ids)-s.cfg.QuotaKeys] {
		delete(m.Keys, id)
	}
}

// deleteBlob removes a blob the manifest no longer names. A failure leaves an unnamed
// blob, which is never served; it is logged.
func (s *Server) deleteBlob(ctx context.Context, name string) {
	if err := s.store.Delete(ctx, name); err != nil && !errors.Is(err, blobstore.ErrNotFound) {
		s.log.Warn("could not delete an unnamed blob", "name", name, "error", err)
	}
}
