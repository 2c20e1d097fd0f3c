package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sharevault/sharevault/api"
)

var (
	// ErrNotFound: the vault, key or version does not exist (or is not this vault's).
	ErrNotFound = errors.New("not found in the vault")
	// ErrUnreachable: the vault did not answer after every retry.
	ErrUnreachable = errors.New("the vault is unreachable")
	// ErrBusy: the vault answered, but limits this address's requests (HTTP 429) after every
	// retry, or is busy (HTTP 503): try again later.
	ErrBusy = errors.New("the vault is limiting requests: try again later")
	// ErrConflict: the vault's latest version changed under the request; read it and retry.
	ErrConflict = errors.New("the vault's copy changed meanwhile")
)

// ProblemError is a vault error answer (RFC 9457).
type ProblemError struct {
	Status int
	Type   string
	Detail string
}

func (e *ProblemError) Error() string {
	return fmt.Sprintf("vault answered %d %s: %s", e.Status, strings.TrimPrefix(e.Type, "urn:sharevault:problem:"), e.Detail)
}

// Progress receives one line about each slow step or retry. Apps show it; nil is silent.
type Progress interface {
	Step(message string)
}

// Vault talks to a vault server over HTTP, signing every request.
type Vault struct {
	base     string
	http     *http.Client
	attempts int
	progress Progress
	backoff  time.Duration
}

// vaultTransport carries the requests to the vault (WrapTransport).
var vaultTransport = http.DefaultTransport

// NewVault returns a client for the vault at baseURL (such as http://localhost:8080).
func NewVault(baseURL string) *Vault {
	return &Vault{base: strings.TrimRight(baseURL, "/"), http: &http.Client{Timeout: 30 * time.Second, Transport: roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		return vaultTransport.RoundTrip(r)
	})}, attempts: 5, backoff: 250 * time.Millisecond}
}

// SetProgress sets where retries and slow steps are reported.
func (v *Vault) SetProgress(p Progress) { v.progress = p }

// SetAttempts sets how many times a request is tried (at least 1).
func (v *Vault) SetAttempts(n int) { v.attempts = max(1, n) }

func (v *Vault) step(format string, args ...any) {
	if v.progress != nil {
		v.progress.Step(fmt.Sprintf(format, args...))
	}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

// do sends a signed request, retrying with exponential backoff (and Retry-After) on
// network errors, 429 and 503. A fresh signature is made for each attempt.
func (v *Vault) do(ctx context.Context, k *Keys, method, path string, body []byte, hdr ...string) (*reply, error) {
	wait := v.backoff
	var last error
	for attempt := 1; attempt <= v.attempts; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, v.base+path, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		if k != nil {
			api.Sign(req, body, k.id, time.Now())
		}
		resp, err := v.http.Do(req)
		if err == nil {
			b, rerr := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
			resp.Body.Close()
			if rerr == nil && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
				return &reply{resp.StatusCode, resp.Header, b}, nil
			}
			last = fmt.Errorf("%w (HTTP %d)", ErrBusy, resp.StatusCode)
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
				wait = min(time.Duration(s)*time.Second, 10*time.Second)
			}
		} else {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			last = fmt.Errorf("%w at %s: %v", ErrUnreachable, v.base, shortNetError(err))
		}
		if attempt == v.attempts {
			break
		}
		v.step("%v; retry %d of %d in %s", last, attempt, v.attempts-1, wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		wait *= 2
	}
	return nil, last
}

// Check asks the vault whether it answers and its store does (GET /readyz), with the
// retries of every request: nil, ErrUnreachable or ErrBusy. Apps call it before asking the
// user for the words, so that an outage does not cost typing them twice.
func (v *Vault) Check() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := v.do(ctx, nil, http.MethodGet, "/readyz", nil)
	if err != nil {
		return err
	}
	if r.status != http.StatusOK {
		return fmt.Errorf("the vault at %s answered /readyz with HTTP %d", v.base, r.status)
	}
	return nil
}

