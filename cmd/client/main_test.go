package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/sys/unix"

	"github.com/sharevault/sharevault/internal/mnemonic"
	"github.com/sharevault/sharevault/internal/pgtest"
	"github.com/sharevault/sharevault/internal/slip39"
	"github.com/sharevault/sharevault/internal/tsmnode/tsmnodetest"
	"github.com/sharevault/sharevault/internal/vaultproc"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"client": func() { os.Exit(exitCode(runMain())) },
	})
}

func runMain() error {
	onInterrupt(os.Stderr)
	err := run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	if err != nil && err != errUsage && !strings.HasPrefix(err.Error(), "usage") {
		fmt.Fprintln(os.Stderr, "sharevault: error: "+err.Error())
	}
	return err
}

// The scripts in testdata/ play the whole lose-the-phone story and its failures against a
// real vault process (cmd/vault, built once).
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		Setup: func(e *testscript.Env) error {
			e.Setenv("SHAREVAULT_HOME", filepath.Join(e.WorkDir, "phone"))
			e.Setenv("SHAREVAULT_TEST_CHEAP_KDF", "1")
			e.Setenv("SHAREVAULT_VAULT", "http://127.0.0.1:1") // nothing listens until vault-start
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"vault-start": vaultStart, "vault-stop": vaultStop, "capture": capture, "sheet": sheet, "mistype": mistype,
			"nodes-start": nodesStart, "node-kill": nodeKill, "node-start": nodeStart,
			"nodes-start-replicated": nodesStartReplicated, "replica-kill": replicaKill, "replica-start": replicaStart, "pty": ptyRun, "status": status,
			"sharesheet": sharesheet, "mistype-share": mistypeShare, "ecrecover": ecrecover, "xpub-child": xpubChild,
			"sleep": func(ts *testscript.TestScript, neg bool, args []string) {
				d, err := time.ParseDuration(args[0])
				ts.Check(err)
				time.Sleep(d)
			},
		},
	})
}

var (
	buildOnce sync.Once
	vaultBin  string
	buildErr  error
	vaults    sync.Map // *testscript.TestScript -> *exec.Cmd
)

func buildVault() (string, error) {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sharevault-vault-bin")
		if err != nil {
			buildErr = err
			return
		}
		vaultBin, buildErr = vaultproc.Build(dir)
	})
	return vaultBin, buildErr
}

// vault-start runs the vault on a free loopback port over $WORK/vault-data and points
// $SHAREVAULT_VAULT at it.
func vaultStart(ts *testscript.TestScript, neg bool, args []string) {
	bin, err := buildVault()
	ts.Check(err)
	log, err := os.Create(ts.MkAbs("vault.log"))
	ts.Check(err)
	p, err := vaultproc.Start(bin, nil, log, "--listen", "127.0.0.1:0", "--store", ts.MkAbs("vault-data"), "--rate-ip", "1000", "--burst-ip", "2000")
	ts.Check(err)
	ts.Defer(func() { p.Cmd.Process.Kill(); p.Cmd.Wait() }) // a no-op after vault-stop
	ts.Setenv("SHAREVAULT_VAULT", p.URL)
	vaults.Store(ts, p.Cmd)
}

var clusters sync.Map // *testscript.TestScript -> *tsmnodetest.Cluster

// nodes-start runs two TSM server nodes (cmd/tsmnode) under $WORK/nodes and points
// $SHAREVAULT_NODES at them.
func nodesStart(ts *testscript.TestScript, neg bool, args []string) {
	c, err := tsmnodetest.Start(ts.MkAbs("nodes"), 2)
	ts.Check(err)
	ts.Defer(c.Stop)
	var urls []string
	for _, n := range c.Nodes {
		urls = append(urls, n.URL+"#"+n.ID.String())
	}
	ts.Setenv("SHAREVAULT_NODES", strings.Join(urls, ","))
	clusters.Store(ts, c)
}

