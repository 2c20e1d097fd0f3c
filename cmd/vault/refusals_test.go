package main

// The attacks of issue 22: refusals that waited for a body, a captured request that locked
// its owner out, connections without a bound, the metrics listener's limits, the storage
// budget's overshoot, and the smaller ones. Each test here failed on the vault before.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sharevault/sharevault/api"
	"github.com/sharevault/sharevault/internal/envelope"
)

// answer is what a vault said to a request written by hand on a connection of its own.
type answer struct {
	status int
	header http.Header
	took   time.Duration // until the status line
	closed bool          // the vault ended the connection (FIN) within a second of answering
}

// rawRequest sends head (a request's line and header fields, without its body) from the
// loopback address src and reads the answer.
func rawRequest(t *testing.T, base, src, head string) answer {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return answer{status: -1, took: time.Since(start)}
	}
	a := answer{status: resp.StatusCode, header: resp.Header, took: time.Since(start)}
	io.Copy(io.Discard, resp.Body)
	// Closed means the vault's FIN within a second (a reset is not; a close that waits for
	// the body waits for the read timeout, 30 s).
	conn.SetReadDeadline(time.Now().Add(time.Second))
	_, err = br.ReadByte()
	a.closed = err == io.EOF
	return a
}

// head writes a request's head with the given header fields.
func head(method, path string, fields ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: vault\r\n", method, path)
	for i := 0; i+1 < len(fields); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", fields[i], fields[i+1])
	}
	b.WriteString("\r\n")
	return b.String()
}

// signedHead is head with the owner's signature over a PUT of body to key, and a
// Content-Length of length (which the body need not have).
func signedHead(o *owner, key string, body []byte, length int, more ...string) string {
	req, _ := http.NewRequest("PUT", "http://vault"+api.KeyPath(o.vault(), key), nil)
	req.Header.Set("If-None-Match", "*")
	api.Sign(req, body, o.id, time.Now())
	fields := []string{"Content-Length", strconv.Itoa(length)}
	for _, k := range []string{"If-None-Match", "Content-Digest", "Signature-Input", "Signature"} {
		fields = append(fields, k, req.Header.Get(k))
	}
	return head("PUT", req.URL.Path, append(fields, more...)...)
}

// TestRefusalsAreAtOnce: a refused request whose body is unsent is answered at once and
// its connection closed, reading no byte of the body; an answered one keeps its connection.
// (The vault waited for the body until its read timeout, 30 s, or never answered.)
func TestRefusalsAreAtOnce(t *testing.T) {
	base := start(t, "--store", t.TempDir(), "--max-body", "4096")
	limited := start(t, "--store", t.TempDir(), "--rate-ip", "0.01", "--burst-ip", "1")
	o := newOwner(1)
	const key = "k"
	unsigned := func(length int, more ...string) string {
		return head("PUT", api.KeyPath(o.vault(), key), append([]string{"Content-Length", strconv.Itoa(length), "If-None-Match", "*"}, more...)...)
	}
	tests := []struct {
		name   string
		base   string
		head   string
		status int
	}{
		{"unsigned, 2 MB declared", base, unsigned(2000000), 401},
		{"unsigned, 100 kB declared", base, unsigned(100000), 401},
		{"unsigned, 100 kB declared, Expect: 100-continue", base, unsigned(100000, "Expect", "100-continue"), 401},
		{"unsigned, chunked", base, head("PUT", api.KeyPath(o.vault(), key), "Transfer-Encoding", "chunked", "If-None-Match", "*"), 401},
		{"signed, over the body limit", base, signedHead(o, key, make([]byte, 5000), 5000), 413},
		{"signed, over the body limit, Expect: 100-continue", base, signedHead(o, key, make([]byte, 5000), 5000, "Expect", "100-continue"), 413},
		{"over the address's rate", limited, unsigned(100000), 429},
		{"GET with a body declared and unsent, of a large answer", base, head("GET", "/v1/openapi.yaml", "Content-Length", "10"), 400},
		{"headers over the limit", base, head("GET", "/healthz", "X-Padding", strings.Repeat("a", 40<<10)), 431},
	}
	rawRequest(t, limited, "127.0.0.1", head("GET", "/healthz")) // spends the address's one token
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := rawRequest(t, tc.base, "127.0.0.1", tc.head)
			if a.status != tc.status || a.took > time.Second || !a.closed {
				t.Errorf("answered %d after %s, connection closed: %v; want %d at once, closed", a.status, a.took.Round(time.Millisecond), a.closed, tc.status)
			}
		})
	}
	t.Run("answered requests keep their connection", func(t *testing.T) {
		if a := rawRequest(t, base, "127.0.0.1", head("GET", "/healthz")); a.status != 200 || a.closed {
			t.Errorf("GET /healthz: %d, closed %v; want 200 on a connection kept", a.status, a.closed)
		}
	})
	t.Run("Transfer-Encoding and Content-Length", func(t *testing.T) {
		h := head("POST", "/v1/exists", "Transfer-Encoding", "chunked", "Content-Length", "5")
		body := `{"vault_ids":[]}`
		a := rawRequest(t, base, "127.0.0.1", h+fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body))
		if a.status != 200 || !a.closed {
			t.Errorf("%d, closed %v; want the answer, then the connection closed (RFC 9112 §6.1)", a.status, a.closed)
		}
	})
}

