package main

// The attacks of docs/threat-model.md that need more than one request, or a look at the
// vault's memory, to show: each test here failed on the vault before the hardening of
// issue 15 and passes now.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sharevault/sharevault/api"
	"github.com/sharevault/sharevault/internal/blobstore"
	"github.com/sharevault/sharevault/internal/blobstore/pebblestore"
	"github.com/sharevault/sharevault/internal/blobstore/s3store"
	"github.com/sharevault/sharevault/internal/envelope"
	"github.com/sharevault/sharevault/internal/miniotest"
	"github.com/sharevault/sharevault/internal/vaultproc"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// vaultBinary builds cmd/vault once for the package's tests that need a process of its own.
func vaultBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sharevault-vault-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath, binErr = vaultproc.Build(dir)
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// startVaultProcess runs the vault binary on a fresh embedded store with args.
func startVaultProcess(t *testing.T, args ...string) *vaultproc.Process {
	t.Helper()
	p, err := vaultproc.Start(vaultBinary(t), nil, nil, append([]string{"--listen", "127.0.0.1:0", "--store", t.TempDir()}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// peakRSS returns a process's peak resident set size (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no VmHWM in /proc/PID/status")
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

const (
	defaultMemoryBudget   = 64 << 20
	deploymentMemoryLimit = 256 << 20 // deploy/kubernetes/deployment.yaml
)

// zeros is an endless body.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestPreAuthBodyMemory: a request that names the owner's key but does not authenticate
// (no Signature; a ;tr component that makes a general RFC 9421 library read the body for
// trailers) with a 256 MiB chunked body is refused without the vault reading it: its peak
// RSS stays within the memory budget + 64 MiB. (It went from 32 to 1,058 MiB before.)
func TestPreAuthBodyMemory(t *testing.T) {
	p := startVaultProcess(t)
	o := newOwner(1)
	url := p.URL + api.KeyPath(o.vault(), "k")
	attacks := []func(req *http.Request){
		func(req *http.Request) { req.Header.Del("Signature") },
		func(req *http.Request) {
			req.Header.Set("Signature-Input", strings.Replace(req.Header.Get("Signature-Input"), `"content-digest"`, `"content-digest";tr`, 1))
		},
	}
	for i, attack := range attacks {
		req, _ := http.NewRequest("PUT", url, io.LimitReader(zeros{}, 256<<20))
		req.ContentLength = -1 // chunked
		req.Header.Set("If-None-Match", "*")
		api.Sign(req, nil, o.id, time.Now())
		attack(req)
		resp, err := http.DefaultClient.Do(req)
		if err == nil { // the vault may also close the connection while the body is sent
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("attack %d: %d, want 401", i, resp.StatusCode)
			}
		}
	}
	if rss := peakRSS(t, p.Cmd.Process.Pid); rss > defaultMemoryBudget+64<<20 {
		t.Errorf("peak RSS %d MiB after 256 MiB unauthenticated bodies, want at most %d MiB", rss>>20, (defaultMemoryBudget+64<<20)>>20)
	} else {
		t.Logf("peak RSS %d MiB", rss>>20)
	}
}

// slowPut is a signed upload whose head and all but the last byte of its 1 MiB body were
// sent, from the loopback address src: the vault holds it while it waits for the rest.
type slowPut struct {
	conn net.Conn
	resp *bufio.Reader
}

func openSlowPut(base, src string, o *owner, size int) (*slowPut, error) {
	body := bytes.Repeat([]byte{byte(len(src))}, size)
	req, _ := http.NewRequest("PUT", base+api.KeyPath(o.vault(), "k"), nil)
	req.Header.Set("If-None-Match", "*")
	api.Sign(req, body, o.id, time.Now())
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 30 * time.Second}
	conn, err := d.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		return nil, err
	}
	var head bytes.Buffer
	fmt.Fprintf(&head, "PUT %s HTTP/1.1\r\nHost: vault\r\nContent-Length: %d\r\n", req.URL.Path, len(body))
	req.Header.Write(&head)
	head.WriteString("\r\n")
	go conn.Write(append(head.Bytes(), body[:len(body)-1]...)) // a refused upload is not read to the end
	return &slowPut{conn, bufio.NewReader(conn)}, nil
}

