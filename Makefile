# chatops-executor: the one entry point for building, testing and trying it.

GO          ?= go
BIN         := bin/chatops-executor
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT      ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# The commit's date, not the clock's: the same commit builds the same binary.
DATE        ?= $(shell git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS     := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
TOOLS       := $(CURDIR)/.tools
STATICCHECK := $(TOOLS)/staticcheck
STATICCHECK_VERSION := v0.8.2
# nfpm builds the .deb and .rpm; pinned and installed into .tools like staticcheck, so its
# many dependencies stay out of go.mod.
NFPM        := $(TOOLS)/nfpm
NFPM_VERSION := v2.48.0
# go test flags for `make test`; CI adds nothing, a developer may add -run or -v.
TESTFLAGS   ?=

.PHONY: all build test test-realrunner lint bench demo dist test-deb clean

all: build

build:
	@[ -x $(BIN) ] || echo "make: building $(BIN) (a first build may download and compile the dependencies: a minute or two)"
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./executor

test:
	$(GO) test -race -count=1 $(TESTFLAGS) ./...
	# The tee engine (built with -tags splice; see stages/tee_linux.go) has its own tests.
	$(GO) test -race -count=1 -tags splice -run 'TestCopy' ./stages/

# The end-to-end suite under the real gitlab-runner 19.4 (e2e/realrunner). The runner is
# $(CHATOPS_GITLAB_RUNNER) when set, else built (about 2 minutes the first time, cached
# after) by the recipe shared beside the repo. `make test` skips that suite without it.
REALRUNNER_BUILD ?= ../shared/realrunner/build.sh
test-realrunner:
	@runner="$${CHATOPS_GITLAB_RUNNER:-}"; \
	if [ -z "$$runner" ]; then \
		if [ ! -f "$(REALRUNNER_BUILD)" ]; then \
			echo "test-realrunner: set CHATOPS_GITLAB_RUNNER to a minirunner binary, or provide $(REALRUNNER_BUILD)" >&2; exit 1; \
		fi; \
		runner=$$(bash $(REALRUNNER_BUILD) | tail -n 1) || exit 1; \
	fi; \
	echo "test-realrunner: $$runner"; \
	CHATOPS_GITLAB_RUNNER="$$runner" $(GO) test -race -count=1 $(TESTFLAGS) ./e2e/realrunner/

$(STATICCHECK):
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(NFPM):
	GOBIN=$(TOOLS) $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)

# Release artifacts in dist/: tarball, .deb, .rpm and SHA256SUMS.
dist: $(NFPM)
	GO=$(GO) NFPM=$(NFPM) VERSION=$(VERSION) COMMIT=$(COMMIT) DATE=$(DATE) packaging/dist.sh

# Installs the .deb with dpkg, checks it, removes it (as root, on Debian; what CI runs).
test-deb: dist
	packaging/test-deb.sh dist/*.deb

lint: $(STATICCHECK)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

# Benchmarks print figures; they assert nothing (shared machines are noisy). The output
# shapes, side by side with bash writing to the same pipes, take about two minutes.
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 ./bench/
	$(GO) test -run '^$$' -bench . -benchmem ./replies/ ./replydir/

# Chat jobs from examples/.gitlab-ci.yml, run by `try` through the executor's own stages
# with embedded defaults (no GitLab, no Slack): each reply is rendered as the channel
# would show it. broken fails on purpose; that must not fail the demo.
DEMO_TRY := $(BIN) try --ci examples/.gitlab-ci.yml --user alice --channel C0123ABCD
demo:
	@echo "demo: building $(BIN), then running the chat jobs of examples/.gitlab-ci.yml with 'try'"
	@$(MAKE) --no-print-directory build
	@echo '$$ chatops-executor try hello-world'
	@$(DEMO_TRY) hello-world from the demo
	@echo; echo '$$ chatops-executor try ls'
	@$(DEMO_TRY) ls
	@echo; echo '$$ chatops-executor try deploy staging v1.4.2'
	@$(DEMO_TRY) deploy staging v1.4.2
	@echo; echo '$$ chatops-executor --config examples/demo-config.toml try deploys-chart   # a Block Kit table and a chart PNG'
	@$(BIN) --config examples/demo-config.toml try --ci examples/.gitlab-ci.yml --user alice --channel C0123ABCD deploys-chart
	@echo; echo '$$ chatops-executor try broken   # fails on purpose'
	@$(DEMO_TRY) broken || echo "(broken failed, as it should)"

clean:
	rm -rf bin dist .tools
