package vault

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sharevault/sharevault/api"
	"github.com/sharevault/sharevault/internal/envelope"
	"github.com/sharevault/sharevault/internal/recovery"
)

func vaultOf(c *gin.Context) recovery.VaultID { return c.MustGet(ctxVault).(recovery.VaultID) }

// keyParam returns the :key parameter, or answers 404 for one that is not a key ID.
func keyParam(c *gin.Context) (string, bool) {
	key := c.Param("key")
	if envelope.ValidKeyID(key) != nil {
		c.Error(errNotFound)
		return "", false
	}
	return key, true
}

// seqParam returns :seq: decimal, 1 to 2^64-1, no leading zeros; else 404.
func seqParam(c *gin.Context) (uint64, bool) {
	s := c.Param("seq")
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 || strconv.FormatUint(n, 10) != s {
		c.Error(errNotFound)
		return 0, false
	}
	return n, true
}

// parsePrecondition reads a PUT's If-None-Match: * or If-Match: "<64 hex>".
func parsePrecondition(h http.Header) (precondition, *problem) {
	inm, im := h.Values("If-None-Match"), h.Values("If-Match")
	switch {
	case len(inm) == 0 && len(im) == 0:
		return precondition{}, errPreRequired
	case len(inm) > 0 && len(im) > 0, len(inm) > 1, len(im) > 1:
		return precondition{}, newProblem(http.StatusBadRequest, "bad-request", "send exactly one of If-Match and If-None-Match")
	case len(inm) == 1:
		if inm[0] != "*" {
			return precondition{}, newProblem(http.StatusBadRequest, "bad-request", "If-None-Match must be *")
		}
		return precondition{create: true}, nil
	}
	tag := strings.TrimSuffix(strings.TrimPrefix(im[0], `"`), `"`)
	if len(tag) != 64 || im[0] != `"`+tag+`"` || strings.Trim(tag, "0123456789abcdef") != "" {
		return precondition{}, newProblem(http.StatusBadRequest, "bad-request", "If-Match must be one quoted ETag")
	}
	return precondition{etag: tag}, nil
}

func (s *Server) putVersion(c *gin.Context) {
	key, ok := keyParam(c)
	if !ok {
		return
	}
	vault, body := vaultOf(c), c.MustGet(ctxBody).([]byte)
	pre, p := parsePrecondition(c.Request.Header)
	if p != nil {
		c.Error(p)
		return
	}
	h, err := envelope.ParseHeader(body)
	if err != nil {
		c.Error(newProblem(http.StatusUnprocessableEntity, "invalid-envelope", "the body is not a valid envelope: %v", err))
		return
	}
	if h.VaultID != vault || h.KeyID != key {
		c.Error(newProblem(http.StatusUnprocessableEntity, "invalid-envelope", "the envelope's header names another vault or key than the path"))
		return
	}
	sum := sha256.Sum256(body)
	v := version{Seq: h.Sequence, Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:]), Created: time.Now().UTC().Truncate(time.Second)}
	var found bool
	err = s.upload(c.Request.Context(), vault, key, body, v, pre, clientPrefix(c, 48), &found)
	c.Set(ctxVaultFound, found)
	if err != nil {
		c.Error(err)
		return
	}
	c.Header("ETag", `"`+v.SHA256+`"`)
	c.Header("Location", api.VersionPath(vault.String(), key, v.Seq))
	c.JSON(http.StatusCreated, api.PutResult{KeyID: key, Sequence: v.Seq, ETag: v.SHA256, Size: v.Size})
}

func (s *Server) getLatest(c *gin.Context) { s.serve(c, 0) }

func (s *Server) getVersion(c *gin.Context) {
	if seq, ok := seqParam(c); ok {
		s.serve(c, seq)
	}
}

// keyOf reads the request's key from its vault's manifest, or answers 404.
func (s *Server) keyOf(c *gin.Context) (recovery.VaultID, string, *keyState, bool) {
	key, ok := keyParam(c)
	if !ok {
		return recovery.VaultID{}, "", nil, false
	}
	vault := vaultOf(c)
	m, etag, err := s.loadManifest(c.Request.Context(), vault)
	if err != nil {
		c.Error(err)
		return vault, key, nil, false
	}
	c.Set(ctxVaultFound, etag != "")
	k := m.Keys[key]
	if !k.live() {
		c.Error(errNotFound)
		return vault, key, nil, false
	}
	return vault, key, k, true
}

