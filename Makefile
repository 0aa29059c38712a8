# streamdet — see README.md. Every target works on a fresh machine: `make test` installs and
# starts what it needs through deploy/local/stack.sh.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

STACK    := deploy/local/stack.sh
MODULES  := work
BINARIES := ingest detect sink detctl streamdet-edge
GO       ?= go
# Builds and tests use the toolchain go.work names (fetched once from the Go module proxy, ~10 s):
# the standard library of the go.mod's 1.26.8 has vulnerabilities govulncheck reports (make vuln).
# It is exported so that what is built outside the workspace (MinIO, Jaeger) uses it too.
ifeq ($(origin GOTOOLCHAIN),undefined)
GOTOOLCHAIN := $(shell sed -n 's/^toolchain //p' go.work)
endif
export GOTOOLCHAIN
export GOFLAGS ?= -buildvcs=false
# govulncheck runs offline against a snapshot of the Go vulnerability database, built from the
# golang.org/x/vulndb module (the proxy serves it; vuln.go.dev is not reachable here). Bump
# VULNDB to the module's newest pseudo-version to refresh it.
GOVULNCHECK := golang.org/x/vuln/cmd/govulncheck@v1.9.0
VULNDB      := v0.0.0-20261105234957-e22db6528018
# cgo is required by the detect engine (ONNX Runtime, libjpeg-turbo) and by -race.
export CGO_ENABLED := 1

# The shared test data (models, images, reference outputs; tests read it through
# pkg/testenv.Shared): $STREAMDET_SHARED, else ../shared beside this checkout, else ../shared
# beside the repository this one was cloned from (a clean clone made elsewhere, as CI may).
ifeq ($(origin STREAMDET_SHARED),undefined)
STREAMDET_SHARED := $(firstword $(abspath $(wildcard ../shared)) \
  $(shell u=$$(git config --get remote.origin.url 2>/dev/null) && [ -d "$$u/../shared" ] && cd "$$u/../shared" && pwd))
endif
ifneq ($(STREAMDET_SHARED),)
export STREAMDET_SHARED
endif

.PHONY: lint-go help build edge edge-arm64 edge-fps images images-all up down status env test unit integration lint rules dashboards vuln demo run clean distclean fuzz bench bench-pipeline test-gpu coco-reference cover chaos

help: ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build every binary into bin/
	@$(STACK) install >/dev/null
	@mkdir -p bin
	$(GO) build -o bin/ingest ./services/ingest/cmd/ingest
	$(GO) build -o bin/detect ./services/detect/cmd/detect
	$(GO) build -o bin/sink ./services/sink/cmd/sink
	$(GO) build -o bin/detctl ./tools/cmd/detctl
	$(GO) build -o bin/streamdet-edge ./services/edge/cmd/streamdet-edge

edge: ## the edge packages: dist/streamdet-edge-*-linux-{amd64,arm64}.tar.gz (arm64 cross-compiled; docs/edge.md)
	ARCH=amd64 deploy/edge/build.sh
	@$(MAKE) --no-print-directory edge-arm64

edge-fps: ## measure the edge runtime here: frames/s and CPU per frame, 1 and 2 cameras of 1080p (needs make up; docs/edge.md)
	eval "$$($(STACK) env)" && STREAMDET_INTEGRATION=1 STREAMDET_EDGE_FPS_MEASURE=1 $(GO) test -tags integration -count=1 -run TestIntegrationEdgeFPS -v ./services/edge/ | grep -E 'camera|PASS|FAIL|ok'

edge-arm64: ## the arm64 edge package only, and the arm64 root its test runs it in under qemu-user
	ARCH=arm64 deploy/edge/build.sh

images: ## build the amd64 images with buildah (local Debian bases) → dist/*.oci.tar, and print their sizes
	deploy/images/build.sh images

images-all: ## the images for amd64 and arm64 (cross-compiled; not part of make test)
	ARCH=amd64 deploy/images/build.sh images
	ARCH=arm64 deploy/images/build.sh images

up: ## install (cached) and start Kafka, MinIO and Redis on loopback (SECURE=1: TLS, SASL/SCRAM, ACLs, per-service users; BROKERS=3: a three-node Kafka cluster)
	@if [[ "$(SECURE)" == 1 ]]; then deploy/local/secure.sh up; else STREAMDET_BROKERS=$(or $(BROKERS),1) $(STACK) up; fi