// nodes-start-replicated runs a PostgreSQL (pgtest) with a database for each of two TSM
// server nodes, each node served by two cmd/tsmnode processes (replicas) over its
// database, and points $SHAREVAULT_NODES at every replica of each.
func nodesStartReplicated(ts *testscript.TestScript, neg bool, args []string) {
	if _, err := pgtest.BinDir(); err != nil { // a failure, never a skip: make test installs it
		ts.Fatalf("this script needs PostgreSQL's server (make postgres installs it): %v", err)
	}
	ts.Check(os.MkdirAll(ts.MkAbs("postgres"), 0o700))
	pg, err := pgtest.Start(ts.MkAbs("postgres"))
	ts.Check(err)
	ts.Defer(pg.Stop)
	var dbs []string
	for range 2 {
		dsn, err := pg.NewDatabase()
		ts.Check(err)
		dbs = append(dbs, dsn)
	}
	c, err := tsmnodetest.StartWith(ts.MkAbs("nodes"), 2, tsmnodetest.Options{Databases: dbs, Replicas: 2})
	ts.Check(err)
	ts.Defer(c.Stop)
	ts.Setenv("SHAREVAULT_NODES", c.Phone())
	clusters.Store(ts, c)
}

// replica N R: replica R of server node N, after nodes-start-replicated.
func replica(ts *testscript.TestScript, args []string) *tsmnodetest.Node {
	v, ok := clusters.Load(ts)
	if !ok || len(args) < 2 {
		ts.Fatalf("usage: replica-kill|replica-start N R, after nodes-start-replicated")
	}
	c := v.(*tsmnodetest.Cluster)
	n, err1 := strconv.Atoi(args[0])
	r, err2 := strconv.Atoi(args[1])
	if err1 != nil || err2 != nil || n < 1 || n > len(c.Replicas) || r < 1 || r > len(c.Replicas[n-1]) {
		ts.Fatalf("no replica %s of node %s", args[1], args[0])
	}
	return c.Replicas[n-1][r-1]
}

// replica-kill N R ends replica R of node N with SIGKILL.
func replicaKill(ts *testscript.TestScript, neg bool, args []string) { replica(ts, args).Kill() }

// replica-start N R [OP] restarts replica R of node N; with OP, it holds every step of OP
// for 3 s (TSMNODE_TEST_STALL), so that it can be killed in the middle of a protocol.
func replicaStart(ts *testscript.TestScript, neg bool, args []string) {
	r := replica(ts, args)
	r.Kill()
	var env []string
	if len(args) == 3 {
		env = []string{"TSMNODE_TEST_STALL=" + args[2]}
	}
	ts.Check(r.StartWith(env))
}

func clusterNode(ts *testscript.TestScript, args []string) *tsmnodetest.Node {
	v, ok := clusters.Load(ts)
	if !ok || len(args) < 1 {
		ts.Fatalf("usage: node-kill|node-start N, after nodes-start")
	}
	i, err := strconv.Atoi(args[0])
	c := v.(*tsmnodetest.Cluster)
	if err != nil || i < 1 || i > len(c.Nodes) {
		ts.Fatalf("no node %s", args[0])
	}
	return c.Nodes[i-1]
}

// node-kill N ends server node N with SIGKILL.
func nodeKill(ts *testscript.TestScript, neg bool, args []string) { clusterNode(ts, args).Kill() }

// node-start N [OP] restarts server node N on its database, key and port; with OP, the
// node holds every step of OP for 3 s (TSMNODE_TEST_STALL), so that it can be killed in the
// middle of a protocol.
func nodeStart(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 2 {
		n := clusterNode(ts, args[:1])
		n.Kill()
		ts.Check(n.StartWith([]string{"TSMNODE_TEST_STALL=" + args[1]}))
		return
	}
	ts.Check(clusterNode(ts, args).Start())
}

func vaultStop(ts *testscript.TestScript, neg bool, args []string) {
	v, ok := vaults.LoadAndDelete(ts)
	if !ok {
		ts.Fatalf("no vault running")
	}
	cmd := v.(*exec.Cmd)
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		ts.Fatalf("the vault did not stop on SIGTERM")
	}
}

// capture NAME REGEXP sets $NAME to the first group of REGEXP in the last stdout.
func capture(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: capture NAME REGEXP")
	}
	m := regexp.MustCompile("(?m)" + args[1]).FindStringSubmatch(ts.ReadFile("stdout"))
	if m == nil {
		ts.Fatalf("capture: %q not in stdout", args[1])
	}
	ts.Setenv(args[0], m[1])
}