// serve answers a version (0: the latest) of the key, as GET or HEAD.
func (s *Server) serve(c *gin.Context, seq uint64) {
	vault, key, k, ok := s.keyOf(c)
	if !ok {
		return
	}
	v := k.latest()
	if seq != 0 {
		if _, v = k.find(seq); v == nil {
			c.Error(errNotFound)
			return
		}
	}
	var sum [32]byte
	hex.Decode(sum[:], []byte(v.SHA256))
	headers := map[string]string{"ETag": `"` + v.SHA256 + `"`, "Content-Digest": api.DigestField(sum)}
	if c.Request.Method == http.MethodHead {
		for k, x := range headers {
			c.Header(k, x)
		}
		c.Header("Content-Length", strconv.FormatInt(v.Size, 10))
		c.Header("Content-Type", "application/octet-stream")
		c.Status(http.StatusOK)
		return
	}
	if v.Data != nil { // held in the manifest just read: no other store read
		if got := sha256.Sum256(v.Data); int64(len(v.Data)) != v.Size || hex.EncodeToString(got[:]) != v.SHA256 {
			c.Error(errInternal)
			return
		}
		c.DataFromReader(http.StatusOK, v.Size, "application/octet-stream", bytes.NewReader(v.Data), headers)
		return
	}
	release, p := s.reserve(c, 2*v.Size) // the store's copy, and what is being sent
	if p != nil {
		c.Error(p)
		return
	}
	defer release()
	r, err := s.store.Get(c.Request.Context(), versionName(vault, key, v))
	if err != nil {
		c.Error(err) // the manifest names it: a missing blob is an internal error
		return
	}
	defer r.Close()
	if r.Size != v.Size || hex.EncodeToString(r.SHA256[:]) != v.SHA256 {
		c.Error(errInternal)
		return
	}
	c.DataFromReader(http.StatusOK, v.Size, "application/octet-stream", r, headers)
}

func (s *Server) listKeys(c *gin.Context) {
	vault := vaultOf(c)
	m, etag, err := s.loadManifest(c.Request.Context(), vault)
	if err != nil {
		c.Error(err)
		return
	}
	c.Set(ctxVaultFound, etag != "")
	if etag == "" || m.liveKeys() == 0 { // a vault whose every version was deleted is absent
		c.Error(errNotFound)
		return
	}
	out := api.KeyList{VaultID: vault.String(), Keys: []api.KeyEntry{}}
	for id, k := range m.Keys {
		if !k.live() {
			continue
		}
		e := api.KeyEntry{KeyID: id, LatestSequence: k.latest().Seq, ETag: k.latest().SHA256, Versions: len(k.Versions)}
		for _, v := range k.Versions {
			e.Bytes += v.Size
		}
		out.Keys = append(out.Keys, e)
	}
	slices.SortFunc(out.Keys, func(a, b api.KeyEntry) int { return strings.Compare(a.KeyID, b.KeyID) })
	c.JSON(http.StatusOK, out)
}

func (s *Server) listVersions(c *gin.Context) {
	vault, key, k, ok := s.keyOf(c)
	if !ok {
		return
	}
	out := api.VersionList{VaultID: vault.String(), KeyID: key}
	for _, v := range k.Versions {
		out.Versions = append(out.Versions, api.Version{Sequence: v.Seq, Size: v.Size, ETag: v.SHA256, Created: v.Created})
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) deleteVersion(c *gin.Context) {
	key, ok := keyParam(c)
	if !ok {
		return
	}
	seq, ok := seqParam(c)
	if !ok {
		return
	}
	var found bool
	err := s.remove(c.Request.Context(), vaultOf(c), key, seq, &found)
	c.Set(ctxVaultFound, found)
	if err != nil {
		c.Error(err)
		return
	}
	c.Status(http.StatusNoContent)
}
