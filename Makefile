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
	# The tee engine (built with -tags splice; see stages/tee_linux.go) has its own tests.
	$(GO) test -race -count=1 -tags splice -run 'TestCopy' ./stages/

$(STATICCHECK):
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

lint: $(STATICCHECK)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

# Benchmarks print figures; they assert nothing (shared machines are noisy). The output
# shapes, side by side with bash writing to the same pipes, take about two minutes.
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 ./bench/
	$(GO) test -run '^$$' -bench . -benchmem ./replies/

# Chat jobs from examples/.gitlab-ci.yml, run by `try` through the executor's own stages
# with embedded defaults (no GitLab, no Slack): each reply is rendered as the channel
# would show it. broken fails on purpose; that must not fail the demo.
DEMO_TRY := $(BIN) try --ci examples/.gitlab-ci.yml --user alice --channel C0123ABCD
demo: build
	@echo '$$ chatops-executor try hello-world'
	@$(DEMO_TRY) hello-world from the demo
	@echo; echo '$$ chatops-executor try ls'
	@$(DEMO_TRY) ls
	@echo; echo '$$ chatops-executor try deploy staging v1.4.2'
	@$(DEMO_TRY) deploy staging v1.4.2
	@echo; echo '$$ chatops-executor try broken   # fails on purpose'
	@$(DEMO_TRY) broken || echo "(broken failed, as it should)"

clean:
	rm -rf bin .tools
