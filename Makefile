# ambit — build, run and test. `make run` starts the server on an embedded
# store in ./ambit-data; `make test` runs every test with the race detector.

GO        ?= go
BIN       ?= bin/ambit
PKGS      ?= ./...
FUZZTIME  ?= 60s
# The conformance data lives beside the repository in CI; override as needed.
# Tests run in their package directories, so a relative path is made absolute.
AMBIT_CONFORMANCE_DIR ?=
ifneq ($(AMBIT_CONFORMANCE_DIR),)
override AMBIT_CONFORMANCE_DIR := $(abspath $(AMBIT_CONFORMANCE_DIR))
endif
export AMBIT_CONFORMANCE_DIR

.PHONY: all build run test bench fuzz conformance lint fmt clean proto chaos

all: build

# The version ambit reports (`ambit version`, and to SpiceDB clients that ask).
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

build:
	$(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/ambit

run: build
	./$(BIN) serve

test:
	$(GO) test -race -timeout 12m $(PKGS)

# The short version of bench/RESULTS.md (about 3 minutes): in-process
# benchmarks, then collab small over gRPC against a fresh local server.
bench:
	GO=$(GO) bash bench/scripts/short.sh $(BENCH_OUT)

# Runs every fuzz target for FUZZTIME each (go test allows one target per run).
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# The fault campaign (internal/chaos, RELIABILITY.md): a 3-node cluster of
# $(BIN) on loopback under ROUNDS faults of every kind while writers and
# readers run, then every node checked against what was acknowledged. Exits 1
# on any violation. SEED=0 draws a seed (printed); CHAOS_FLAGS adds flags
# (bin/ambit-chaos --help), e.g. CHAOS_FLAGS="--kinds isolate-leader,one-way".
ROUNDS ?= 20
SEED   ?= 0
chaos: build
	$(GO) build -trimpath -o bin/ambit-chaos ./cmd/ambit-chaos
	./bin/ambit-chaos --bin $(BIN) --rounds $(ROUNDS) --seed $(SEED) $(CHAOS_FLAGS)

conformance:
	@test -n "$(AMBIT_CONFORMANCE_DIR)" || { echo "set AMBIT_CONFORMANCE_DIR (e.g. ../shared/conformance)"; exit 2; }
	$(GO) test -race -count 1 -run 'Conformance' -v ./... 2>&1 | grep -E '^(=== RUN|--- |ok|FAIL|PASS)' | grep -v '=== RUN'

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

# Regenerates the Go code of proto/ (committed) with buf and the plugins
# of buf.gen.yaml, each pinned and run through `go run`: Go is all it needs.
BUF ?= $(GO) run github.com/bufbuild/buf/cmd/buf@v1.75.0
proto:
	$(BUF) lint
	$(BUF) generate

clean:
	rm -rf bin ambit-data
