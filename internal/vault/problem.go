package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/sharevault/sharevault/api"
	"github.com/sharevault/sharevault/internal/blobstore"
	"github.com/sharevault/sharevault/internal/serve"
)

// problem is an error a client may see: an RFC 9457 problem (docs/api.md, "Errors").
type problem struct {
	status     int
	name       string
	detail     string
	retryAfter int // seconds, for 429 and 503
}

func (p *problem) Error() string { return p.name + ": " + p.detail }

func newProblem(status int, name, format string, args ...any) *problem {
	return &problem{status: status, name: name, detail: fmt.Sprintf(format, args...)}
}

var (
	errNotFound       = &problem{status: http.StatusNotFound, name: "not-found", detail: "no such vault, key or version"}
	errPrecondition   = &problem{status: http.StatusPreconditionFailed, name: "precondition-failed", detail: "the key's latest version is not the one the request names"}
	errPreRequired    = &problem{status: http.StatusPreconditionRequired, name: "precondition-required", detail: "an upload needs If-Match or If-None-Match: *"}
	errUnauthorized   = &problem{status: http.StatusUnauthorized, name: "unauthorized", detail: "missing or invalid request signature"}
	errTooLarge       = &problem{status: http.StatusRequestEntityTooLarge, name: "too-large", detail: "the body is over the limit"}
	errBusy           = &problem{status: http.StatusServiceUnavailable, name: "unavailable", detail: "the vault is changing too fast; retry", retryAfter: 1}
	errStoreDown      = &problem{status: http.StatusServiceUnavailable, name: "unavailable", detail: "storage is unavailable; retry", retryAfter: 5}
	errInternal       = &problem{status: http.StatusInternalServerError, name: "internal", detail: "internal error"}
	errDigestMismatch = &problem{status: http.StatusBadRequest, name: "bad-request", detail: "the body does not match its Content-Digest"}
	errMemory         = &problem{status: http.StatusServiceUnavailable, name: "unavailable", detail: "the vault is at its memory budget for uploads in flight; retry", retryAfter: 1}
	errStorageFull    = &problem{status: http.StatusInsufficientStorage, name: "storage-full", detail: "the vault's storage is full: it takes no uploads until an operator makes room; reads and deletes work"}
)

// problems is the one place errors become responses. Handlers call c.Error and return;
// an error that is not a *problem is logged and answered as a bare 500 or 503.
func (s *Server) problems(c *gin.Context) {
	c.Next()
	if len(c.Errors) == 0 {
		return
	}
	err := c.Errors.Last().Err
	var p *problem
	switch {
	case errors.As(err, &p):
	case errors.Is(err, context.Canceled) && c.Request.Context().Err() != nil:
		s.log.Info("client went away", "request_id", c.GetString(ctxRequestID))
		return // nobody to answer
	case errors.Is(err, blobstore.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		s.log.Warn("store unavailable", "request_id", c.GetString(ctxRequestID), "error", err)
		s.probe.failed(err)
		p = errStoreDown
	default:
		s.log.Error("internal error", "request_id", c.GetString(ctxRequestID), "error", err)
		p = errInternal
	}
	if p.retryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(p.retryAfter))
	}
	if p.status == http.StatusTooManyRequests || p.status == http.StatusServiceUnavailable {
		c.Header("Connection", "close") // a client told to wait holds no connection meanwhile
		serve.Linger(c.Request)         // and reads this answer before requests it pipelined are reset
	}
	if c.Writer.Written() {
		return // a streamed body failed half way: nothing more can be said
	}
	if c.Request.Method == http.MethodHead {
		c.Status(p.status)
		return
	}
	c.Header("Content-Type", "application/problem+json")
	// gin keeps a Content-Type that is already set.
	c.JSON(p.status, api.Problem{Type: api.ProblemType(p.name), Title: http.StatusText(p.status), Status: p.status, Detail: p.detail})
}

func (s *Server) panicked(c *gin.Context, v any) {
	s.log.Error("panic", "request_id", c.GetString(ctxRequestID), "panic", fmt.Sprint(v))
	c.Error(errInternal)
}
