# Angzarr Mesh: `make` is the front door. `make dev` runs it, `make test`
# tests it; both install what a fresh machine lacks first (`make deps`).
SHELL := /bin/bash
GO ?= go
TOOLS := $(CURDIR)/build/tools
export PATH := $(TOOLS):$(PATH)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/angzarr-mesh/angzarr/internal/version.Version=$(VERSION)
# The race detector and a generous timeout: CI runs this on 2 cores.
TESTFLAGS ?= -race -timeout 25m

.PHONY: all deps build filter proto test test-go test-e2e test-python lint bench clean fresh-check images

all: build

## deps: install missing Debian packages (redis-server, protoc, ...) and the pinned Go tools
deps:
	@./scripts/deps.sh

## build: build the angzarr CLI into build/angzarr
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o build/angzarr ./cmd/angzarr

## dev: the local mesh: event service, control plane, a proxy per domain, the example shop (Ctrl-C stops it)
.PHONY: dev demo
dev: deps filter build
	build/angzarr dev

## demo: a scripted walk through the shop against a running `make dev`
demo: build
	./scripts/demo.sh

## filter: build the Wasm filter into build/angzarr-filter.wasm (standard Go, wasip1 reactor)
filter:
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -trimpath -o build/angzarr-filter.wasm ./filter/cmd/angzarr-filter

## images: OCI images of the CLI, the shop and the filter (Wasm, for Istio's WasmPlugin) into build/images, no container engine
images:
	$(GO) run ./cmd/mkimages -version $(VERSION)

## proto: regenerate the Go code beside every .proto
proto: deps
	./scripts/protogen.sh

## lint: gofmt, go vet, staticcheck
lint: deps
	@fmt=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); \
	  if [ -n "$$fmt" ]; then echo "gofmt needed:"; echo "$$fmt"; exit 1; fi
	$(GO) vet ./...
	GOOS=wasip1 GOARCH=wasm $(GO) vet ./filter/...
	staticcheck ./...

## test: everything CI runs: deps, lint, the Python and Go tests; prints each step's time
test:
	@./scripts/steps.sh deps lint test-python test-go test-e2e

test-go:
	$(GO) test $(TESTFLAGS) ./...

# The heaviest end-to-end runs, without the race detector's slowdown:
# 10,000 commands through the filter under the envoy-1.33 WASI profile
# (poll_oneoff fails there), and the images built twice from scratch.
test-e2e:
	$(GO) test -count=1 -timeout 15m -run '^TestManyCommands$$' ./filter/e2e
	$(GO) test -count=1 -timeout 15m -run '^TestBuildWritesEveryImage$$' ./internal/images

## fresh-check: clone HEAD into a temp dir and run `make test` there with empty Go caches (--purge: FRESH_FLAGS=--purge)
fresh-check:
	./scripts/fresh-check.sh $(FRESH_FLAGS)

# Debian's python3 (with python3-grpcio), not a pyenv one earlier on PATH.
test-python:
	/usr/bin/python3 -m unittest discover -s examples/python/customer -t examples/python/customer

## bench: benchmarks that print their figures beside a baseline from the same run
bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./...

clean:
	rm -rf build
