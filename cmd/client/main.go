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
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sharevault/sharevault/client"
)

const usage = `usage: client [--home DIR] [--vault URL] [--nodes URL,URL] COMMAND [ARGS]

The phone: DIR/phone.db; the keys the app keeps (never the words): DIR/keys.json. The TSM
server nodes (cmd/tsmnode) are --nodes, each URL optionally followed by #NODE-ID to pin it.
$SHAREVAULT_HOME, $SHAREVAULT_VAULT and $SHAREVAULT_NODES set the flags.

commands:
  keygen [--scheme eddsa|ecdsa] [--description TEXT] [--threshold T]
                                                       make a key on the phone and the server nodes;
                                                       any T+1 of them sign (default: all of them)
  backup KEY [--words N] [--no-quiz] [--png F] [--kit F] [--shares TofN]
                                                       back KEY up (new words the first time; with
                                                       --shares 2of3, as 3 SLIP-0039 shares, any 2 of
                                                       which restore, and a kit per share)
  restore [KEY...]                                     type the words, or shares one after another;
                                                       restore (every key if none named)
  verify KEY                                           the restore drill: download, open, compare
  list                                                 the vault's keys
  export KEY [--qr F]                                  the latest backup, armored, for an offline copy
  import FILE                                          restore from an armored backup
  sign KEY MESSAGE                                     sign MESSAGE's UTF-8 bytes, as given (no hash or
                                                       prefix: Ed25519 hashes them itself), across the
                                                       phone and the server nodes (EdDSA keys)
  reshare KEY                                          refresh every node's share of KEY and back the new
                                                       one up (the old backups are deleted: stale)
  rotate [--words N] [--yes] [--kit F]                 new words for every key; then delete the old vault
  forget                                               delete the keys kept in DIR/keys.json`

var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, errUsage) {
		fmt.Fprintln(os.Stderr, "sharevault: error: "+err.Error())
	}
	os.Exit(exitCode(err))
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
	if err := fs.Parse(args); err != nil || fs.NArg() == 0 || fs.Arg(0) == "help" {
		fmt.Fprintln(stderr, usage)
		return errUsage
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
		"export": a.export, "import": a.importFile, "sign": a.sign, "reshare": a.reshare, "rotate": a.rotate, "forget": a.forget,
	}
	cmd, ok := cmds[fs.Arg(0)]
	if !ok {
		fmt.Fprintf(stderr, "sharevault: unknown command %q\n%s\n", fs.Arg(0), usage)
		return errUsage
	}
	return cmd(fs.Args()[1:])
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
			return nil, fmt.Errorf("%s: %v", name, err)
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
// a.keys for the kept keys or typed words, a.typedKeys to always ask for the words.
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

// keys returns the kept keys, or asks for the words.
func (a *app) keys() (*client.Keys, error) {
	k, err := a.storedKeys()
	if k != nil || err != nil {
		return k, err
	}
	return a.typedKeys()
}

// typedKeys reads the words (or enough shares of them) and the passphrase, and finds
// their vault, fixing one wrong word.
func (a *app) typedKeys() (*client.Keys, error) {
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
	found, err := client.FindKeys(a.vault, typed, pass)
	if err != nil {
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
		if err != nil {
			return "", err
		}
		if more == 0 {
			return words, nil
		}
		a.Step(fmt.Sprintf("share %d read: %d more share(s) needed", len(shares), more))
		a.prompt("Type the next share, then an empty line:\n")
		next, err := a.readWords()
		if err != nil {
			return "", fmt.Errorf("%d more share(s) needed: %w", more, err)
		}
		shares = append(shares, next)
	}
}

// newShares makes fresh words, shows them as count shares of which threshold restore them
// (never the words themselves), writes a kit per share, quizzes each, and returns the keys.
func (a *app) newShares(words, threshold, count int, quiz bool, kit string) (*client.Keys, error) {
	if words != 12 && words != 24 {
		return nil, errors.New("--shares needs --words 12 or 24")
	}
	w, err := client.NewWords(words)
	if err != nil {
		return nil, err
	}
	defer w.Wipe()
	shares, err := w.Shares(threshold, count)
	if err != nil {
		return nil, err
	}
	pass, err := a.passphrase(true)
	if err != nil {
		return nil, err
	}
	k, err := w.Keys(pass)
	if err != nil {
		return nil, err
	}
	for i, s := range shares {
		a.showShare(i+1, threshold, count, s)
		if kit != "" {
			pdf, err := client.ShareKit(s, i+1, threshold, count, k, a.vaultURL, time.Now().Unix())
			if err != nil {
				return nil, err
			}
			path := strings.TrimSuffix(kit, filepath.Ext(kit)) + fmt.Sprintf("-%d", i+1) + filepath.Ext(kit)
			if err := a.writeKit(path, pdf, fmt.Sprint("recovery kit for share ", i+1)); err != nil {
				return nil, err
			}
		}
	}
	if quiz {
		for i, s := range shares {
			if err := a.quizShare(i+1, s); err != nil {
				return nil, err
			}
		}
	}
	return k, nil
}

// writeKit writes a kit PDF (it holds words or a share: 0600) and tells the user what to do.
func (a *app) writeKit(path string, pdf []byte, what string) error {
	if err := os.WriteFile(path, pdf, 0o600); err != nil {
		return err
	}
	a.Step(what + " written to " + path + ": print it, then delete the file")
	return nil
}

