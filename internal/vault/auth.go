package vault

// Request authentication (docs/api.md, "Signed requests"). authenticate reads headers only:
// api.ParseSignature accepts exactly the form the API defines, the signing key must hash to
// the vault ID of the path, created must lie in the window, and the signature must verify.
// No byte of the body is read before that; readBody then reads at most MaxBody+1 bytes,
// within the memory budget for bodies in flight, and checks them against Content-Digest.

import (
	"crypto/sha256"
	"crypto/subtle"
	"io"
	"net/http"
	"time"

	"github.com/dunglas/httpsfv"
	"github.com/gin-gonic/gin"

	"github.com/sharevault/sharevault/api"
	"github.com/sharevault/sharevault/internal/recovery"
)

const (
	ctxVault     = "sharevault.vault"
	ctxBody      = "sharevault.body"
	ctxRequestID = "sharevault.request_id"
	ctxBodyRead  = "sharevault.body_read" // the request's body was read to its end
)

func (s *Server) authenticate(c *gin.Context) {
	vault, err := recovery.ParseVaultID(c.Param("vault"))
	if err != nil {
		abort(c, errNotFound)
		return
	}
	sig, err := api.ParseSignature(c.Request.Header)
	if err != nil {
		abort(c, newProblem(http.StatusUnauthorized, "unauthorized", "%v", err))
		return
	}
	if !recovery.Owns(vault, sig.KeyID) {
		abort(c, errNotFound) // a key that does not own the vault: the same answer as absent
		return
	}
	now := time.Now()
	if now.Sub(sig.Created) > s.cfg.Skew || sig.Created.Sub(now) > s.cfg.FutureSkew {
		abort(c, newProblem(http.StatusUnauthorized, "unauthorized", "the signature's created time is outside the accepted window; check the clock"))
		return
	}
	if err := sig.Verify(c.Request); err != nil {
		abort(c, newProblem(http.StatusUnauthorized, "unauthorized", "%v", err))
		return
	}
	c.Set(ctxVault, vault)
	s.replays(c, vault, sig.Created) // runs the rest of the chain
}

func abort(c *gin.Context, p *problem) {
	c.Error(p)
	c.Abort()
}

// storeCopies is how many copies of an upload's body exist while it is stored: the body
// read, the store's buffer and the database's (or the S3 client's) own. The memory budget
// counts all of them.
const storeCopies = 3

// reserve takes n bytes from the memory budget for a request of client: from the whole
// budget (503 at once when it is spent) and from the client address's share of it, a
// sixteenth (429 at once), so a few addresses cannot hold it all. It returns the release.
func (s *Server) reserve(c *gin.Context, n int64) (func(), *problem) {
	if n <= 0 {
		return func() {}, nil
	}
	share := max(s.cfg.MemoryBudget/16, storeCopies*(s.cfg.MaxBody+1))
	key := clientKey(c)
	a := s.addrBytes
	a.mu.Lock()
	if int64(a.n[key])+n > share {
		a.mu.Unlock()
		s.metrics.refused.WithLabelValues("memory-address").Inc()
		p := newProblem(http.StatusTooManyRequests, "rate-limited", "too many uploads in flight from this address; retry after 1s")
		p.retryAfter = 1
		return nil, p
	}
	a.n[key] += int(n)
	a.mu.Unlock()
	unshare := func() {
		a.mu.Lock()
		if a.n[key] -= int(n); a.n[key] <= 0 {
			delete(a.n, key)
		}
		a.mu.Unlock()
	}
	if !s.bodies.TryAcquire(n) {
		unshare()
		s.metrics.refused.WithLabelValues("memory").Inc()
		return nil, errMemory
	}
	s.metrics.bodyBytes.Add(float64(n))
	return func() { s.bodies.Release(n); s.metrics.bodyBytes.Sub(float64(n)); unshare() }, nil
}

// readBody reads an authenticated request's body: at most MaxBody+1 bytes, within the
// memory budget (an upload reserves its declared length, or the limit when chunked, times
// storeCopies, until it is answered), hashing as it reads, and checks the digest. GET,
// HEAD and DELETE have no body.
func (s *Server) readBody(c *gin.Context) {
	r := c.Request
	want, ok := contentDigest(r.Header)
	if !ok {
		abort(c, newProblem(http.StatusBadRequest, "bad-request", "Content-Digest must hold one sha-256 digest"))
		return
	}
	if r.Method != http.MethodPut && r.ContentLength != 0 {
		abort(c, newProblem(http.StatusBadRequest, "bad-request", "a %s request has no body", r.Method))
		return
	}
	if r.ContentLength > s.cfg.MaxBody {
		abort(c, errTooLarge)
		return
	}
	n := r.ContentLength // -1: chunked, so up to the limit
	if n < 0 {
		n = s.cfg.MaxBody + 1
	}
	release, p := s.reserve(c, storeCopies*n)
	if p != nil {
		abort(c, p)
		return
	}
	defer release()
	h := sha256.New()
	buf := make([]byte, 0, n)
	for int64(len(buf)) < n {
		k, err := r.Body.Read(buf[len(buf):n])
		h.Write(buf[len(buf) : len(buf)+k])
		buf = buf[:len(buf)+k]
		if err == io.EOF {
			break
		}
		if err != nil {
			abort(c, newProblem(http.StatusBadRequest, "bad-request", "the body could not be read"))
			return
		}
	}
	if int64(len(buf)) > s.cfg.MaxBody {
		abort(c, errTooLarge)
		return
	}
	c.Set(ctxBodyRead, true)
	switch {
	case subtle.ConstantTimeCompare(h.Sum(nil), want) != 1:
		abort(c, errDigestMismatch)
		return
	}
	c.Set(ctxBody, buf)
	c.Next()
}

// contentDigest returns the sha-256 member of the Content-Digest dictionary.
func contentDigest(h http.Header) ([]byte, bool) {
	d, err := httpsfv.UnmarshalDictionary(h.Values("Content-Digest"))
	if err != nil {
		return nil, false
	}
	m, ok := d.Get("sha-256")
	if !ok {
		return nil, false
	}
	item, ok := m.(httpsfv.Item)
	if !ok {
		return nil, false
	}
	b, ok := item.Value.([]byte)
	return b, ok && len(b) == sha256.Size
}
