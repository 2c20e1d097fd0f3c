package vault

// The manifest (docs/api.md, "Storage layout"): one JSON blob per vault naming its keys and
// versions. Every change to a vault is a compare-and-swap of it.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/sharevault/sharevault/internal/blobstore"
	"github.com/sharevault/sharevault/internal/recovery"
)

const (
	// manifestFormat is what this code writes: 2 added gen and the versions' blob, which
	// code that knows format 1 only would drop, so it must refuse these manifests. Format 1
	// manifests are read as they are.
	manifestFormat = 2
	maxManifest    = 4 << 20
	maxCASAttempts = 8
	// maxInlinePerVault bounds the envelope bytes a manifest holds inline, so a manifest
	// stays far below maxManifest whatever the quotas; past it envelopes are blobs again.
	maxInlinePerVault = 1 << 20
	// maxCachedManifests bounds the manifests a process keeps for its next write.
	maxCachedManifests = 4096
)

type manifest struct {
	Format int                  `json:"format"`
	Gen    uint64               `json:"gen,omitempty"` // how many sweeps have changed the vault (see Sweep)
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
	Data    []byte    `json:"data,omitempty"` // the envelope itself, when small: then there is no blob
	Blob    string    `json:"blob,omitempty"` // the last part of the blob's name, 16 random hex; none in versions written before it
}

// clone copies m deeply enough to change the copy: the keys and their versions (an
// envelope's bytes are never changed in place, so they are shared).
func (m *manifest) clone() *manifest {
	c := &manifest{Format: m.Format, Gen: m.Gen, Keys: make(map[string]*keyState, len(m.Keys))}
	for id, k := range m.Keys {
		k := *k
		k.Versions = slices.Clone(k.Versions)
		c.Keys[id] = &k
	}
	return c
}

// inlineBytes is the envelope bytes m holds inline.
func (m *manifest) inlineBytes() int {
	n := 0
	for _, k := range m.Keys {
		for _, v := range k.Versions {
			n += len(v.Data)
		}
	}
	return n
}

// encodedSize bounds the bytes m takes once encoded: an entry's fields (about 200 bytes
// of JSON) and its inline envelope in base64, per version; 100 per key and 64 for the rest.
func (m *manifest) encodedSize() int64 {
	n := int64(64)
	for id, k := range m.Keys {
		n += 100 + int64(len(id))
		for _, v := range k.Versions {
			n += 200 + int64(len(v.Data)+2)/3*4
		}
	}
	return n
}

// blobOf returns the name of v's blob, or "" for an envelope held inline.
func blobOf(vault recovery.VaultID, key string, v *version) string {
	if v.Data != nil {
		return ""
	}
	return versionName(vault, key, v)
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

// versionName is v's blob name. Each upload writes a blob of a name of its own (v.Blob, a
// random part), so a blob is named only by the upload that created it (see Sweep).
// Versions stored in format 1 keep their names.
func versionName(vault recovery.VaultID, key string, v *version) string {
	if v.Blob == "" {
		return fmt.Sprintf("v1/%s/k/%s/%020d.%s", vault, key, v.Seq, v.SHA256)
	}
	return fmt.Sprintf("v1/%s/k/%s/%020d.%s.%s", vault, key, v.Seq, v.SHA256, v.Blob)
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
	if r.Size > maxManifest {
		return nil, "", fmt.Errorf("manifest of %s over %d bytes", vault, maxManifest)
	}
	b := make([]byte, r.Size) // read in one piece: the store says how large it is
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, "", err
	}
	var more [1]byte // and to its end, where the store checks its SHA-256
	if n, err := r.Read(more[:]); n != 0 || err != io.EOF {
		return nil, "", fmt.Errorf("manifest of %s longer than its size, or unreadable: %v", vault, err)
	}
	if err := decodeManifest(b, m); err != nil || m.Format != 1 && m.Format != manifestFormat {
		return nil, "", fmt.Errorf("manifest of %s unreadable (format %d): %v", vault, m.Format, err)
	}
	return m, r.ETag, nil
}

