package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sharevault/sharevault/api"
	"github.com/sharevault/sharevault/internal/blobstore/pebblestore"
	"github.com/sharevault/sharevault/internal/miniotest"
)

// The figures of issue 5: PUT and GET of 4 KiB at 16 concurrent clients over loopback,
// the vault on its embedded store beside MinIO driven directly through aws-sdk-go-v2 (PUT
// with If-None-Match: *), in one run:
//
//	go test ./internal/vault -run '^$' -bench 'Concurrent16' -benchtime 5s
//
// Each benchmark runs 16 goroutines (8 x GOMAXPROCS on this 2-core machine).
const clients = 16

func benchVault(b *testing.B) (string, *user) {
	store, err := pebblestore.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	h, err := New(store, Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RateIP: 1e9, BurstIP: 1 << 30, RateVault: 1e9, BurstVault: 1 << 30, QuotaKeys: 1 << 20, QuotaBytes: 1 << 40})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	http.DefaultTransport.(*http.Transport).MaxIdleConnsPerHost = clients
	return srv.URL, newUser(b, 1)
}

func send(b *testing.B, u *user, method, url string, body []byte, want int, hdr ...string) {
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	api.Sign(req, body, u.id, time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		b.Fatalf("%s: %d, want %d", method, resp.StatusCode, want)
	}
}

var payload4K = bytes.Repeat([]byte{0x5a}, 4<<10)

// BenchmarkConcurrent16VaultPut: 16 users (vaults), each uploading new versions of its
// key, chained by If-Match, as a phone does. (Writes to one vault queue behind each other
// by design: see lockVault.)
func BenchmarkConcurrent16VaultPut(b *testing.B) {
	base, _ := benchVault(b)
	var worker atomic.Int64
	b.SetBytes(4 << 10)
	b.SetParallelism(clients / 2)
	b.RunParallel(func(pb *testing.PB) {
		u := newUser(b, byte(worker.Add(1)))
		key := "bench"
		prev := ""
		for seq := uint64(1); pb.Next(); seq++ {
			env := u.seal(b, key, seq, string(payload4K))
			hdr := []string{"If-None-Match", "*"}
			if prev != "" {
				hdr = []string{"If-Match", prev}
			}
			send(b, u, "PUT", base+api.KeyPath(u.vault(), key), env, http.StatusCreated, hdr...)
			prev = quoted(env)
		}
	})
}

func BenchmarkConcurrent16VaultGet(b *testing.B) {
	base, u := benchVault(b)
	env := u.seal(b, "bench", 1, string(payload4K))
	send(b, u, "PUT", base+api.KeyPath(u.vault(), "bench"), env, http.StatusCreated, "If-None-Match", "*")
	b.SetBytes(4 << 10)
	b.SetParallelism(clients / 2)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			send(b, u, "GET", base+api.KeyPath(u.vault(), "bench"), nil, http.StatusOK)
		}
	})
}

func benchMinIO(b *testing.B) (*s3.Client, string) {
	m := miniotest.Start(b)
	return m.Client(), m.NewBucket(b)
}

func BenchmarkConcurrent16MinIOPut(b *testing.B) {
	client, bucket := benchMinIO(b)
	var n atomic.Int64
	b.SetBytes(4 << 10)
	b.SetParallelism(clients / 2)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, err := client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(fmt.Sprint("o", n.Add(1))),
				Body: bytes.NewReader(payload4K), IfNoneMatch: aws.String("*")})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkConcurrent16MinIOGet(b *testing.B) {
	client, bucket := benchMinIO(b)
	if _, err := client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &bucket, Key: aws.String("o"), Body: bytes.NewReader(payload4K)}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(4 << 10)
	b.SetParallelism(clients / 2)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			out, err := client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &bucket, Key: aws.String("o")})
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, out.Body)
			out.Body.Close()
		}
	})
}

// BenchmarkManifestDecode: decoding a manifest of one key with ten inline versions (what
// a GET of a backed-up share decodes), decodeManifest beside encoding/json in one run:
//
//	go test ./internal/vault -run '^$' -bench ManifestDecode
func BenchmarkManifestDecode(b *testing.B) {
	raw := testManifest(10, 600)
	for name, decode := range map[string]func([]byte, *manifest) error{
		"encoding-json":  func(b []byte, m *manifest) error { return json.Unmarshal(b, m) },
		"decodeManifest": decodeManifest,
	} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				var m manifest
				if err := decode(raw, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
