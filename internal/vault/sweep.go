package vault

import (
	"context"
	"strings"
	"time"

	"github.com/sharevault/sharevault/internal/recovery"
)

// Sweep removes version blobs that no manifest names and that were written at least grace
// ago: what a store failure or a crash between an upload's blob and its manifest leaves
// behind (docs/api.md, "Storage layout"). It returns how many it removed.
//
// Sweep is exact only where this process is the store's one writer, as with the embedded
// store (which one process opens): it decides each vault under that vault's lock, so no
// upload of this process is between its two writes. With replicas sharing a store (S3) an
// upload on another replica could name a blob between Sweep's read of the manifest and
// its delete, and without a conditional delete nothing can rule that out: do not sweep
// such a store while replicas write to it.
func (s *Server) Sweep(ctx context.Context, grace time.Duration) (removed int, err error) {
	vault, old := "", []string(nil)
	flush := func() error {
		if len(old) == 0 {
			return nil
		}
		n, err := s.sweepVault(ctx, vault, old)
		removed += n
		return err
	}
	for after, more := "", true; more; {
		page, m, err := s.store.List(ctx, "v1/", after, 1000)
		if err != nil {
			return removed, err
		}
		for _, a := range page {
			after = a.Name
			v, rest, _ := strings.Cut(strings.TrimPrefix(a.Name, "v1/"), "/")
			if !strings.HasPrefix(rest, "k/") {
				continue // a manifest, or not the vault's
			}
			if v != vault {
				if err := flush(); err != nil {
					return removed, err
				}
				vault, old = v, nil
			}
			if time.Since(a.Modified) >= grace {
				old = append(old, a.Name)
			}
		}
		more = m
	}
	return removed, flush()
}

// sweepVault deletes the names of candidates that the vault's manifest does not name.
func (s *Server) sweepVault(ctx context.Context, hexID string, candidates []string) (int, error) {
	id, err := recovery.ParseVaultID(hexID)
	if err != nil {
		return 0, nil // not a vault's name: not the vault's to remove
	}
	unlock, err := s.locks.lock(ctx, id)
	if err != nil {
		return 0, err
	}
	defer unlock()
	m, _, err := s.loadManifest(ctx, id)
	if err != nil {
		return 0, err
	}
	named := map[string]bool{}
	for key, k := range m.Keys {
		for i := range k.Versions {
			named[blobOf(id, key, &k.Versions[i])] = true
		}
	}
	n := 0
	for _, name := range candidates {
		if named[name] {
			continue
		}
		if err := s.store.Delete(ctx, name); err != nil {
			return n, err
		}
		s.metrics.swept.Inc()
		n++
	}
	return n, nil
}
