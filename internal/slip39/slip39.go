// Package slip39 is SLIP-0039, "Shamir's Secret-Sharing for Mnemonic Codes", for
// sharevault's recovery secret (the BIP-39 phrase's entropy): a secret split into groups of
// member shares, each share a phrase of 20 or 33 words from SLIP-0039's own word list, so
// that "any 2 of these 3 sheets" restore it. The official test vectors pass
// (testdata/vectors.json, MIT, with their origin in testdata/README.md).
//
// This file is the share format (the one parser and encoder) and the two-level sharing;
// crypto.go is all the package's cryptography (GF(256) interpolation, the digest, the
// Feistel encryption of the master secret).
package slip39

import (
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strings"
)

//go:embed wordlist.txt
var wordlistText string

var (
	words   = strings.Fields(wordlistText)
	indexOf = func() map[string]int {
		m := map[string]int{}
		for i, w := range words {
			m[w] = i
		}
		return m
	}()
	prefixOf = func() map[string]int {
		m := map[string]int{}
		for i, w := range words {
			m[w[:min(4, len(w))]] = i
		}
		return m
	}()
)

const (
	radixBits      = 10
	idBits         = 15
	checksumWords  = 3
	minMnemonic    = 20 // words, for a 128-bit secret
	minSecretBytes = 16
	digestLen      = 4
)

// Share is one parsed share.
type Share struct {
	ID                uint16 // 15 bits, the same for every share of a secret
	Extendable        bool
	IterationExponent int
	GroupIndex        int
	GroupThreshold    int
	GroupCount        int
	MemberIndex       int
	MemberThreshold   int
	Value             []byte
}

