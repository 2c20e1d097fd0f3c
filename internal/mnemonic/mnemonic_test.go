package mnemonic

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
)

type vector struct {
	Origin  string `json:"origin"`
	Entropy string `json:"entropy"`
	Words   string `json:"words"`
}

// loadVectors reads the vectors that trezor's python-mnemonic generated (gen_vectors.py).
func loadVectors(t testing.TB) []vector {
	t.Helper()
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Vectors []vector }
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	lengths := map[int]bool{}
	for _, v := range f.Vectors {
		lengths[len(v.Entropy)/2] = true
	}
	if len(f.Vectors) < 30 || len(lengths) != 5 {
		t.Fatalf("vectors.json has %d vectors over %d lengths, want >= 30 over 5", len(f.Vectors), len(lengths))
	}
	return f.Vectors
}

func TestVectorsFromIndependentImplementation(t *testing.T) {
	for _, v := range loadVectors(t) {
		entropy, _ := hex.DecodeString(v.Entropy)
		s, err := FromEntropy(entropy)
		if err != nil {
			t.Fatalf("FromEntropy(%s): %v", v.Entropy, err)
		}
		if got := strings.Join(s.Words(), " "); got != v.Words {
			t.Errorf("words for %s:\n got %s\nwant %s", v.Entropy, got, v.Words)
		}
		p, err := Parse(v.Words)
		if err != nil {
			t.Fatalf("Parse(vector %s): %v", v.Entropy, err)
		}
		if !bytes.Equal(p.Bytes(), entropy) {
			t.Errorf("Parse(words of %s) = %x", v.Entropy, p.Bytes())
		}
	}
}

