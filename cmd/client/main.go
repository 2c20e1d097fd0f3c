// Command client plays the phone app: it holds an embedded TSM node (a SQLite file) and,
// for the demonstration, two server nodes in the same folder, and runs sharevault's flows
// against a vault. The flows themselves live in package client; this is a thin layer.
//
//	client [--home DIR] [--vault URL] COMMAND [ARGS]
//
// See `client help` and ui.go for what it prints and its exit codes.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/sharevault/sharevault/client"
	"github.com/sharevault/sharevault/internal/bip32"
)

const usage = `usage: client [--home DIR] [--vault URL] [--nodes URL,URL] COMMAND [ARGS]

The phone: DIR/phone.db; the keys the app keeps (never the words): DIR/keys.json. The TSM
server nodes (cmd/tsmnode) are --nodes, each URL optionally followed by #NODE-ID to pin it
(a node of several replicas: URL|URL#NODE-ID).
$SHAREVAULT_HOME, $SHAREVAULT_VAULT and $SHAREVAULT_NODES set the flags. Words are read from
standard input; a passphrase from a prompt, --passphrase-file or $SHAREVAULT_PASSPHRASE.

commands (client COMMAND -h for one):
%s

Exit codes: 0 done; 1 failed; 2 usage; 3 wrong words, or a backup that does not open; 4 the
vault or a TSM node unreachable or busy; 5 the backup is stale; 6 no such key (in the vault or
on the phone); 130 interrupted (Ctrl-C), nothing changed.`

// commands are the CLI's commands: their arguments and what they do, for the usage.
var commands = []struct{ name, args, about string }{
	{"keygen", "[--scheme eddsa|ecdsa] [--description TEXT] [--threshold T]", "make a key on the phone and the server nodes;\nany T+1 of them sign (default: all of them)"},
	{"backup", "KEY [--words N] [--no-quiz] [--png F] [--kit F] [--shares TofN]\n[--passphrase-file F | --no-passphrase]", "back KEY up (new words the first time; with\n--shares 2of3, as 3 SLIP-0039 shares, any 2 of\nwhich restore, and a kit per share)"},
	{"restore", "[KEY...] [--passphrase-file F | --no-passphrase]", "type the words, or shares one after another;\nrestore (every key if none named)"},
	{"verify", "KEY [--passphrase-file F | --no-passphrase]", "the restore drill: download, open, compare"},
	{"list", "[--passphrase-file F | --no-passphrase]", "the vault's keys"},
	{"export", "KEY [--qr F]", "the latest backup, armored, for an offline copy"},
	{"import", "FILE [--passphrase-file F | --no-passphrase]", "restore from an armored backup"},
	{"sign", "KEY [--digest HEX | --eth] [--path P] [--] [MESSAGE]", "sign across the phone and the server nodes: an\nEdDSA key signs MESSAGE's UTF-8 bytes as given; an\nECDSA key signs a 32-byte digest: --digest, the\nSHA-256 of MESSAGE, or with --eth its EIP-191\npersonal-message hash; --path m/0/7 signs for that\nBIP-32 child"},
	{"address", "KEY [--path P]", "an ECDSA key's Ethereum address and BIP-32 xpub\n(of its child at --path)"},
	{"reshare", "KEY", "refresh every node's share of KEY and back the new\none up (the old backups are deleted: stale)"},
	{"rotate", "[--words N] [--no-quiz] [--yes] [--kit F] [--passphrase-file F | --no-passphrase]", "new words for every key (quizzed, unless --no-quiz);\nthen delete the old vault (without asking: --yes)"},
	{"forget", "", "delete the keys kept in DIR/keys.json"},
}

// usageOf is one command's usage: its line and what it does.
func usageOf(name string) string {
	for _, c := range commands {
		if c.name == name {
			return "usage: client " + strings.TrimSpace(name+" "+strings.ReplaceAll(c.args, "\n", " ")) + "\n\n" + c.about + "\n"
		}
	}
	return ""
}