// TestReplayedCaptureSparesItsOwner: one signed GET replayed 200 times from 40 other
// addresses within its window costs the owner's vault nothing; the owner keeps working.
// (45 replays left the owner at 429 for the rest of the window.)
func TestReplayedCaptureSparesItsOwner(t *testing.T) {
	base := start(t, "--store", t.TempDir(), "--metrics-on-api")
	o := newOwner(7)
	env := o.seal("k", 1)
	if r := putEnv(t, base, o, "k", env, "If-None-Match", "*"); r.status != 201 {
		t.Fatal(r)
	}
	captured, _ := http.NewRequest("GET", base+api.KeyPath(o.vault(), "k"), nil)
	api.Sign(captured, nil, o.id, time.Now())
	var wg sync.WaitGroup
	replayed := make(chan int, 200)
	for a := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := clientFrom(fmt.Sprintf("127.0.2.%d", a+1))
			for range 5 {
				req := captured.Clone(captured.Context())
				resp, err := c.Do(req)
				if err != nil {
					replayed <- -1
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				replayed <- resp.StatusCode
			}
		}()
	}
	wg.Wait()
	close(replayed)
	codes := map[int]int{}
	for c := range replayed {
		codes[c]++
	}
	t.Logf("the 200 replays: %v", codes)
	for i := range 30 { // the owner's own requests, each signed anew
		req, _ := http.NewRequest("GET", base+api.KeyPath(o.vault(), "k"), nil)
		api.Sign(req, nil, o.id, time.Now().Add(-time.Duration(i)*time.Second))
		if r := send(t, req); r.status != 200 {
			t.Fatalf("the owner's request %d while a capture is replayed: %d %s", i, r.status, r.problem)
		}
	}
	if v := metric(t, base+"/metrics", "sharevault_repeated_signatures_total"); v < 199 {
		t.Errorf("sharevault_repeated_signatures_total %v, want at least 199", v)
	}
}

// openFDs counts a process's open descriptors.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// holdIdle opens n connections from src to the vault, each after one answered GET
// /healthz, and returns those the vault has not closed after a second.
func holdIdle(t *testing.T, base, src string, n int) []net.Conn {
	t.Helper()
	var open []net.Conn
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	for range n {
		c, err := d.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, head("GET", "/healthz"))
		open = append(open, c)
	}
	// Every connection is read before any is closed: a close frees a place, and an answer
	// still to come (a loaded machine) would be decided on fewer connections than the
	// vault held. A connection the vault refused at once reads as closed.
	deadline := time.Now().Add(10 * time.Second)
	keep := make([]bool, len(open))
	for i, c := range open {
		c.SetReadDeadline(deadline)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			continue
		}
		io.Copy(io.Discard, resp.Body)
		if resp.Header.Get("Connection") == "close" {
			continue
		}
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		_, err = br.ReadByte()
		keep[i] = err != io.EOF
	}
	var kept []net.Conn
	for i, c := range open {
		if keep[i] {
			kept = append(kept, c)
		} else {
			c.Close()
		}
	}
	t.Cleanup(func() {
		for _, c := range kept {
			c.Close()
		}
	})
	return kept
}