var gridWord = regexp.MustCompile(`(\d+)\. ([a-z]+)`)

// sharesheet N FILE writes share N, as the last stdout shows it, to FILE as the user would
// copy it onto its sheet: numbered, in order.
func sharesheet(ts *testscript.TestScript, neg bool, args []string) {
	out := ts.ReadFile("stdout")
	i := strings.Index(out, "Share "+args[0]+" of ")
	if i < 0 {
		ts.Fatalf("sharesheet: no share %s in stdout", args[0])
	}
	block := out[i:]
	if j := strings.Index(block[1:], "Share "); j >= 0 {
		block = block[:j+1]
	}
	words := map[int]string{}
	for _, m := range gridWord.FindAllStringSubmatch(block, -1) {
		n, _ := strconv.Atoi(m[1])
		words[n] = m[2]
	}
	if len(words) != 20 && len(words) != 33 {
		ts.Fatalf("sharesheet: share %s has %d words", args[0], len(words))
	}
	var b strings.Builder
	for k := 1; k <= len(words); k++ {
		fmt.Fprintf(&b, "%d. %s\n", k, words[k])
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(b.String()), 0o600))
}

// mistype-share SRC DST N copies a share's sheet with word N mistyped beyond recognition
// (its first letters changed).
func mistypeShare(ts *testscript.TestScript, neg bool, args []string) {
	n, _ := strconv.Atoi(args[2])
	lines := strings.Split(strings.TrimSpace(ts.ReadFile(args[0])), "\n")
	word := strings.Fields(lines[n-1])[1]
	wrong := "zq" + word[2:]
	if slip39.Index(wrong) >= 0 {
		ts.Fatalf("mistype-share made a real word")
	}
	lines[n-1] = fmt.Sprintf("%d. %s", n, wrong)
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(strings.Join(lines, "\n")+"\n"), 0o600))
}

// sheet FILE writes the words shown in the last stdout to FILE as the user would copy
// them onto paper: numbered, in order.
func sheet(ts *testscript.TestScript, neg bool, args []string) {
	words := map[int]string{}
	for _, m := range gridWord.FindAllStringSubmatch(ts.ReadFile("stdout"), -1) {
		n, _ := strconv.Atoi(m[1])
		words[n] = m[2]
	}
	if len(words) < 12 {
		ts.Fatalf("sheet: only %d words in stdout", len(words))
	}
	var b strings.Builder
	for i := 1; i <= len(words); i++ {
		fmt.Fprintf(&b, "%d. %s\n", i, words[i])
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(b.String()), 0o600))
}

// mistype SRC DST N [valid] copies a sheet, with word N mistyped: a typo that is no word
// or, with "valid", another list word (which usually fails the checksum).
func mistype(ts *testscript.TestScript, neg bool, args []string) {
	n, _ := strconv.Atoi(args[2])
	lines := strings.Split(strings.TrimSpace(ts.ReadFile(args[0])), "\n")
	word := strings.Fields(lines[n-1])[1]
	wrong := word[:len(word)-1] + "q"
	if len(args) > 3 {
		wrong = "zoo"
		if word == "zoo" {
			wrong = "zone"
		}
	} else if mnemonic.Index(wrong) >= 0 {
		ts.Fatalf("mistype made a real word")
	}
	lines[n-1] = fmt.Sprintf("%d. %s", n, wrong)
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(strings.Join(lines, "\n")+"\n"), 0o600))
}

