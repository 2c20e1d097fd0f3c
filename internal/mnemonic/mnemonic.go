// Package mnemonic turns the recovery secret into BIP-39 words and back.
//
// The secret is 16 to 32 bytes of entropy from crypto/rand; the words are its BIP-39
// encoding with the English list (12 to 24 words). sharevault derives its keys from the
// entropy itself, never from the BIP-39 PBKDF2 seed (see internal/recovery).
//
// # Typed words
//
// Parse reads what a person types: it NFKD-normalizes and case-folds the text, ignores
// numbering, punctuation and extra white space, and accepts the unique four-letter
// prefix of each word. Its errors say which position is wrong and, in the error value
// (never in its message), which words are closest. Candidates lists every single-word
// replacement that passes the checksum, for a client to try against the vault.
//
// # Secrets
//
// A Secret does not print: fmt, slog and errors show "[redacted]". Error messages from
// this package never contain a word, typed or suggested.
package mnemonic

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// DefaultWords is the number of words Generate uses unless told otherwise: 256 bits.
const DefaultWords = 24

// ErrChecksum means every word is on the list but the checksum does not match: one word
// is probably wrong, or two are swapped.
var ErrChecksum = errors.New("the words fail the BIP-39 checksum: a word is wrong or out of order")

// CountError is returned for a number of words that BIP-39 does not define.
type CountError struct{ Got int }

func (e *CountError) Error() string {
	return fmt.Sprintf("got %d words, want 12, 15, 18, 21 or 24", e.Got)
}

// WordError is returned for a typed word that is not on the list and is not the unique
// prefix of a word. Its message names only the position; Suggestions holds the closest
// words, to show on the screen where the words are typed and nowhere else.
type WordError struct {
	Position    int      // 1-based position of the first unknown word
	Unknown     int      // how many typed words are unknown in all
	Suggestions []string // closest list words, best first; may be empty
}

func (e *WordError) Error() string {
	if e.Unknown > 1 {
		return fmt.Sprintf("word %d is not a BIP-39 word (%d words are unknown)", e.Position, e.Unknown)
	}
	return fmt.Sprintf("word %d is not a BIP-39 word", e.Position)
}

// Secret is the entropy the words encode. It never prints; Wipe zeroes it.
type Secret struct{ entropy []byte }

// FromEntropy returns the Secret for entropy, which must be 16, 20, 24, 28 or 32 bytes.
// It copies entropy.
func FromEntropy(entropy []byte) (Secret, error) {
	if n := len(entropy); n < 16 || n > 32 || n%4 != 0 {
		return Secret{}, fmt.Errorf("secret is %d bytes, want 16, 20, 24, 28 or 32", n)
	}
	return Secret{slices.Clone(entropy)}, nil
}

// Generate returns a fresh Secret from crypto/rand that encodes as the given number of
// words: 12, 15, 18, 21 or 24.
func Generate(words int) (Secret, error) {
	if words < 12 || words > 24 || words%3 != 0 {
		return Secret{}, &CountError{Got: words}
	}
	b := make([]byte, words/3*4)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return Secret{}, fmt.Errorf("reading randomness: %w", err)
	}
	return Secret{b}, nil
}

// Bytes returns the entropy. The caller must not keep or print it.
func (s Secret) Bytes() []byte { return s.entropy }

// Words returns the BIP-39 words. Show them to the user once; never log them.
func (s Secret) Words() []string {
	w, err := encode(s.entropy)
	if err != nil {
		panic("mnemonic: invalid secret: " + err.Error()) // unreachable: constructors check the length
	}
	return w
}

// Wipe zeroes the entropy.
func (s Secret) Wipe() { clear(s.entropy) }

// IsZero reports whether s holds no secret.
func (s Secret) IsZero() bool { return len(s.entropy) == 0 }

const redacted = "[redacted]"

func (Secret) String() string             { return redacted }
func (Secret) GoString() string           { return redacted }
func (Secret) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }
func (Secret) LogValue() slog.Value       { return slog.StringValue(redacted) }
func (Secret) MarshalText() ([]byte, error) {
	return nil, errors.New("mnemonic: a secret is not marshalled")
}

// Parse reads typed words into a Secret. Errors are *CountError, *WordError or
// ErrChecksum.
func Parse(typed string) (Secret, error) {
	idx, err := resolve(typed)
	if err != nil {
		return Secret{}, err
	}
	return fromIndices(idx)
}

// Candidate is one single-word change to typed words that passes the checksum.
type Candidate struct {
	Position int    // 1-based position of the replaced word
	Word     string // the word put there
	Secret   Secret
}