// usageText is the whole usage, the commands in two columns.
func usageText() string {
	var b strings.Builder
	for _, c := range commands {
		left := strings.Split(strings.TrimSpace(c.name+" "+c.args), "\n")
		right := strings.Split(c.about, "\n")
		for i := 0; i < max(len(left), len(right)); i++ {
			l, r := "", ""
			if i < len(left) {
				l = left[i]
				if i > 0 {
					l = "  " + l
				}
			}
			if i < len(right) {
				r = right[i]
			}
			if len(l) > 52 && r != "" { // too long for the column: the text on lines of its own
				fmt.Fprintf(&b, "  %s\n", l)
				l = ""
			}
			fmt.Fprintf(&b, "  %-53s%s\n", l, r)
		}
	}
	return fmt.Sprintf(usage, strings.TrimRight(b.String(), "\n"))
}

var errUsage = errors.New("usage")

// usageError is a usage error: the reason, for stderr beside the command's usage.
func usageError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, args...)...)
}

// wantsHelp reports whether args ask for a command's help (-h, -help, --help), before any --.
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

func main() {
	onInterrupt(os.Stderr)
	err := run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	if err != nil && !errors.Is(err, errUsage) {
		fmt.Fprintln(os.Stderr, "sharevault: error: "+err.Error())
	}
	os.Exit(exitCode(err))
}

// onInterrupt makes Ctrl-C (or SIGTERM) leave at once, at a prompt or anywhere else: the
// terminal is put back as it was at the start (a passphrase prompt turns its echo off) and
// the process exits 130. Nothing is left half done by it: an upload lands whole or not at
// all, the kept keys are replaced by a rename, and a refresh cut short is finished or
// undone on the next use of the key. At a prompt, nothing has been changed yet.
func onInterrupt(stderr io.Writer) {
	restore := func() {}
	if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
		if st, err := term.GetState(fd); err == nil {
			restore = func() { term.Restore(fd, st) }
		}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		restore()
		fmt.Fprintln(stderr, "\nsharevault: interrupted")
		os.Exit(130)
	}()
}

type app struct {
	*ui
	home     string
	vaultURL string
	nodes    []string
	vault    *client.Vault
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	home := fs.String("home", envOr("SHAREVAULT_HOME", "phone"), "")
	vaultURL := fs.String("vault", envOr("SHAREVAULT_VAULT", "http://localhost:8080"), "")
	nodes := fs.String("nodes", os.Getenv("SHAREVAULT_NODES"), "")
	if err := fs.Parse(args); err != nil || fs.NArg() == 0 {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, usageText())
			return nil
		}
		if err != nil {
			fmt.Fprintf(stderr, "sharevault: usage: %v\n", err)
		} else {
			fmt.Fprintln(stderr, "sharevault: usage: no command")
		}
		fmt.Fprintln(stderr, usageText())
		return errUsage
	}
	if fs.Arg(0) == "help" {
		if u := usageOf(fs.Arg(1)); u != "" {
			fmt.Fprint(stdout, u)
		} else {
			fmt.Fprintln(stdout, usageText())
		}
		return nil
	}
	name, rest := fs.Arg(0), fs.Args()[1:]
	if usageOf(name) == "" {
		fmt.Fprintf(stderr, "sharevault: unknown command %q\n%s\n", name, usageText())
		return errUsage
	}
	if wantsHelp(rest) {
		fmt.Fprint(stdout, usageOf(name))
		return nil
	}
	a := &app{ui: newUI(stdin, stdout, stderr), home: *home, vaultURL: *vaultURL, vault: client.NewVault(*vaultURL)}
	for _, n := range strings.Split(*nodes, ",") {
		if n = strings.TrimSpace(n); n != "" {
			a.nodes = append(a.nodes, n)
		}
	}
	a.vault.SetProgress(a.ui)
	if err := os.MkdirAll(a.home, 0o700); err != nil {
		return err
	}
	cmds := map[string]func([]string) error{
		"keygen": a.keygen, "backup": a.backup, "restore": a.restore, "verify": a.verify, "list": a.list,
		"export": a.export, "import": a.importFile, "sign": a.sign, "address": a.address, "reshare": a.reshare, "rotate": a.rotate, "forget": a.forget,
	}
	err := cmds[name](rest)
	if errors.Is(err, errUsage) {
		fmt.Fprintf(stderr, "sharevault: %v\n%s", err, usageOf(name))
	}
	return err
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// flags parses a command's flags; positional arguments may come before or after them.
func flags(name string, args []string, define func(fs *flag.FlagSet)) ([]string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	define(fs)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			msg := err.Error()
			if f, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
				msg = "unknown flag " + f
			}
			return nil, usageError("%s: %s", name, msg)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func (a *app) phone() (*client.Phone, error) {
	p, err := client.OpenPhone(filepath.Join(a.home, "phone.db"), a.vault)
	if err != nil {
		return nil, err
	}
	for _, n := range a.nodes {
		url, id, _ := strings.Cut(n, "#")
		p.AddRemoteNode(url, id)
	}
	return p, nil
}

