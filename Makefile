# pgveil developer tasks. `make test` is the README's test command and what CI runs.

GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build test vet race bench clean

build:
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/pgveil ./cmd/pgveil

# Everything: vet, the whole suite against a real PostgreSQL (unit, wire scripts,
# drivers, end-to-end), and the race detector on the concurrent core.
test: vet
	$(GO) test -count=1 -timeout 25m ./...
	PGVEIL_TEST_EVENT_LOOPS=0 $(GO) test -count=1 -timeout 10m -run '^(TestRelay|TestEnc|TestLookup|TestReview)' ./integration
	$(GO) test -count=1 -race -timeout 15m ./proxy/... ./keysource/...

vet:
	$(GO) vet ./...

bench:
	$(GO) run ./bench

clean:
	rm -rf bin