// answer returns the status and Retry-After the vault answered within wait, or 0 for none:
// the upload is still held.
func (p *slowPut) answer(wait time.Duration) (status int, retryAfter string) {
	p.conn.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(p.resp, nil)
	if err != nil {
		return 0, ""
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// holdSlowPuts opens one slow upload of size bytes per owner from the given addresses, 50
// connections at a time, waits for the vault to take them in, and returns the answers (0:
// held) once all are open, with the vault's peak RSS while they were.
func holdSlowPuts(t *testing.T, p *vaultproc.Process, owners []*owner, size int, src func(i int) string) (map[int]int, int64) {
	t.Helper()
	puts := make([]*slowPut, len(owners))
	var wg sync.WaitGroup
	for i, o := range owners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sp, err := openSlowPut(p.URL, src(i), o, size)
			if err != nil {
				t.Error(err)
				return
			}
			puts[i] = sp
		}()
		if i%50 == 49 {
			wg.Wait()
		}
	}
	wg.Wait()
	defer func() {
		for _, sp := range puts {
			if sp != nil {
				sp.conn.Close()
			}
		}
	}()
	time.Sleep(2 * time.Second) // the vault reads what it holds and answers what it refuses
	counts := map[int]int{}
	for _, sp := range puts {
		if sp == nil {
			continue
		}
		status, retry := sp.answer(100 * time.Millisecond)
		counts[status]++
		if status != 0 && retry == "" {
			t.Errorf("%d without Retry-After", status)
		}
	}
	t.Logf("%d slow uploads held: the vault has %d descriptors open", len(owners), openFDs(t, p.Cmd.Process.Pid))
	return counts, peakRSS(t, p.Cmd.Process.Pid)
}

// TestSlowUploads: 600 signed 1 MiB uploads held open slowly, from 40 addresses, keep the
// vault's peak RSS within the memory budget + 64 MiB; those past the budget get 503 with
// Retry-After at once, those past an address's share of it 429. From one address: 20 small
// uploads, of which those past the requests-in-flight limit get 429; 20 large ones, of
// which those past the address's share of the budget get 429.
func TestSlowUploads(t *testing.T) {
	p := startVaultProcess(t)
	owners := make([]*owner, 600)
	for i := range owners {
		owners[i] = newOwner(1000 + i)
	}
	counts, rss := holdSlowPuts(t, p, owners, 1<<20, func(i int) string { return fmt.Sprintf("127.0.0.%d", 2+i%40) })
	t.Logf("peak RSS %d MiB; answers (0: held) %v", rss>>20, counts)
	if rss > defaultMemoryBudget+64<<20 {
		t.Errorf("peak RSS %d MiB with %d slow uploads, want at most %d MiB", rss>>20, len(owners), (defaultMemoryBudget+64<<20)>>20)
	}
	// Each 1 MiB upload reserves 3 MiB (the body and the store's two copies).
	if counts[0] > defaultMemoryBudget/(3<<20) || counts[503] == 0 || counts[429] == 0 {
		t.Errorf("answers %v: want at most %d held, the rest 503 (budget) or 429 (an address's share)", counts, defaultMemoryBudget/(3<<20))
	}

	t.Run("per address", func(t *testing.T) {
		// With a budget large enough that an address's share holds 21 uploads, the limit of
		// requests in flight is what stops the 17th.
		p := startVaultProcess(t, "--memory-budget", strconv.Itoa(1<<30))
		counts, _ := holdSlowPuts(t, p, owners[:20], 1<<20, func(int) string { return "127.0.0.99" })
		if counts[0] != 16 || counts[429] != 4 {
			t.Errorf("20 slow uploads from one address: %v, want 16 held and 4 answered 429", counts)
		}
		p = startVaultProcess(t)
		counts, _ = holdSlowPuts(t, p, owners[20:40], 1<<20, func(int) string { return "127.0.0.98" })
		if counts[0] != 1 || counts[429] != 19 {
			t.Errorf("20 large slow uploads from one address: %v, want 1 held (its share of the budget) and 19 answered 429", counts)
		}
	})

	t.Run("completed uploads and reads", func(t *testing.T) {
		p := startVaultProcess(t, "--new-vaults-ip", "1e6")
		body := make([]byte, 1<<20-256) // a 1 MiB envelope, which the vault stores
		var wg sync.WaitGroup
		statuses := make(chan int, 3*64)
		for round := range 3 {
			for i := range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					o := newOwner(9000 + round*64 + i)
					env, _ := envelope.Seal(o.root, envelope.Header{Scheme: envelope.EdDSA, VaultID: o.id.VaultID(), KeyID: "k", Sequence: 1}, body)
					req, _ := http.NewRequest("PUT", p.URL+api.KeyPath(o.vault(), "k"), bytes.NewReader(env))
					req.Header.Set("If-None-Match", "*")
					api.Sign(req, env, o.id, time.Now())
					c := clientFrom(fmt.Sprintf("127.0.1.%d", 1+i%16))
					resp, err := c.Do(req)
					if err != nil { // refused before the body was sent whole: the vault closed
						statuses <- -1
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					statuses <- resp.StatusCode
					get, _ := http.NewRequest("GET", p.URL+api.KeyPath(o.vault(), "k"), nil)
					api.Sign(get, nil, o.id, time.Now())
					if resp, err := c.Do(get); err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}()
			}
			wg.Wait()
		}
		close(statuses)
		codes := map[int]int{}
		for s := range statuses {
			codes[s]++
		}
		rss := peakRSS(t, p.Cmd.Process.Pid)
		t.Logf("peak RSS %d MiB; statuses %v", rss>>20, codes)
		// The budget bounds what requests hold; the embedded store's memtables (outside the
		// Go heap) and the collector's slack come on top: docs/operations.md, "Memory". The
		// bound that matters is the Deployment's memory limit.
		if rss > deploymentMemoryLimit {
			t.Errorf("peak RSS %d MiB after 192 completed 1 MiB uploads and reads, over the Deployment's limit of %d MiB", rss>>20, deploymentMemoryLimit>>20)
		}
		if codes[201] == 0 {
			t.Errorf("no upload succeeded: %v", codes)
		}
	})
}