down: ## stop the local stack (SECURE=1: the secure one); leaves no process behind
	@if [[ "$(SECURE)" == 1 ]]; then deploy/local/secure.sh down; else $(STACK) down; fi

status: ## show the local stack and its export lines
	@$(STACK) status

env: ## print export lines for the local stack (eval "$$(make -s env)")
	@$(STACK) env

lint: ## go vet (default and integration builds) + gofmt + staticcheck + the alert rules' tests; run by make test
	@$(STACK) install >/dev/null
	@$(MAKE) --no-print-directory lint-go rules

# lint-go needs libturbojpeg's header only (cgo); make test runs it while the rest installs.
lint-go:
	@$(STACK) install demo >/dev/null
	$(GO) vet -tags integration $(MODULES) # every file: no file is built only without the tag
	@out=$$(gofmt -l pkg services tools deploy); if [[ -n "$$out" ]]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(MODULES)

rules: ## promtool: check the alert rules and run their tests (deploy/prometheus), firing and not firing
	promtool check rules deploy/prometheus/streamdet.rules.yml
	cd deploy/prometheus && promtool test rules streamdet.rules.test.yml

dashboards: ## regenerate the Grafana dashboards (deploy/grafana) and the Helm chart's copies of them and of the rules
	$(GO) run ./deploy/grafana/gen

# The six modules two at a time (the cores): each check's loading and call graph is mostly one
# thread. Each module's report is printed whole when its check ends.
vuln: ## govulncheck every module against the pinned vulnerability database snapshot (VULNDB)
	@db=$(CURDIR)/.cache/vulndb/$(VULNDB); if [[ ! -f $$db/index/db.json ]]; then \
	  src=$$($(GO) mod download -json golang.org/x/vulndb@$(VULNDB) | sed -n 's/^\t"Dir": "\(.*\)",$$/\1/p'); \
	  rm -rf $$db.tmp && $(GO) run golang.org/x/vulndb/cmd/indexdb@$(VULNDB) -vulns $$src/data/osv -out $$db.tmp && mv $$db.tmp $$db; fi; \
	  printf '%s\n' pkg services/ingest services/detect services/sink services/edge tools | \
	    xargs -P 2 -I{} bash -c 'out=$$($(GO) run $(GOVULNCHECK) -db file://'"$$db"' -C {} ./... 2>&1); rc=$$?; printf "govulncheck %s\n%s\n" {} "$$out"; exit $$rc'

# gotestsum prints what go test prints and keeps its events (.cache/logs/unit*.json and
# integration.json), from which it then lists the slowest tests: where make test's time goes.
GOTESTSUM := gotest.tools/gotestsum@v1.13.0
# The race detector runs on the code that has concurrency: the libraries, services and tools.
# deploy's tests (Helm, compose, systemd, the dashboards' generator) run single goroutines over
# rendered manifests; race-instrumenting them would recompile their ~650 packages of Kubernetes,
# KEDA, compose and Prometheus dependencies a second way (go vet has compiled them plainly) for
# nothing to detect. They run beside the others, without -race; their output follows.
PLAIN_PKGS := ./deploy/...
RACE_PKGS  := $(addsuffix /...,$(filter-out $(PLAIN_PKGS:/...=),$(shell sed -n 's/^[[:space:]]*\(\.\/[a-z/]*\)$$/\1/p' go.work)))
unit: ## go vet + unit tests (the race detector on pkg/, services/, tools/) (needs the installed libraries, not the servers)
	@$(STACK) install
	$(GO) vet $(MODULES)
	@mkdir -p .cache/logs
	rc=0; eval "$$($(STACK) env)" && \
	  { $(GO) run $(GOTESTSUM) --format standard-quiet --jsonfile .cache/logs/unit-plain.json -- -count=1 $(PLAIN_PKGS) >.cache/logs/unit-plain.txt 2>&1 & plain=$$!; } && \
	  { $(GO) run $(GOTESTSUM) --format standard-quiet --jsonfile .cache/logs/unit.json -- -race -count=1 $(RACE_PKGS) || rc=$$?; } && \
	  { wait $$plain || rc=$$?; echo "without -race: $(PLAIN_PKGS)"; cat .cache/logs/unit-plain.txt; } && \
	  echo "unit tests over 15 s:" && for f in unit unit-plain; do $(GO) run $(GOTESTSUM) tool slowest --jsonfile .cache/logs/$$f.json --threshold 15s || true; done; exit $$rc
	@echo "pure-Go decoder build (-tags noturbojpeg):"
	eval "$$($(STACK) env)" && $(GO) test -count=1 -tags noturbojpeg ./services/detect/imaging/ ./services/detect/engine/

