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
//     open; 4 the vault or a node unreachable or busy; 5 the backup is stale; 6 no such key
//     (in the vault or on the phone); 130 interrupted (Ctrl-C).
//   - Words are read from standard input, never from arguments (which other users can
//     see). A passphrase comes from --passphrase-file, $SHAREVAULT_PASSPHRASE or, on a
//     terminal, a prompt; new words without any of these (or --no-passphrase) are refused.

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/sharevault/sharevault/client"
	"github.com/sharevault/sharevault/internal/envelope"
	"github.com/sharevault/sharevault/internal/mnemonic"
	"github.com/sharevault/sharevault/internal/slip39"
)

type ui struct {
	in          *bufio.Reader
	out, errOut io.Writer
	interactive bool
	passFile    string  // --passphrase-file
	noPass      bool    // --no-passphrase
	pass        *string // the passphrase, once resolvePassphrase has it
}

// passphraseFlags defines --passphrase-file and --no-passphrase on a command's flags.
func (u *ui) passphraseFlags(fs *flag.FlagSet) {
	fs.StringVar(&u.passFile, "passphrase-file", "", "")
	fs.BoolVar(&u.noPass, "no-passphrase", false, "")
}

// errNoPassphraseSource: new words without a terminal, and nothing said about a passphrase.
var errNoPassphraseSource = usageError("not on a terminal, so no passphrase can be asked: give --passphrase-file FILE (or /dev/fd/N), $SHAREVAULT_PASSPHRASE, or --no-passphrase to seal without one")

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

// passphrase returns the passphrase: none with --no-passphrase; the first line of
// --passphrase-file; $SHAREVAULT_PASSPHRASE; or asked on the terminal (twice when confirm).
// Without a terminal and none of these, new words (confirm) are refused rather than sealed
// without one; existing words are taken as without one (their backups say if they need one).
func (u *ui) passphrase(confirm bool) (string, error) {
	if u.pass != nil {
		return *u.pass, nil
	}
	switch {
	case u.noPass && u.passFile != "":
		return "", usageError("--no-passphrase and --passphrase-file contradict each other")
	case u.noPass:
		return "", nil
	case u.passFile != "":
		b, err := os.ReadFile(u.passFile)
		if err != nil {
			return "", fmt.Errorf("--passphrase-file: %w", err)
		}
		p, _, _ := strings.Cut(string(b), "\n")
		clear(b)
		return strings.TrimSuffix(p, "\r"), nil
	}
	if p, ok := os.LookupEnv("SHAREVAULT_PASSPHRASE"); ok {
		return p, nil
	}
	if !u.interactive {
		if confirm {
			return "", errNoPassphraseSource
		}
		return "", nil
	}
	f := int(os.Stdin.Fd())
	for try := 1; ; try++ {
		fmt.Fprint(u.errOut, "Passphrase (empty for none): ")
		p, err := term.ReadPassword(f)
		fmt.Fprintln(u.errOut)
		if err != nil || !confirm || len(p) == 0 {
			return string(p), err
		}
		fmt.Fprint(u.errOut, "Passphrase again: ")
		q, err := term.ReadPassword(f)
		fmt.Fprintln(u.errOut)
		if err != nil {
			return "", err
		}
		if string(p) == string(q) {
			return string(p), nil
		}
		if try == quizTries {
			return "", errors.New("the passphrases differ, three times: nothing was backed up")
		}
		fmt.Fprintln(u.errOut, "sharevault: the passphrases differ: type it again")
	}
}

// resolvePassphrase takes the passphrase now from what needs no prompt (a file, the
// environment, --no-passphrase), or fails now, before any word is made or asked for; a
// prompt on a terminal still comes after the words.
func (u *ui) resolvePassphrase(confirm bool) error {
	if u.interactive && !u.noPass && u.passFile == "" {
		if _, ok := os.LookupEnv("SHAREVAULT_PASSPHRASE"); !ok {
			return nil
		}
	}
	p, err := u.passphrase(confirm)
	if err != nil {
		return err
	}
	u.pass = &p
	return nil
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

// quizTries is how many times a quiz question may be answered.
const quizTries = 3

// ask asks for word n (of "" or " of share i") until the answer is want, quizTries times
// at most; after a wrong answer it says so and calls again (which shows the words again on
// a terminal) before asking once more. It returns an error naming the word, never a word.
func (u *ui) ask(n int, of, want string, again func() error) error {
	for try := 1; ; try++ {
		u.prompt(fmt.Sprintf("Check: what is word %d%s? ", n, of))
		ans, err := u.line()
		if err != nil && ans == "" {
			return errors.New("the quiz needs answers on standard input (or --no-quiz); nothing was backed up")
		}
		if strings.EqualFold(strings.TrimSpace(ans), want) {
			return nil
		}
		if try == quizTries {
			return fmt.Errorf("word %d%s is not what you wrote down, %d times: nothing was backed up, and these words are not used", n, of, quizTries)
		}
		fmt.Fprintf(u.errOut, "sharevault: word %d%s is not what you wrote down: look at the words again and correct your sheet\n", n, of)
		if err := again(); err != nil {
			return err
		}
	}
}

// quizWords picks two words of share i (1-based) for its quiz, 0-based: the first past
// the set's own words (4 words that every share of the set begins with alike, but for its
// member index) and one near the end, each unlike the same word of every other share.
func quizWords(i int, all []string) []int {
	w := strings.Fields(all[i-1])
	differs := func(k int) bool {
		for j, o := range all {
			if f := strings.Fields(o); j != i-1 && k < len(f) && f[k] == w[k] {
				return false
			}
		}
		return true
	}
	var ks []int
	for k := 4; k < len(w) && len(ks) < 1; k++ {
		if differs(k) {
			ks = append(ks, k)
		}
	}
	for k := len(w) - 4; k > 4 && len(ks) < 2; k-- {
		if differs(k) && (len(ks) == 0 || k != ks[0]) {
			ks = append(ks, k)
		}
	}
	return ks
}

// quizShare asks for two words of share i that differ from the same words of every other
// share (the first words of a SLIP-0039 share are the set's, the same on every sheet).
func (u *ui) quizShare(i, threshold int, share string, all []string) error {
	w := strings.Fields(share)
	ks := quizWords(i, all)
	for _, k := range ks {
		again := func() error {
			if u.interactive {
				u.showShare(i, threshold, len(all), share)
			}
			return nil
		}
		if err := u.ask(k+1, fmt.Sprintf(" of share %d", i), w[k], again); err != nil {
			return err
		}
	}
	return nil
}

// quiz asks for three of the words before a backup counts as done.
func (u *ui) quiz(w *client.Words) error {
	n := w.Count()
	again := func() error {
		if u.interactive {
			return u.showWords(w)
		}
		return nil
	}
	for _, i := range []int{2, n/2 + 1, n - 1} {
		if err := u.ask(i, "", w.Word(i), again); err != nil {
			return err
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
		errors.Is(err, mnemonic.ErrChecksum), errors.As(err, &we), errors.As(err, &ce),
		errors.Is(err, slip39.ErrInvalid), errors.Is(err, slip39.ErrChecksum), errors.Is(err, slip39.ErrMismatch):
		return 3
	case errors.Is(err, client.ErrUnreachable), errors.Is(err, client.ErrNodeDown), errors.Is(err, client.ErrBusy):
		return 4
	case errors.Is(err, client.ErrStale):
		return 5
	case errors.Is(err, client.ErrNotFound), errors.Is(err, client.ErrNoSuchKey):
		return 6
	}
	return 1
}