// withPhone runs fn with the phone open and the keys that keys returns (none if nil):
// a.keys for the kept keys or typed words, a.restoreKeys to always ask for the words.
func (a *app) withPhone(keys func() (*client.Keys, error), fn func(p *client.Phone, k *client.Keys) error) error {
	var k *client.Keys
	if keys != nil {
		var err error
		if k, err = keys(); err != nil {
			return err
		}
	}
	p, err := a.phone()
	if err != nil {
		return err
	}
	defer p.Close()
	return fn(p, k)
}

func (a *app) keysPath() string { return filepath.Join(a.home, "keys.json") }

// storedKeys returns the keys the app kept, or nil if there are none.
func (a *app) storedKeys() (*client.Keys, error) {
	b, err := os.ReadFile(a.keysPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return client.UnmarshalKeys(b)
}

func (a *app) keepKeys(k *client.Keys) error {
	b, err := k.Marshal()
	if err != nil {
		return err
	}
	tmp := a.keysPath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, a.keysPath())
}

// keys returns the kept keys, or asks for the words (once the vault answers).
func (a *app) keys() (*client.Keys, error) {
	k, err := a.storedKeys()
	if k != nil || err != nil {
		return k, err
	}
	return a.typedKeys(false)
}

// reachable checks that the vault answers, and with nodes every TSM server node: before
// the user types anything, so that an outage does not cost typing the words twice.
func (a *app) reachable(nodes bool) error {
	if err := a.vault.Check(); err != nil {
		return fmt.Errorf("%w (nothing was asked for yet)", err)
	}
	if !nodes {
		return nil
	}
	p, err := a.phone()
	if err != nil {
		return err
	}
	defer p.Close()
	if err := p.CheckNodes(); err != nil {
		return fmt.Errorf("%w (nothing was asked for yet)", err)
	}
	return nil
}

// retry runs fn and, on a terminal, offers to run it again while it fails because the vault
// or a node does not answer: the words typed stay in this process's memory, never on disk.
func (a *app) retry(fn func() error) error {
	for {
		err := fn()
		if err == nil || !a.interactive || exitCode(err) != 4 {
			return err
		}
		fmt.Fprintln(a.errOut, "sharevault: "+err.Error())
		a.prompt("Try again with the words you typed (kept in memory only)? [Y/n] ")
		if ans, rerr := a.line(); rerr != nil || strings.HasPrefix(strings.ToLower(strings.TrimSpace(ans)), "n") {
			return err
		}
	}
}

func (a *app) restoreKeys() (*client.Keys, error) { return a.typedKeys(true) }