# The edge test runs the arm64 package under qemu-user when it is built (make edge-arm64).
EDGE_ARM64 := $(if $(wildcard dist/edge/arm64/streamdet-edge/bin/streamdet-edge),STREAMDET_EDGE_ARM64=$(CURDIR)/dist/edge/arm64/streamdet-edge STREAMDET_EDGE_ARM64_SYSROOT=$(CURDIR)/dist/edge/sysroot-arm64)
# The packages with integration tests (files built with the tag): only their test binaries are
# built and run (linking the workspace's every package's race test binary to run none of its
# tests cost a minute or two). The two longest (e2e about 10 minutes, edge about 7) come first:
# go test builds and starts packages in the order given, -p (the cores) at a time, so e2e runs
# from the start and the others fill the second slot beside it instead of after it.
INTEGRATION_LONG := ./tools/e2e/ ./services/edge/
INTEGRATION_PKGS := $(INTEGRATION_LONG) $(filter-out $(INTEGRATION_LONG),$(addprefix ./,$(sort $(dir $(shell grep -rl --include='*_test.go' '^//go:build.*integration' pkg services tools deploy)))))
integration: ## integration tests against the running local stack
	@mkdir -p .cache/logs
	rc=0; eval "$$($(STACK) env)" && STREAMDET_INTEGRATION=1 $(EDGE_ARM64) $(GO) run $(GOTESTSUM) --format standard-quiet --jsonfile .cache/logs/integration.json -- \
	  -race -count=1 -tags integration -run Integration -timeout 20m $(INTEGRATION_PKGS) || rc=$$?; \
	  echo "integration tests over 30 s (the parallel ones overlap):"; \
	  $(GO) run $(GOTESTSUM) tool slowest --jsonfile .cache/logs/integration.json --threshold 30s || true; exit $$rc

# The fault-injection suite (docs/reliability.md): every case on its own, twice, against a
# three-broker cluster, MinIO and Redis of its own. make test runs its short version (one load,
# one fault per component). Needs make up (binaries, the stack's tools).
chaos: ## fault-injection suite: kill -9 / SIGTERM of each service, broker loss, freeze and rolling restart, MinIO and Redis outages, rebalances, slow sink, disk full (~30 min)
	eval "$$($(STACK) env)" && STREAMDET_INTEGRATION=1 STREAMDET_CHAOS=full $(GO) test -count=1 -tags integration -run TestIntegrationChaos -timeout 120m -v ./tools/e2e/ >.cache/chaos.log 2>&1; \
	  rc=$$?; grep -E '^(=== RUN|--- |ok|FAIL|PASS)|chaos_test.go|^ +\|' .cache/chaos.log; echo "full log: .cache/chaos.log"; exit $$rc

COVERPKG := github.com/streamdet/streamdet/pkg/...,github.com/streamdet/streamdet/services/...
cover: ## statement coverage of pkg/ and services/ by the tests that need no server, per package
	@$(STACK) install >/dev/null
	@mkdir -p .cache
	eval "$$($(STACK) env)" && $(GO) test -count=1 -coverpkg=$(COVERPKG) -coverprofile=.cache/cover.out \
	  github.com/streamdet/streamdet/pkg/... github.com/streamdet/streamdet/services/... >/dev/null
	@$(GO) run ./tools/cmd/coverreport .cache/cover.out

# test starts the stack when it is not running and stops it again afterwards if it started it.
# $(call timed,STEP,COMMAND): runs COMMAND, then prints how long STEP took (make test's log shows
# where a fresh machine's time goes against its budget), keeping COMMAND's exit status.
timed = s=$$(date +%s); rc=0; $(2) || rc=$$?; echo "[test] $(1): $$(( $$(date +%s) - s )) s"; exit $$rc

