// Command vault is the sharevault storage server: it keeps sealed backups for vaults it
// knows only by ID and never sees a key. See docs/api.md and docs/operations.md.
//
// Every flag can also be set as an environment variable: --max-body is VAULT_MAX_BODY.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // only on --debug-listen: the API's handler is gin, not DefaultServeMux
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sharevault/sharevault/internal/blobstore"
	"github.com/sharevault/sharevault/internal/blobstore/metered"
	"github.com/sharevault/sharevault/internal/blobstore/pebblestore"
	"github.com/sharevault/sharevault/internal/blobstore/s3store"
	"github.com/sharevault/sharevault/internal/serve"
	"github.com/sharevault/sharevault/internal/vault"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "vault:", err)
		os.Exit(1)
	}
}

type options struct {
	listen, store, tlsCert, tlsKey, proxies string
	debugListen, metricsListen              string
	cfg                                     vault.Config
	readHeaderTimeout, readTimeout          time.Duration
	writeTimeout                            time.Duration
	sweepEvery, sweepGrace                  time.Duration
	maxHeaderBytes, maxConns, maxConnsIP    int
	metricsOnAPI                            bool
}

func parse(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("vault", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: vault [flags]\n\nEvery flag can also be set as a variable: --max-body as VAULT_MAX_BODY, and so on\n(the flag wins). docs/operations.md says what each limit does.\n\n")
		fs.PrintDefaults()
	}
	str := func(p *string, name, def, usage string) { fs.StringVar(p, name, env(name, def), usage) }
	str(&o.listen, "listen", "localhost:8080", "address to listen on")
	str(&o.store, "store", "./vault-data", "a directory (or pebble://DIR, file://DIR) for the embedded store, or s3://bucket/prefix?endpoint=URL&region=R&path_style=true")
	str(&o.tlsCert, "tls-cert", "", "TLS certificate file (PEM); with --tls-key, serve HTTPS")
	str(&o.tlsKey, "tls-key", "", "TLS private key file (PEM)")
	str(&o.proxies, "trusted-proxies", "", "comma-separated addresses or CIDRs whose X-Forwarded-For is believed")
	str(&o.debugListen, "debug-listen", "", "serve net/http/pprof on this address (keep it on loopback); off if empty")
	str(&o.metricsListen, "metrics-listen", "", "serve /metrics on this address, with the API listener's limits; off if empty")
	fs.BoolVar(&o.metricsOnAPI, "metrics-on-api", env("metrics-on-api", "") == "true", "serve /metrics on the API's listener too (its counts show when users are active)")
	fs.Int64Var(&o.cfg.MaxBody, "max-body", envInt("max-body", 1<<20), "request body limit in bytes")
	fs.Int64Var(&o.cfg.MemoryBudget, "memory-budget", envInt("memory-budget", 64<<20), "bytes of request bodies in flight, all requests together; past it uploads get 503 at once")
	fs.IntVar(&o.cfg.InflightIP, "inflight-ip", int(envInt("inflight-ip", 16)), "requests in flight per client address; past it 429 at once")
	fs.Float64Var(&o.cfg.NewVaultsIP, "new-vaults-ip", envFloat("new-vaults-ip", 10), "new vaults per hour per client address (burst as many)")
	fs.Int64Var(&o.cfg.StorageBudget, "storage-budget", envInt("storage-budget", 0), "bytes the embedded store may hold; past it every upload is refused (507), reads and deletes go on; 0: no budget")
	fs.Int64Var(&o.cfg.MinFree, "min-free", envInt("min-free", 1<<30), "free bytes the embedded store's disk keeps; below it every upload is refused (507); negative: no check")
	fs.IntVar(&o.cfg.Retention, "retention", int(envInt("retention", 10)), "versions kept per key")
	fs.DurationVar(&o.cfg.Skew, "skew", envDuration("skew", 5*time.Minute), "how old a signature's created time may be")
	fs.DurationVar(&o.cfg.FutureSkew, "future-skew", envDuration("future-skew", time.Minute), "how far ahead of the vault's clock a signature's created time may be")
	fs.Float64Var(&o.cfg.RateIP, "rate-ip", envFloat("rate-ip", 50), "requests per second per client address")
	fs.IntVar(&o.cfg.BurstIP, "burst-ip", int(envInt("burst-ip", 100)), "burst per client address")
	fs.Float64Var(&o.cfg.RateVault, "rate-vault", envFloat("rate-vault", 20), "requests per second per vault")
	fs.IntVar(&o.cfg.BurstVault, "burst-vault", int(envInt("burst-vault", 40)), "burst per vault")
	fs.IntVar(&o.cfg.QuotaKeys, "quota-keys", int(envInt("quota-keys", 100)), "keys per vault")
	fs.Int64Var(&o.cfg.QuotaBytes, "quota-bytes", envInt("quota-bytes", 64<<20), "stored bytes per vault")
	fs.IntVar(&o.cfg.InlineMax, "inline-max", int(envInt("inline-max", 1024)), "envelopes up to this size are kept in the vault's manifest, not as blobs of their own; negative: never")
	fs.DurationVar(&o.sweepEvery, "sweep-every", envDuration("sweep-every", time.Hour), "how often to remove blobs no manifest names (0: never; with replicas, one sweeping is enough)")
	fs.DurationVar(&o.sweepGrace, "sweep-grace", envDuration("sweep-grace", time.Hour), "how old an unnamed blob must be before the sweep removes it")
	fs.DurationVar(&o.cfg.RequestTimeout, "request-timeout", envDuration("request-timeout", 20*time.Second), "deadline for a request's store calls")
	fs.DurationVar(&o.readHeaderTimeout, "read-header-timeout", envDuration("read-header-timeout", 5*time.Second), "time to read request headers")
	fs.DurationVar(&o.readTimeout, "read-timeout", envDuration("read-timeout", 30*time.Second), "time to read a whole request")
	fs.DurationVar(&o.writeTimeout, "write-timeout", envDuration("write-timeout", 30*time.Second), "time to write a response")
	fs.IntVar(&o.maxHeaderBytes, "max-header-bytes", int(envInt("max-header-bytes", 16<<10)), "limit of a request's line and headers together, in bytes (at least 8192); past it 431")
	fs.IntVar(&o.maxConns, "max-conns", int(envInt("max-conns", int64(serve.DefaultTotal(4096, 512)))), "connections open at once (below the descriptor limit); past it new ones are closed at once")
	fs.IntVar(&o.maxConnsIP, "max-conns-ip", int(envInt("max-conns-ip", 64)), "connections open at once per client address (trusted proxies: no bound); past it new ones are closed at once")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	if o.proxies != "" {
		o.cfg.TrustedProxies = strings.Split(o.proxies, ",")
	}
	return o, nil
}

