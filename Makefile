# sharevault. `make test` is the one command that checks the tree; it installs what it
# needs (Go modules, the pinned MinIO, Debian's postgresql if missing) by itself. See README.md.

SHELL  := /bin/bash
GO     ?= go
# Tools are built once into a cache outside the work tree, so fresh clones reuse them.
CACHE  ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/sharevault

MINIO_VERSION     := v0.0.0-20260212201848-7aac2a2c5b7c
BENCHSTAT_VERSION := v0.0.0-20260908200009-22c9c6c9d4da
RESTSERVER_VERSION := v0.14.0
MINIO     := $(CACHE)/minio-$(MINIO_VERSION)/minio
BENCHSTAT := $(CACHE)/benchstat-$(BENCHSTAT_VERSION)/benchstat
RESTSERVER := $(CACHE)/rest-server-$(RESTSERVER_VERSION)/rest-server

FUZZTIME ?= 5m
BENCHCOUNT ?= 6

.PHONY: test vet unit fuzz fuzz-ci bench bench-go crash tools postgres crosscheck bindings

test: vet unit bindings fuzz-ci

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...

unit: tools postgres
	SHAREVAULT_MINIO=$(MINIO) SHAREVAULT_REQUIRE_MINIO=1 SHAREVAULT_RESTSERVER=$(RESTSERVER) SHAREVAULT_REQUIRE_POSTGRES=1 $(GO) test -race -count=1 ./...

# PostgreSQL's server, Debian's package, for internal/pgtest (the node store's tests start
# it themselves, as an unprivileged user): installed only if it is not there.
postgres:
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { \
	  echo "installing Debian's postgresql package (once)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql; }

# Every fuzz target, FUZZTIME each (make fuzz FUZZTIME=1h). Crashers land in the
# package's testdata/fuzz and become regression seeds once committed. Go 1.26's fuzzing
# coordinator can fail a target with a bare "context deadline exceeded" at the end of its
# time (golang/go#75804, fixed in Go 1.27): such a run, which wrote no crasher, is said so
# and run once more; any other failure, or that one twice, fails.
fuzz:
	@mkdir -p $(CACHE); set -e; for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    for try in 1 2; do \
	      echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	      before=$$(ls $$dir/testdata/fuzz/$$f 2>/dev/null | wc -l); \
	      if $(GO) test $$pkg -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) 2>&1 | tee $(CACHE)/fuzz.out; \
	         [ $${PIPESTATUS[0]} -eq 0 ]; then break; fi; \
	      after=$$(ls $$dir/testdata/fuzz/$$f 2>/dev/null | wc -l); \
	      if [ $$try = 1 ] && [ $$before = $$after ] && grep -q '^    context deadline exceeded$$' $(CACHE)/fuzz.out; then \
	        echo "fuzz: $$f: Go's fuzztime deadline race (golang/go#75804), no crasher written: running it once more"; \
	      else exit 1; fi; \
	    done; \
	  done; done

fuzz-ci:
	$(MAKE) fuzz FUZZTIME=15s

# The crash loop: SIGKILL the vault at random moments under load, 200 times (make test
# runs 10 rounds).
crash:
	$(GO) test ./cmd/vault -run '^TestCrashLoop$$' -count=1 -timeout 60m -v -crash.rounds 200

# The bench tool: the vault (embedded and on MinIO), MinIO directly, restic's rest-server and
# a bare net/http handler, started on loopback and measured in one run; writes
# docs/benchmarks.md (4 KiB payloads, stored as blobs) and docs/benchmarks-512.md (the size of
# a share backup, stored inline). `go run ./cmd/vaultbench ab --a BIN --b BIN` compares two
# vault builds.
bench: tools postgres
	SHAREVAULT_MINIO=$(MINIO) SHAREVAULT_RESTSERVER=$(RESTSERVER) $(GO) run ./cmd/vaultbench suite --out docs/benchmarks.md
	SHAREVAULT_MINIO=$(MINIO) SHAREVAULT_RESTSERVER=$(RESTSERVER) $(GO) run ./cmd/vaultbench suite --size 512 --out docs/benchmarks-512.md
	$(GO) run ./cmd/vaultbench phone --out docs/benchmarks-phone.md
	$(GO) run ./cmd/vaultbench nodes --out docs/benchmarks-nodes.md

# Go benchmarks, each beside its baseline in the same run, summarized by benchstat.
bench-go: tools
	@mkdir -p $(CACHE)
	SHAREVAULT_MINIO=$(MINIO) $(GO) test -run '^$$' -bench . -count $(BENCHCOUNT) ./... | tee $(CACHE)/bench.txt
	$(BENCHSTAT) $(CACHE)/bench.txt

tools: $(MINIO) $(BENCHSTAT) $(RESTSERVER)

$(MINIO):
	@echo "building MinIO $(MINIO_VERSION) into $(dir $@) (a few minutes, once)"
	GOBIN=$(dir $@) $(GO) install github.com/minio/minio@$(MINIO_VERSION)

$(BENCHSTAT):
	GOBIN=$(dir $@) $(GO) install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION)

# restic's rest-server for the bench, pinned by tools/restserver/go.mod.
$(RESTSERVER):
	cd tools/restserver && $(GO) build -o $@ github.com/restic/rest-server/cmd/rest-server

# The app's bindings, run: client/bindtest/jvm.sh has gobind (golang.org/x/mobile, pinned in
# go.mod as a tool) generate the Java and Objective-C bindings of package client, builds the
# Go side as a JNI library for this machine and compiles the Java side and AppDemo (a JDK and
# a C compiler: installed with apt-get if missing); TestAppDemoOnTheJVM then runs AppDemo
# on the JVM against a real vault and real TSM nodes. Each run builds in a directory of its
# own, removed after, so that two runs at once never share one.
bindings:
	@command -v javac >/dev/null || { apt-get update -qq && apt-get install -y -qq default-jdk-headless; }
	@command -v gcc >/dev/null || { apt-get update -qq && apt-get install -y -qq gcc; }
	bind=$$(mktemp -d "$${TMPDIR:-/tmp}/sharevault-bind.XXXXXX") && trap 'rm -rf "$$bind"' EXIT && \
	  GO=$(GO) bash client/bindtest/jvm.sh "$$bind" && \
	  SHAREVAULT_BIND="$$bind" SHAREVAULT_REQUIRE_BIND=1 $(GO) test -count=1 -run '^TestAppDemoOnTheJVM$$' -v ./client/bindtest

# The independent Python reader of docs/keys.md, docs/envelope.md and the request signatures
# of docs/api.md against the pinned vectors, and trezor's BIP-39 code for the word vectors
# (Debian packages).
crosscheck:
	/usr/bin/python3 docs/reference/check_vectors.py