# What make test installs and builds that is mostly downloading and unpacking (Debian packages,
# Kafka's and Zipkin's jars, the image bases' and the arm64 root's Debian packages) runs in the
# background while lint and vuln keep the cores busy compiling. It is two parts: the stack's
# install, which the unit tests need (make test waits for it after vuln), and the image bases,
# which only images needs (the unit tests run beside their unpacking). Its log:
# .cache/logs/prepare.log; .cache/logs/prepare.installed marks the first part's end.
PREPARE = $(STACK) install && touch .cache/logs/prepare.installed && deploy/images/build.sh bases && ARCH=arm64 deploy/images/build.sh bases
# $(call prepared,WHAT,FILE): waits for FILE (the background's part WHAT is done) or for the
# background to end without it (it failed: its log's tail, exit 1), then prints how long it ran.
prepared = t1=$$(date +%s); while [[ ! -e $(2) ]] && kill -0 $$prep 2>/dev/null; do sleep 1; done; \
  if [[ ! -e $(2) ]] && ! wait $$prep; then echo "[test] installing failed:"; tail -n 40 .cache/logs/prepare.log; exit 1; fi; \
  echo "[test] $(1) (in the background from the start): $$(( $$(date +%s) - t0 )) s, waited $$(( $$(date +%s) - t1 )) s for it"

test: ## lint, unit tests, then integration tests against the real local stack
	@$(call timed,install (what compiling needs),$(STACK) install demo)
	@mkdir -p .cache/logs; rm -f .cache/logs/prepare.installed .cache/logs/prepare.done; t0=$$(date +%s); status=0; \
	  ( $(PREPARE) && touch .cache/logs/prepare.done ) >.cache/logs/prepare.log 2>&1 & prep=$$!; \
	  trap 'wait $$prep' EXIT; \
	  ( $(call timed,lint,$(MAKE) --no-print-directory lint-go) ) || status=1; \
	  ( $(call timed,vuln,$(MAKE) --no-print-directory vuln) ) || status=1; \
	  $(call prepared,install,.cache/logs/prepare.installed); \
	  [[ $$status == 0 ]] || exit 1; \
	  ( $(call timed,rules,$(MAKE) --no-print-directory rules) ) && \
	  ( $(call timed,unit,$(MAKE) --no-print-directory unit) ) && \
	  ( $(call timed,coco-reference,$(MAKE) --no-print-directory coco-reference) ) && \
	  ( $(call timed,fuzz,FUZZTIME=20s FUZZ_JOBS=2 $(MAKE) --no-print-directory fuzz) ) || exit 1; \
	  $(call prepared,image bases,.cache/logs/prepare.done)
	@$(call timed,images,$(MAKE) --no-print-directory images)
	@$(call timed,edge-arm64,$(MAKE) --no-print-directory edge-arm64)
	@s=$$(date +%s); started=0; if ! $(STACK) running; then $(STACK) up; started=1; fi; \
	  rc=0; STREAMDET_IMAGE_TAG=test-amd64 STREAMDET_EDGE_ARM64_REQUIRED=1 $(MAKE) --no-print-directory integration || rc=$$?; \
	  if [[ $$started == 1 ]]; then $(STACK) down; fi; echo "[test] stack and integration: $$(( $$(date +%s) - s )) s"; exit $$rc

