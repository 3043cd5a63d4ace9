# parser-operator. `make help` lists the targets.

IMG ?= ghcr.io/vkparser/parser-operator:dev
# Tool binaries are downloaded from their release sites (SHA-256 verified) or,
# when that fails, built from the Go module proxy, and cached outside the
# clone (hack/tool.sh); override PARSER_OPERATOR_CACHE to move the cache.
CONTROLLER_GEN ?= $(shell hack/tool.sh controller-gen)

.DEFAULT_GOAL := help
SHELL := /usr/bin/env bash -o pipefail

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: ## Generate the CRD and RBAC role from the Go markers (and the copies the render subcommand and the chart embed).
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./..." output:crd:artifacts:config=config/crd/bases
	go generate ./internal/crd
	hack/sync-chart.sh

.PHONY: generate
generate: ## Generate DeepCopy code.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: verify-generated
verify-generated: manifests generate ## Fail when generated files are stale.
	@git diff --exit-code -- api config internal/crd charts || { echo "generated files are stale: run 'make manifests generate' and commit"; exit 1; }

.PHONY: golden
golden: ## Regenerate golden files (nginx.conf, registry, shard map, redis.conf, queue definitions) after a deliberate change.
	UPDATE_GOLDEN=1 go test ./internal/resource/... ./internal/sharding/... -run Golden

.PHONY: fmt
fmt: ## go fmt.
	go fmt ./...

.PHONY: vet
vet: ## go vet.
	go vet ./...

GOLANGCI_LINT ?= $(shell hack/tool.sh golangci-lint)

# kube-api-linter on the CRD types in api/, with .golangci-kal.yml: a
# golangci-lint with KAL compiled in, built and cached by the script.
KUBE_API_LINT ?= hack/kube-api-lint.sh

.PHONY: lint
lint: ## golangci-lint v2 with .golangci.yml (the binary from hack/tool.sh: release download, else a source build, ~5 min once), then kube-api-linter on api/ (hack/kube-api-lint.sh, .golangci-kal.yml; built once, ~1 min).
	$(GOLANGCI_LINT) run ./...
	$(KUBE_API_LINT) ./api/...

.PHONY: envtest
envtest: ## Print the directory of the envtest binaries (kube-apiserver, etcd), building them if needed.
	@hack/envtest-assets.sh

# Every binary hack/tool.sh provides.
TOOLS := controller-gen helm gotestsum versitygw golangci-lint etcd kube-apiserver kube-controller-manager kube-scheduler kwok

.PHONY: tools
tools: ## Put every pinned tool in ~/.cache/parser-operator: the release download, else a source build (PARSER_OPERATOR_OFFLINE=1: build only).
	@for t in $(TOOLS); do hack/tool.sh $$t >/dev/null || exit 1; done; echo "tools cached in $${PARSER_OPERATOR_CACHE:-$$HOME/.cache/parser-operator}"

.PHONY: test
test: manifests generate vet ## Run every test (unit, golden, real nginx/redis/rabbitmq, envtest, chart, leader election) and print the summary.
	hack/test.sh

##@ Chart

HELM ?= $(shell hack/tool.sh helm)
CHART := charts/parser-operator
CHART_TEMPLATE = $(HELM) template parser-operator $(CHART) --namespace parser-operator-system

.PHONY: chart
chart: ## Copy the generated CRD and RBAC rules from config/ into the Helm chart (after `make manifests`).
	hack/sync-chart.sh

