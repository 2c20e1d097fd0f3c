package miniotest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

// Start starts a MinIO for a test or benchmark and stops it when it ends. Without a
// MinIO binary it skips loudly, unless SHAREVAULT_REQUIRE_MINIO=1 (as under make test),
// where it fails.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := Binary()
	if err != nil {
		msg := fmt.Sprintf("SKIPPED: no MinIO (%v): the S3 tests did not run; `make test` builds the pinned MinIO", err)
		if os.Getenv("SHAREVAULT_REQUIRE_MINIO") == "1" {
			tb.Fatal(msg)
		}
		fmt.Fprintln(os.Stderr, "\n*** "+msg+" ***")
		tb.Skip(msg)
	}
	s, err := StartProcess(bin, tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

var buckets atomic.Int64

// NewBucket creates a fresh bucket for one test.
func (s *Server) NewBucket(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("test-%d-%s", buckets.Add(1), strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(tb.Name())))
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	if err := s.CreateBucket(context.Background(), name); err != nil {
		tb.Fatal(err)
	}
	return name
}