// typedKeys reads the words (or enough shares of them) and the passphrase, once the vault
// (and with nodes, the server nodes) answer, and finds their vault, fixing one wrong word.
func (a *app) typedKeys(nodes bool) (*client.Keys, error) {
	if err := a.reachable(nodes); err != nil {
		return nil, err
	}
	if err := a.resolvePassphrase(false); err != nil {
		return nil, err
	}
	typed, err := a.readWords()
	if err != nil {
		return nil, err
	}
	if client.LooksLikeShare(typed) {
		if typed, err = a.readShares(typed); err != nil {
			return nil, err
		}
	}
	pass, err := a.passphrase(false)
	if err != nil {
		return nil, err
	}
	var found *client.Found
	if err := a.retry(func() (err error) { found, err = client.FindKeys(a.vault, typed, pass); return err }); err != nil {
		return nil, err
	}
	if found.Position != 0 {
		a.Step(fmt.Sprintf("word %d was mistyped; the checksum and the vault agree on a correction (see your sheet)", found.Position))
	}
	return found.Keys, nil
}

// readShares reads shares, first the one already typed, one after another, saying how many
// more are needed, until they restore the words.
func (a *app) readShares(first string) (string, error) {
	shares := []string{first}
	reported := map[client.ShareFix]bool{}
	for {
		words, more, fixes, err := client.CombineShares(shares)
		for _, f := range fixes {
			if !reported[f] {
				a.Step(fmt.Sprintf("word %d of share %d was mistyped; its checksum agrees on a correction (see that sheet)", f.Word, f.Share))
				reported[f] = true
			}
		}
		if errors.Is(err, client.ErrSameShare) {
			a.Step(fmt.Sprintf("share %d was typed already: type another", client.ShareMember(shares[len(shares)-1])))
			shares = shares[:len(shares)-1]
			err = nil
			if more == 0 {
				more = 1 // the shares before it were not enough (else there would be no next)
			}
		} else if err != nil {
			return "", err
		} else if more == 0 {
			return words, nil
		} else {
			a.Step(fmt.Sprintf("share %d read: %d more share(s) needed", client.ShareMember(shares[len(shares)-1]), more))
		}
		a.prompt("Type the next share, then an empty line:\n")
		next, err := a.readWords()
		if err != nil {
			return "", fmt.Errorf("%d more share(s) needed: %w", more, err)
		}
		shares = append(shares, next)
	}
}

// papers are the files that hold new words (a kit, a SeedQR image): made in memory when the
// words are, and written only once the backup that uses the words is in the vault.
type paper struct {
	path, what string
	f          *os.File // made before the words, empty until written
	data       []byte
}

type papers []paper

