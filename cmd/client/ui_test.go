package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/sharevault/sharevault/client"
	"github.com/sharevault/sharevault/internal/mnemonic"
)

func TestQuiz(t *testing.T) {
	w, err := client.NewWords(12)
	if err != nil {
		t.Fatal(err)
	}
	right := strings.Join([]string{w.Word(2), " " + strings.ToUpper(w.Word(7)) + " ", w.Word(11)}, "\n") + "\n"
	other := "zoo"
	if w.Word(7) == other {
		other = "abandon"
	}
	wrong := strings.Join([]string{w.Word(2), other, w.Word(11)}, "\n") + "\n"
	tests := []struct {
		name, answers string
		ok            bool
	}{
		{"right answers, any case and spacing", right, true},
		{"one wrong answer, and no more", wrong, false},
		{"one wrong answer, then the right one", strings.Replace(right, " "+strings.ToUpper(w.Word(7))+" ", other+"\n"+w.Word(7), 1), true},
		{"three wrong answers", strings.Replace(right, " "+strings.ToUpper(w.Word(7))+" ", other+"\n"+other+"\n"+other+"\n"+w.Word(7), 1), false},
		{"no answers", "", false},
	}
	for _, tc := range tests {
		var out, errOut bytes.Buffer
		u := newUI(strings.NewReader(tc.answers), &out, &errOut)
		err := u.quiz(w)
		if (err == nil) != tc.ok {
			t.Errorf("%s: got %v, want ok=%v", tc.name, err, tc.ok)
		}
		if out.Len() != 0 {
			t.Errorf("%s: the quiz printed to stdout: %q", tc.name, out.String())
		}
		if err != nil && strings.Contains(err.Error(), w.Word(7)) {
			t.Errorf("%s: the error names a word: %v", tc.name, err)
		}
	}
}

// TestQuizWordsDiffer: a share's quiz asks for words that no other share of its set has in
// the same place (not the words every share of a set begins with).
func TestQuizWordsDiffer(t *testing.T) {
	for _, n := range []int{12, 24} {
		w, err := client.NewWords(n)
		if err != nil {
			t.Fatal(err)
		}
		shares, err := w.Shares(2, 3)
		if err != nil {
			t.Fatal(err)
		}
		for i := range shares {
			ks := quizWords(i+1, shares)
			if len(ks) != 2 || ks[0] == ks[1] {
				t.Fatalf("share %d: quiz words %v", i+1, ks)
			}
			for _, k := range ks {
				for j, o := range shares {
					if j != i && strings.Fields(o)[k] == strings.Fields(shares[i])[k] {
						t.Errorf("%d words, share %d: word %d is the same in share %d", n, i+1, k+1, j+1)
					}
				}
			}
		}
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		err  error
		code int
	}{
		{nil, 0},
		{errUsage, 2},
		{client.ErrWrongWords, 3},
		{client.ErrCannotOpen, 3},
		{&mnemonic.CountError{Got: 3}, 3},
		{client.ErrUnreachable, 4},
		{client.ErrStale, 5},
		{client.ErrNotFound, 6},
		{errors.New("disk full"), 1},
	}
	for _, tc := range tests {
		if got := exitCode(tc.err); got != tc.code {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.code)
		}
	}
}