# The demo runs the whole pipeline in-process (embedded Kafka, S3 and Redis): `stack.sh install
# demo` installs Debian's libturbojpeg0-dev and fetches the ONNX Runtime library, nothing else. Model and frames
# come from STREAMDET_MODEL / STREAMDET_FRAMES, defaulting to the shared data when it is there
# and to a one-time download otherwise.
SHARED_MODEL := $(if $(STREAMDET_SHARED),$(wildcard $(STREAMDET_SHARED)/models/yolox_nano.onnx))
ifeq ($(origin STREAMDET_MODEL),undefined)
ifneq ($(SHARED_MODEL),)
export STREAMDET_MODEL := $(SHARED_MODEL)
export STREAMDET_MODEL_FORMAT ?= yolox
export STREAMDET_NAMES ?= $(STREAMDET_SHARED)/models/coco.names
endif
endif
ifeq ($(origin STREAMDET_FRAMES),undefined)
ifneq ($(if $(STREAMDET_SHARED),$(wildcard $(STREAMDET_SHARED)/images)),)
export STREAMDET_FRAMES := $(STREAMDET_SHARED)/images
endif
endif
# While apt and npm fetch and Go downloads modules (I/O), the standard library and then the
# third-party packages detctl imports are compiled (CPU): none of them needs libturbojpeg's
# header; a failure there only leaves the build below to do that work.
# The demo's build leaves out debug information (DWARF), which is a few per cent of a cold
# compile: its binary is built to be run, not debugged.
DEMO_BUILD := -gcflags=all=-dwarf=false -ldflags=-w
demo: ## run the pipeline end to end in-process, send it frames, print what it found (installs libturbojpeg and ONNX Runtime only)
	@$(STACK) install demo & inst=$$!; \
	  $(GO) build $(DEMO_BUILD) net/http crypto/tls encoding/json os/exec image/jpeg 2>/dev/null & std=$$!; \
	  deps=$$($(GO) list -deps ./tools/cmd/detctl | grep -v '^github.com/streamdet/'); wait $$std || true; \
	  $(GO) build $(DEMO_BUILD) $$deps 2>/dev/null || true; \
	  wait $$inst
	@ONNXRUNTIME_LIB=$$($(STACK) ortlib) $(GO) run $(DEMO_BUILD) ./tools/cmd/detctl demo

run: ## run ingest, detect and sink against the local stack (foreground; Ctrl-C stops)
	@$(STACK) up
	@deploy/local/run.sh

bench: ## engine benchmarks (see docs/benchmarks.md)
	@$(STACK) install
	@mkdir -p .cache
	eval "$$($(STACK) env)" && $(GO) test -run '^$$' -bench 'EngineVsRaw|Stages' -benchtime 40x -count 6 -timeout 60m \
	  ./services/detect/engine/ | tee .cache/bench.txt
	$(GO) run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da .cache/bench.txt

coco-reference: ## recompute the COCO mAP fixture's numbers with pycocotools (pinned, in a private Python environment in the machine's cache) and check tools/eval against them
	py=$$(deploy/local/pyenv.sh pyeval tools/eval/testdata/coco/requirements.txt) && \
	  STREAMDET_PYCOCOTOOLS=$$py $(GO) test -count=1 -run 'Pycocotools' -v ./tools/eval/

test-gpu: ## the CUDA and TensorRT execution providers on this machine's NVIDIA GPU (ONNXRUNTIME_LIB: the onnxruntime-gpu library); says why it skips without one
	eval "$$($(STACK) env)" && STREAMDET_TEST_GPU=1 $(GO) test -count=1 -v -run 'TestGPUProvider' ./services/detect/engine/

bench-pipeline: ## the whole pipeline on the local stack vs bare ONNX Runtime (detctl bench; ARGS=... for its flags; see docs/benchmarks.md)
	deploy/local/bench.sh $(ARGS)

# FUZZ_JOBS targets fuzz at a time (each with the cores' worth of workers): 1 for make fuzz, so
# that each target has the whole machine; 2 in make test's short version (20 s each).
FUZZ_TARGETS := FuzzDecodePreprocess:./services/detect/engine/ FuzzCheckID:./pkg/contract/ FuzzDecodeWaterfall:./tools/jaeger/ FuzzSnapshotRules:./services/edge/
FUZZ_JOBS ?= 1
fuzz: ## fuzz decode + preprocess, the identifier grammar, Jaeger answers (detctl trace) and edge snapshot rules (FUZZTIME each, default 5m; 20s each in make test)
	eval "$$($(STACK) env)" && printf '%s\n' $(FUZZ_TARGETS) | xargs -P $(FUZZ_JOBS) -I{} bash -c \
	  't={}; out=$$($(GO) test -run "^$$" -fuzz "$${t%%:*}" -fuzztime "$${FUZZTIME:-5m}" "$${t#*:}" 2>&1); rc=$$?; printf "%s\n%s\n" "$$t" "$$out"; exit $$rc'

clean: ## remove binaries and the local stack's state (keeps downloaded/built components)
	-@$(STACK) down
	rm -rf bin dist .cache/stack

distclean: clean ## also remove every cached download and build
	rm -rf .cache