// reservePapers makes the files asked for before any word is made: new files only (an
// existing one, perhaps readable by others, is refused), 0600, empty until written. With
// shares, the kit is one file per share (kit-1.pdf, ...).
func reservePapers(kit, png, shares string, count int) (papers, error) {
	var out papers
	add := func(path, what string) error {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			out.abandon()
			return fmt.Errorf("%w (no words were made)", err)
		}
		out = append(out, paper{path: path, what: what, f: f})
		return nil
	}
	switch {
	case kit != "" && shares != "":
		for i := 1; i <= count; i++ {
			if err := add(strings.TrimSuffix(kit, filepath.Ext(kit))+fmt.Sprintf("-%d", i)+filepath.Ext(kit), fmt.Sprint("recovery kit for share ", i)); err != nil {
				return nil, err
			}
		}
	case kit != "":
		if err := add(kit, "recovery kit"); err != nil {
			return nil, err
		}
	}
	if png != "" {
		if err := add(png, "SeedQR image"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// abandon removes the files not written (the words they were for are not used).
func (ps papers) abandon() {
	for _, p := range ps {
		if p.f != nil {
			p.f.Close()
			os.Remove(p.path)
		}
		clear(p.data)
	}
}

// write writes the files and tells the user what to do with each.
func (ps papers) write(a *app) error {
	for i := range ps {
		p := &ps[i]
		_, err := p.f.Write(p.data)
		if cerr := p.f.Close(); err == nil {
			err = cerr
		}
		p.f = nil
		clear(p.data)
		if err != nil {
			return fmt.Errorf("the %s was not written to %s (%v)", p.what, p.path, err)
		}
		a.Step(p.what + " written to " + p.path + ": print it, then delete the file")
	}
	return nil
}

// newShares makes fresh words, shows them as count shares of which threshold restore them
// (never the words themselves), quizzes each, and returns the keys and a kit per share.
func (a *app) newShares(words, threshold, count int, quiz bool, out papers) (*client.Keys, papers, error) {
	if words != 12 && words != 24 {
		return nil, nil, errors.New("--shares needs --words 12 or 24")
	}
	w, err := client.NewWords(words)
	if err != nil {
		return nil, nil, err
	}
	defer w.Wipe()
	shares, err := w.Shares(threshold, count)
	if err != nil {
		return nil, nil, err
	}
	for i, s := range shares {
		a.showShare(i+1, threshold, count, s)
	}
	pass, err := a.passphrase(true)
	if err != nil {
		return nil, nil, err
	}
	k, err := w.Keys(pass)
	if err != nil {
		return nil, nil, err
	}
	if quiz {
		for i, s := range shares {
			if err := a.quizShare(i+1, threshold, s, shares); err != nil {
				return nil, nil, err
			}
		}
	}
	for i := range out { // a kit per share, in order
		pdf, err := client.ShareKit(shares[i], i+1, threshold, count, k, a.vaultURL, time.Now().Unix())
		if err != nil {
			return nil, nil, err
		}
		out[i].data = pdf
	}
	return k, out, nil
}

// newWords shows fresh words, quizzes the user (who may look again after a wrong answer)
// and returns their keys, and the kit and SeedQR image asked for.
func (a *app) newWords(count int, quiz bool, out papers) (*client.Keys, papers, error) {
	w, err := client.NewWords(count)
	if err != nil {
		return nil, nil, err
	}
	defer w.Wipe()
	if err := a.showWords(w); err != nil {
		return nil, nil, err
	}
	pass, err := a.passphrase(true)
	if err != nil {
		return nil, nil, err
	}
	k, err := w.Keys(pass)
	if err != nil {
		return nil, nil, err
	}
	if quiz {
		if err := a.quiz(w); err != nil {
			return nil, nil, err
		}
	}
	for i := range out {
		var err error
		if out[i].what == "SeedQR image" {
			out[i].data, err = client.QRPNG(w.SeedQR(), 512)
		} else {
			out[i].data, err = client.RecoveryKit(w, k, a.vaultURL, time.Now().Unix())
		}
		if err != nil {
			return nil, nil, err
		}
	}
	return k, out, nil
}

func (a *app) keygen(args []string) error {
	scheme, desc, threshold := "eddsa", "", 0
	pos, err := flags("keygen", args, func(fs *flag.FlagSet) {
		fs.StringVar(&scheme, "scheme", scheme, "")
		fs.StringVar(&desc, "description", "", "")
		fs.IntVar(&threshold, "threshold", 0, "")
	})
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError("keygen takes no arguments, only flags")
	}
	p, err := a.phone()
	if err != nil {
		return err
	}
	defer p.Close()
	n := len(a.nodes) + 1
	if threshold == 0 {
		threshold = n - 1
	}
	if scheme != "eddsa" && scheme != "ecdsa" {
		return usageError("--scheme is eddsa or ecdsa")
	}
	if n > 1 && (threshold < 1 || threshold >= n) {
		return usageError("--threshold %d: want 1..%d, so that any T+1 of the %d parties sign", threshold, n-1, n)
	}
	id, err := p.KeyGenThreshold(scheme, desc, threshold)
	if err != nil {
		return err
	}
	if threshold == n-1 {
		a.Step(fmt.Sprintf("every signature needs all %d parties: this phone and each server node", n))
	} else { // the n-1 server nodes are threshold+1 or more
		a.Step(fmt.Sprintf("any %d of the %d parties sign: the server nodes can sign without this phone", threshold+1, n))
	}
	if scheme == "ecdsa" {
		addr, err := p.EthereumAddress(id, "")
		if err != nil {
			return err
		}
		xpub, err := p.XPub(id, "")
		if err != nil {
			return err
		}
		a.Step("address " + addr)
		a.Step("xpub " + xpub)
	}
	a.result("key %s", id)
	return nil
}

func (a *app) backup(args []string) error {
	words, noQuiz, png, kit, shares := 24, false, "", "", ""
	pos, err := flags("backup", args, func(fs *flag.FlagSet) {
		fs.IntVar(&words, "words", words, "")
		fs.BoolVar(&noQuiz, "no-quiz", false, "")
		fs.StringVar(&png, "png", "", "")
		fs.StringVar(&kit, "kit", "", "")
		fs.StringVar(&shares, "shares", "", "")
		a.passphraseFlags(fs)
	})
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("backup needs one KEY")
	}
	if words != 12 && words != 24 {
		return usageError("--words is 12 or 24")
	}
	var threshold, count int
	if shares != "" {
		if n, _ := fmt.Sscanf(shares, "%dof%d", &threshold, &count); n != 2 || png != "" || threshold < 2 || threshold > count || count > 16 {
			return usageError("--shares TofN, such as 2of3: 2 to 16 shares, any T of them (at least 2) restore (and no --png: a SeedQR holds whole words)")
		}
	}
	kept, err := a.storedKeys()
	if err != nil {
		return err
	}
	if kept != nil && (kit != "" || png != "") {
		return usageError("this phone already has its words, and they are on no screen again: --kit and --png go with new words (rotate to make new ones)")
	}
	p, err := a.phone()
	if err != nil {
		return err
	}
	defer p.Close()
	if _, err := p.Key(pos[0]); err != nil { // before any words are made or shown
		return fmt.Errorf("key %s: %w", pos[0], err)
	}
	k := kept
	var out papers
	switch {
	case k != nil && shares != "":
		return errors.New("this phone already has its words: --shares splits new words only (rotate to make new ones)")
	case k == nil:
		if err := a.reachable(false); err != nil {
			return err
		}
		if err := a.resolvePassphrase(true); err != nil {
			return err
		}
		if out, err = reservePapers(kit, png, shares, count); err != nil {
			return err
		}
		defer out.abandon() // unless written below
		if shares != "" {
			k, out, err = a.newShares(words, threshold, count, !noQuiz, out)
		} else {
			k, out, err = a.newWords(words, !noQuiz, out)
		}
		if err != nil {
			return err
		}
	}
	var info *client.KeyInfo
	if err := a.retry(func() (err error) { info, err = p.Backup(k, pos[0]); return err }); err != nil {
		return err
	}
	if err := a.keepKeys(k); err != nil {
		return err
	}
	if err := out.write(a); err != nil {
		a.Step("the backup is done, but " + err.Error() + ": make new words and a new kit with rotate")
	}
	a.result("backed up %s version %d (epoch %d) to vault %s", info.KeyID, info.Sequence, info.Epoch, k.VaultID())
	return nil
}

