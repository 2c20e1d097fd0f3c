package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sharevault/sharevault/internal/miniotest"
	"github.com/sharevault/sharevault/internal/vaultproc"
)

// start runs the vault in-process with args and returns its base URL.
func start(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"--listen", "127.0.0.1:0"}, args...), pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no start line: %v", err)
	}
	go io.Copy(io.Discard, pr)
	url, err := vaultproc.Address(line)
	if err != nil {
		t.Fatal(err)
	}
	return url
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestRunEmbedded(t *testing.T) {
	base := start(t, "--store", t.TempDir())
	for _, p := range []string{"/healthz", "/readyz", "/v1/openapi.yaml"} {
		if code := get(t, base+p); code != 200 {
			t.Errorf("%s: %d", p, code)
		}
	}
}

func TestRunS3(t *testing.T) {
	m := miniotest.Start(t)
	bucket := m.NewBucket(t)
	t.Setenv("AWS_ACCESS_KEY_ID", m.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", m.SecretKey)
	base := start(t, "--store", "s3://"+bucket+"/vault?endpoint="+m.Endpoint+"&region=us-east-1&path_style=true")
	if code := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("readyz on MinIO: %d", code)
	}
	m.Stop()
	deadline := time.Now().Add(20 * time.Second)
	for get(t, base+"/readyz") != http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatal("readyz still 200 with MinIO stopped")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestFlagsAndEnv(t *testing.T) {
	t.Setenv("VAULT_RETENTION", "3")
	o, err := parse([]string{"--max-body", "2048", "--trusted-proxies", "10.0.0.1,10.0.0.2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Retention != 3 || o.cfg.MaxBody != 2048 || len(o.cfg.TrustedProxies) != 2 || o.store != "./vault-data" {
		t.Errorf("options %+v", o)
	}
	for _, bad := range [][]string{{"--tls-cert", "x"}, {"extra"}, {"--nope"}} {
		if _, err := parse(bad, io.Discard); err == nil {
			t.Errorf("parse(%v) succeeded", bad)
		}
	}
}

// TestStoreSpec: a --store with a scheme the vault does not know is refused with a clear
// error (it once became a directory named after it); pebble:// and file:// are the embedded
// store.
func TestStoreSpec(t *testing.T) {
	for _, bad := range []string{"gs://bucket/x", "pebble://", "http://example/x"} {
		if _, _, err := openStore(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "unknown scheme") && !strings.Contains(err.Error(), "want a directory") {
			t.Errorf("--store %s: %v, want an unknown-scheme error", bad, err)
		}
	}
	for _, scheme := range []string{"pebble://", "file://"} {
		dir := t.TempDir()
		s, desc, err := openStore(context.Background(), scheme+dir)
		if err != nil {
			t.Fatalf("%s: %v", scheme, err)
		}
		s.Close()
		if !strings.Contains(desc, dir) {
			t.Errorf("%s%s opened %s", scheme, dir, desc)
		}
	}
}