// Candidates returns every mnemonic that differs from the typed words in exactly one
// position and passes the checksum, ordered by position then word. With one unknown word,
// only that position is tried; with none, every position is (the typed words themselves
// are not a candidate, even if they pass the checksum). Two or more unknown words give a
// *WordError, a wrong count a *CountError.
func Candidates(typed string) ([]Candidate, error) {
	tokens := tokenize(typed)
	if !validCount(len(tokens)) {
		return nil, &CountError{Got: len(tokens)}
	}
	idx, unknown := lookup(tokens)
	positions := unknown
	switch {
	case len(unknown) > 1:
		return nil, wordError(tokens, unknown)
	case len(unknown) == 0:
		positions = make([]int, len(idx))
		for i := range positions {
			positions[i] = i
		}
	}
	var out []Candidate
	for _, p := range positions {
		orig, skip := idx[p], idx[p]
		if len(unknown) == 1 {
			skip = -1 // the typed word is not a word: every list word is a change
		}
		for w := range english {
			if w == skip {
				continue
			}
			idx[p] = w
			s, err := fromIndices(idx)
			if err == nil {
				out = append(out, Candidate{Position: p + 1, Word: english[w], Secret: s})
			}
		}
		idx[p] = orig
	}
	return out, nil
}

func validCount(n int) bool { return n >= 12 && n <= 24 && n%3 == 0 }

// resolve turns typed text into word indices, or the first error a person should fix.
func resolve(typed string) ([]int, error) {
	tokens := tokenize(typed)
	if !validCount(len(tokens)) {
		return nil, &CountError{Got: len(tokens)}
	}
	idx, unknown := lookup(tokens)
	if len(unknown) > 0 {
		return nil, wordError(tokens, unknown)
	}
	return idx, nil
}

func fromIndices(idx []int) (Secret, error) {
	words := make([]string, len(idx))
	for i, w := range idx {
		words[i] = english[w]
	}
	entropy, err := decode(words)
	if err != nil {
		return Secret{}, err
	}
	return Secret{entropy}, nil
}

// fold is the case folding Parse applies after NFKD.
var fold = cases.Fold()

// tokenize normalizes typed text and splits it into lower-case letter runs: NFKD, then
// combining marks dropped, then case folding; digits, punctuation and white space all
// separate words, which removes numbering such as "1." or "(2)".
func tokenize(typed string) []string {
	s := norm.NFKD.String(typed)
	var b strings.Builder
	for _, r := range s {
		switch {
		case unicode.Is(unicode.Mn, r):
		case unicode.IsLetter(r):
			b.WriteRune(r)
		default:
			b.WriteByte(' ')
		}
	}
	return strings.Fields(fold.String(b.String()))
}

var indexes = sync.OnceValues(func() (map[string]int, map[string]int) {
	full := make(map[string]int, len(english))
	prefix := make(map[string]int, len(english))
	for i, w := range english {
		full[w] = i
		if len(w) >= 4 {
			prefix[w[:4]] = i // the English list's four-letter prefixes are unique
		}
	}
	return full, prefix
})

// lookup maps tokens to indices; unknown lists the positions (0-based) that match no
// word. A token matches a word it equals, or a word it is a prefix of, four letters or
// longer.
func lookup(tokens []string) (idx, unknown []int) {
	full, prefix := indexes()
	idx = make([]int, len(tokens))
	for i, t := range tokens {
		if w, ok := full[t]; ok {
			idx[i] = w
			continue
		}
		if len(t) >= 4 {
			if w, ok := prefix[t[:4]]; ok && strings.HasPrefix(english[w], t) {
				idx[i] = w
				continue
			}
		}
		unknown = append(unknown, i)
	}
	return idx, unknown
}

func wordError(tokens []string, unknown []int) *WordError {
	return &WordError{Position: unknown[0] + 1, Unknown: len(unknown), Suggestions: Suggest(tokens[unknown[0]])}
}

// Suggest returns up to five list words closest to a typed word: words it is a prefix of
// first, then by edit distance (at most two edits, a swap of neighbours counting as one).
func Suggest(typed string) []string {
	t := tokenize(typed)
	if len(t) != 1 {
		return nil
	}
	word := t[0]
	type scored struct {
		w    string
		rank int
	}
	var found []scored
	for _, w := range english {
		switch {
		case len(word) >= 2 && strings.HasPrefix(w, word):
			found = append(found, scored{w, 0})
		default:
			if d := distance(word, w); d <= 2 {
				found = append(found, scored{w, d})
			}
		}
	}
	slices.SortStableFunc(found, func(a, b scored) int { return a.rank - b.rank })
	out := make([]string, 0, 5)
	for i := 0; i < len(found) && i < 5; i++ {
		out = append(out, found[i].w)
	}
	return out
}

// distance is the optimal-string-alignment edit distance: insertions, deletions,
// substitutions and swaps of adjacent letters each cost one.
func distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// Index returns the BIP-39 index (0 to 2047) of a list word, or -1.
func Index(word string) int {
	full, _ := indexes()
	if i, ok := full[word]; ok {
		return i
	}
	return -1
}
