package envelope

// This file is the one parser and marshaller of format v1 (docs/envelope.md, "Layout").
// Every length is checked before it is sliced, and every field has one encoding, so
// Parse followed by Marshal gives back the input.

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/sharevault/sharevault/internal/recovery"
)

const (
	magic        = "SVBK"
	version1     = 1
	fixedLen     = 69 // through the key ID length byte
	trailerLen   = SaltSize + 32
	MinHeaderLen = fixedLen + 1 + trailerLen
)

// Envelope is a parsed envelope: its header and ciphertext (with the tag).
type Envelope struct {
	Header     Header
	Ciphertext []byte
	headerLen  int
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// Parse parses an envelope strictly. The result's Ciphertext aliases b.
func Parse(b []byte) (*Envelope, error) {
	if len(b) < len(magic)+1 || string(b[:len(magic)]) != magic {
		return nil, malformed("no SVBK magic")
	}
	if b[4] != version1 {
		return nil, fmt.Errorf("%w: version %d", ErrUnsupportedVersion, b[4])
	}
	if len(b) < fixedLen {
		return nil, malformed("truncated header")
	}
	var h Header
	h.Scheme = Scheme(b[5])
	h.KDF = recovery.KDF{
		Algorithm: recovery.KDFAlgorithm(b[6]),
		Threads:   b[7],
		Time:      binary.BigEndian.Uint32(b[8:]),
		MemoryKiB: binary.BigEndian.Uint32(b[12:]),
	}
	copy(h.VaultID[:], b[16:48])
	h.Epoch = binary.BigEndian.Uint32(b[48:])
	h.Sequence = binary.BigEndian.Uint64(b[52:])
	created := binary.BigEndian.Uint64(b[60:])
	if created > math.MaxInt64 {
		return nil, malformed("created time out of range")
	}
	h.Created = time.Unix(int64(created), 0).UTC()
	n := int(b[68])
	if n < 1 || n > MaxKeyIDLen {
		return nil, malformed("key ID length %d out of range 1..%d", n, MaxKeyIDLen)
	}
	hl := fixedLen + n + trailerLen
	if len(b) < hl {
		return nil, malformed("truncated header")
	}
	h.KeyID = string(b[fixedLen : fixedLen+n])
	copy(h.Salt[:], b[fixedLen+n:])
	copy(h.Commitment[:], b[fixedLen+n+SaltSize:])
	if err := h.validate(); err != nil {
		return nil, err
	}
	ct := b[hl:]
	if len(ct) < TagSize || len(ct) > MaxPlaintext+TagSize {
		return nil, malformed("ciphertext of %d bytes out of range %d..%d", len(ct), TagSize, MaxPlaintext+TagSize)
	}
	return &Envelope{Header: h, Ciphertext: ct, headerLen: hl}, nil
}

// validate checks the fields' rules, for Seal and Parse alike.
func (h *Header) validate() error {
	if h.Scheme != ECDSA && h.Scheme != EdDSA {
		return malformed("unknown scheme %d", h.Scheme)
	}
	if err := h.KDF.Validate(); err != nil {
		return malformed("%v", err)
	}
	if h.Sequence == 0 {
		return malformed("sequence 0")
	}
	if h.Created.Unix() < 0 {
		return malformed("created time before 1970")
	}
	return ValidKeyID(h.KeyID)
}

// ValidKeyID checks a TSM key ID against the envelope's rule: 1 to 64 of A-Z a-z 0-9 _ -.
func ValidKeyID(id string) error {
	if len(id) < 1 || len(id) > MaxKeyIDLen {
		return malformed("key ID length %d out of range 1..%d", len(id), MaxKeyIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return malformed("key ID byte %d is not A-Z, a-z, 0-9, _ or -", i)
		}
	}
	return nil
}

// appendHeader appends the header's encoding to b.
func (h *Header) appendHeader(b []byte) []byte {
	b = append(b, magic...)
	b = append(b, version1, byte(h.Scheme), byte(h.KDF.Algorithm), h.KDF.Threads)
	b = binary.BigEndian.AppendUint32(b, h.KDF.Time)
	b = binary.BigEndian.AppendUint32(b, h.KDF.MemoryKiB)
	b = append(b, h.VaultID[:]...)
	b = binary.BigEndian.AppendUint32(b, h.Epoch)
	b = binary.BigEndian.AppendUint64(b, h.Sequence)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Created.Unix()))
	b = append(b, byte(len(h.KeyID)))
	b = append(b, h.KeyID...)
	b = append(b, h.Salt[:]...)
	return append(b, h.Commitment[:]...)
}

func (h *Header) encodedLen() int { return fixedLen + len(h.KeyID) + trailerLen }

// Marshal returns the envelope's encoding.
func (e *Envelope) Marshal() []byte {
	b := make([]byte, 0, e.Header.encodedLen()+len(e.Ciphertext))
	return append(e.Header.appendHeader(b), e.Ciphertext...)
}
