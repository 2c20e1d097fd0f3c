package main

// The targets, each a PUT and a GET op: the vault over its real protocol (signed
// requests, real envelopes), MinIO directly through aws-sdk-go-v2, and the bare HTTP
// handler that keeps blobs in memory (the ceiling).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sharevault/sharevault/api"
	"github.com/sharevault/sharevault/internal/envelope"
	"github.com/sharevault/sharevault/internal/recovery"
)

var httpClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4096, MaxConnsPerHost: 0}, Timeout: 30 * time.Second}

func status(resp *http.Response, err error, want int) error {
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("HTTP %d, want %d", resp.StatusCode, want)
	}
	return nil
}

// phone is one simulated user: a vault of its own.
type phone struct {
	id   *recovery.Identity
	root *recovery.RootKey
	mu   sync.Mutex
	seq  map[string]uint64 // key -> last sequence
	etag map[string]string
}

func newPhone(i int) *phone {
	secret := bytes.Repeat([]byte{byte(i), byte(i >> 8), byte(i >> 16), 0xb3}, 8)
	id, _ := recovery.NewIdentity(secret)
	root, _ := recovery.DeriveRootKey(secret, "", recovery.KDF{})
	return &phone{id: id, root: root, seq: map[string]uint64{}, etag: map[string]string{}}
}

// vaultTarget speaks the vault's protocol.
type vaultTarget struct {
	base    string
	payload []byte
	phones  []*phone
}

func newVaultTarget(base string, size, phones int) *vaultTarget {
	t := &vaultTarget{base: strings.TrimRight(base, "/"), payload: bytes.Repeat([]byte{0x42}, size)}
	for i := range phones {
		t.phones = append(t.phones, newPhone(i+1))
	}
	return t
}

func (t *vaultTarget) send(ctx context.Context, p *phone, method, path string, body []byte, want int, hdr ...string) error {
	req, err := http.NewRequestWithContext(ctx, method, t.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	api.Sign(req, body, p.id, time.Now())
	resp, err := httpClient.Do(req)
	return status(resp, err, want)
}

// put uploads the next version of key in the phone's vault (If-Match chained), as a
// phone backing up after a reshare does.
func (t *vaultTarget) put(ctx context.Context, p *phone, key string) error {
	p.mu.Lock()
	defer p.mu.Unlock() // one upload at a time per key, as on a phone
	seq := p.seq[key] + 1
	env, err := envelope.Seal(p.root, envelope.Header{Scheme: envelope.EdDSA, VaultID: p.id.VaultID(), KeyID: key, Sequence: seq}, t.payload)
	if err != nil {
		return err
	}
	pre := []string{"If-None-Match", "*"}
	if e := p.etag[key]; e != "" {
		pre = []string{"If-Match", `"` + e + `"`}
	}
	if err := t.send(ctx, p, "PUT", api.KeyPath(p.id.VaultID().String(), key), env, http.StatusCreated, pre...); err != nil {
		return err
	}
	p.seq[key], p.etag[key] = seq, api.ETag(env)
	return nil
}

func (t *vaultTarget) get(ctx context.Context, p *phone, key string) error {
	return t.send(ctx, p, "GET", api.KeyPath(p.id.VaultID().String(), key), nil, http.StatusOK)
}

// prepare uploads one version of key "k" for every phone, for GETs.
func (t *vaultTarget) prepare(ctx context.Context) error {
	for _, p := range t.phones {
		if _, ok := p.seq["k"]; !ok {
			if err := t.put(ctx, p, "k"); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *vaultTarget) putOp(ctx context.Context, w int, n int64) error {
	return t.put(ctx, t.phones[w%len(t.phones)], "k")
}

func (t *vaultTarget) getOp(ctx context.Context, w int, n int64) error {
	return t.get(ctx, t.phones[w%len(t.phones)], "k")
}

// s3Target is MinIO (or any S3) driven directly.
type s3Target struct {
	client  *s3.Client
	bucket  string
	payload []byte
	run     string
}

func (t *s3Target) putOp(ctx context.Context, w int, n int64) error {
	_, err := t.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &t.bucket, Key: aws.String(fmt.Sprintf("%s/%d", t.run, n)),
		Body: bytes.NewReader(t.payload), IfNoneMatch: aws.String("*")})
	return err
}

func (t *s3Target) prepare(ctx context.Context) error {
	_, err := t.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &t.bucket, Key: aws.String("get-me"), Body: bytes.NewReader(t.payload)})
	return err
}