// env returns $VAULT_<NAME> (dashes as underscores), or def.
func env(name, def string) string {
	if v, ok := os.LookupEnv("VAULT_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))); ok {
		return v
	}
	return def
}

func envInt(name string, def int64) int64 {
	n, err := strconv.ParseInt(env(name, strconv.FormatInt(def, 10)), 10, 64)
	if err != nil {
		return def
	}
	return n
}

func envFloat(name string, def float64) float64 {
	f, err := strconv.ParseFloat(env(name, strconv.FormatFloat(def, 'g', -1, 64)), 64)
	if err != nil {
		return def
	}
	return f
}

func envDuration(name string, def time.Duration) time.Duration {
	d, err := time.ParseDuration(env(name, def.String()))
	if err != nil {
		return def
	}
	return d
}

// openStore builds the store --store names: a directory (or pebble://DIR, file://DIR) for
// the embedded store, or s3://bucket/prefix; any other scheme is refused rather than taken
// for a directory name. The S3 client uses the standard AWS chain.
func openStore(ctx context.Context, spec string) (blobstore.Store, string, error) {
	if scheme, rest, ok := strings.Cut(spec, "://"); ok && scheme != "s3" {
		if scheme != "pebble" && scheme != "file" {
			return nil, "", fmt.Errorf("--store %q: unknown scheme %q (want a directory, pebble://DIR, file://DIR or s3://bucket/prefix)", spec, scheme)
		}
		if rest == "" {
			return nil, "", fmt.Errorf("--store %q: no directory after %s:// (want a directory, pebble://DIR, file://DIR or s3://bucket/prefix)", spec, scheme)
		}
		spec = rest
	}
	if !strings.HasPrefix(spec, "s3://") {
		s, err := pebblestore.Open(spec)
		return s, "embedded store in " + spec, err
	}
	u, err := url.Parse(spec)
	if err != nil || u.Host == "" {
		return nil, "", fmt.Errorf("--store %q: want s3://bucket/prefix?endpoint=...", spec)
	}
	q := u.Query()
	var opts []func(*config.LoadOptions) error
	if r := q.Get("region"); r != "" {
		opts = append(opts, config.WithRegion(r))
	}
	// Bounded connection and header waits: a store that stops answering fails the request
	// (503) instead of holding it.
	opts = append(opts, config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.ResponseHeaderTimeout = 15 * time.Second
		t.MaxIdleConnsPerHost = 64
	}).WithDialerOptions(func(d *net.Dialer) { d.Timeout = 5 * time.Second })))
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, "", err
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if e := q.Get("endpoint"); e != "" {
			o.BaseEndpoint = aws.String(e)
		}
		o.UsePathStyle = q.Get("path_style") == "true"
	})
	s, err := s3store.New(client, u.Host, strings.TrimPrefix(u.Path, "/"))
	return s, "S3 bucket " + u.Host, err
}

