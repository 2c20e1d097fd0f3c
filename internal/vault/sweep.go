package vault

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sharevault/sharevault/internal/recovery"
)

// Sweep removes version blobs that no manifest names and that were written at least grace
// ago: what a store failure or a crash between an upload's blob and its manifest leaves
// behind (docs/api.md, "Storage layout"). It returns how many it removed. A vault whose
// manifest cannot be read is left for the next sweep and the others still swept; the
// error then names the first such vault.
//
// Sweep is safe beside uploads, on this replica and on others sharing the store, if grace
// exceeds the request timeout plus the clock skew between replicas and store (cmd/vault
// asks for ten times the timeout): an upload writes its blob under a name no other upload
// uses, and names it within the request timeout of writing it or never. So a blob listed
// as older than grace was named, if ever, before Sweep lists it, and Sweep reads the
// manifest after listing: it cannot delete a blob that a manifest names or is about to.
func (s *Server) Sweep(ctx context.Context, grace time.Duration) (removed int, err error) {
	vault, old, skipped := "", []string(nil), error(nil)
	flush := func() error {
		if len(old) == 0 {
			return nil
		}
		n, verr := s.sweepVault(ctx, vault, old)
		removed += n
		if verr != nil {
			s.log.Warn("sweep skipped a vault", "vault", vault, "error", verr)
			skipped = cmp.Or(skipped, fmt.Errorf("vault %s: %w", vault, verr))
		}
		return ctx.Err()
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
	if err := flush(); err != nil {
		return removed, err
	}
	return removed, skipped
}

// sweepVault deletes the names of candidates that the vault's manifest does not name.
func (s *Server) sweepVault(ctx context.Context, hexID string, candidates []string) (int, error) {
	id, err := recovery.ParseVaultID(hexID)
	if err != nil {
		return 0, nil // not a vault's name: not the vault's to remove
	}
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
