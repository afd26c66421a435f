# chatops-executor: the one entry point for building, testing and trying it.

GO          ?= go
BIN         := bin/chatops-executor
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -s -w -X main.version=$(VERSION)
TOOLS       := $(CURDIR)/.tools
STATICCHECK := $(TOOLS)/staticcheck
STATICCHECK_VERSION := v0.8.2
# go test flags for `make test`; CI adds nothing, a developer may add -run or -v.
TESTFLAGS   ?=

.PHONY: all build test lint bench demo clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./executor

test:
	$(GO) test -race -count=1 $(TESTFLAGS) ./...

$(STATICCHECK):
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

lint: $(STATICCHECK)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

# Benchmarks print figures; they assert nothing (shared machines are noisy).
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 ./bench/
	$(GO) test -run '^$$' -bench . -benchmem ./replies/

demo: build
	$(GO) run ./internal/demo -executor $(BIN)

clean:
	rm -rf bin .tools