func (t *s3Target) getOp(ctx context.Context, w int, n int64) error {
	out, err := t.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &t.bucket, Key: aws.String("get-me")})
	if err != nil {
		return err
	}
	io.Copy(io.Discard, out.Body)
	return out.Body.Close()
}

// bareTarget is the in-memory handler of bareHandler.
type bareTarget struct {
	base    string
	payload []byte
	run     string
}

func (t *bareTarget) putOp(ctx context.Context, w int, n int64) error {
	req, _ := http.NewRequestWithContext(ctx, "PUT", fmt.Sprintf("%s/b/%s-%d", t.base, t.run, n), bytes.NewReader(t.payload))
	resp, err := httpClient.Do(req)
	return status(resp, err, http.StatusOK)
}

func (t *bareTarget) prepare(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, "PUT", t.base+"/b/get-me", bytes.NewReader(t.payload))
	resp, err := httpClient.Do(req)
	return status(resp, err, http.StatusOK)
}

func (t *bareTarget) getOp(ctx context.Context, w int, n int64) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", t.base+"/b/get-me", nil)
	resp, err := httpClient.Do(req)
	return status(resp, err, http.StatusOK)
}

// bareHandler keeps blobs in a map: net/http with nothing else, the ceiling.
func bareHandler() http.Handler {
	var mu sync.RWMutex
	blobs := map[string][]byte{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPut:
			b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20+1))
			if err != nil || len(b) > 1<<20 {
				http.Error(w, "bad body", http.StatusBadRequest)
				return
			}
			mu.Lock()
			blobs[r.URL.Path] = b
			mu.Unlock()
			w.WriteHeader(http.StatusOK)
		case http.MethodGet:
			mu.RLock()
			b, ok := blobs[r.URL.Path]
			mu.RUnlock()
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.Write(b)
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	})
}

// restTarget is restic's rest-server (--no-auth): POST /data/<sha256> stores a blob, which
// the server hashes and fsyncs; GET /data/<sha256> reads it.
type restTarget struct {
	base    string
	payload []byte
	run     string
	getName string
}

func (t *restTarget) blob(n int64) ([]byte, string) {
	b := append([]byte(fmt.Sprintf("%s-%d-", t.run, n)), t.payload...)[:len(t.payload)]
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

func (t *restTarget) post(ctx context.Context, n int64) (string, error) {
	b, name := t.blob(n)
	req, _ := http.NewRequestWithContext(ctx, "POST", t.base+"/data/"+name, bytes.NewReader(b))
	resp, err := httpClient.Do(req)
	return name, status(resp, err, http.StatusOK)
}

func (t *restTarget) prepare(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, "POST", t.base+"/?create=true", nil)
	resp, err := httpClient.Do(req)
	if err := status(resp, err, http.StatusOK); err != nil {
		return fmt.Errorf("creating the repository: %w", err)
	}
	t.getName, err = t.post(ctx, -1)
	return err
}

func (t *restTarget) putOp(ctx context.Context, w int, n int64) error {
	_, err := t.post(ctx, n)
	return err
}

func (t *restTarget) getOp(ctx context.Context, w int, n int64) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", t.base+"/data/"+t.getName, nil)
	resp, err := httpClient.Do(req)
	return status(resp, err, http.StatusOK)
}