// TestConnectionBounds: 8,000 idle keep-alive connections from one address leave the vault
// with a bounded number of connections and descriptors (they took it from 87 to 181 MiB,
// and about 20,000 exhausted its descriptors): an address holds at most --max-conns-ip
// connections, kept alive only up to half of them; all addresses together at most
// --max-conns; a 429 closes its connection.
func TestConnectionBounds(t *testing.T) {
	p := startVaultProcess(t, "--rate-ip", "1e6", "--burst-ip", "1000000")
	before := openFDs(t, p.Cmd.Process.Pid)
	kept := holdIdle(t, p.URL, "127.0.3.1", 8000)
	fds := openFDs(t, p.Cmd.Process.Pid)
	rss := peakRSS(t, p.Cmd.Process.Pid)
	t.Logf("8,000 idle connections from one address: %d kept alive, descriptors %d -> %d, peak RSS %d MiB", len(kept), before, fds, rss>>20)
	if len(kept) > 32 || fds-before > 64 {
		t.Errorf("%d connections kept alive and %d descriptors more, want at most 32 (half of --max-conns-ip) and 64", len(kept), fds-before)
	}
	if a := rawRequest(t, p.URL, "127.0.3.2", head("GET", "/healthz")); a.status != 200 {
		t.Errorf("another address, meanwhile: %d", a.status)
	}

	t.Run("in all", func(t *testing.T) {
		p := startVaultProcess(t, "--rate-ip", "1e6", "--burst-ip", "1000000", "--max-conns", "100", "--max-conns-ip", "1000")
		var kept []net.Conn
		for a := range 4 {
			kept = append(kept, holdIdle(t, p.URL, fmt.Sprintf("127.0.4.%d", a+1), 50)...)
		}
		if len(kept) > 75 {
			t.Errorf("%d connections kept alive from 4 addresses, want at most 75 (three quarters of --max-conns 100)", len(kept))
		}
	})
	t.Run("429 closes", func(t *testing.T) {
		base := start(t, "--store", t.TempDir(), "--rate-ip", "0.01", "--burst-ip", "1")
		rawRequest(t, base, "127.0.0.1", head("GET", "/healthz"))
		if a := rawRequest(t, base, "127.0.0.1", head("GET", "/healthz")); a.status != 429 || !a.closed {
			t.Errorf("%d, closed %v; want 429 and the connection closed", a.status, a.closed)
		}
	})
}

// TestMetricsListener: /metrics is not on the API's listener unless asked; its own listener
// has the API's header limit, timeouts and a rate of scrapes.
func TestMetricsListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + ln.Addr().String()
	ln.Close()
	base := start(t, "--store", t.TempDir(), "--metrics-listen", strings.TrimPrefix(addr, "http://"), "--read-header-timeout", "1s")
	if code := get(t, base+"/metrics"); code != http.StatusNotFound {
		t.Errorf("/metrics on the API's listener: %d, want 404", code)
	}
	if code := get(t, start(t, "--store", t.TempDir())+"/metrics"); code != http.StatusNotFound {
		t.Errorf("/metrics on the API's listener by default: %d, want 404", code)
	}
	if code := get(t, start(t, "--store", t.TempDir(), "--metrics-on-api")+"/metrics"); code != http.StatusOK {
		t.Errorf("/metrics with --metrics-on-api: %d, want 200", code)
	}
	big := head("GET", "/metrics", "X-Padding", strings.Repeat("a", 900<<10))
	if a := rawRequest(t, addr, "127.0.0.1", big); a.status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("900 KiB of headers: %d, want 431", a.status)
	}
	slow := time.Now()
	conn, err := net.Dial("tcp", strings.TrimPrefix(addr, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "GET /metrics HTTP/1.1\r\n")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.Copy(io.Discard, conn)
	conn.Close()
	if d := time.Since(slow); d > 3*time.Second {
		t.Errorf("a head left unfinished held the metrics listener %s; its timeout is 1s", d)
	}
	limited := false
	for range 40 {
		limited = limited || get(t, addr+"/metrics") == http.StatusTooManyRequests
	}
	if !limited {
		t.Error("40 scrapes at once, none refused")
	}
}