// TestUnsignedEndpoints: /readyz costs the store at most one listing a second, unsigned
// endpoints are rate-limited, and /metrics can move to a listener of its own.
func TestUnsignedEndpoints(t *testing.T) {
	t.Run("readyz", func(t *testing.T) {
		base := start(t, "--store", t.TempDir(), "--rate-ip", "1e6", "--burst-ip", "1000000", "--metrics-on-api")
		began := time.Now()
		for range 300 {
			if code := get(t, base+"/readyz"); code != 200 {
				t.Fatalf("/readyz %d", code)
			}
		}
		lists := metric(t, base+"/metrics", `sharevault_store_operations_total{op="list",outcome="ok"}`)
		if max := time.Since(began).Seconds() + 2; lists > max {
			t.Errorf("300 calls of /readyz made %v store listings in %.1fs", lists, time.Since(began).Seconds())
		}
	})
	t.Run("rate limited", func(t *testing.T) {
		base := start(t, "--store", t.TempDir(), "--rate-ip", "5", "--burst-ip", "5", "--metrics-on-api")
		for _, path := range []string{"/healthz", "/readyz", "/metrics", "/v1/openapi.yaml"} {
			limited := false
			for range 10 {
				limited = limited || get(t, base+path) == http.StatusTooManyRequests
			}
			if !limited {
				t.Errorf("10 calls of %s at once, none refused at 5 a second", path)
			}
			time.Sleep(1100 * time.Millisecond)
		}
	})
	t.Run("metrics listener", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		base := start(t, "--store", t.TempDir(), "--metrics-listen", addr)
		if code := get(t, base+"/metrics"); code != http.StatusNotFound {
			t.Errorf("/metrics on the API's listener: %d, want 404", code)
		}
		if v := metric(t, "http://"+addr+"/metrics", `sharevault_http_requests_total{code="404",method="GET",route="unmatched"}`); v != 1 {
			t.Errorf("the metrics listener counts %v 404s, want 1", v)
		}
	})
}

// metric reads one sample of a Prometheus text page (0 if absent).
func metric(t *testing.T, url, sample string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// clientFrom is an HTTP client whose connections come from the loopback address src.
func clientFrom(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 10 * time.Second}
}

// TestClientAddress: behind a trusted proxy only X-Forwarded-For is believed, from its
// rightmost untrusted address; X-Real-IP, and any header from an untrusted peer, is not.
func TestClientAddress(t *testing.T) {
	base := start(t, "--store", t.TempDir(), "--trusted-proxies", "127.0.0.2", "--rate-ip", "0.01", "--burst-ip", "3")
	tests := []struct {
		name    string
		src     string
		header  func(i int) (string, string)
		limited bool
	}{
		{"X-Real-IP from the trusted proxy, rotating", "127.0.0.2", func(i int) (string, string) { return "X-Real-IP", fmt.Sprint("198.51.100.", i) }, true},
		{"X-Forwarded-For from an untrusted peer, rotating", "127.0.0.3", func(i int) (string, string) { return "X-Forwarded-For", fmt.Sprint("198.51.100.", i) }, true},
		{"spoofed left of the proxy's entry", "127.0.0.2", func(i int) (string, string) {
			return "X-Forwarded-For", fmt.Sprint("198.51.100.", i, ", 203.0.113.9")
		}, true},
		{"distinct clients named by the trusted proxy", "127.0.0.2", func(i int) (string, string) { return "X-Forwarded-For", fmt.Sprint("192.0.2.", i) }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := clientFrom(tc.src)
			limited := false
			for i := range 10 {
				req, _ := http.NewRequest("GET", base+"/healthz", nil)
				req.Header.Set(tc.header(i))
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				limited = limited || resp.StatusCode == http.StatusTooManyRequests
			}
			if limited != tc.limited {
				t.Errorf("10 requests: limited %v, want %v", limited, tc.limited)
			}
		})
	}
}