// decodeManifest decodes a manifest with goccy/go-json, which reads what encoding/json
// reads (FuzzManifestDecode holds it to that) four times as fast on a manifest with ten
// inline versions (BenchmarkManifestDecode): every GET decodes the whole manifest to serve
// one version. Manifests are still written by encoding/json.
func decodeManifest(b []byte, m *manifest) error { return gojson.Unmarshal(b, m) }

// saveManifest writes m if the manifest is still at etag; ErrPreconditionFailed otherwise.
// What it wrote is kept, with its new ETag, for this process's next change to the vault.
func (s *Server) saveManifest(ctx context.Context, vault recovery.VaultID, m *manifest, etag string) error {
	m.Format = manifestFormat
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if len(b) > maxManifest {
		return fmt.Errorf("manifest of %s would be %d bytes, over %d", vault, len(b), maxManifest)
	}
	cond := blobstore.Condition{IfMatch: etag, IfNoneMatch: etag == ""}
	a, err := s.store.Put(ctx, manifestName(vault), bytes.NewReader(b), int64(len(b)), cond)
	if err != nil {
		s.cache.drop(vault)
		return err
	}
	s.cache.put(vault, m, a.ETag)
	return nil
}

// manifestCache keeps, per vault, the manifest this process last wrote and its store ETag:
// the next change starts from it and writes with If-Match on that ETag, so an upload is one
// store write; if another replica changed the vault meanwhile, the write fails with a
// precondition, and the change reads the manifest afresh. Reads never use it.
type manifestCache struct {
	mu sync.Mutex
	m  map[recovery.VaultID]cachedManifest
}

type cachedManifest struct {
	m    *manifest
	etag string
}

// get returns a copy of the vault's cached manifest, for the caller to change.
func (c *manifestCache) get(vault recovery.VaultID) (*manifest, string, bool) {
	c.mu.Lock()
	e, ok := c.m[vault]
	c.mu.Unlock()
	if !ok {
		return nil, "", false
	}
	return e.m.clone(), e.etag, true
}

// put keeps m, which the caller must not change after.
func (c *manifestCache) put(vault recovery.VaultID, m *manifest, etag string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[recovery.VaultID]cachedManifest{}
	}
	if len(c.m) >= maxCachedManifests {
		for k := range c.m { // drop one at random
			delete(c.m, k)
			break
		}
	}
	c.m[vault] = cachedManifest{m, etag}
}

func (c *manifestCache) drop(vault recovery.VaultID) {
	c.mu.Lock()
	delete(c.m, vault)
	c.mu.Unlock()
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
		m, etag, cached := s.cache.get(vault)
		if cached && attempt == 0 {
			if unnamed, err := change(m, etag != ""); err == nil {
				if err := s.saveManifest(ctx, vault, m, etag); err == nil {
					s.deleteBlobs(ctx, unnamed)
					return nil
				}
			}
			// The copy was stale (another replica changed the vault, so the checks or the
			// compare-and-swap failed on it), or the store failed: read it afresh, at once.
			s.cache.drop(vault)
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
		s.deleteBlobs(ctx, unnamed)
		return nil
	}
	return errBusy
}

func (s *Server) deleteBlobs(ctx context.Context, names []string) {
	for _, name := range names {
		s.deleteBlob(ctx, name)
	}
}