// TestHeaderLimit: --max-header-bytes bounds a request's line and headers together, as
// documented (net/http let 4 KiB more through).
func TestHeaderLimit(t *testing.T) {
	base := start(t, "--store", t.TempDir())
	pad := func(total int) string {
		h := head("GET", "/healthz", "X-Padding", "")
		return head("GET", "/healthz", "X-Padding", strings.Repeat("a", total-len(h)))
	}
	if a := rawRequest(t, base, "127.0.0.1", pad(16<<10-64)); a.status != 200 {
		t.Errorf("a head of 16 KiB - 64 bytes: %d, want 200", a.status)
	}
	if a := rawRequest(t, base, "127.0.0.1", pad(16<<10+64)); a.status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a head of 16 KiB + 64 bytes: %d, want 431", a.status)
	}
}

// TestExistsSpacing: 2048 IDs take any JSON spacing.
func TestExistsSpacing(t *testing.T) {
	base := start(t, "--store", t.TempDir())
	ids := make([]string, api.MaxExistsIDs)
	for i := range ids {
		ids[i] = fmt.Sprintf("%064x", i)
	}
	for _, body := range [][]byte{
		[]byte(`{"vault_ids": ["` + strings.Join(ids, `", "`) + `"]}`),
		must(json.MarshalIndent(api.ExistsQuery{VaultIDs: ids}, "", "    ")),
	} {
		resp, err := http.Post(base+"/v1/exists", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("2048 IDs in %d bytes: %d, want 200", len(body), resp.StatusCode)
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestStorageBudgetOvershoot: with an 8 MiB budget, the vault takes no more than the budget
// and storageSlack before its first 507 (it took 16 MB: Pebble counted its live WAL only
// once closed, and a probe a second old let a burst through).
func TestStorageBudgetOvershoot(t *testing.T) {
	const budget, storageSlack = 8 << 20, 1 << 20
	base := start(t, "--store", t.TempDir(), "--storage-budget", strconv.Itoa(budget), "--rate-vault", "1e6", "--burst-vault", "1000000",
		"--rate-ip", "1e6", "--burst-ip", "1000000", "--quota-keys", "1000", "--quota-bytes", strconv.Itoa(1<<30))
	o := newOwner(11)
	body := make([]byte, 64<<10)
	accepted := 0
	var wg sync.WaitGroup
	var mu sync.Mutex
	full := false
	for round := 0; !full && round < 100; round++ {
		for i := range 8 { // eight uploads at once
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := fmt.Sprintf("k%d-%d", round, i)
				env, _ := envelope.Seal(o.root, envelope.Header{Scheme: envelope.EdDSA, VaultID: o.id.VaultID(), KeyID: key, Sequence: 1}, body)
				r := putEnv(t, base, o, key, env, "If-None-Match", "*")
				mu.Lock()
				defer mu.Unlock()
				switch r.status {
				case 201:
					accepted += len(env)
				case 507:
					full = true
				default:
					t.Errorf("upload: %+v", r)
				}
			}()
		}
		wg.Wait()
	}
	t.Logf("accepted %d bytes (%.2f MiB) under an 8 MiB budget before the first 507", accepted, float64(accepted)/(1<<20))
	if !full || accepted > budget+storageSlack {
		t.Errorf("accepted %d bytes, refused: %v; want the first 507 by %d bytes", accepted, full, budget+storageSlack)
	}
}

// dirSize is the bytes of the files under dir.
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if i, err := d.Info(); err == nil {
				n += i.Size()
			}
		}
		return nil
	})
	return n
}

