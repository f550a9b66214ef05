# integrations — see README.md. `make help` lists the targets.

GO        ?= go
BIN       := bin
# The temporal CLI (dev server) is built once from tools/temporal and cached
# outside the checkout, keyed by the pinned module's go.sum and main.go, so
# fresh clones and CI runs do not spend minutes rebuilding it.
TEMPORAL_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/integrations
TEMPORAL_KEY   := $(shell cat tools/temporal/go.sum tools/temporal/main.go 2>/dev/null | sha256sum | cut -c1-16)
TEMPORAL_CACHED := $(TEMPORAL_CACHE)/temporal-$(TEMPORAL_KEY)
WORKFLOWCHECK := go.temporal.io/sdk/contrib/tools/workflowcheck@v0.6.0
TEST_FLAGS ?= -count=1 -timeout 25m

.PHONY: help build temporal dev test test-short lint fmt clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-11s %s\n", $$1, $$2}'

build: ## build bin/integrations
	$(GO) build -o $(BIN)/integrations ./cmd/integrations

temporal: $(BIN)/temporal ## build (or reuse the cached) Temporal CLI + dev server into bin/temporal

$(BIN)/temporal: tools/temporal/go.mod tools/temporal/go.sum tools/temporal/main.go
	@mkdir -p $(BIN) $(TEMPORAL_CACHE)
	@if [ ! -x "$(TEMPORAL_CACHED)" ]; then \
		echo "building the Temporal CLI from tools/temporal (first time only, ~5 min on 2 cores)..."; \
		cd tools/temporal && $(GO) build -o "$(TEMPORAL_CACHED).tmp" . && mv "$(TEMPORAL_CACHED).tmp" "$(TEMPORAL_CACHED)"; \
	fi
	cp "$(TEMPORAL_CACHED)" $@
	@touch $@

dev: build temporal ## run the whole stack: Temporal dev server + UI, SQLite, worker, HTTP API, sandbox CRM
	$(BIN)/integrations dev

test: temporal ## run every test (unit, Postgres, SQLite, Temporal dev server)
	$(GO) test $(TEST_FLAGS) ./...

test-short: ## only the fast tests that need no services
	$(GO) test -count=1 ./integration/... ./crm/... ./credential/... ./schema/... ./app/...

lint: ## gofmt, go vet and Temporal's workflowcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(WORKFLOWCHECK) ./...

fmt: ## format the code
	gofmt -w $$(git ls-files '*.go')

clean: ## remove build output (not the cached Temporal CLI, not .data/)
	rm -rf $(BIN)