// newWords shows fresh words, quizzes the user and returns their keys.
func (a *app) newWords(count int, quiz bool, png, kit string) (*client.Keys, error) {
	w, err := client.NewWords(count)
	if err != nil {
		return nil, err
	}
	defer w.Wipe()
	if err := a.showWords(w); err != nil {
		return nil, err
	}
	if png != "" {
		img, err := client.QRPNG(w.SeedQR(), 512)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(png, img, 0o600); err != nil {
			return nil, err
		}
	}
	pass, err := a.passphrase(true)
	if err != nil {
		return nil, err
	}
	k, err := w.Keys(pass)
	if err != nil {
		return nil, err
	}
	if kit != "" {
		pdf, err := client.RecoveryKit(w, k, a.vaultURL, time.Now().Unix())
		if err != nil {
			return nil, err
		}
		if err := a.writeKit(kit, pdf, "recovery kit"); err != nil {
			return nil, err
		}
	}
	if quiz {
		if err := a.quiz(w); err != nil {
			return nil, err
		}
	}
	return k, nil
}

func (a *app) keygen(args []string) error {
	scheme, desc, threshold := "eddsa", "", 0
	pos, err := flags("keygen", args, func(fs *flag.FlagSet) {
		fs.StringVar(&scheme, "scheme", scheme, "")
		fs.StringVar(&desc, "description", "", "")
		fs.IntVar(&threshold, "threshold", 0, "")
	})
	if err != nil || len(pos) != 0 {
		return fmt.Errorf("%w: keygen [--scheme eddsa|ecdsa] [--description TEXT] [--threshold T]", errUsage)
	}
	p, err := a.phone()
	if err != nil {
		return err
	}
	defer p.Close()
	var id string
	if threshold == 0 {
		id, err = p.KeyGen(scheme, desc)
	} else {
		id, err = p.KeyGenThreshold(scheme, desc, threshold)
	}
	if err != nil {
		return err
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
	})
	if err != nil || len(pos) != 1 {
		return fmt.Errorf("%w: backup KEY", errUsage)
	}
	var threshold, count int
	if shares != "" {
		if n, _ := fmt.Sscanf(shares, "%dof%d", &threshold, &count); n != 2 || png != "" {
			return fmt.Errorf("%w: --shares TofN, such as 2of3 (and no --png: a SeedQR holds whole words)", errUsage)
		}
	}
	k, err := a.storedKeys()
	if err != nil {
		return err
	}
	switch {
	case k != nil && shares != "":
		return errors.New("this phone already has its words: --shares splits new words only (rotate to make new ones)")
	case k == nil && shares != "":
		if k, err = a.newShares(words, threshold, count, !noQuiz, kit); err != nil {
			return err
		}
	case k == nil:
		if k, err = a.newWords(words, !noQuiz, png, kit); err != nil {
			return err
		}
	}
	p, err := a.phone()
	if err != nil {
		return err
	}
	defer p.Close()
	info, err := p.Backup(k, pos[0])
	if err != nil {
		return err
	}
	if err := a.keepKeys(k); err != nil {
		return err
	}
	a.result("backed up %s version %d (epoch %d) to vault %s", info.KeyID, info.Sequence, info.Epoch, k.VaultID())
	return nil
}

func (a *app) restore(args []string) error {
	if _, err := flags("restore", args, func(*flag.FlagSet) {}); err != nil {
		return fmt.Errorf("%w: restore [KEY...]", errUsage)
	}
	return a.withPhone(a.typedKeys, func(p *client.Phone, k *client.Keys) error {
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
			info, err := p.Restore(k, id)
			if err != nil {
				return fmt.Errorf("key %s: %w", id, err)
			}
			a.result("restored %s %s public key %s (epoch %d, version %d)", info.KeyID, info.Scheme, info.PublicKey, info.Epoch, info.Sequence)
		}
		return a.keepKeys(k)
	})
}

func (a *app) verify(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%w: verify KEY", errUsage)
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
	if err != nil || len(pos) != 1 {
		return fmt.Errorf("%w: export KEY [--qr FILE]", errUsage)
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
	if len(args) != 1 {
		return fmt.Errorf("%w: import FILE", errUsage)
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
	if len(args) != 2 {
		return fmt.Errorf("%w: sign KEY MESSAGE", errUsage)
	}
	return a.withPhone(nil, func(p *client.Phone, _ *client.Keys) error {
		sig, err := p.Sign(args[0], args[1])
		if err != nil {
			return err
		}
		a.result("signature %s (verified with crypto/ed25519)", sig)
		return nil
	})
}

func (a *app) reshare(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%w: reshare KEY", errUsage)
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
	words, yes, kit := 24, false, ""
	if _, err := flags("rotate", args, func(fs *flag.FlagSet) {
		fs.IntVar(&words, "words", words, "")
		fs.BoolVar(&yes, "yes", false, "")
		fs.StringVar(&kit, "kit", "", "")
	}); err != nil {
		return fmt.Errorf("%w: rotate [--words N] [--yes] [--kit FILE]", errUsage)
	}
	return a.withPhone(a.keys, func(p *client.Phone, old *client.Keys) error {
		return a.rotateTo(p, old, words, yes, kit)
	})
}

// rotateTo moves every key of old to new words, then deletes the old vault once confirmed.
func (a *app) rotateTo(p *client.Phone, old *client.Keys, words int, yes bool, kit string) error {
	nk, err := a.newWords(words, !yes, "", kit)
	if err != nil {
		return err
	}
	moved, err := p.Rotate(old, nk)
	if err != nil {
		return err
	}
	if err := a.keepKeys(nk); err != nil {
		return err
	}
	a.result("rotated %d keys to vault %s", moved.Len(), nk.VaultID())
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

func (a *app) forget(args []string) error {
	if err := os.Remove(a.keysPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	a.result("forgot the kept keys; the words restore them")
	return nil
}
