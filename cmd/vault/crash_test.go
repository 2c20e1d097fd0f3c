package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sharevault/sharevault/api"
	"github.com/sharevault/sharevault/internal/envelope"
	"github.com/sharevault/sharevault/internal/vaultproc"
)

var crashRounds = flag.Int("crash.rounds", 10, "rounds of TestCrashLoop (make crash runs 200)")

func buildVault(t *testing.T) string {
	bin, err := vaultproc.Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// crashWriter is one phone: its own vault and key, the envelopes it sent and the ones
// the vault acknowledged, by sequence.
type crashWriter struct {
	o     *owner
	mu    sync.Mutex
	sent  map[uint64][]byte
	acked map[uint64][]byte
	check []uint64 // acknowledged since the last check
}

func (w *crashWriter) do(t *testing.T, method, url string, body []byte, hdr ...string) (int, []byte, http.Header) {
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	api.Sign(req, body, w.o.id, time.Now())
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return -1, nil, nil // the vault died under us
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1, nil, nil
	}
	return resp.StatusCode, b, resp.Header
}

// verify checks, after a restart: every version the vault lists is exactly what was sent
// (no torn or foreign blob), every acknowledged version is listed and reads back
// byte-identical and opens, and the latest opens.
func (w *crashWriter) verify(t *testing.T, base string, all bool) (latest uint64, etag string) {
	t.Helper()
	status, b, _ := w.do(t, "GET", base+api.VersionsPath(w.o.vault(), "k"), nil)
	var vl api.VersionList
	switch status {
	case 200:
		json.Unmarshal(b, &vl)
	case 404:
	default:
		t.Fatalf("listing versions after a restart: %d", status)
	}
	listed := map[uint64]string{}
	for _, v := range vl.Versions {
		listed[v.Sequence] = v.ETag
		if sent, ok := w.sent[v.Sequence]; !ok || api.ETag(sent) != v.ETag {
			t.Fatalf("vault lists version %d with ETag %s, which was never sent", v.Sequence, v.ETag)
		}
		latest, etag = v.Sequence, v.ETag
	}
	seqs := w.check
	if all {
		seqs = seqs[:0]
		for s := range w.acked {
			seqs = append(seqs, s)
		}
	}
	for _, seq := range seqs {
		if _, ok := listed[seq]; !ok {
			t.Fatalf("acknowledged version %d is gone after a crash", seq)
		}
		status, got, _ := w.do(t, "GET", base+api.VersionPath(w.o.vault(), "k", seq), nil)
		if status != 200 || !bytes.Equal(got, w.acked[seq]) {
			t.Fatalf("acknowledged version %d reads back %d, %d bytes: not byte-identical", seq, status, len(got))
		}
		if _, _, err := envelope.Open(w.o.root, got); err != nil {
			t.Fatalf("acknowledged version %d does not open: %v", seq, err)
		}
	}
	w.check = nil
	if latest > 0 {
		status, got, _ := w.do(t, "GET", base+api.KeyPath(w.o.vault(), "k"), nil)
		if _, _, err := envelope.Open(w.o.root, got); status != 200 || err != nil {
			t.Fatalf("the latest version does not open after a restart: %d %v", status, err)
		}
	}
	return latest, etag
}

// load uploads new versions until the vault dies.
func (w *crashWriter) load(t *testing.T, base string, seq uint64, etag string) {
	for {
		seq++
		env := w.o.seal("k", seq)
		w.mu.Lock()
		w.sent[seq] = env
		w.mu.Unlock()
		pre := []string{"If-None-Match", "*"}
		if etag != "" {
			pre = []string{"If-Match", `"` + etag + `"`}
		}
		status, _, _ := w.do(t, "PUT", base+api.KeyPath(w.o.vault(), "k"), env, pre...)
		switch status {
		case 201:
			w.mu.Lock()
			w.acked[seq] = env
			w.check = append(w.check, seq)
			w.mu.Unlock()
			etag = api.ETag(env)
		case -1:
			return
		default:
			t.Errorf("PUT %d answered %d under load", seq, status)
			return
		}
	}
}

func startProcess(t *testing.T, bin, store string) (*exec.Cmd, string) {
	p, err := vaultproc.Start(bin, nil, nil, "--listen", "127.0.0.1:0", "--store", store, "--retention", "100000",
		"--rate-ip", "1e9", "--burst-ip", "1000000", "--rate-vault", "1e9", "--burst-vault", "1000000", "--quota-bytes", "1000000000",
		"--new-vaults-ip", "1e9", "--inflight-ip", "1000000")
	if err != nil {
		t.Fatal(err)
	}
	return p.Cmd, p.URL
}

// TestCrashLoop kills the vault with SIGKILL at random moments during concurrent PUT
// load on the embedded store, restarts it, and checks that every acknowledged write
// survived, byte-identical, and that nothing torn or unsent is ever served. Each writer
// takes a fresh vault every round, so manifests stay the size a phone's would.
// make crash runs 200 rounds: go test ./cmd/vault -run TestCrashLoop -crash.rounds 200
func TestCrashLoop(t *testing.T) {
	bin, store := buildVault(t), filepath.Join(t.TempDir(), "store")
	const perRound = 8
	var all []*crashWriter
	acks := 0
	for round := 0; round <= *crashRounds; round++ {
		cmd, base := startProcess(t, bin, store)
		// The writers of the round that was just killed: every acknowledged body.
		for _, w := range all[max(0, len(all)-perRound):] {
			w.verify(t, base, true)
		}
		if round == *crashRounds {
			// Every earlier round once more: each listing holds only what was sent, and
			// every acknowledged version.
			for _, w := range all {
				w.verify(t, base, false) // listed versions were sent; the latest opens
				w.listed(t, base)
				acks += len(w.acked)
			}
			cmd.Process.Kill()
			cmd.Wait()
			break
		}
		var wg sync.WaitGroup
		for i := range perRound {
			w := &crashWriter{o: newOwner(round*perRound + i + 1), sent: map[uint64][]byte{}, acked: map[uint64][]byte{}}
			all = append(all, w)
			wg.Add(1)
			go func() { defer wg.Done(); w.load(t, base, 0, "") }()
		}
		time.Sleep(time.Duration(20+rand.IntN(180)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
	}
	if acks == 0 {
		t.Fatal("no write was ever acknowledged: the loop tested nothing")
	}
	t.Logf("%d rounds, %d acknowledged writes, all intact", *crashRounds, acks)
	fmt.Fprintf(os.Stderr, "crash loop: %d rounds, %d acknowledged writes, all intact\n", *crashRounds, acks)
}

// listed checks that every acknowledged version is in the vault's listing.
func (w *crashWriter) listed(t *testing.T, base string) {
	t.Helper()
	status, b, _ := w.do(t, "GET", base+api.VersionsPath(w.o.vault(), "k"), nil)
	if len(w.acked) == 0 {
		return
	}
	var vl api.VersionList
	if status != 200 || json.Unmarshal(b, &vl) != nil {
		t.Fatalf("listing a vault with acknowledged writes: %d", status)
	}
	have := map[uint64]string{}
	for _, v := range vl.Versions {
		have[v.Sequence] = v.ETag
	}
	for seq, env := range w.acked {
		if have[seq] != api.ETag(env) {
			t.Fatalf("acknowledged version %d is missing or changed", seq)
		}
	}
}
