// Package vaultproc builds the vault (or another command, such as tsmnode) and runs it, or
// any server that names its address in its first line of output, as a child process: for
// the tests that need a real process, the deploy smoke test and the bench tool.
package vaultproc

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Build compiles cmd/vault into dir and returns the binary's path.
func Build(dir string) (string, error) { return BuildCmd(dir, "vault") }

// BuildCmd compiles cmd/NAME into dir and returns the binary's path.
func BuildCmd(dir, name string) (string, error) {
	bin := filepath.Join(dir, name)
	out, err := exec.Command("go", "build", "-o", bin, "github.com/sharevault/sharevault/cmd/"+name).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build cmd/%s: %v\n%s", name, err, out)
	}
	return bin, nil
}

// Process is a running server.
type Process struct {
	Cmd *exec.Cmd
	URL string // from its first line of output
}

// Start runs name with args, with env as its whole environment (nil: this process's),
// its standard error to stderr (nil: discarded), and waits for its first line of
// standard output, which must hold its http:// address. The child dies with this process.
func Start(name string, env []string, stderr io.Writer, args ...string) (*Process, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("%s did not start: %v", filepath.Base(name), err)
	}
	go io.Copy(io.Discard, out)
	url, err := Address(line)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	return &Process{Cmd: cmd, URL: url}, nil
}

// Address returns the http:// URL in a server's start line.
func Address(line string) (string, error) {
	i := strings.Index(line, "http://")
	if i < 0 {
		return "", fmt.Errorf("no http:// address in the start line %q", line)
	}
	return strings.Fields(line[i:])[0], nil
}

// Stop ends the process with SIGTERM and waits for it.
func (p *Process) Stop() { p.Cmd.Process.Signal(syscall.SIGTERM); p.Cmd.Wait() }

// Kill ends the process with SIGKILL and waits for it.
func (p *Process) Kill() { p.Cmd.Process.Kill(); p.Cmd.Wait() }

// FreePort returns a loopback TCP port that was free a moment ago, for a server that takes
// its port as an argument (MinIO, PostgreSQL); it can be taken before the server binds it.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
