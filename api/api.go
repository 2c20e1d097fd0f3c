// Package api is the vault's HTTP protocol, v1 (docs/api.md), for servers and clients: the
// OpenAPI document, the JSON bodies, the paths, and request signing.
//
// # Signing
//
// Sign adds an RFC 9421 signature over "@method", "@path", "@query" and "content-digest"
// (RFC 9530), and over If-Match or If-None-Match when the request carries one, with created,
// keyid and alg parameters. It builds the signature base by hand, exactly as docs/api.md
// writes it out, so that an app on another platform can do the same. ParseSignature reads
// exactly that form and nothing else, so the vault parses no unauthenticated field with a
// general-purpose library; the tests check Sign's output with github.com/yaronf/httpsign,
// an independent RFC 9421 implementation.
package api

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"time"
)

// OpenAPI is api/openapi.yaml, served at /v1/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte

// TSMNodeOpenAPI is api/tsmnode.yaml: the TSM node's API (docs/tsm-api.md).
//
//go:embed tsmnode.yaml
var TSMNodeOpenAPI []byte

// ProblemType returns the RFC 9457 type URI of a problem name (docs/api.md, "Errors").
func ProblemType(name string) string { return "urn:sharevault:problem:" + name }

// Problem is an RFC 9457 problem body.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// PutResult is the body of a 201 answer to an upload.
type PutResult struct {
	KeyID    string `json:"key_id"`
	Sequence uint64 `json:"sequence"`
	ETag     string `json:"etag"`
	Size     int64  `json:"size"`
}

// KeyList is the body of GET /v1/vaults/{vault}/keys.
type KeyList struct {
	VaultID string     `json:"vault_id"`
	Keys    []KeyEntry `json:"keys"`
}

// KeyEntry describes one key of a vault.
type KeyEntry struct {
	KeyID          string `json:"key_id"`
	LatestSequence uint64 `json:"latest_sequence"`
	ETag           string `json:"etag"`
	Versions       int    `json:"versions"`
	Bytes          int64  `json:"bytes"`
}

// VersionList is the body of GET /v1/vaults/{vault}/keys/{key}/versions.
type VersionList struct {
	VaultID  string    `json:"vault_id"`
	KeyID    string    `json:"key_id"`
	Versions []Version `json:"versions"`
}

// Version describes one stored version.
type Version struct {
	Sequence uint64    `json:"sequence"`
	Size     int64     `json:"size"`
	ETag     string    `json:"etag"`
	Created  time.Time `json:"created"`
}

// ExistsQuery is the body of POST /v1/exists: vault IDs to look for.
type ExistsQuery struct {
	VaultIDs []string `json:"vault_ids"`
}

// ExistsResult is its answer: the IDs of the query that have a vault, in the query's order.
type ExistsResult struct {
	VaultIDs []string `json:"vault_ids"`
}

// MaxExistsIDs bounds a query; MaxExistsBody its body in bytes, which leaves room for 14
// bytes of JSON whitespace and separators per ID (2048 IDs indented by a JSON printer fit).
const (
	MaxExistsIDs  = 2048
	MaxExistsBody = 160 << 10
)

// ETag returns the ETag of an envelope: its SHA-256 in lower-case hex (unquoted).
func ETag(envelope []byte) string {
	sum := sha256.Sum256(envelope)
	return hex.EncodeToString(sum[:])
}

// KeysPath and the functions below build request paths.
func KeysPath(vault string) string { return "/v1/vaults/" + vault + "/keys" }

// KeyPath is the path of a key (its latest version; PUT uploads a new one).
func KeyPath(vault, key string) string { return KeysPath(vault) + "/" + key }

// VersionsPath is the path of a key's version list.
func VersionsPath(vault, key string) string { return KeyPath(vault, key) + "/versions" }

// VersionPath is the path of one version.
func VersionPath(vault, key string, seq uint64) string {
	return VersionsPath(vault, key) + "/" + strconv.FormatUint(seq, 10)
}

// ContentDigest returns the RFC 9530 Content-Digest field value of body (sha-256).
func ContentDigest(body []byte) string { return DigestField(sha256.Sum256(body)) }

// DigestField returns the Content-Digest field value for a known SHA-256 of the content.
func DigestField(sum [32]byte) string {
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
}