// getSigned sends a GET of url signed by o, and returns the status and the body.
func getSigned(t *testing.T, url string, o *owner) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	api.Sign(req, nil, o.id, time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// putEnv uploads env as a key's version with one precondition header, signed now.
func putEnv(t *testing.T, base string, o *owner, key string, env []byte, hdr ...string) result {
	t.Helper()
	req, _ := http.NewRequest("PUT", base+api.KeyPath(o.vault(), key), bytes.NewReader(env))
	req.Header.Set(hdr[0], hdr[1])
	api.Sign(req, env, o.id, time.Now())
	return send(t, req)
}

// TestNewVaults: one address cannot create vaults without end, and the store's budget and
// free space stop new vaults (507) while existing vaults keep working.
func TestNewVaults(t *testing.T) {
	t.Run("per address", func(t *testing.T) {
		base := start(t, "--store", t.TempDir(), "--metrics-on-api")
		var firstEnv []byte
		for i := range 10 {
			o := newOwner(100 + i)
			env := o.seal("k", 1)
			if r := putEnv(t, base, o, "k", env, "If-None-Match", "*"); r.status != 201 {
				t.Fatalf("vault %d: %+v", i, r)
			}
			if i == 0 {
				firstEnv = env
			}
		}
		o := newOwner(200)
		if r := putEnv(t, base, o, "k", o.seal("k", 1), "If-None-Match", "*"); r.status != 429 || r.problem != "rate-limited" {
			t.Errorf("the 11th new vault from one address within an hour: %+v, want 429", r)
		}
		first := newOwner(100)
		if r := putEnv(t, base, first, "k", first.seal("k", 2), "If-Match", `"`+api.ETag(firstEnv)+`"`); r.status != 201 {
			t.Errorf("an existing vault's next upload: %+v", r)
		}
		if v := metric(t, base+"/metrics", `sharevault_vaults_created_total`); v != 10 {
			t.Errorf("sharevault_vaults_created_total %v, want 10", v)
		}
		if v := metric(t, base+"/metrics", `sharevault_vaults_refused_total{reason="rate"}`); v != 1 {
			t.Errorf(`sharevault_vaults_refused_total{reason="rate"} %v, want 1`, v)
		}
	})
	for _, tc := range []struct{ name, flag, value, reason string }{
		{"storage budget spent", "--storage-budget", "1", "budget"},
		{"disk nearly full", "--min-free", strconv.FormatInt(1<<62, 10), "disk"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := start(t, "--store", t.TempDir(), tc.flag, tc.value, "--metrics-on-api")
			o := newOwner(300)
			if r := putEnv(t, base, o, "k", o.seal("k", 1), "If-None-Match", "*"); r.status != 507 || r.problem != "storage-full" {
				t.Errorf("a new vault: %+v, want 507 storage-full", r)
			}
			if v := metric(t, base+"/metrics", `sharevault_vaults_refused_total{reason="`+tc.reason+`"}`); v != 1 {
				t.Errorf("refusals for %s: %v, want 1", tc.reason, v)
			}
		})
	}
}