func (a *app) restore(args []string) error {
	args, err := flags("restore", args, a.passphraseFlags)
	if err != nil {
		return err
	}
	return a.withPhone(a.restoreKeys, func(p *client.Phone, k *client.Keys) error {
		if len(args) == 0 {
			l, err := p.List(k)
			if err != nil {
				return err
			}
			for i := 0; i < l.Len(); i++ {
				args = append(args, l.At(i).KeyID)
			}
		}
		for _, id := range args {
			var info *client.KeyInfo
			err := a.retry(func() (err error) { info, err = p.Restore(k, id); return err })
			if err != nil {
				return fmt.Errorf("key %s: %w", id, err)
			}
			a.result("restored %s %s public key %s (epoch %d, version %d)", info.KeyID, info.Scheme, info.PublicKey, info.Epoch, info.Sequence)
		}
		return a.keepKeys(k)
	})
}

func (a *app) verify(args []string) error {
	args, err := flags("verify", args, a.passphraseFlags)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return usageError("verify needs one KEY")
	}
	return a.withPhone(a.keys, func(p *client.Phone, k *client.Keys) error {
		info, err := p.Verify(k, args[0])
		if err != nil {
			return err
		}
		a.result("verified %s version %d: it opens, and holds %s public key %s (epoch %d)", info.KeyID, info.Sequence, info.Scheme, info.PublicKey, info.Epoch)
		return nil
	})
}