// upload stores env as a new version of key: the checks against the manifest (and, for a
// vault's first upload, the admission of a new vault from client), the version blob
// (create-only, under a name of its own, written once), then the manifest.
//
// A blob written under an older gen than the manifest the upload commits to may have been
// swept (a sweep ran between the upload's blob and its commit, and did not see it named):
// the upload writes its blob again, under the new gen, before it names it.
// found is set when the vault exists, or the upload made it.
func (s *Server) upload(ctx context.Context, vault recovery.VaultID, key string, env []byte, v version, pre precondition, client string, found *bool) error {
	var (
		blob                       string // the name's last part of the blob written, if any
		gen                        uint64 // the gen it was written under
		written, admitted, created bool
		stored                     func(bool) // what takeStorage returned
	)

	err := s.changeManifest(ctx, vault, func(m *manifest, exists bool) ([]string, error) {
		*found = exists
		dropped, err := s.checkUpload(m, key, v, pre)
		if err != nil {
			return nil, err
		}
		if stored == nil {
			// The envelope, and the manifest rewritten whole with it (holding it in base64
			// if it is small enough to be inline).
			charge := int64(len(env)) + m.encodedSize() + 200
			if len(env) <= s.cfg.InlineMax {
				charge += int64(len(env)+2) / 3 * 4
			}
			done, why := s.takeStorage(charge)
			if why != "" {
				if exists {
					s.metrics.refused.WithLabelValues("storage-" + why).Inc()
				} else {
					s.metrics.refusedVaults.WithLabelValues(why).Inc()
				}
				return nil, errStorageFull
			}
			stored = done
		}
		if created = !exists; created && !admitted {
			if err := s.admitVault(client); err != nil {
				return nil, err
			}
			admitted = true
		}
		if written && gen < m.Gen {
			written = false // a sweep came after it was written, and may have removed it
		}
		v := v
		switch {
		case written:
			v.Blob = blob
		case s.cfg.InlineMax >= 0 && len(env) <= s.cfg.InlineMax && m.inlineBytes()+len(env) <= maxInlinePerVault:
			v.Data = bytes.Clone(env) // one store write: the manifest holds the envelope (not the read buffer)
		default:
			gen, blob = m.Gen, fmt.Sprintf("%016x", rand.Uint64())
			v.Blob = blob
			if err := s.putBlob(ctx, versionName(vault, key, &v), env); err != nil {
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
			if name := blobOf(vault, key, &d); name != "" {
				unnamed = append(unnamed, name)
			}
		}
		k.Versions = append(k.Versions[len(dropped):], v)
		k.High, k.Deleted = v.Seq, time.Time{}
		return unnamed, nil
	})
	if stored != nil {
		stored(err == nil)
	}
	*found = *found || err == nil
	if err == nil && created {
		s.metrics.vaultsCreated.Inc()
	}
	return err
}

// putBlob writes a version blob create-only. On the embedded store the write is not synced
// on its own: the manifest's synced write, which follows before the upload is answered,
// makes it durable (blobstore.Ordered). A failed precondition means an earlier attempt of
// this upload wrote the name (no other upload uses it), if the blob there is these bytes.
func (s *Server) putBlob(ctx context.Context, name string, env []byte) error {
	put := s.store.Put
	if o, ok := s.store.(blobstore.Ordered); ok {
		put = o.PutLazy
	}
	_, err := put(ctx, name, bytes.NewReader(env), int64(len(env)), blobstore.Condition{IfNoneMatch: true})
	if !errors.Is(err, blobstore.ErrPreconditionFailed) {
		return err
	}
	a, err := s.store.Stat(ctx, name)
	if err != nil {
		return err
	}
	if a.Size != int64(len(env)) || a.SHA256 != sha256.Sum256(env) {
		return fmt.Errorf("version blob %s holds other bytes", name)
	}
	return nil
}

// remove deletes version seq of key from the manifest, then its blob. A key whose last
// version goes becomes a tombstone.
//
// A delete is never refused for room (it makes room), but the manifest it rewrites is
// counted as written, as an upload's is, until the store is probed again.
func (s *Server) remove(ctx context.Context, vault recovery.VaultID, key string, seq uint64, found *bool) error {
	var rewritten int64
	err := s.changeManifest(ctx, vault, func(m *manifest, exists bool) ([]string, error) {
		*found = exists
		rewritten = m.encodedSize()
		k := m.Keys[key]
		if !k.live() {
			return nil, errNotFound
		}
		i, v := k.find(seq)
		if v == nil {
			return nil, errNotFound
		}
		name := blobOf(vault, key, v)
		k.Versions = slices.Delete(k.Versions, i, i+1)
		if len(k.Versions) == 0 {
			k.Deleted = time.Now().UTC().Truncate(time.Second)
			s.forgetOldTombstones(m)
		}
		if name == "" {
			return nil, nil
		}
		return []string{name}, nil
	})
	if err == nil {
		s.pending.mu.Lock()
		s.pending.written += rewritten
		s.pending.mu.Unlock()
	}
	return err
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