// addresses returns what reports whether an address is one of specs (addresses or CIDRs).
func addresses(specs []string) (func(netip.Addr) bool, error) {
	var ps []netip.Prefix
	for _, s := range specs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("--trusted-proxies: %q is not an address or CIDR", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		ps = append(ps, p)
	}
	return func(a netip.Addr) bool {
		for _, p := range ps {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}, nil
}

// every runs f every d until the returned stop is called; stop waits for a run in progress.
func every(ctx context.Context, d time.Duration, f func(context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				f(ctx)
			}
		}
	}()
	return func() { cancel(); <-done }
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		// The budget counts the bodies in flight and their copies; the rest of the process is
		// a few tens of MiB. A soft limit above both makes the collector work before the
		// heap's garbage could double it (docs/operations.md, "Memory").
		debug.SetMemoryLimit(o.cfg.MemoryBudget + 96<<20)
	}
	store, desc, err := openStore(ctx, o.store)
	if err != nil {
		return err
	}
	defer store.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ms, err := metered.New(store, reg)
	if err != nil {
		return err
	}
	o.cfg.Logger, o.cfg.Registerer, o.cfg.Gatherer = log, reg, reg
	o.cfg.MetricsRoute = o.metricsOnAPI
	if c, ok := store.(blobstore.Capacity); ok {
		o.cfg.Capacity = c
	} else if o.cfg.StorageBudget > 0 {
		log.Warn("--storage-budget applies to the embedded store only; on S3 use the bucket's quota")
	}
	handler, err := vault.NewServer(ms, o.cfg)
	if err != nil {
		return err
	}
	if o.sweepEvery > 0 {
		stop := every(ctx, o.sweepEvery, func(ctx context.Context) {
			n, err := handler.Sweep(ctx, o.sweepGrace)
			if err != nil {
				log.Warn("sweep", "removed", n, "error", err)
				return
			}
			log.Info("sweep", "removed", n)
		})
		defer stop()
	}
	exempt, err := addresses(o.cfg.TrustedProxies)
	if err != nil {
		return err
	}
	sc := serve.Config{ReadHeaderTimeout: o.readHeaderTimeout, ReadTimeout: o.readTimeout, WriteTimeout: o.writeTimeout,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: o.maxHeaderBytes,
		Limits: serve.Limits{Total: o.maxConns, PerIP: o.maxConnsIP, Exempt: exempt}}
	srv, ln, err := sc.Listen(o.listen, handler, log)
	if err != nil {
		return err
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sharevault_connections_open", Help: "Connections open on the API listener."},
		func() float64 { n, _ := ln.Counts(); return float64(n) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sharevault_connections_refused_total", Help: "Connections closed at once, past --max-conns or --max-conns-ip."},
			func() float64 { _, n := ln.Counts(); return float64(n) }))
	scheme := "http"
	if o.tlsCert != "" {
		scheme = "https"
	}
	fmt.Fprintf(stdout, "sharevault vault %s serving %s://%s from the %s\n", version, scheme, ln.Addr(), desc)
	if o.metricsListen != "" {
		stop, err := serve.Metrics(o.metricsListen, reg, sc, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	if o.debugListen != "" {
		dbg := &http.Server{Addr: o.debugListen, Handler: http.DefaultServeMux, ReadHeaderTimeout: 5 * time.Second}
		go dbg.ListenAndServe()
		defer dbg.Close()
	}
	return serve.Until(ctx, srv, ln, o.tlsCert, o.tlsKey, log)
}
