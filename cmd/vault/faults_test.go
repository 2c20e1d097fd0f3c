package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/collectors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/sharevault/sharevault/api"
	"github.com/sharevault/sharevault/internal/envelope"
	"github.com/sharevault/sharevault/internal/miniotest"
)

// TestS3Faults puts a fault-injecting proxy (toxiproxy, as a library, on loopback)
// between the vault and a real MinIO: latency, connection resets, a store that stops
// answering, MinIO stopped and started again. The vault never answers 2xx for a write
// that did not land, answers 503 with Retry-After while the store is down, flips /readyz,
// and recovers without a restart.
func TestS3Faults(t *testing.T) {
	m := miniotest.Start(t)
	bucket := m.NewBucket(t)
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	srv.Metrics.ProxyMetrics = collectors.NewProxyMetricCollectors()
	proxy := toxiproxy.NewProxy(srv, "minio", "127.0.0.1:0", m.Addr)
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	defer proxy.Stop()
	t.Setenv("AWS_ACCESS_KEY_ID", m.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", m.SecretKey)
	t.Setenv("AWS_RETRY_MODE", "standard")
	t.Setenv("AWS_MAX_ATTEMPTS", "2")
	base := start(t, "--store", "s3://"+bucket+"/v?endpoint=http://"+proxy.Listen+"&region=us-east-1&path_style=true",
		"--request-timeout", "3s")

	o := newOwner(7)
	var acked [][]byte // every envelope the vault answered 201 for
	etag := ""
	seq := uint64(0)
	put := func() (int, http.Header) {
		seq++
		env := o.seal("k", seq)
		pre := []string{"If-None-Match", "*"}
		if etag != "" {
			pre = []string{"If-Match", `"` + etag + `"`}
		}
		req, _ := http.NewRequest("PUT", base+api.KeyPath(o.vault(), "k"), bytes.NewReader(env))
		req.Header.Set(pre[0], pre[1])
		api.Sign(req, env, o.id, time.Now())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("the vault itself failed: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			acked = append(acked, env)
			etag = api.ETag(env)
		}
		return resp.StatusCode, resp.Header
	}
	toxic := func(js string) func() {
		if _, err := proxy.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
			t.Fatal(err)
		}
		name := js[strings.Index(js, `"name":"`)+8:]
		name = name[:strings.Index(name, `"`)]
		return func() { proxy.Toxics.RemoveToxic(context.Background(), name) }
	}
	wantDown := func(what string) {
		t.Helper()
		status, h := put()
		if status != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
			t.Errorf("%s: PUT answered %d (Retry-After %q), want 503 with Retry-After", what, status, h.Get("Retry-After"))
		}
		if code := get(t, base+"/readyz"); code != http.StatusServiceUnavailable {
			t.Errorf("%s: /readyz %d, want 503", what, code)
		}
	}
	wantUp := func(what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for get(t, base+"/readyz") != 200 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: /readyz never came back", what)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if status, _ := put(); status != http.StatusCreated {
			t.Fatalf("%s: PUT after recovery answered %d", what, status)
		}
	}

	if status, _ := put(); status != http.StatusCreated {
		t.Fatalf("first PUT: %d", status)
	}

	undo := toxic(`{"name":"slow","type":"latency","stream":"downstream","attributes":{"latency":300}}`)
	if status, _ := put(); status != http.StatusCreated {
		t.Errorf("PUT with 300 ms of store latency: %d", status)
	}
	undo()

	undo = toxic(`{"name":"reset","type":"reset_peer","stream":"upstream","attributes":{"timeout":0}}`)
	wantDown("connections reset")
	undo()
	wantUp("after resets")

	undo = toxic(`{"name":"hang","type":"timeout","stream":"upstream","attributes":{"timeout":0}}`)
	start := time.Now()
	wantDown("store not answering")
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("a hung store held the request %s; the request timeout is 3s", d)
	}
	undo()
	wantUp("after the hang")

	m.Stop()
	wantDown("MinIO stopped")
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	wantUp("MinIO restarted")

	// Every acknowledged write is there, byte-identical.
	for i, env := range acked {
		h, _ := sequenceOf(env)
		status, got := getSigned(t, base+api.VersionPath(o.vault(), "k", h), o)
		if !bytes.Equal(got, env) {
			t.Errorf("acknowledged write %d (sequence %d) reads back %d: lost or changed", i, h, status)
		}
	}
	if len(acked) < 5 {
		t.Errorf("only %d writes acknowledged", len(acked))
	}
}

func sequenceOf(env []byte) (uint64, error) {
	h, err := envelope.ParseHeader(env)
	if err != nil {
		return 0, err
	}
	return h.Sequence, nil
}
