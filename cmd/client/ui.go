package main

// Output rules of the client, written once:
//
//   - stdout carries results only: one line a result ("backed up KEY version N"), and the
//     one screen that shows new words (a numbered grid and their SeedQR). Nothing else ever
//     prints a word, a share or a key.
//   - stderr carries progress ("sharevault: checking ...") and errors, each error one
//     line: "sharevault: error: what is wrong". Suggestions for a mistyped word go to
//     stderr only while the words are being typed.
//   - Exit codes: 0 done; 1 failed; 2 usage; 3 wrong words or a backup that does not
//     open; 4 the vault is unreachable; 5 the backup is stale; 6 not found.
//   - Words are read from standard input, never from arguments (which other users can
//     see). A passphrase comes from $SHAREVAULT_PASSPHRASE or, on a terminal, a prompt.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/sharevault/sharevault/client"
	"github.com/sharevault/sharevault/internal/envelope"
	"github.com/sharevault/sharevault/internal/mnemonic"
)

type ui struct {
	in          *bufio.Reader
	out, errOut io.Writer
	interactive bool
}

func newUI(stdin io.Reader, stdout, stderr io.Writer) *ui {
	f, ok := stdin.(*os.File)
	return &ui{in: bufio.NewReader(stdin), out: stdout, errOut: stderr, interactive: ok && term.IsTerminal(int(f.Fd()))}
}

func (u *ui) result(format string, args ...any) { fmt.Fprintf(u.out, format+"\n", args...) }

// Step implements client.Progress.
func (u *ui) Step(msg string) { fmt.Fprintln(u.errOut, "sharevault: "+msg) }

func (u *ui) prompt(msg string) {
	if u.interactive {
		fmt.Fprint(u.errOut, msg)
	}
}

// line reads one line of input ("" at the end).
func (u *ui) line() (string, error) {
	s, err := u.in.ReadString('\n')
	if err == io.EOF && s != "" {
		err = nil
	}
	return strings.TrimRight(s, "\r\n"), err
}

// readWords reads the words: on a terminal line by line until a blank line, with help for
// mistakes and a new try; otherwise all of standard input up to a blank line or the end.
func (u *ui) readWords() (string, error) {
	for {
		u.prompt("Type your recovery words, then an empty line:\n")
		var words []string
		for {
			l, err := u.line()
			if strings.TrimSpace(l) == "" || err != nil {
				if len(words) == 0 && err != nil {
					return "", errors.New("no words on standard input")
				}
				break
			}
			words = append(words, l)
		}
		typed := strings.Join(words, "\n")
		if client.LooksLikeShare(typed) {
			return typed, nil // a SLIP-0039 share: CombineShares reads it
		}
		_, err := mnemonic.Parse(typed)
		var we *mnemonic.WordError
		switch {
		case err == nil, !u.interactive, errors.As(err, &we) && we.Unknown == 1, errors.Is(err, mnemonic.ErrChecksum):
			return typed, nil // one-word mistakes are left for the vault check to fix
		}
		fmt.Fprintln(u.errOut, "sharevault: "+err.Error())
		if errors.As(err, &we) && len(we.Suggestions) > 0 {
			fmt.Fprintf(u.errOut, "sharevault: closest words: %s\n", strings.Join(we.Suggestions, ", "))
		}
	}
}

func (u *ui) passphrase(confirm bool) (string, error) {
	if p, ok := os.LookupEnv("SHAREVAULT_PASSPHRASE"); ok {
		return p, nil
	}
	if !u.interactive {
		return "", nil
	}
	f := int(os.Stdin.Fd())
	fmt.Fprint(u.errOut, "Passphrase (empty for none): ")
	p, err := term.ReadPassword(f)
	fmt.Fprintln(u.errOut)
	if err != nil || !confirm || len(p) == 0 {
		return string(p), err
	}
	fmt.Fprint(u.errOut, "Passphrase again: ")
	q, err := term.ReadPassword(f)
	fmt.Fprintln(u.errOut)
	if err == nil && string(p) != string(q) {
		err = errors.New("the passphrases differ")
	}
	return string(p), err
}

// showWords is the one screen that shows the words: a numbered grid and the SeedQR.
func (u *ui) showWords(w *client.Words) error {
	n := w.Count()
	rows := (n + 2) / 3
	u.result("Write these %d words down, in order, on paper. They are the only way to restore your key share.", n)
	u.result("")
	for r := 0; r < rows; r++ {
		var line strings.Builder
		for c := 0; c < 3; c++ {
			if i := c*rows + r + 1; i <= n {
				fmt.Fprintf(&line, "%2d. %-12s", i, w.Word(i))
			}
		}
		u.result("  %s", strings.TrimRight(line.String(), " "))
	}
	qr, err := client.QRText(w.SeedQR())
	if err != nil {
		return err
	}
	u.result("")
	u.result("SeedQR (the same words, for wallets that scan it):")
	fmt.Fprint(u.out, qr)
	return nil
}

// showShare shows one share in a numbered grid: the one screen that shows it.
func (u *ui) showShare(i, threshold, count int, share string) {
	w := strings.Fields(share)
	rows := (len(w) + 2) / 3
	u.result("Share %d of %d (any %d restore): write these %d words down on sheet %d, in order.", i, count, threshold, len(w), i)
	u.result("")
	for r := 0; r < rows; r++ {
		var line strings.Builder
		for c := 0; c < 3; c++ {
			if k := c*rows + r; k < len(w) {
				fmt.Fprintf(&line, "%2d. %-12s", k+1, w[k])
			}
		}
		u.result("  %s", strings.TrimRight(line.String(), " "))
	}
	u.result("")
}

// quizShare asks for two words of a share before the backup counts as done.
func (u *ui) quizShare(i int, share string) error {
	w := strings.Fields(share)
	for _, k := range []int{3, len(w) - 4} {
		u.prompt(fmt.Sprintf("Check: what is word %d of share %d? ", k, i))
		ans, err := u.line()
		if err != nil && ans == "" {
			return errors.New("the quiz needs answers on standard input (or --no-quiz)")
		}
		if !strings.EqualFold(strings.TrimSpace(ans), w[k-1]) {
			return fmt.Errorf("word %d of share %d is not what you wrote down: check the sheet; nothing was backed up", k, i)
		}
	}
	return nil
}

// quiz asks for three of the words before a backup counts as done.
func (u *ui) quiz(w *client.Words) error {
	n := w.Count()
	for _, i := range []int{2, n/2 + 1, n - 1} {
		u.prompt(fmt.Sprintf("Check: what is word %d? ", i))
		ans, err := u.line()
		if err != nil && ans == "" {
			return errors.New("the quiz needs answers on standard input (or --no-quiz)")
		}
		if !strings.EqualFold(strings.TrimSpace(ans), w.Word(i)) {
			return fmt.Errorf("word %d is not what you wrote down: check your sheet; nothing was backed up", i)
		}
	}
	return nil
}

// exitCode maps an error to the documented exit codes.
func exitCode(err error) int {
	var we *mnemonic.WordError
	var ce *mnemonic.CountError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.Is(err, client.ErrWrongWords), errors.Is(err, client.ErrCannotOpen), errors.Is(err, envelope.ErrDecrypt),
		errors.Is(err, mnemonic.ErrChecksum), errors.As(err, &we), errors.As(err, &ce):
		return 3
	case errors.Is(err, client.ErrUnreachable), errors.Is(err, client.ErrNodeDown), errors.Is(err, client.ErrBusy):
		return 4
	case errors.Is(err, client.ErrStale):
		return 5
	case errors.Is(err, client.ErrNotFound):
		return 6
	}
	return 1
}