// TestStorageBudgetInlineManifests: small envelopes live inline in their vault's manifest,
// which every upload rewrites whole; the budget counts that rewrite, so the store on disk
// stays near the budget at the first 507 (it reached 1.4 times a budget before), and an
// idle store over it is flushed and measured again rather than refusing for ever.
func TestStorageBudgetInlineManifests(t *testing.T) {
	const budget = 8 << 20
	dir := t.TempDir()
	base := start(t, "--store", dir, "--storage-budget", strconv.Itoa(budget), "--rate-vault", "1e6", "--burst-vault", "1000000",
		"--rate-ip", "1e6", "--burst-ip", "1000000", "--quota-keys", "5000", "--quota-bytes", strconv.Itoa(1<<30), "--new-vaults-ip", "1e6")
	body := make([]byte, 700)
	var accepted, peak int64
	full := false
	for i := 0; i < 4000 && !full; i++ {
		o := newOwner(20 + i/800) // vaults of 800 keys: manifests of up to about 1 MB
		key := fmt.Sprintf("k%d", i)
		env, _ := envelope.Seal(o.root, envelope.Header{Scheme: envelope.EdDSA, VaultID: o.id.VaultID(), KeyID: key, Sequence: 1}, body)
		switch r := putEnv(t, base, o, key, env, "If-None-Match", "*"); r.status {
		case 201:
			accepted += int64(len(env))
		case 507:
			full = true
		default:
			t.Fatalf("upload %d: %+v", i, r)
		}
		if i%50 == 0 || full {
			peak = max(peak, dirSize(t, dir))
		}
	}
	t.Logf("accepted %d bytes of envelopes; the store took at most %.1f MiB on disk under an %d MiB budget", accepted, float64(peak)/(1<<20), budget>>20)
	if !full || peak > budget+budget/4 {
		t.Fatalf("store at %d bytes on disk, refused: %v; want the first 507 by the budget + a quarter", peak, full)
	}
	// Most of that was the log of manifests since rewritten; idle, the store makes room.
	o := newOwner(9999)
	for try := 0; ; try++ {
		time.Sleep(time.Second)
		r := putEnv(t, base, o, "k", o.seal("k", 1), "If-None-Match", "*")
		if r.status == 201 {
			t.Logf("an upload after %d s idle: 201 (store %.1f MiB on disk)", try+1, float64(dirSize(t, dir))/(1<<20))
			break
		}
		if try == 5 {
			t.Fatalf("the idle store still refuses after %d s: %+v (%.1f MiB on disk)", try+1, r, float64(dirSize(t, dir))/(1<<20))
		}
	}
}

// TestExistsBodiesInTheBudget: existence queries whose bodies are held unfinished come out
// of the memory budget like uploads (1,000 of them from 100 addresses took the vault from 86
// to 455 MiB before): the vault's peak RSS stays within the budget + 64 MiB.
func TestExistsBodiesInTheBudget(t *testing.T) {
	p := startVaultProcess(t)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	body := bytes.Repeat([]byte(" "), api.MaxExistsBody-10)
	for i := range 1000 {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(fmt.Sprintf("127.0.5.%d", 1+i%100))}}
		c, err := d.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		go func() {
			io.WriteString(c, head("POST", "/v1/exists", "Content-Length", strconv.Itoa(api.MaxExistsBody), "Content-Type", "application/json"))
			c.Write(body)
		}()
	}
	time.Sleep(3 * time.Second)
	codes := map[int]int{}
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			codes[0]++ // held
			continue
		}
		codes[resp.StatusCode]++
	}
	rss := peakRSS(t, p.Cmd.Process.Pid)
	t.Logf("1,000 unfinished existence queries: answers (0: held) %v; peak RSS %d MiB", codes, rss>>20)
	if rss > defaultMemoryBudget+64<<20 {
		t.Errorf("peak RSS %d MiB, want at most %d MiB", rss>>20, (defaultMemoryBudget+64<<20)>>20)
	}
}
