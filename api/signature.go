package api

// Request signatures (docs/api.md, "Signed requests"): the one parser and the one builder of
// the signature base, used by Sign and by the vault's Verify. The vault accepts exactly the
// serialization Sign writes, so no other library ever has to parse an unauthenticated
// request; an independent RFC 9421 implementation (github.com/yaronf/httpsign) checks in the
// tests that what Sign writes is a valid RFC 9421 signature.

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SignatureLabel is the label of the one signature a request carries.
const SignatureLabel = "sig1"

// Components are the covered components every request signs, in order. A request that
// carries If-Match or If-None-Match covers that field too, after these (CoveredComponents).
var Components = []string{"@method", "@path", "@query", "content-digest"}

// preconditionFields are the fields a request covers when it carries them, in this order.
var preconditionFields = []string{"if-match", "if-none-match"}

// CoveredComponents returns the components a request with header h must cover: Components,
// then "if-match" and "if-none-match" for each of them that h carries.
func CoveredComponents(h http.Header) []string {
	c := append([]string(nil), Components...)
	for _, f := range preconditionFields {
		if len(h.Values(f)) > 0 {
			c = append(c, f)
		}
	}
	return c
}

// Signer signs with a vault's Ed25519 key.
type Signer interface {
	PublicKey() ed25519.PublicKey
	Sign(msg []byte) []byte
}

// Sign sets Content-Digest, Signature-Input and Signature on req, whose body is body
// (nil for none), created at the given time. Set If-Match or If-None-Match on req before
// signing: the signature covers them.
func Sign(req *http.Request, body []byte, key Signer, created time.Time) {
	req.Header.Set("Content-Digest", ContentDigest(body))
	params := signatureParams(CoveredComponents(req.Header), created.Unix(), hex.EncodeToString(key.PublicKey()))
	base, err := signatureBase(req, CoveredComponents(req.Header), params)
	if err != nil {
		panic("api: Sign: " + err.Error()) // every covered field was just set or checked
	}
	req.Header.Set("Signature-Input", SignatureLabel+"="+params)
	req.Header.Set("Signature", SignatureLabel+"=:"+base64.StdEncoding.EncodeToString(key.Sign(base))+":")
}

// signatureParams is the serialized inner list of Signature-Input (RFC 9421 section 2.3),
// exactly as the API defines it: the components, then created, keyid and alg.
func signatureParams(components []string, created int64, keyID string) string {
	q := make([]string, len(components))
	for i, c := range components {
		q[i] = `"` + c + `"`
	}
	return fmt.Sprintf(`(%s);created=%d;keyid="%s";alg="ed25519"`, strings.Join(q, " "), created, keyID)
}

// signatureBase builds the RFC 9421 section 2.5 signature base. Each covered field must
// appear exactly once.
func signatureBase(req *http.Request, components []string, params string) ([]byte, error) {
	var b strings.Builder
	for _, c := range components {
		var v string
		switch c {
		case "@method":
			v = req.Method
		case "@path":
			if v = req.URL.EscapedPath(); v == "" {
				v = "/"
			}
		case "@query":
			v = "?" + req.URL.RawQuery
		default:
			vs := req.Header.Values(c)
			if len(vs) != 1 {
				return nil, fmt.Errorf("the covered field %s must appear exactly once", c)
			}
			v = strings.TrimSpace(vs[0])
		}
		fmt.Fprintf(&b, "%q: %s\n", c, v)
	}
	fmt.Fprintf(&b, "\"@signature-params\": %s", params)
	return []byte(b.String()), nil
}

// SignatureBase returns the signature base of a signed request: what its signature covers,
// for test vectors and for debugging a client.
func SignatureBase(req *http.Request) ([]byte, error) {
	sig, err := ParseSignature(req.Header)
	if err != nil {
		return nil, err
	}
	return signatureBase(req, sig.components, sig.params)
}

// Signature is a request's parsed signature: who claims to have signed it, when, and the
// bytes to verify. ParseSignature checks only its form; Verify checks the signature.
type Signature struct {
	KeyID   ed25519.PublicKey
	Created time.Time

	components []string
	params     string
	sig        []byte
}

// ParseSignature reads the Signature-Input and Signature fields of h. They must be exactly
// what Sign writes: one signature labelled sig1 covering CoveredComponents(h), with created,
// keyid (64 lower-case hex digits) and alg="ed25519" in that order and nothing else. The
// error says what is wrong, in one line, without echoing the fields.
func ParseSignature(h http.Header) (*Signature, error) {
	in, sg := h.Values("Signature-Input"), h.Values("Signature")
	if len(in) != 1 || len(sg) != 1 {
		return nil, errors.New("want exactly one Signature-Input and one Signature field")
	}
	// sig1=(...);created=N;keyid="64 hex";alg="ed25519"
	rest, ok := strings.CutPrefix(in[0], SignatureLabel+"=")
	if !ok {
		return nil, errors.New("Signature-Input must hold one signature labelled sig1")
	}
	i := strings.Index(rest, `);created=`)
	j := strings.Index(rest, `;keyid="`)
	if i < 0 || j < i {
		return nil, errors.New("Signature-Input is not of the form the API defines")
	}
	created, err := strconv.ParseInt(rest[i+len(`);created=`):j], 10, 64)
	if err != nil || created <= 0 {
		return nil, errors.New("Signature-Input has no valid created time")
	}
	keyHex := rest[j+len(`;keyid="`):]
	if len(keyHex) < 2*ed25519.PublicKeySize {
		return nil, errors.New("Signature-Input has no valid keyid")
	}
	keyHex = keyHex[:2*ed25519.PublicKeySize]
	pub, err := hex.DecodeString(keyHex)
	if err != nil || hex.EncodeToString(pub) != keyHex {
		return nil, errors.New("keyid must be 64 lower-case hex digits")
	}
	components := CoveredComponents(h)
	params := signatureParams(components, created, keyHex)
	if rest != params {
		return nil, fmt.Errorf("Signature-Input must cover exactly %s, with created, keyid and alg=\"ed25519\" and nothing else", strings.Join(components, " "))
	}
	b64, ok := strings.CutPrefix(sg[0], SignatureLabel+"=:")
	if !ok || !strings.HasSuffix(b64, ":") {
		return nil, errors.New("Signature must hold one byte sequence labelled sig1")
	}
	b64 = strings.TrimSuffix(b64, ":")
	// The decoder skips CR and LF even when strict: only the canonical encoding is taken.
	sig, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil || len(sig) != ed25519.SignatureSize || base64.StdEncoding.EncodeToString(sig) != b64 {
		return nil, errors.New("Signature must be 64 bytes in base64")
	}
	return &Signature{KeyID: pub, Created: time.Unix(created, 0), components: components, params: params, sig: sig}, nil
}

// Verify checks the signature over req with KeyID. It reads no body: the body is bound by
// the covered Content-Digest, which the caller checks against the body it reads.
func (s *Signature) Verify(req *http.Request) error {
	base, err := signatureBase(req, s.components, s.params)
	if err != nil {
		return err
	}
	if !ed25519.Verify(s.KeyID, base, s.sig) {
		return errors.New("the signature does not verify")
	}
	return nil
}