var (
	// ErrChecksum: a share's words do not pass its checksum (a mistyped word).
	ErrChecksum = errors.New("the share's checksum does not match: a word is wrong")
	// ErrInvalid is wrapped by every other error about a share's form.
	ErrInvalid = errors.New("invalid SLIP-0039 share")
	// ErrMismatch: shares that do not belong to one secret, or are not enough of them.
	ErrMismatch = errors.New("these shares do not restore one secret")
	// ErrSameShare: one share was given twice (an ErrMismatch).
	ErrSameShare = fmt.Errorf("%w: the same share twice", ErrMismatch)
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Index returns a word's position in the list, or -1. SLIP-0039's words are told apart by
// their first four letters, so a word typed with those right is read as the list's word.
func Index(word string) int {
	word = strings.ToLower(strings.TrimSpace(word))
	if i, ok := indexOf[word]; ok {
		return i
	}
	if len(word) >= 4 {
		if i, ok := prefixOf[word[:4]]; ok {
			return i
		}
	}
	return -1
}

// Word returns the word at index i.
func Word(i int) string { return words[i] }

func customization(ext bool) []byte {
	if ext {
		return []byte("shamir_extendable")
	}
	return []byte("shamir")
}

// Parse reads a share from its words, strictly: every word on the list, the checksum, the
// padding and every field in range.
func Parse(mnemonic string) (*Share, error) {
	fields := strings.Fields(mnemonic)
	if len(fields) < minMnemonic {
		return nil, invalid("%d words, at least %d", len(fields), minMnemonic)
	}
	idx := make([]int, len(fields))
	for i, w := range fields {
		if idx[i] = Index(w); idx[i] < 0 {
			return nil, invalid("word %d, %q, is not a SLIP-0039 word", i+1, w)
		}
	}
	return fromIndices(idx)
}

func fromIndices(idx []int) (*Share, error) {
	if len(idx) < minMnemonic {
		return nil, invalid("%d words, at least %d", len(idx), minMnemonic)
	}
	ext := idx[1]>>4&1 == 1 // the bit after the 15-bit ID
	if !rs1024Verify(idx, customization(ext)) {
		return nil, ErrChecksum
	}
	// Header: id (15) ext (1) e (4) | GI (4) Gt (4) g (4) I (4) t (4): 40 bits, 4 words.
	var h uint64
	for _, v := range idx[:4] {
		h = h<<radixBits | uint64(v)
	}
	s := &Share{
		ID:                uint16(h >> 25),
		Extendable:        h>>24&1 == 1,
		IterationExponent: int(h >> 20 & 0xf),
		GroupIndex:        int(h >> 16 & 0xf),
		GroupThreshold:    int(h>>12&0xf) + 1,
		GroupCount:        int(h>>8&0xf) + 1,
		MemberIndex:       int(h >> 4 & 0xf),
		MemberThreshold:   int(h&0xf) + 1,
	}
	if s.GroupCount < s.GroupThreshold {
		return nil, invalid("group threshold %d above the group count %d", s.GroupThreshold, s.GroupCount)
	}
	valueWords := idx[4 : len(idx)-checksumWords]
	bits := len(valueWords) * radixBits
	padding := bits % 16
	if padding > 8 {
		return nil, invalid("padding of %d bits", padding)
	}
	n := (bits - padding) / 8
	if n < minSecretBytes || n%2 != 0 {
		return nil, invalid("a share value of %d bytes", n)
	}
	// The value, big-endian, behind `padding` zero bits.
	var acc uint64
	var nbits int
	out := make([]byte, 0, n)
	skipped := false
	for _, v := range valueWords {
		acc = acc<<radixBits | uint64(v)
		nbits += radixBits
		if !skipped && nbits >= padding {
			if acc>>(nbits-padding) != 0 {
				return nil, invalid("padding bits are not zero")
			}
			nbits -= padding
			acc &= 1<<nbits - 1
			skipped = true
		}
		for nbits >= 8 {
			out = append(out, byte(acc>>(nbits-8)))
			nbits -= 8
			acc &= 1<<nbits - 1
		}
	}
	s.Value = out
	return s, nil
}

// Mnemonic encodes the share as its words.
func (s *Share) Mnemonic() string {
	h := uint64(s.ID)<<25 | uint64(b2i(s.Extendable))<<24 | uint64(s.IterationExponent)<<20 |
		uint64(s.GroupIndex)<<16 | uint64(s.GroupThreshold-1)<<12 | uint64(s.GroupCount-1)<<8 |
		uint64(s.MemberIndex)<<4 | uint64(s.MemberThreshold-1)
	idx := []int{int(h >> 30 & 1023), int(h >> 20 & 1023), int(h >> 10 & 1023), int(h & 1023)}
	valueWords := (len(s.Value)*8 + radixBits - 1) / radixBits
	padding := valueWords*radixBits - len(s.Value)*8
	var acc uint64
	nbits := padding // leading zero bits
	for _, b := range s.Value {
		acc = acc<<8 | uint64(b)
		nbits += 8
		for nbits >= radixBits {
			idx = append(idx, int(acc>>(nbits-radixBits)&1023))
			nbits -= radixBits
			acc &= 1<<nbits - 1
		}
	}
	idx = append(idx, rs1024Checksum(idx, customization(s.Extendable))...)
	out := make([]string, len(idx))
	for i, v := range idx {
		out[i] = words[v]
	}
	return strings.Join(out, " ")
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Correct returns the shares that differ from the typed words in exactly one word and pass
// the checksum: how a reader fixes one mistyped word (the checksum detects any error in up
// to three words, so a single fix is almost always unique).
func Correct(mnemonic string) []string {
	fields := strings.Fields(mnemonic)
	idx := make([]int, len(fields))
	unknown := -1
	for i, w := range fields {
		if idx[i] = Index(w); idx[i] < 0 {
			if unknown >= 0 {
				return nil // two unknown words: nothing to try
			}
			unknown = i
		}
	}
	var out []string
	try := func(pos int) {
		orig := idx[pos]
		for v := range len(words) {
			if v == orig {
				continue
			}
			idx[pos] = v
			if s, err := fromIndices(idx); err == nil {
				out = append(out, s.Mnemonic())
			}
		}
		idx[pos] = orig
	}
	if unknown >= 0 {
		try(unknown)
		return out
	}
	for pos := range idx {
		try(pos)
	}
	return out
}

// Split shares secret (16 to 32 bytes, even) among groups: any groupThreshold groups, each
// with its own member threshold reached, restore it with passphrase. groups[i] is
// {memberThreshold, memberCount}. The master secret is encrypted with the passphrase
// (iterations 10000·2^exponent) before it is split; rand supplies the randomness.
func Split(secret []byte, passphrase string, groupThreshold int, groups [][2]int, exponent int, extendable bool, rand func([]byte)) ([][]string, error) {
	switch {
	case len(secret) < minSecretBytes || len(secret)%2 != 0 || len(secret) > 32:
		return nil, invalid("a secret of %d bytes (16 to 32, even)", len(secret))
	case len(groups) < 1 || len(groups) > 16 || groupThreshold < 1 || groupThreshold > len(groups):
		return nil, invalid("group threshold %d of %d groups", groupThreshold, len(groups))
	case exponent < 0 || exponent > 15:
		return nil, invalid("iteration exponent %d", exponent)
	}
	for _, g := range groups {
		if g[0] < 1 || g[0] > g[1] || g[1] > 16 || g[0] == 1 && g[1] > 1 {
			return nil, invalid("a group of %d-of-%d", g[0], g[1])
		}
	}
	var idb [2]byte
	rand(idb[:])
	id := (uint16(idb[0])<<8 | uint16(idb[1])) & (1<<idBits - 1)
	ems := encrypt(secret, passphrase, exponent, id, extendable)
	groupShares, err := splitSecret(groupThreshold, len(groups), ems, rand)
	if err != nil {
		return nil, err
	}
	out := make([][]string, len(groups))
	for gi, g := range groups {
		members, err := splitSecret(g[0], g[1], groupShares[gi].value, rand)
		if err != nil {
			return nil, err
		}
		for _, m := range members {
			s := &Share{ID: id, Extendable: extendable, IterationExponent: exponent, GroupIndex: gi, GroupThreshold: groupThreshold,
				GroupCount: len(groups), MemberIndex: m.x, MemberThreshold: g[0], Value: m.value}
			out[gi] = append(out[gi], s.Mnemonic())
		}
	}
	return out, nil
}

// Progress says how far a set of shares is from restoring its secret: how many more
// groups, and for each group begun how many more members, are needed.
type Progress struct {
	GroupsNeeded  int         // more complete groups needed
	MembersNeeded map[int]int // group index -> more members needed (0: complete)
}

// Done reports whether the shares restore the secret.
func (p Progress) Done() bool { return p.GroupsNeeded == 0 }

// Check validates that shares belong together and says what is missing.
func Check(shares []*Share) (Progress, error) {
	if len(shares) == 0 {
		return Progress{}, fmt.Errorf("%w: no shares", ErrMismatch)
	}
	f := shares[0]
	groups := map[int][]*Share{}
	for _, s := range shares {
		switch {
		case s.ID != f.ID || s.Extendable != f.Extendable || s.IterationExponent != f.IterationExponent:
			return Progress{}, fmt.Errorf("%w: shares of different secrets (identifiers or iteration exponents differ)", ErrMismatch)
		case s.GroupThreshold != f.GroupThreshold || s.GroupCount != f.GroupCount:
			return Progress{}, fmt.Errorf("%w: shares with different group thresholds or counts", ErrMismatch)
		case len(s.Value) != len(f.Value):
			return Progress{}, fmt.Errorf("%w: shares of different lengths", ErrMismatch)
		case s.GroupIndex >= s.GroupCount:
			return Progress{}, fmt.Errorf("%w: group index %d of %d groups", ErrMismatch, s.GroupIndex, s.GroupCount)
		}
		for _, o := range groups[s.GroupIndex] {
			if o.MemberThreshold != s.MemberThreshold {
				return Progress{}, fmt.Errorf("%w: member thresholds differ within group %d", ErrMismatch, s.GroupIndex+1)
			}
			if o.MemberIndex == s.MemberIndex {
				if slices.Equal(o.Value, s.Value) {
					return Progress{}, ErrSameShare
				}
				return Progress{}, fmt.Errorf("%w: two shares with member index %d in group %d", ErrMismatch, s.MemberIndex+1, s.GroupIndex+1)
			}
		}
		groups[s.GroupIndex] = append(groups[s.GroupIndex], s)
	}
	p := Progress{GroupsNeeded: f.GroupThreshold, MembersNeeded: map[int]int{}}
	for gi, ms := range groups {
		need := max(0, ms[0].MemberThreshold-len(ms))
		p.MembersNeeded[gi] = need
		if need == 0 {
			p.GroupsNeeded--
		}
	}
	p.GroupsNeeded = max(0, p.GroupsNeeded)
	return p, nil
}

// Combine restores the master secret from shares with passphrase.
func Combine(shares []*Share, passphrase string) ([]byte, error) {
	p, err := Check(shares)
	if err != nil {
		return nil, err
	}
	if !p.Done() {
		return nil, fmt.Errorf("%w: %d more groups needed", ErrMismatch, p.GroupsNeeded)
	}
	groups := map[int][]point{}
	for _, s := range shares {
		groups[s.GroupIndex] = append(groups[s.GroupIndex], point{s.MemberIndex, s.Value})
	}
	var groupPoints []point
	for gi, ms := range groups {
		if p.MembersNeeded[gi] > 0 {
			continue
		}
		t := 0
		for _, s := range shares {
			if s.GroupIndex == gi {
				t = s.MemberThreshold
			}
		}
		v, err := recoverSecret(t, ms[:t])
		if err != nil {
			return nil, err
		}
		groupPoints = append(groupPoints, point{gi, v})
	}
	f := shares[0]
	ems, err := recoverSecret(f.GroupThreshold, groupPoints[:f.GroupThreshold])
	if err != nil {
		return nil, err
	}
	return decrypt(ems, passphrase, f.IterationExponent, f.ID, f.Extendable), nil
}