// shortNetError keeps the last part of a network error: "connection refused", not the URL.
func shortNetError(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

func (r *reply) err() error {
	if r.status < 300 {
		return nil
	}
	if r.status == http.StatusNotFound {
		return ErrNotFound
	}
	var p api.Problem
	json.Unmarshal(r.body, &p)
	pe := &ProblemError{Status: r.status, Type: p.Type, Detail: p.Detail}
	if r.status == http.StatusPreconditionFailed {
		return fmt.Errorf("%w: %w", ErrConflict, pe)
	}
	return pe
}

// keys lists the vault's keys; ErrNotFound if the vault has none.
func (v *Vault) keys(ctx context.Context, k *Keys) (*api.KeyList, error) {
	r, err := v.do(ctx, k, "GET", api.KeysPath(k.VaultID()), nil)
	if err != nil {
		return nil, err
	}
	if err := r.err(); err != nil {
		return nil, err
	}
	var kl api.KeyList
	return &kl, json.Unmarshal(r.body, &kl)
}

// exists asks which of ids have a vault (POST /v1/exists, unsigned), in batches of
// api.MaxExistsIDs.
func (v *Vault) exists(ctx context.Context, ids []string) (map[string]bool, error) {
	out := map[string]bool{}
	for len(ids) > 0 {
		n := min(len(ids), api.MaxExistsIDs)
		body, _ := json.Marshal(api.ExistsQuery{VaultIDs: ids[:n]})
		r, err := v.do(ctx, nil, "POST", "/v1/exists", body, "Content-Type", "application/json")
		if err != nil {
			return nil, err
		}
		if err := r.err(); err != nil {
			return nil, err
		}
		var res api.ExistsResult
		if err := json.Unmarshal(r.body, &res); err != nil {
			return nil, fmt.Errorf("the vault's answer to an existence query is malformed: %w", err)
		}
		for _, id := range res.VaultIDs {
			out[id] = true
		}
		ids = ids[n:]
	}
	return out, nil
}

// latest returns the latest envelope of a key.
func (v *Vault) latest(ctx context.Context, k *Keys, keyID string) ([]byte, error) {
	return v.envelope(ctx, k, api.KeyPath(k.VaultID(), keyID))
}

// version returns one version's envelope.
func (v *Vault) version(ctx context.Context, k *Keys, keyID string, seq uint64) ([]byte, error) {
	return v.envelope(ctx, k, api.VersionPath(k.VaultID(), keyID, seq))
}

// envelope downloads the envelope at path, checked against the vault's Content-Digest.
func (v *Vault) envelope(ctx context.Context, k *Keys, path string) ([]byte, error) {
	r, err := v.do(ctx, k, "GET", path, nil)
	if err != nil {
		return nil, err
	}
	if err := r.err(); err != nil {
		return nil, err
	}
	if api.ContentDigest(r.body) != r.header.Get("Content-Digest") {
		return nil, errors.New("the download does not match the vault's Content-Digest")
	}
	return r.body, nil
}

// upload stores env as the next version of keyID; prevETag is the latest's ("" for none).
func (v *Vault) upload(ctx context.Context, k *Keys, keyID string, env []byte, prevETag string) error {
	pre := []string{"If-None-Match", "*"}
	if prevETag != "" {
		pre = []string{"If-Match", `"` + prevETag + `"`}
	}
	r, err := v.do(ctx, k, "PUT", api.KeyPath(k.VaultID(), keyID), env, pre...)
	if err != nil {
		return err
	}
	if err := r.err(); errors.Is(err, ErrConflict) {
		// The answer to an earlier attempt may have been lost after it landed.
		if again, gerr := v.latest(ctx, k, keyID); gerr == nil && bytes.Equal(again, env) {
			return nil
		}
		return err
	} else if err != nil {
		return err
	}
	return nil
}

// versions lists a key's versions.
func (v *Vault) versions(ctx context.Context, k *Keys, keyID string) (*api.VersionList, error) {
	r, err := v.do(ctx, k, "GET", api.VersionsPath(k.VaultID(), keyID), nil)
	if err != nil {
		return nil, err
	}
	if err := r.err(); err != nil {
		return nil, err
	}
	var vl api.VersionList
	return &vl, json.Unmarshal(r.body, &vl)
}

// deleteVersion removes one version.
func (v *Vault) deleteVersion(ctx context.Context, k *Keys, keyID string, seq uint64) error {
	r, err := v.do(ctx, k, "DELETE", api.VersionPath(k.VaultID(), keyID, seq), nil)
	if err != nil {
		return err
	}
	return r.err()
}