func (a *app) list(args []string) error {
	args, err := flags("list", args, a.passphraseFlags)
	if err != nil {
		return err
	}
	if len(args) != 0 {
		return usageError("list takes no arguments")
	}
	return a.withPhone(a.keys, func(p *client.Phone, k *client.Keys) error {
		l, err := p.List(k)
		if err != nil {
			return err
		}
		for i := 0; i < l.Len(); i++ {
			a.result("%s version %d", l.At(i).KeyID, l.At(i).Sequence)
		}
		return nil
	})
}

func (a *app) export(args []string) error {
	qr := ""
	pos, err := flags("export", args, func(fs *flag.FlagSet) { fs.StringVar(&qr, "qr", "", "") })
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("export needs one KEY")
	}
	return a.withPhone(a.keys, func(p *client.Phone, k *client.Keys) error {
		armored, err := p.Export(k, pos[0])
		if err != nil {
			return err
		}
		if qr != "" {
			img, err := client.QRPNG(armored, 1024)
			if err != nil {
				return err
			}
			if err := os.WriteFile(qr, img, 0o600); err != nil {
				return err
			}
		}
		fmt.Fprint(a.out, armored)
		return nil
	})
}

func (a *app) importFile(args []string) error {
	args, err := flags("import", args, a.passphraseFlags)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return usageError("import needs one FILE")
	}
	b, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	return a.withPhone(a.keys, func(p *client.Phone, k *client.Keys) error {
		info, err := p.Import(k, string(b))
		if err != nil {
			return err
		}
		a.result("restored %s %s public key %s (epoch %d, version %d)", info.KeyID, info.Scheme, info.PublicKey, info.Epoch, info.Sequence)
		return a.keepKeys(k)
	})
}

func (a *app) sign(args []string) error {
	var rest []string // after --, a message as given, even one that starts with -
	if i := slices.Index(args, "--"); i >= 0 {
		args, rest = args[:i], args[i+1:]
	}
	var digest, path string
	var eth bool
	pos, err := flags("sign", args, func(fs *flag.FlagSet) {
		fs.StringVar(&digest, "digest", "", "")
		fs.BoolVar(&eth, "eth", false, "")
		fs.StringVar(&path, "path", "", "")
	})
	if err != nil {
		return err
	}
	pos = append(pos, rest...)
	switch {
	case len(pos) == 0:
		return usageError("sign needs a KEY")
	case digest != "" && (eth || len(pos) != 1):
		return usageError("sign --digest HEX takes no MESSAGE and no --eth")
	case digest == "" && len(pos) != 2:
		return usageError("sign needs a KEY and one MESSAGE (quote a message with spaces), or --digest HEX")
	}
	if digest != "" {
		if b, err := hex.DecodeString(digest); err != nil || len(b) != 32 {
			return usageError("--digest is 32 bytes: 64 hex digits")
		}
	}
	if _, err := bip32.ParsePath(path); err != nil {
		return usageError("--path: %v", err)
	}
	keyID := pos[0]
	return a.withPhone(nil, func(p *client.Phone, _ *client.Keys) error {
		info, err := p.Key(keyID)
		if err != nil {
			return err
		}
		if info.Scheme == "EdDSA" {
			if digest != "" || eth || path != "" {
				return usageError("--digest, --eth and --path are for ECDSA keys; %s is an EdDSA key", keyID)
			}
			sig, err := p.Sign(keyID, pos[1])
			if err != nil {
				return err
			}
			a.result("signature %s (verified with crypto/ed25519)", sig)
			return nil
		}
		var sig string
		switch {
		case eth:
			sig, err = p.SignEthereumMessage(keyID, pos[1], path)
		case digest == "":
			d := sha256.Sum256([]byte(pos[1]))
			digest = hex.EncodeToString(d[:])
			a.Step("digest " + digest + " (SHA-256 of the message)")
			fallthrough
		default:
			sig, err = p.SignDigest(keyID, digest, path)
		}
		if err != nil {
			return err
		}
		addr, err := p.EthereumAddress(keyID, path)
		if err != nil {
			return err
		}
		a.result("signature %s (r || s || v, low-S, verified with decred's ecdsa) by %s", sig, addr)
		return nil
	})
}

