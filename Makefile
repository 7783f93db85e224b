# medseg — build, test and verify. Every tool is pinned and installed with `go install` into
# ./bin, and envtest's kube-apiserver and etcd are built from Go modules by hack/, so a fresh
# machine with only Go can run every target offline from the module proxy.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

GO           ?= go
BIN          := $(CURDIR)/bin
VERSION      ?= $(shell cat VERSION)
IMG          ?= ghcr.io/medseg/medseg:dev
# The version is stamped into both binaries (kubectl medseg version, manager --version).
LDFLAGS      := -s -w -X github.com/medseg/medseg/internal/version.Version=v$(VERSION)

CONTROLLER_GEN_VERSION ?= v0.21.0
KUSTOMIZE_VERSION      ?= v5.8.2
HELM_VERSION           ?= v3.22.0
GOLANGCI_LINT_VERSION  ?= v2.15.0
K8S_VERSION            ?= v1.36.3

CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
GOLANGCI_LINT  := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
HELM           := $(BIN)/helm-$(HELM_VERSION)
KUSTOMIZE      := $(BIN)/kustomize-$(KUSTOMIZE_VERSION)

# Tests that need a real API server read KUBEBUILDER_ASSETS; hack/envtest-assets.sh builds the
# binaries once and caches them outside the repository, and prints their directory.
ENVTEST_ASSETS_CMD = K8S_VERSION=$(K8S_VERSION) hack/envtest-assets.sh

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-16s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: $(CONTROLLER_GEN) $(HELM) ## Generate deepcopy code, the chart README, config/admission from the chart, the krew manifest and the sample Hubble capture.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...
	$(GO) run ./hack/chartdoc charts/medseg
	$(GO) run ./hack/reportschema internal/report docs/report.schema.json
	$(MAKE) krew-manifest
	$(GO) run ./hack/gen-capture config/samples/discovery/capture.jsonpb
	( echo "# Generated from charts/medseg (protectedInputs, default values) by make generate. Do not edit."; \
	  $(HELM) template medseg charts/medseg --kube-version $(K8S_VERSION) --show-only templates/protected-inputs.yaml \
	    --set extraLabels=null | grep -v '^# Source:' ) > config/admission/protected-inputs.yaml

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs and RBAC from markers.
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=medseg-manager paths=./controllers/... output:rbac:artifacts:config=config/rbac
	cp config/crd/bases/*.yaml charts/medseg/files/crds/
	cp config/rbac/role.yaml charts/medseg/files/rbac/role.yaml

.PHONY: fmt
fmt: ## gofmt the tree.
	$(GO) fmt ./...

.PHONY: vet
vet: ## go vet.
	$(GO) vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint.
	$(GOLANGCI_LINT) run ./...

.PHONY: verify
verify: generate manifests $(HELM) $(KUSTOMIZE) ## Regenerate everything and fail if the committed output differs; vet and lint.
	@if [ -n "$$(git status --porcelain -- api config charts plugins docs/report.schema.json)" ]; then \
		echo "generated files are out of date; run 'make generate manifests' and commit:"; \
		git status --porcelain -- api config charts plugins docs/report.schema.json; git --no-pager diff --stat -- api config charts plugins docs/report.schema.json; exit 1; fi
	@if [ -n "$$(gofmt -l $$(git ls-files '*.go'))" ]; then echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; fi
	hack/check-tracked-files.sh
	$(GO) mod tidy -diff
	$(GO) vet ./...
	$(MAKE) lint
	$(HELM) lint charts/medseg --strict --kube-version $(K8S_VERSION)
	$(KUSTOMIZE) build config/default > /dev/null
	$(KUSTOMIZE) build config/samples > /dev/null

.PHONY: test
test: $(HELM) $(KUSTOMIZE) ## Run all tests against a real kube-apiserver and etcd (built from source on first run).
	assets="$$($(ENVTEST_ASSETS_CMD))"; \
	KUBEBUILDER_ASSETS="$$assets" MEDSEG_HELM=$(HELM) MEDSEG_KUSTOMIZE=$(KUSTOMIZE) \
	$(GO) test ./... -count=1 -timeout 20m

.PHONY: chromium
chromium: ## Install headless Chromium and the DejaVu fonts from Debian's packages, if missing (test-browser, bench-report).
	@command -v chromium >/dev/null 2>&1 || { echo "installing chromium from Debian's packages"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium fonts-dejavu-core; }

.PHONY: test-browser
test-browser: chromium ## Check the reports of the live sample hospital and of a 1,000-device hospital in headless Chromium (Debian package): no overflow, tiles and Immediate list in the first viewport, no network request; screenshots and PDF in test/output/report/.
	assets="$$($(ENVTEST_ASSETS_CMD))"; \
	KUBEBUILDER_ASSETS="$$assets" MEDSEG_CHROMIUM="$$(command -v chromium)" MEDSEG_REPORT_DIR=$(CURDIR)/test/output/report \
	$(GO) test ./test/integration -run '^TestLiveReport$$' -count=1 -v -timeout 10m
	MEDSEG_CHROMIUM="$$(command -v chromium)" MEDSEG_REPORT_DIR=$(CURDIR)/test/output/report $(GO) test ./test/browser -count=1 -v -timeout 10m

.PHONY: envtest
envtest: ## Build (or find) the envtest kube-apiserver and etcd and print their directory.
	@$(ENVTEST_ASSETS_CMD)

.PHONY: bench
bench: ## Benchmarks: the pure engines and the report writers (go test -bench), the operator at 1,000 and 10,000 devices (with approval churn and 5,000 exceptions), discover on 1,000,000 Hubble records, the traffic follower, the feeds at 10,000 devices, and the report in Chromium.
	$(GO) test ./internal/risk ./internal/render ./internal/report -run '^$$' -bench . -benchmem
	assets="$$($(ENVTEST_ASSETS_CMD))"; \
	for n in 1000 10000; do \
		KUBEBUILDER_ASSETS="$$assets" MEDSEG_BENCH_N=$$n $(GO) test ./test/bench -run '^TestBench$$' -count=1 -v -timeout 120m || exit 1; \
	done
	MEDSEG_BENCH_RECORDS=1000000 MEDSEG_BENCH_FLOW_DEVICES=1000 MEDSEG_BENCH_FOLLOW_SECONDS=60 \
	$(GO) test ./test/bench -run '^TestBench(Discover|Follower)$$' -count=1 -v -timeout 60m
	assets="$$($(ENVTEST_ASSETS_CMD))"; KUBEBUILDER_ASSETS="$$assets" MEDSEG_BENCH_FEED_N=10000 \
	$(GO) test ./test/bench -run '^TestBenchFeeds$$' -count=1 -v -timeout 60m
	$(MAKE) bench-report
	@if [ -n "$(BENCH_50K)" ]; then $(MAKE) bench-50k; else echo "the 50,000-device run is opt-in: make bench BENCH_50K=1, or make bench-50k"; fi

.PHONY: bench-report
bench-report: chromium ## The auditor's report at 1,000 and 10,000 devices against the 5-device one: build time, HTML/Markdown/JSON size, headless Chromium load time (Debian package) → test/output/bench-report.json.
	MEDSEG_CHROMIUM="$$(command -v chromium)" $(GO) test ./test/bench -run '^TestBenchReport$$' -count=1 -v -timeout 30m

.PHONY: bench-50k
bench-50k: ## Opt-in, about an hour on 2 cores: the operator at 50,000 devices (KEV on 1%, approval churn, 5,000 exceptions).
	assets="$$($(ENVTEST_ASSETS_CMD))"; KUBEBUILDER_ASSETS="$$assets" MEDSEG_BENCH_N=50000 MEDSEG_BENCH_KEV_EVERY=100 \
	$(GO) test ./test/bench -run '^TestBench$$' -count=1 -v -timeout 240m

##@ Build

.PHONY: build
build: ## Build the manager and the kubectl plugin.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="$(LDFLAGS)" -o $(BIN)/manager .
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="$(LDFLAGS)" -o $(BIN)/kubectl-medseg ./cmd/kubectl-medseg

.PHONY: release
release: $(HELM) $(KUSTOMIZE) ## Build the release offline into dist/ (VERSION=x.y.z): binaries, the image as an OCI layout with its SBOM, the chart, the krew manifest, checksums.txt. RELEASE_FLAGS narrows it (e.g. -platforms linux/amd64).
	$(GO) run ./hack/release -version $(VERSION) -out dist -helm $(HELM) $(RELEASE_FLAGS)
	assets="$$($(ENVTEST_ASSETS_CMD))"; KUBEBUILDER_ASSETS="$$assets" MEDSEG_HELM=$(HELM) MEDSEG_KUSTOMIZE=$(KUSTOMIZE) \
	MEDSEG_RELEASE_DIR=$(CURDIR)/dist MEDSEG_RELEASE_VERSION=$(VERSION) $(GO) test ./test/packaging -run '^TestRelease$$' -count=1 -v

.PHONY: krew-manifest
krew-manifest: ## Write plugins/medseg.yaml (the krew manifest) for VERSION; placeholder checksums until make release.
	$(GO) run ./hack/krewmanifest -version $(VERSION) -out plugins/medseg.yaml

.PHONY: demo
demo: ## Run the whole story on a local control plane (no cluster, no internet). DEMO_KEEP=1 keeps it up.
	@assets="$$($(ENVTEST_ASSETS_CMD))"; \
	KUBEBUILDER_ASSETS="$$assets" $(GO) run ./hack/demo

##@ Tools

$(BIN):
	mkdir -p $(BIN)

$(CONTROLLER_GEN): | $(BIN)
	GOBIN=$(BIN) $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(BIN)/controller-gen $@

$(HELM): | $(BIN)
	GOBIN=$(BIN) $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv $(BIN)/helm $@

$(KUSTOMIZE): | $(BIN)
	GOBIN=$(BIN) $(GO) install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	mv $(BIN)/kustomize $@

$(GOLANGCI_LINT): | $(BIN)
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BIN)/golangci-lint $@