.PHONY: chart-check
chart-check: ## Check the Helm chart: in sync with config/, lint, render, schema refusals, parity with kustomize.
	hack/sync-chart.sh --check
	$(HELM) lint --strict $(CHART)
	@for f in $(CHART)/ci/*-values.yaml; do echo "lint + template -f $$f"; \
	  $(HELM) lint --strict $(CHART) -f $$f >/dev/null && $(CHART_TEMPLATE) -f $$f >/dev/null || exit 1; done
	$(CHART_TEMPLATE) >/dev/null
	$(CHART_TEMPLATE) --set-json 'watchNamespaces=["team-a","team-b"]' --set serviceMonitor.enabled=true --set replicas=2 >/dev/null
	@echo "values.schema.json must refuse replicas=0:"; \
	  if out=$$($(CHART_TEMPLATE) --set replicas=0 2>&1); then echo "  accepted: the schema is not enforced"; exit 1; fi; \
	  echo "$$out" | grep "at '/replicas': minimum" || { echo "$$out"; exit 1; }
	@echo "the Go tests of test/install (parity with kustomize, helm install on a real API server) run in make test"

##@ Benchmarks

# Flags for the benchmark program, e.g. BENCH_ARGS='--operator-args="--max-concurrent-reconciles=8"'.
BENCH_ARGS ?=

.PHONY: bench
bench: ## Benchmark on a local control plane: 1 platform vs kubectl and a plain client, 300 platforms, idle, churn, trickle and restart; then cache migrations on a simulated cluster with real redis-servers (~15 min).
	hack/install-test-deps.sh
	hack/simcluster.sh tools
	KUBEBUILDER_ASSETS=$$(hack/envtest-assets.sh) go run ./test/bench $(BENCH_ARGS)

.PHONY: bench-ci
bench-ci: ## The benchmark at CI size (5 platforms, 5 s idle, 10 s churn, 5 s trickle, a 5,000-key migration): proves the program runs; asserts no timing.
	hack/install-test-deps.sh
	hack/simcluster.sh tools
	KUBEBUILDER_ASSETS=$$(hack/envtest-assets.sh) go run ./test/bench --platforms=5 --namespaces=5 --repeat=1 --idle=5s --churn=10s --churn-period=5s --trickle=5s --migration-keys=5000 $(BENCH_ARGS)

##@ E2E

# The suite starts its own simulated cluster (test/e2e/simcluster): etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler and kwok, downloaded
# or, offline, built from the Go module proxy and cached by hack/tool.sh (a
# first build takes ~15 min on 2 cores), plus real PostgreSQL, RabbitMQ and Redis servers behind the pods
# (Debian's, installed by hack/install-test-deps.sh). The e2e build tag keeps it out of `make test`.
E2E_TIMEOUT ?= 30m
E2E_FLAGS ?=

.PHONY: e2e
e2e: ## Run the e2e suite on a simulated cluster (~7 min: real PostgreSQL, RabbitMQ and Redis behind the pods; a first offline run builds its binaries, ~15 min more).
	hack/install-test-deps.sh
	hack/simcluster.sh tools
	go vet -tags e2e ./test/e2e/...
	go test -tags e2e -count=1 -timeout $(E2E_TIMEOUT) ./test/e2e -v -ginkgo.v $(E2E_FLAGS)

.PHONY: simcluster
simcluster: ## Run the simulated cluster in the foreground until Ctrl-C (prints its KUBECONFIG).
	hack/simcluster.sh run

##@ Run

.PHONY: demo
demo: ## Start a simulated cluster, run the operator on config/samples until Ready and show the platform (DEMO_KEEP=1 keeps it running).
	hack/demo.sh

.PHONY: run
run: manifests generate ## Run the operator against the cluster of the current kubeconfig.
	go run ./cmd --metrics-bind-address=:8080 --metrics-secure=false

##@ Build

.PHONY: build
build: manifests generate ## Build the operator binary into bin/.
	CGO_ENABLED=0 go build -trimpath -o bin/parser-operator ./cmd

.PHONY: docker-build
docker-build: ## Build the operator image (needs a Docker engine).
	docker build -t $(IMG) .

##@ Deployment

.PHONY: install
install: manifests ## Install the CRD into the cluster of the current kubeconfig.
	kubectl apply --server-side -f config/crd/bases

.PHONY: uninstall
uninstall: ## Remove the CRD (and with it every ParserPlatform!).
	kubectl delete -f config/crd/bases

.PHONY: deploy
deploy: manifests ## Install CRD, RBAC and operator with kustomize.
	kubectl apply --server-side -k config/default