// address prints an ECDSA key's Ethereum address and extended public key, at a path.
func (a *app) address(args []string) error {
	var path string
	pos, err := flags("address", args, func(fs *flag.FlagSet) { fs.StringVar(&path, "path", "", "") })
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("address needs one KEY")
	}
	if _, err := bip32.ParsePath(path); err != nil {
		return usageError("--path: %v", err)
	}
	return a.withPhone(nil, func(p *client.Phone, _ *client.Keys) error {
		addr, err := p.EthereumAddress(pos[0], path)
		if err != nil {
			return err
		}
		xpub, err := p.XPub(pos[0], path)
		if err != nil {
			return err
		}
		a.result("address %s\nxpub %s", addr, xpub)
		return nil
	})
}

func (a *app) reshare(args []string) error {
	if len(args) != 1 {
		return usageError("reshare needs one KEY")
	}
	k, err := a.storedKeys()
	if err != nil {
		return err
	}
	if k == nil {
		return errors.New("reshare backs up the new share, and this phone has no backup keys: run `client backup " + args[0] + "` first")
	}
	return a.withPhone(nil, func(p *client.Phone, _ *client.Keys) error {
		info, err := p.Reshare(k, args[0])
		if info != nil {
			a.result("reshared %s: epoch %d, backed up as version %d", info.KeyID, info.Epoch, info.Sequence)
		}
		return err
	})
}

func (a *app) rotate(args []string) error {
	words, yes, noQuiz, kit := 24, false, false, ""
	pos, err := flags("rotate", args, func(fs *flag.FlagSet) {
		fs.IntVar(&words, "words", words, "")
		fs.BoolVar(&yes, "yes", false, "")
		fs.BoolVar(&noQuiz, "no-quiz", false, "")
		fs.StringVar(&kit, "kit", "", "")
		a.passphraseFlags(fs)
	})
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError("rotate takes no arguments, only flags")
	}
	if words != 12 && words != 24 {
		return usageError("--words is 12 or 24")
	}
	return a.withPhone(a.keys, func(p *client.Phone, old *client.Keys) error {
		return a.rotateTo(p, old, words, yes, !noQuiz, kit)
	})
}

// rotateTo moves every key of old to new words, then deletes the old vault once confirmed.
func (a *app) rotateTo(p *client.Phone, old *client.Keys, words int, yes, quiz bool, kit string) error {
	if err := a.reachable(false); err != nil {
		return err
	}
	if err := a.resolvePassphrase(true); err != nil {
		return err
	}
	out, err := reservePapers(kit, "", "", 0)
	if err != nil {
		return err
	}
	defer out.abandon()
	nk, out, err := a.newWords(words, quiz, out)
	if err != nil {
		return err
	}
	var moved *client.KeyList
	if err := a.retry(func() (err error) { moved, err = p.Rotate(old, nk); return err }); err != nil {
		return err
	}
	if err := a.keepKeys(nk); err != nil {
		return err
	}
	if err := out.write(a); err != nil {
		a.Step("the rotation is done, but " + err.Error())
	}
	a.result("rotated %s to vault %s", plural(moved.Len(), "key"), nk.VaultID())
	if !yes {
		a.prompt("Delete the old vault now? Only if the new words are on paper. Type yes: ")
		if ans, _ := a.line(); strings.TrimSpace(ans) != "yes" {
			a.Step("the old vault is kept; its words still restore the old backups")
			return nil
		}
	}
	if err := p.DeleteVault(old); err != nil {
		return err
	}
	a.result("deleted old vault %s", old.VaultID())
	return nil
}

// plural says "1 key", "2 keys".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func (a *app) forget(args []string) error {
	if len(args) != 0 {
		return usageError("forget takes no arguments")
	}
	if err := os.Remove(a.keysPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	a.result("forgot the kept keys; the words restore them")
	return nil
}