// pty SESSION PROG [ARGS...] runs PROG on a pseudo-terminal of its own (its controlling
// terminal and its stdin, stdout and stderr), as a user at a terminal would, and plays
// SESSION, a file of lines:
//
//	expect TEXT      wait (20 s at most) until the terminal shows TEXT
//	send "TEXT"      type TEXT (a Go string: "\x03" is Ctrl-C, "\n" Enter)
//	word N           type word N of the last grid of words shown, and Enter
//	typefile FILE    type the contents of FILE
//	exit N           PROG must end with status N
//
// Afterwards the terminal must echo again (a passphrase prompt turns echo off). What the
// terminal showed is in $WORK/ptyout.
func ptyRun(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: pty SESSION PROG [ARGS...]")
	}
	master, slave, err := openPTY()
	ts.Check(err)
	defer master.Close()
	defer slave.Close()
	cmd := scriptCommand(ts, args[1], args[2:])
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	ts.Check(cmd.Start())
	var mu sync.Mutex
	var shown []byte
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			mu.Lock()
			shown = append(shown, buf[:n]...)
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	defer func() { mu.Lock(); os.WriteFile(ts.MkAbs("ptyout"), shown, 0o600); mu.Unlock() }()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	want, from := -1, 0
	for _, line := range strings.Split(strings.TrimSpace(ts.ReadFile(args[0])), "\n") {
		verb, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch verb {
		case "expect":
			deadline := time.Now().Add(20 * time.Second)
			for {
				mu.Lock()
				i := strings.Index(string(shown[from:]), arg)
				if i >= 0 {
					from += i + len(arg)
				}
				mu.Unlock()
				if i >= 0 {
					break
				}
				if time.Now().After(deadline) {
					mu.Lock()
					defer mu.Unlock()
					ts.Fatalf("pty: %q not shown; the terminal shows:\n%s", arg, shown)
				}
				time.Sleep(20 * time.Millisecond)
			}
		case "send":
			text, err := strconv.Unquote(arg)
			ts.Check(err)
			_, err = master.WriteString(text)
			ts.Check(err)
		case "word": // type word N of the last grid of words the terminal showed, and Enter
			n, err := strconv.Atoi(arg)
			ts.Check(err)
			mu.Lock()
			var w string
			for _, m := range gridWord.FindAllStringSubmatch(string(shown), -1) {
				if m[1] == arg {
					w = m[2]
				}
			}
			mu.Unlock()
			if w == "" {
				ts.Fatalf("pty: no word %d shown", n)
			}
			_, err = master.WriteString(w + "\n")
			ts.Check(err)
		case "typefile": // type a file of the script's work directory
			_, err := master.WriteString(ts.ReadFile(arg))
			ts.Check(err)
		case "exit":
			want, err = strconv.Atoi(arg)
			ts.Check(err)
		default:
			ts.Fatalf("pty: unknown session line %q", line)
		}
	}
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		ts.Fatalf("pty: %s did not end", args[1])
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		ts.Check(err)
	}
	if want >= 0 && code != want {
		ts.Fatalf("pty: %s ended with status %d, want %d", args[1], code, want)
	}
	t, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	ts.Check(err)
	if t.Lflag&unix.ECHO == 0 {
		ts.Fatalf("pty: the terminal was left without echo")
	}
}

// openPTY opens a pseudo-terminal pair.
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, err
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

// status N PROG [ARGS...] runs PROG (no standard input) and checks that it exits with
// status N; its output is in $WORK/out and $WORK/err.
func status(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: status N PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	cmd := scriptCommand(ts, args[1], args[2:])
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	ts.Check(os.WriteFile(ts.MkAbs("out"), []byte(out.String()), 0o600))
	ts.Check(os.WriteFile(ts.MkAbs("err"), []byte(errOut.String()), 0o600))
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		ts.Check(err)
	}
	if code != want {
		ts.Fatalf("%s %s: status %d, want %d; stderr:\n%s", args[1], strings.Join(args[2:], " "), code, want, errOut.String())
	}
}

// scriptCommand is PROG (a program of the script's PATH) with args, in the script's work
// directory, with the script's settings of the client's variables.
func scriptCommand(ts *testscript.TestScript, prog string, args []string) *exec.Cmd {
	path, err := exec.LookPath(prog)
	ts.Check(err)
	cmd := exec.Command(path, args...)
	cmd.Dir = ts.MkAbs(".")
	for _, k := range []string{"PATH", "HOME", "SHAREVAULT_HOME", "SHAREVAULT_VAULT", "SHAREVAULT_NODES", "SHAREVAULT_TEST_CHEAP_KDF"} {
		cmd.Env = append(cmd.Env, k+"="+ts.Getenv(k))
	}
	return cmd
}