// TestAntiRollbackAfterDelete: a captured first upload, replayed after the key was deleted,
// cannot bring the old backup back, nor can a lower sequence; a new one above works.
func TestAntiRollbackAfterDelete(t *testing.T) {
	base := start(t, "--store", t.TempDir())
	o := newOwner(7)
	env1, env2 := o.seal("k", 1), o.seal("k", 2)
	captured, _ := http.NewRequest("PUT", base+api.KeyPath(o.vault(), "k"), nil)
	captured.Header.Set("If-None-Match", "*")
	api.Sign(captured, env1, o.id, time.Now())
	replay := func() result {
		req, _ := http.NewRequest("PUT", captured.URL.String(), bytes.NewReader(env1))
		req.Header = captured.Header.Clone()
		return send(t, req)
	}
	steps := []struct {
		name   string
		do     func() result
		status int
	}{
		{"first upload", replay, 201},
		{"second upload", func() result { return putEnv(t, base, o, "k", env2, "If-Match", `"`+api.ETag(env1)+`"`) }, 201},
		{"delete version 1", func() result { return del(t, base, o, 1) }, 204},
		{"delete version 2, the last", func() result { return del(t, base, o, 2) }, 204},
		{"the captured first upload, replayed", replay, 409},
		{"a sequence below the deleted key's highest", func() result { return putEnv(t, base, o, "k", o.seal("k", 2), "If-None-Match", "*") }, 409},
		{"a sequence above it", func() result { return putEnv(t, base, o, "k", o.seal("k", 3), "If-None-Match", "*") }, 201},
	}
	for _, s := range steps {
		if r := s.do(); r.status != s.status {
			t.Fatalf("%s: %+v, want %d", s.name, r, s.status)
		}
	}
}

func del(t *testing.T, base string, o *owner, seq uint64) result {
	req, _ := http.NewRequestWithContext(context.Background(), "DELETE", base+api.VersionPath(o.vault(), "k", seq), nil)
	api.Sign(req, nil, o.id, time.Now())
	return send(t, req)
}

// TestSweepRuns: the vault process sweeps its store on its own, embedded or S3: a blob no
// manifest names (as a crash between an upload's two writes leaves) goes once older than
// the grace; a named one stays.
func TestSweepRuns(t *testing.T) {
	ctx := context.Background()
	var m *miniotest.Server
	for _, kind := range []string{"embedded", "s3"} {
		t.Run(kind, func(t *testing.T) {
			o := newOwner(1)
			orphan := "v1/" + o.vault() + "/k/lost/00000000000000000001.00aa"
			var store blobstore.Store
			var spec, bucket string
			var env []string
			if kind == "embedded" {
				spec = t.TempDir()
				s, err := pebblestore.Open(spec)
				if err != nil {
					t.Fatal(err)
				}
				store = s
			} else {
				if m == nil {
					m = miniotest.Start(t)
				}
				bucket = m.NewBucket(t)
				s, err := s3store.New(m.Client(), bucket, "vault/")
				if err != nil {
					t.Fatal(err)
				}
				store, spec = s, "s3://"+bucket+"/vault?endpoint="+m.Endpoint+"&region=us-east-1&path_style=true"
				env = []string{"AWS_ACCESS_KEY_ID=" + m.AccessKey, "AWS_SECRET_ACCESS_KEY=" + m.SecretKey}
			}
			if _, err := store.Put(ctx, orphan, strings.NewReader("x"), 1, blobstore.Condition{}); err != nil {
				t.Fatal(err)
			}
			store.Close() // the embedded store is the vault's alone

			p, err := vaultproc.Start(vaultBinary(t), env, nil, "--listen", "127.0.0.1:0", "--store", spec,
				"--inline-max", "-1", "--sweep-every", "100ms", "--sweep-grace", "2s", "--metrics-on-api")
			if err != nil {
				t.Fatal(err)
			}
			kept := o.seal("kept", 1)
			if r := putEnv(t, p.URL, o, "kept", kept, "If-None-Match", "*"); r.status != 201 {
				t.Fatalf("PUT: %d", r.status)
			}
			deadline := time.Now().Add(20 * time.Second)
			for metric(t, p.URL+"/metrics", "sharevault_swept_blobs_total") < 1 {
				if time.Now().After(deadline) {
					t.Fatal("no blob swept in 20 s")
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(2500 * time.Millisecond) // past the grace of the kept version's blob too
			if status, body := getSigned(t, p.URL+api.KeyPath(o.vault(), "kept"), o); status != 200 || !bytes.Equal(body, kept) {
				t.Errorf("the named version after sweeps: %d", status)
			}
			p.Stop()

			if kind == "embedded" {
				s, err := pebblestore.Open(spec)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				store = s
			} else {
				if store, err = s3store.New(m.Client(), bucket, "vault/"); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := store.Stat(ctx, orphan); !errors.Is(err, blobstore.ErrNotFound) {
				t.Errorf("the unnamed blob: %v, want not found", err)
			}
			page, _, err := store.List(ctx, "v1/"+o.vault()+"/k/kept/", "", 10)
			if err != nil || len(page) != 1 {
				t.Errorf("the named version's blob: %d found (%v), want 1", len(page), err)
			}
		})
	}
}
