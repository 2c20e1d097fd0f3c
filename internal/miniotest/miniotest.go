// Package miniotest runs a real MinIO server on a loopback port, for tests, benchmarks and
// the bench tool. make test builds the pinned MinIO and names it in $SHAREVAULT_MINIO.
package miniotest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sharevault/sharevault/internal/vaultproc"
)

// Server is a MinIO process.
type Server struct {
	Endpoint  string // http://127.0.0.1:port
	Addr      string // 127.0.0.1:port
	AccessKey string
	SecretKey string
	Dir       string
	bin       string
	cmd       *exec.Cmd
	done      chan struct{}
}

// Binary returns the MinIO binary: $SHAREVAULT_MINIO, else one that `make tools` built
// into ~/.cache/sharevault, else minio on the PATH.
func Binary() (string, error) {
	if p := os.Getenv("SHAREVAULT_MINIO"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("SHAREVAULT_MINIO=%s: %w", p, err)
		}
		return p, nil
	}
	if dir, err := os.UserCacheDir(); err == nil {
		if m, _ := filepath.Glob(filepath.Join(dir, "sharevault", "minio-*", "minio")); len(m) > 0 {
			return m[len(m)-1], nil
		}
	}
	return exec.LookPath("minio")
}

// StartProcess starts MinIO with its data in dir on a free loopback port, and waits until
// it is ready.
func StartProcess(bin, dir string) (*Server, error) {
	var last error
	for range 3 { // a free port can be taken between the probe and MinIO's bind
		port, err := vaultproc.FreePort()
		if err != nil {
			return nil, err
		}
		s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), AccessKey: "sharevault-test", SecretKey: "sharevault-test-secret", Dir: dir, bin: bin}
		s.Endpoint = "http://" + s.Addr
		if last = s.start(); last == nil {
			return s, nil
		}
	}
	return nil, last
}

func (s *Server) start() error {
	console, err := vaultproc.FreePort()
	if err != nil {
		return err
	}
	s.cmd = exec.Command(s.bin, "server", "--quiet", "--address", s.Addr,
		"--console-address", "127.0.0.1:"+strconv.Itoa(console), s.Dir)
	s.cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+s.AccessKey, "MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off")
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("miniotest: start %s: %w", s.bin, err)
	}
	s.done = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("miniotest: minio exited at start (%v)", s.cmd.ProcessState)
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get(s.Endpoint + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	s.Stop()
	return errors.New("miniotest: minio not ready after 60s")
}

// Restart starts MinIO again on the same address and data after Stop or Kill.
func (s *Server) Restart() error { return s.start() }

// Stop ends MinIO with SIGTERM, then SIGKILL after 10 s.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.Kill()
	}
}

// Kill ends MinIO with SIGKILL.
func (s *Server) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		<-s.done
	}
}

// Client returns an S3 client for the server: path style, static credentials, the SDK's
// default retries.
func (s *Server) Client() *s3.Client {
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, "")}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(s.Endpoint)
		o.UsePathStyle = true
	})
}

// CreateBucket creates a bucket.
func (s *Server) CreateBucket(ctx context.Context, name string) error {
	_, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
	return err
}
