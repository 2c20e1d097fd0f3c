// Package pgtest runs a real PostgreSQL server, Debian's package, for tests: a new cluster
// (initdb) in a temporary directory and postgres on a loopback port, both as an unprivileged
// user when the test runs as root (PostgreSQL refuses to run as root). make test installs
// the package if it is missing and sets SHAREVAULT_REQUIRE_POSTGRES=1, which makes a missing
// server a failure rather than a skip.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sharevault/sharevault/internal/vaultproc"
)

// BinDir returns the directory of PostgreSQL's server programs: $SHAREVAULT_POSTGRES, else
// the newest of Debian's /usr/lib/postgresql/*/bin, else the one initdb is in on the PATH.
func BinDir() (string, error) {
	if d := os.Getenv("SHAREVAULT_POSTGRES"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err != nil {
			return "", fmt.Errorf("SHAREVAULT_POSTGRES=%s: %w", d, err)
		}
		return d, nil
	}
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres"); len(m) > 0 {
		sort.Slice(m, func(i, j int) bool { return version(m[i]) < version(m[j]) })
		return filepath.Dir(m[len(m)-1]), nil
	}
	p, err := exec.LookPath("initdb")
	if err != nil {
		return "", errors.New("no PostgreSQL server: install Debian's postgresql package (make test does)")
	}
	return filepath.Dir(p), nil
}

func version(postgres string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(postgres))))
	return v
}

// Server is a PostgreSQL cluster and its postgres process.
type Server struct {
	DSN  string // postgres://sharevault@127.0.0.1:port/sharevault
	Dir  string // the cluster's data directory
	bin  string
	port int
	cred *syscall.Credential // whom it runs as (nil: this process's user)
	cmd  *exec.Cmd
	done chan struct{}

	mu sync.Mutex
	n  int // databases made
}

// nobody is the unprivileged user a test running as root starts PostgreSQL as.
const nobody = 65534

// Start makes a new cluster in a directory of its own below dir and starts it on a free
// loopback port, waiting until it takes connections; the database sharevault is made.
func Start(dir string) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, Dir: filepath.Join(dir, "pgdata")}
	if os.Geteuid() == 0 {
		s.cred = &syscall.Credential{Uid: nobody, Gid: nobody}
		// The user must reach the cluster's directory: the path to it is opened up to
		// traversal (not listing), the directory itself is its own.
		for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
			if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o011 != 0o011 && fi.Mode()&os.ModeSticky == 0 {
				os.Chmod(d, fi.Mode().Perm()|0o011)
			}
		}
	}
	if err := os.Mkdir(s.Dir, 0o700); err != nil {
		return nil, err
	}
	if s.cred != nil {
		if err := os.Chown(s.Dir, nobody, nobody); err != nil {
			return nil, err
		}
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", s.Dir, "-U", "sharevault", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL}
	initdb.Env = []string{"LC_ALL=C", "PATH=" + os.Getenv("PATH")}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v: %s", err, lastLine(out))
	}
	var last error
	for range 3 { // a free port can be taken between the probe and postgres's bind
		if s.port, err = vaultproc.FreePort(); err != nil {
			return nil, err
		}
		if last = s.start(); last == nil {
			break
		}
	}
	if last != nil {
		return nil, last
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://sharevault@127.0.0.1:%d/postgres", s.port))
	if err != nil {
		s.Stop()
		return nil, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE sharevault"); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// start runs postgres on s.port and waits until it takes connections.
func (s *Server) start() error {
	s.DSN = fmt.Sprintf("postgres://sharevault@127.0.0.1:%d/sharevault", s.port)
	s.cmd = exec.Command(filepath.Join(s.bin, "postgres"), "-D", s.Dir, "-h", "127.0.0.1", "-p", strconv.Itoa(s.port),
		"-k", s.Dir, "-c", "logging_collector=off", "-c", "max_connections=200")
	// Its own process group, so that Kill takes its backends too (as a lost machine would),
	// and never outliving the test.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	s.cmd.Env = []string{"LC_ALL=C"}
	log, err := os.OpenFile(filepath.Join(filepath.Dir(s.Dir), "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(s.cmd, s.done)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			b, _ := os.ReadFile(log.Name())
			return fmt.Errorf("postgres exited at start: %s", lastLine(b))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://sharevault@127.0.0.1:%d/postgres", s.port))
		if err == nil {
			conn.Close(ctx)
			cancel()
			return nil
		}
		cancel()
		time.Sleep(50 * time.Millisecond)
	}
	s.Stop()
	return errors.New("postgres did not take connections within 30 s")
}

// Stop ends postgres with SIGINT (a fast shutdown: what was committed is on disk) and waits.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Kill ends postgres and every backend of it with SIGKILL, as a lost machine would, and
// waits until none is left (a backend still holding the shared memory would keep the next
// start from running).
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	pg := s.cmd.Process.Pid
	syscall.Kill(-pg, syscall.SIGKILL)
	<-s.done
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if syscall.Kill(-pg, 0) == syscall.ESRCH {
			break
		}
	}
	s.cmd = nil
}

// Restart starts the cluster again on its port (its clients keep their DSN).
func (s *Server) Restart() error {
	s.Stop()
	return s.start()
}

// Must starts a server for t, stopped at its end. Without PostgreSQL it skips, saying why,
// unless SHAREVAULT_REQUIRE_POSTGRES is set (make test sets it), where it fails.
func Must(t testing.TB) *Server {
	t.Helper()
	if _, err := BinDir(); err != nil {
		if os.Getenv("SHAREVAULT_REQUIRE_POSTGRES") != "" {
			t.Fatalf("SHAREVAULT_REQUIRE_POSTGRES is set: %v", err)
		}
		t.Skipf("SKIP (loud): %v; make test installs and requires it", err)
	}
	dir, err := os.MkdirTemp("", "pgtest")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(dir)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(); os.RemoveAll(dir) })
	return s
}

func lastLine(b []byte) string {
	for len(b) > 0 && b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
	}
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			return string(b[i+1:])
		}
	}
	return string(b)
}

// Database makes a new, empty database on the server for t and returns its DSN.
func (s *Server) Database(t testing.TB) string {
	t.Helper()
	dsn, err := s.NewDatabase()
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

// NewDatabase makes a new, empty database on the server and returns its DSN.
func (s *Server) NewDatabase() (string, error) {
	s.mu.Lock()
	s.n++
	name := fmt.Sprintf("db%d", s.n)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	return strings.TrimSuffix(s.DSN, "/sharevault") + "/" + name, nil
}
