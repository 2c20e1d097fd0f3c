// Command vaultbench measures the vault beside MinIO and a bare HTTP handler, in one run,
// on one machine, as ratios (docs/benchmarks.md).
//
//	vaultbench run --target vault|s3|bare --url URL --mode put|get [--size N] [--concurrency C | --rate R] [--duration D]
//	vaultbench bare --listen ADDR       serve the bare in-memory handler (the ceiling)
//	vaultbench suite --out FILE         start everything on loopback, run the suite, write FILE (make bench)
//	vaultbench ab --a BIN --b BIN       two vault builds, alternating in one run: req/s and B/A
//	vaultbench phone --out FILE         the phone's flows over a mobile link, round trips counted (make bench)
//
// run prints one JSON result; suite writes Markdown with the JSON underneath.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vaultbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: vaultbench run|bare|suite|ab|phone|nodes [flags]")
	}
	switch args[0] {
	case "run":
		return runOne(ctx, args[1:], stdout)
	case "ab":
		return ab(ctx, args[1:], stdout, stderr)
	case "bare":
		fs := flag.NewFlagSet("bare", flag.ContinueOnError)
		listen := fs.String("listen", "127.0.0.1:0", "address")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "bare handler serving http://%s\n", ln.Addr())
		srv := &http.Server{Handler: bareHandler(), ReadHeaderTimeout: 5 * time.Second}
		go func() { <-ctx.Done(); srv.Close() }()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	case "suite":
		return suite(ctx, args[1:], stdout, stderr)
	case "phone":
		return phoneBench(ctx, args[1:], stdout, stderr)
	case "nodes":
		return nodesBench(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("unknown command %q", args[0])
}

func s3Client(endpoint, access, secret string) *s3.Client {
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(access, secret, "")}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
		o.HTTPClient = httpClient
	})
}

// target builds the put and get ops of a target.
type target interface {
	prepare(ctx context.Context) error
	putOp(ctx context.Context, w int, n int64) error
	getOp(ctx context.Context, w int, n int64) error
}

func runOne(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	kind := fs.String("target", "vault", "vault, s3 or bare")
	url := fs.String("url", "", "base URL (the S3 endpoint for s3)")
	bucket := fs.String("bucket", "bench", "S3 bucket")
	access := fs.String("access-key", os.Getenv("AWS_ACCESS_KEY_ID"), "S3 access key")
	secret := fs.String("secret-key", os.Getenv("AWS_SECRET_ACCESS_KEY"), "S3 secret key")
	mode := fs.String("mode", "put", "put or get")
	size := fs.Int("size", 4096, "payload bytes")
	conc := fs.Int("concurrency", 16, "closed-loop clients")
	rate := fs.Float64("rate", 0, "open loop: requests per second (0: closed loop)")
	dur := fs.Duration("duration", 10*time.Second, "how long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" {
		return errors.New("run needs --url")
	}
	var t target
	switch *kind {
	case "vault":
		t = newVaultTarget(*url, *size, max(*conc, 256))
	case "s3":
		t = &s3Target{client: s3Client(*url, *access, *secret), bucket: *bucket, payload: make([]byte, *size), run: fmt.Sprint(time.Now().UnixNano())}
	case "bare":
		t = &bareTarget{base: *url, payload: make([]byte, *size), run: fmt.Sprint(time.Now().UnixNano())}
	default:
		return fmt.Errorf("unknown target %q", *kind)
	}
	do := t.putOp
	if *mode == "get" {
		if err := t.prepare(ctx); err != nil {
			return err
		}
		do = t.getOp
	}
	name := *kind + " " + *mode
	var res Result
	if *rate > 0 {
		res = openLoop(ctx, name, *rate, *dur, do)
	} else {
		res = closedLoop(ctx, name, *conc, *dur, do)
	}
	res.Size = *size
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}
