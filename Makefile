# kvsd: `make run` sets up a fresh Debian machine and runs the server; `make test` runs every test.
GO       ?= go
BIN      := bin/kvsd
PKGS     := ./...
GOFLAGS  ?=
export GOFLAGS

.PHONY: all setup setup-test console build run test vet fuzz bench clean

all: build

## setup: install missing Debian packages (apt-get, sudo when not root) and Go modules
setup:
	@bash scripts/setup.sh

## setup-test: setup, plus what only the tests need (brokers, S3 server, Chromium, web/ npm packages)
setup-test:
	@bash scripts/setup.sh --test

## console: bundle the web console into internal/console/dist (npm ci + esbuild; Node.js from Debian when missing)
console:
	@bash scripts/console.sh

## build: bundle the console, then build bin/kvsd (which embeds it)
build: console
	$(GO) build -o $(BIN) ./cmd/kvsd

## run: set up, build, and serve on the embedded defaults (127.0.0.1:4580, ./data)
run: setup build
	./$(BIN) serve

## test: set up, bundle the console, vet, and run every test with the race detector
test: setup-test console vet
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

vet:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l cmd internal producer)" || { echo "gofmt needed:"; gofmt -l cmd internal producer; exit 1; }

## fuzz: run each fuzz target for FUZZTIME (default 60s)
FUZZTIME ?= 60s
fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzDecodeRequests -fuzztime=$(FUZZTIME) ./internal/kvsapi
	$(GO) test -run='^$$' -fuzz=FuzzVerify -fuzztime=$(FUZZTIME) ./internal/sigv4
	$(GO) test -run='^$$' -fuzz=FuzzReader -fuzztime=$(FUZZTIME) ./internal/mkv
	$(GO) test -run='^$$' -fuzz=FuzzResume -fuzztime=$(FUZZTIME) ./internal/mkv
	$(GO) test -run='^$$' -fuzz=FuzzClusterFrames -fuzztime=$(FUZZTIME) ./internal/mkv
	$(GO) test -run='^$$' -fuzz=FuzzSplitAnnexB -fuzztime=$(FUZZTIME) ./internal/h26x
	$(GO) test -run='^$$' -fuzz=FuzzParseSPS -fuzztime=$(FUZZTIME) ./internal/h26x
	$(GO) test -run='^$$' -fuzz=FuzzConfigFromRecord -fuzztime=$(FUZZTIME) ./internal/h26x
	$(GO) test -run='^$$' -fuzz=FuzzMKVSource -fuzztime=$(FUZZTIME) ./producer
	$(GO) test -run='^$$' -fuzz=FuzzOpen -fuzztime=$(FUZZTIME) ./internal/remux
	$(GO) test -run='^$$' -fuzz=FuzzFragment -fuzztime=$(FUZZTIME) ./internal/remux
	$(GO) test -run='^$$' -fuzz=FuzzToken -fuzztime=$(FUZZTIME) ./internal/playback
	$(GO) test -run='^$$' -fuzz='^FuzzAPIOperations$$' -fuzztime=$(FUZZTIME) ./internal/app
	$(GO) test -run='^$$' -fuzz='^FuzzPlaybackResources$$' -fuzztime=$(FUZZTIME) ./internal/app
	$(GO) test -run='^$$' -fuzz='^FuzzParseNumber$$' -fuzztime=$(FUZZTIME) ./internal/fragment
	$(GO) test -run='^$$' -fuzz='^FuzzParseCursor$$' -fuzztime=$(FUZZTIME) ./internal/fragstore
	$(GO) test -run='^$$' -fuzz='^FuzzParseARN$$' -fuzztime=$(FUZZTIME) ./internal/stream
	$(GO) test -run='^$$' -fuzz='^FuzzGalleryToken$$' -fuzztime=$(FUZZTIME) ./internal/imagegen
	# Minimizing a new input of this target (8 KiB seeds, mostly zero fill) takes minutes: cap it.
	$(GO) test -run='^$$' -fuzz=FuzzScanSegment -fuzzminimizetime=10x -fuzztime=$(FUZZTIME) ./internal/fragstore/disk
	$(GO) test -run='^$$' -fuzz=FuzzKeyFile -fuzztime=$(FUZZTIME) ./internal/keys
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeFrames$$' -fuzztime=$(FUZZTIME) ./internal/fragstore
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeTags$$' -fuzztime=$(FUZZTIME) ./internal/catalog/postgres
	$(GO) test -run='^$$' -fuzz='^FuzzParseFragmentPayload$$' -fuzztime=$(FUZZTIME) ./internal/catalog/postgres
	$(GO) test -run='^$$' -fuzz='^FuzzParseSize$$' -fuzztime=$(FUZZTIME) ./internal/diskuse
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeHeader$$' -fuzztime=$(FUZZTIME) ./internal/fragstore/s3media

## bench: the benchmark programs (tables in the README); each takes a few minutes
bench: setup-test
	$(GO) run ./bench/ingest
	$(GO) run ./bench/images -workload all -rounds 5
	$(GO) run ./bench/put
	$(GO) run ./bench/playback
	$(GO) run ./bench/cluster

clean:
	rm -rf bin internal/console/dist/index.html internal/console/dist/assets
