package vault

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sharevault/sharevault/internal/blobstore"
	"github.com/sharevault/sharevault/internal/recovery"
)

// Sweep removes version blobs that no manifest names and that were written at least grace
// ago: what a store failure or a crash between an upload's blob and its manifest leaves
// behind (docs/api.md, "Storage layout"). It returns how many it removed. A vault whose
// manifest cannot be read or written is left for the next sweep and the others still
// swept; the error then names the first such vault.
//
// Sweep is exact beside uploads on this replica and on others sharing the store, with no
// assumption about time: for each vault it commits the manifest with gen one higher (a
// compare-and-swap, like any change), then deletes the blobs that this manifest does not
// name. An upload that wrote its blob before that commit either committed first (then the
// sweep's compare-and-swap saw its blob named) or finds, when its own compare-and-swap
// fails and it reads the manifest again, the higher gen, and writes its blob anew before
// naming it. The grace only spares in-flight uploads that second write.
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

// errNothingToSweep ends a vault's change when none of the candidates may go.
var errNothingToSweep = errors.New("nothing to sweep")

// sweepVault commits the vault's manifest with gen one higher, then deletes the
// candidates that it does not name. A vault whose manifest (as cached, or read) names every
// candidate is left alone: no lock, no write. Each vault gets the request timeout.
func (s *Server) sweepVault(ctx context.Context, hexID string, candidates []string) (int, error) {
	id, err := recovery.ParseVaultID(hexID)
	if err != nil {
		return 0, nil // not a vault's name: not the vault's to remove
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	m, _, cached := s.cache.get(id)
	if !cached {
		if m, _, err = s.loadManifest(ctx, id); err != nil {
			return 0, err
		}
	}
	if len(unnamed(id, m, candidates)) == 0 {
		return 0, nil
	}
	var doomed []string
	err = s.changeManifest(ctx, id, func(m *manifest, _ bool) ([]string, error) {
		if doomed = unnamed(id, m, candidates); len(doomed) == 0 {
			return nil, errNothingToSweep
		}
		m.Gen++
		return nil, nil
	})
	if errors.Is(err, errNothingToSweep) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, name := range doomed {
		switch err := s.store.Delete(ctx, name); {
		case errors.Is(err, blobstore.ErrNotFound): // another sweep came first
		case err != nil:
			return n, err
		default:
			s.metrics.swept.Inc()
			n++
		}
	}
	return n, nil
}

// unnamed returns the names of candidates that m does not name.
func unnamed(id recovery.VaultID, m *manifest, candidates []string) []string {
	named := map[string]bool{}
	for key, k := range m.Keys {
		for i := range k.Versions {
			named[blobOf(id, key, &k.Versions[i])] = true
		}
	}
	var out []string
	for _, name := range candidates {
		if !named[name] {
			out = append(out, name)
		}
	}
	return out
}
