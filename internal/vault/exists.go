package vault

// The batch existence query (docs/api.md, "Finding a vault"): which of up to
// api.MaxExistsIDs vault IDs have a vault. It is unsigned: a client correcting a mistyped
// word has a candidate key per candidate, and a vault ID alone, a hash of a public key,
// reveals nothing without the words. It costs one store lookup per ID, so it is limited per
// address on its own (1 a second, burst 10) beside the general rate limit.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/sharevault/sharevault/api"
	"github.com/sharevault/sharevault/internal/blobstore"
	"github.com/sharevault/sharevault/internal/recovery"
)

func (s *Server) limitExists(c *gin.Context) { s.limit(c, s.existsLimit, clientKey(c)) }

func (s *Server) exists(c *gin.Context) {
	var q api.ExistsQuery
	// The body and its decoded IDs come out of the memory budget, as an upload's do.
	n := int64(api.MaxExistsBody + 1)
	if l := c.Request.ContentLength; l >= 0 && l < n {
		n = l
	}
	release, p := s.reserve(c, 2*n)
	if p != nil {
		c.Error(p)
		return
	}
	defer release()
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, api.MaxExistsBody+1))
	if err != nil || len(body) > api.MaxExistsBody {
		c.Error(newProblem(http.StatusBadRequest, "bad-request", "the body is not {\"vault_ids\": [...]} of at most %d IDs in %d bytes", api.MaxExistsIDs, api.MaxExistsBody))
		return
	}
	c.Set(ctxBodyRead, true)
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&q); err != nil || d.More() {
		c.Error(newProblem(http.StatusBadRequest, "bad-request", "the body is not {\"vault_ids\": [...]} of at most %d IDs", api.MaxExistsIDs))
		return
	}
	if len(q.VaultIDs) > api.MaxExistsIDs {
		c.Error(newProblem(http.StatusBadRequest, "bad-request", "at most %d vault IDs a query", api.MaxExistsIDs))
		return
	}
	ids := make([]recovery.VaultID, len(q.VaultIDs))
	for i, x := range q.VaultIDs {
		id, err := recovery.ParseVaultID(x)
		if err != nil {
			c.Error(newProblem(http.StatusBadRequest, "bad-request", "vault ID %d is not 64 lower-case hex digits", i))
			return
		}
		ids[i] = id
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.RequestTimeout)
	defer cancel()
	found := make([]bool, len(ids))
	errs := make(chan error, len(ids))
	sem := make(chan struct{}, 16) // store lookups at once
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			_, err := s.store.Stat(ctx, manifestName(id))
			switch {
			case err == nil:
				found[i] = true
			case !errors.Is(err, blobstore.ErrNotFound):
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		c.Error(err)
		return
	}
	out := api.ExistsResult{VaultIDs: []string{}}
	for i, ok := range found {
		if ok {
			out.VaultIDs = append(out.VaultIDs, q.VaultIDs[i])
		}
	}
	c.JSON(http.StatusOK, out)
}