func TestParseTolerates(t *testing.T) {
	const want = "00000000000000000000000000000000"
	base := "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
	tests := []struct{ name, typed string }{
		{"plain", base},
		{"upper case", strings.ToUpper(base)},
		{"extra spaces and newlines", "  abandon\tabandon  abandon\nabandon abandon abandon\r\nabandon abandon abandon abandon abandon about \n"},
		{"numbered", "1. abandon 2. abandon 3. abandon 4. abandon 5. abandon 6. abandon 7. abandon 8. abandon 9. abandon 10. abandon 11. abandon 12. about"},
		{"numbered grid", "1) abandon  2) abandon  3) abandon\n4) abandon 5) abandon 6) abandon\n7) abandon 8) abandon 9) abandon\n10) abandon 11) abandon 12) about"},
		{"four-letter prefixes", "aban aban aban aban aban aban aban aban aban aban aban abou"},
		{"longer prefixes", "aband abando abandon aban aban aban aban aban aban aban aban abou"},
		{"full-width letters", "ａｂａｎｄｏｎ abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon ＡＢＯＵＴ"},
		{"accents", "abandón abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abóut"},
		{"composed vs decomposed", "abando\u0301n abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"},
		{"commas", "abandon, abandon, abandon, abandon, abandon, abandon, abandon, abandon, abandon, abandon, abandon, about."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse(tc.typed)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := hex.EncodeToString(s.Bytes()); got != want {
				t.Errorf("got %s, want %s", got, want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	valid := "legal winner thank year wave sausage worth useful legal winner thank yellow"
	tests := []struct {
		name       string
		typed      string
		wantCount  int // CountError.Got, or 0
		wantPos    int // WordError.Position, or 0
		wantSugg   string
		wantSumErr bool
	}{
		{"empty", "", 0, 0, "", false},
		{"eleven words", strings.Join(strings.Fields(valid)[:11], " "), 11, 0, "", false},
		{"thirteen words", valid + " zoo", 13, 0, "", false},
		{"typo", strings.Replace(valid, "sausage", "sausaeg", 1), 0, 6, "sausage", false},
		{"missing letter", strings.Replace(valid, "sausage", "sasage", 1), 0, 6, "sausage", false},
		{"transposed letters", strings.Replace(valid, "thank", "thnak", 1), 0, 3, "thank", false},
		{"wrong letter", strings.Replace(valid, "wave", "wafe", 1), 0, 5, "wave", false},
		{"short unknown prefix", strings.Replace(valid, "worth", "wo", 1), 0, 7, "", false},
		{"prefix with wrong tail", strings.Replace(valid, "useful", "usefull", 1), 0, 8, "useful", false},
		{"checksum", strings.Replace(valid, "yellow", "year", 1), 0, 0, "", true},
		{"swapped words", "winner legal thank year wave sausage worth useful legal winner thank yellow", 0, 0, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.typed)
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			var ce *CountError
			var we *WordError
			switch {
			case tc.name == "empty":
				if !errors.As(err, &ce) || ce.Got != 0 {
					t.Errorf("got %v, want a CountError for 0", err)
				}
			case tc.wantCount != 0:
				if !errors.As(err, &ce) || ce.Got != tc.wantCount {
					t.Errorf("got %v, want CountError{%d}", err, tc.wantCount)
				}
			case tc.wantPos != 0:
				if !errors.As(err, &we) || we.Position != tc.wantPos {
					t.Fatalf("got %v, want WordError at %d", err, tc.wantPos)
				}
				if tc.wantSugg != "" && !slices.Contains(we.Suggestions, tc.wantSugg) {
					t.Errorf("suggestions %v do not include %q", we.Suggestions, tc.wantSugg)
				}
				if strings.Contains(err.Error(), tc.wantSugg) && tc.wantSugg != "" {
					t.Errorf("error message %q leaks a word", err)
				}
			case tc.wantSumErr:
				if !errors.Is(err, ErrChecksum) {
					t.Errorf("got %v, want ErrChecksum", err)
				}
			}
		})
	}
}

func TestCandidatesUnknownWord(t *testing.T) {
	for _, v := range loadVectors(t) {
		words := strings.Fields(v.Words)
		for _, pos := range []int{0, len(words) / 2, len(words) - 1} {
			typed := slices.Clone(words)
			typed[pos] = "xxxx"
			cands, err := Candidates(strings.Join(typed, " "))
			if err != nil {
				t.Fatalf("Candidates: %v", err)
			}
			assertCandidateFor(t, cands, v, pos)
			for _, c := range cands {
				if c.Position != pos+1 {
					t.Fatalf("candidate at position %d, want only %d", c.Position, pos+1)
				}
			}
			// The last word holds the whole checksum (len/3 bits): exactly
			// 2048 >> len/3 of its values pass.
			if want := 2048 >> (len(words) / 3); pos == len(words)-1 && len(cands) != want {
				t.Errorf("%d words: got %d candidates, want %d", len(words), len(cands), want)
			}
		}
	}
}

func TestCandidatesWrongWord(t *testing.T) {
	vs := loadVectors(t)
	for _, v := range []vector{vs[0], vs[len(vs)-1]} {
		words := strings.Fields(v.Words)
		pos := 4
		typed := slices.Clone(words)
		for _, w := range english {
			typed[pos] = w
			if _, err := Parse(strings.Join(typed, " ")); errors.Is(err, ErrChecksum) {
				break
			}
		}
		cands, err := Candidates(strings.Join(typed, " "))
		if err != nil {
			t.Fatal(err)
		}
		assertCandidateFor(t, cands, v, pos)
		for i := 1; i < len(cands); i++ {
			a, b := cands[i-1], cands[i]
			if a.Position > b.Position || a.Position == b.Position && a.Word >= b.Word {
				t.Fatalf("candidates out of order at %d: %d %s, %d %s", i, a.Position, a.Word, b.Position, b.Word)
			}
		}
	}
}

func TestCandidatesRefusesTwoUnknown(t *testing.T) {
	words := strings.Fields(loadVectors(t)[0].Words)
	words[1], words[5] = "qqqq", "zzzz"
	_, err := Candidates(strings.Join(words, " "))
	var we *WordError
	if !errors.As(err, &we) || we.Unknown != 2 || we.Position != 2 {
		t.Fatalf("got %v, want WordError at 2 with 2 unknown", err)
	}
}

func assertCandidateFor(t *testing.T, cands []Candidate, v vector, pos int) {
	t.Helper()
	want := strings.Fields(v.Words)[pos]
	for _, c := range cands {
		if c.Position == pos+1 && c.Word == want {
			if hex.EncodeToString(c.Secret.Bytes()) != v.Entropy {
				t.Fatalf("candidate %d %s has the wrong secret", c.Position, c.Word)
			}
			return
		}
	}
	t.Fatalf("no candidate restores word %d of %s", pos+1, v.Entropy)
}

func TestGenerate(t *testing.T) {
	for _, n := range []int{12, 15, 18, 21, 24} {
		a, err := Generate(n)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Generate(n)
		if len(a.Words()) != n || len(a.Bytes()) != n/3*4 {
			t.Errorf("Generate(%d): %d words, %d bytes", n, len(a.Words()), len(a.Bytes()))
		}
		if bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Errorf("Generate(%d) returned the same secret twice", n)
		}
		back, err := Parse(strings.Join(a.Words(), " "))
		if err != nil || !bytes.Equal(back.Bytes(), a.Bytes()) {
			t.Errorf("Parse(Words()) = %v, %v", back, err)
		}
	}
	for _, n := range []int{0, 11, 13, 25, 27} {
		if _, err := Generate(n); err == nil {
			t.Errorf("Generate(%d) succeeded", n)
		}
	}
	if _, err := FromEntropy(make([]byte, 17)); err == nil {
		t.Error("FromEntropy(17 bytes) succeeded")
	}
}

func TestSecretDoesNotPrint(t *testing.T) {
	s, _ := FromEntropy(bytes.Repeat([]byte{0xab}, 16))
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "secret", s)
	outs := []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %x %q", s, s, s, s, s, s), fmt.Sprintf("%v", &s), logged.String()}
	if _, err := json.Marshal(s); err == nil {
		t.Error("json.Marshal(secret) succeeded")
	}
	for _, o := range outs {
		if strings.Contains(o, "ab") && !strings.Contains(o, "[redacted]") || strings.Contains(o, "abab") || strings.Contains(o, "171") {
			t.Errorf("secret printed: %q", o)
		}
	}
	s.Wipe()
	if !bytes.Equal(s.Bytes(), make([]byte, 16)) {
		t.Error("Wipe left bytes")
	}
}

func FuzzParse(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add(v.Words)
	}
	f.Add("1. aban 2. ZOO 3.")
	f.Fuzz(func(t *testing.T, typed string) {
		s, err := Parse(typed)
		if err != nil {
			return
		}
		again, err := Parse(strings.Join(s.Words(), " "))
		if err != nil || !bytes.Equal(again.Bytes(), s.Bytes()) {
			t.Fatalf("words of a parsed secret do not parse back: %v", err)
		}
	})
}

func BenchmarkCandidates24(b *testing.B) {
	words := strings.Fields(loadVectors(b)[11].Words)
	words[23] = "zoo"
	typed := strings.Join(words, " ")
	for b.Loop() {
		if _, err := Candidates(typed); err != nil {
			b.Fatal(err)
		}
	}
}
