# instance-operator: build, generate, verify and test.
#
# The test command is `make ci` (see README.md; .ci/run runs it). The first run builds
# kube-apiserver, etcd and kubectl from the Go module proxy into bin/k8s/
# (8-11 minutes on 2 cores, with progress); later runs reuse them.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_TOOLS_VERSION ?= v0.23.0
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
# golangci-lint has a module of its own, so its dependencies never touch the
# operator's go.mod nor hack/tools/go.mod (whose versions build the control plane).
GOLANGCI_LINT_VERSION := $(shell awk '$$1 == "github.com/golangci/golangci-lint/v2" { print $$2 }' hack/lint/go.mod)
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
K8S_VERSION := $(shell awk '$$1 == "k8s.io/kubernetes" { print $$2 }' hack/tools/go.mod)
# envtest starts kube-apiserver and etcd from here; tests run kubectl from here.
KUBEBUILDER_ASSETS ?= $(LOCALBIN)/k8s/$(K8S_VERSION)
KUBECTL ?= $(KUBEBUILDER_ASSETS)/kubectl
GO_TEST_FLAGS ?= -timeout 20m
# hack/release builds and publishes the release artefacts (internal/release);
# built once into bin/ (the release-tool target), as go run would relink it each call.
RELEASE ?= $(LOCALBIN)/release
# VERSION=v0.1.0 stamps a release; empty stamps git describe's version.
VERSION ?=
RELEASE_VERSION_FLAGS = $(if $(VERSION),--version=$(VERSION))
# The one definition of the version stamp is internal/release's: this asks it
# (git's commit and date; SOURCE_DATE_EPOCH overrides the date).
VERSION_LDFLAGS = $(shell $(RELEASE) ldflags $(RELEASE_VERSION_FLAGS))
PLATFORMS ?= linux/amd64,linux/arm64
IMAGE_LAYOUT ?= dist/image
# Where a release's image and chart are pushed, and what install.yaml and
# k0rdent's HelmRepository name.
IMAGE_REPO ?= ghcr.io/k0rdent-ai/instance-operator
CHART_REPO ?= oci://ghcr.io/k0rdent-ai/charts

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

# One role per process: the controllers' (config/rbac) from the RBAC markers
# in controllers/, the REST API's (config/restapi) from those in internal/api/.
.PHONY: manifests
manifests: controller-gen ## Generate the CRD and RBAC manifests under config/, and copy what the chart serves of them.
	$(CONTROLLER_GEN) crd paths="./api/..." output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=manager-role paths="./controllers/..." output:rbac:artifacts:config=config/rbac
	$(CONTROLLER_GEN) rbac:roleName=api-role paths="./internal/api/..." output:rbac:artifacts:config=config/restapi
	hack/sync-chart.sh

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: fmt
fmt: ## Run gofmt on the code.
	gofmt -l -w $$(git ls-files --cached --others --exclude-standard '*.go' | grep -v '^hack/tools/')

.PHONY: tidy
tidy: ## Keep go.mod and go.sum tidy (and test/promql's, a module of its own).
	go mod tidy
	cd test/promql && go mod tidy

.PHONY: vet
vet: ## Run go vet.
	go vet ./...
	cd test/promql && go vet ./...

.PHONY: lint
lint: golangci-lint ## Run golangci-lint with .golangci.yml.
	$(GOLANGCI_LINT) run ./...

.PHONY: verify
verify: manifests generate tidy fmt vet lint ## Regenerate everything, lint, and fail if the tree changed.
	@if [ -n "$$(git status --porcelain -- . ':!bin')" ]; then \
		echo "verify: generated files or formatting are out of date:"; \
		git status --porcelain -- . ':!bin'; git diff --stat; exit 1; \
	fi

.PHONY: control-plane
control-plane: ## Build kube-apiserver, kube-controller-manager, etcd and kubectl into bin/k8s/ (cached).
	hack/build-control-plane.sh

.PHONY: kubevirt
kubevirt: controller-gen ## Generate KubeVirt's and CDI's CRDs and build virt-api's admission webhook into bin/kubevirt/ (cached) for the KubeVirt provider's tests.
	CONTROLLER_GEN=$(CONTROLLER_GEN) hack/build-kubevirt-crds.sh

.PHONY: test
test: control-plane kubevirt ## Run all tests on a real kube-apiserver (envtest).
	KUBEBUILDER_ASSETS="$(KUBEBUILDER_ASSETS)" go test $(GO_TEST_FLAGS) ./...

.PHONY: test-promql
test-promql: control-plane ## Parse, unit-test and scrape-check the alerts and the dashboard (test/promql, its own module).
	cd test/promql && KUBEBUILDER_ASSETS="$(KUBEBUILDER_ASSETS)" go test $(GO_TEST_FLAGS) ./...

.PHONY: bench
bench: control-plane ## Print the benchmark figures (BENCH_N=2000 by default; BENCH_N=100 for a short run).
	go build -o $(LOCALBIN)/manager ./cmd
	go build -o $(LOCALBIN)/simcloud ./cmd/simcloud
	go run ./test/bench

.PHONY: bench-scale
bench-scale: control-plane ## Print how cost grows: converge and floor seconds at 500 to 4,000 instances, and the manager's memory holding 1k, 10k and 50k (about 15 minutes).
	go build -o $(LOCALBIN)/manager ./cmd
	go build -o $(LOCALBIN)/simcloud ./cmd/simcloud
	BENCH_SCALE=1 go run ./test/bench

.PHONY: bench-reconciler
bench-reconciler: control-plane ## Print seconds for 1000 instances created at once to reach RUNNING, beside the kube-apiserver's time for their writes.
	KUBEBUILDER_ASSETS="$(KUBEBUILDER_ASSETS)" go test -run '^$$' -bench BenchmarkThousandInstances -benchtime 1x ./controllers/

.PHONY: bench-short
bench-short: ## The short form of make bench that CI runs (small N, short reads).
	$(MAKE) bench BENCH_N=200 BENCH_GET_SECONDS=1 BENCH_SHORT=1

.PHONY: test-reliability
test-reliability: control-plane ## Crash, fault, hostile-client and fuzz checks (RELIABILITY_N=500 by default).
	go build -o $(LOCALBIN)/manager ./cmd
	go build -o $(LOCALBIN)/simcloud ./cmd/simcloud
	go run ./test/reliability

.PHONY: test-reliability-short
test-reliability-short: ## The short form of make test-reliability that CI runs.
	$(MAKE) test-reliability RELIABILITY_N=50 RELIABILITY_CLIENTS=50 RELIABILITY_HOSTILE_SECONDS=5 RELIABILITY_FUZZ_SECONDS=5

.PHONY: ci
ci: verify release test test-promql bench-short test-reliability-short ## The README's test command: what CI runs.

##@ Build

.PHONY: build
build: release-tool ## Build the manager binary, stamped with the version (manager --version).
	go build -ldflags "$(VERSION_LDFLAGS)" -o $(LOCALBIN)/manager ./cmd

.PHONY: image
image: release-tool ## Build the manager image for PLATFORMS as an OCI layout in dist/image (no Docker) and print its digest.
	$(RELEASE) image --platforms $(PLATFORMS) --out $(IMAGE_LAYOUT) $(RELEASE_VERSION_FLAGS)

.PHONY: image-push
image-push: release-tool ## Push the image in dist/image to IMG=registry/repo:tag (make image first if it is not built).
	@if [ -z "$(IMG)" ]; then echo "image-push: set IMG=registry/repo:tag"; exit 1; fi
	@if [ ! -f $(IMAGE_LAYOUT)/index.json ]; then $(MAKE) image; fi
	$(RELEASE) push-image --layout $(IMAGE_LAYOUT) --ref $(IMG)

.PHONY: release-tool
release-tool:
	go build -o $(RELEASE) ./hack/release

.PHONY: release
release: image ## Write dist/: the image layout, install.yaml (image pinned by digest), the packaged chart and dist/k0rdent/.
	$(RELEASE) install-yaml --layout $(IMAGE_LAYOUT) --image $(IMAGE_REPO) --out dist/install.yaml $(RELEASE_VERSION_FLAGS)
	$(RELEASE) chart --out dist $(RELEASE_VERSION_FLAGS)
	$(RELEASE) k0rdent --chart-repo $(CHART_REPO) --out dist/k0rdent $(RELEASE_VERSION_FLAGS)
	@ls -d dist/image/index.json dist/install.yaml dist/instance-operator-*.tgz dist/k0rdent/servicetemplate.yaml

.PHONY: release-push
release-push: release-tool ## Push the release of make release: the image to IMAGE_REPO (tagged with the version) and the chart to CHART_REPO.
	$(RELEASE) push-image --layout $(IMAGE_LAYOUT) --ref $(IMAGE_REPO):$$($(RELEASE) version $(RELEASE_VERSION_FLAGS))
	$(RELEASE) push-chart --dir dist --repo $(CHART_REPO) $(RELEASE_VERSION_FLAGS)

.PHONY: run
run: control-plane ## Run the whole product on this machine, in the foreground (Ctrl-C stops it).
	go build -o $(LOCALBIN)/manager ./cmd
	go build -o $(LOCALBIN)/simcloud ./cmd/simcloud
	go build -o $(LOCALBIN)/devstack ./cmd/devstack
	$(LOCALBIN)/devstack

.PHONY: clean-dev
clean-dev: ## Wipe the local stack's data (etcd, simulated cloud, kubeconfig, token) in bin/dev.
	rm -rf $(LOCALBIN)/dev

##@ Deployment

.PHONY: install
install: manifests ## Install the CRDs and the finalizer's admission policy into the cluster of the current kubeconfig.
	$(KUBECTL) apply -k config/crd
	$(KUBECTL) apply -k config/admission

.PHONY: uninstall
uninstall: ## Remove the admission policy and the CRDs from the cluster of the current kubeconfig.
	$(KUBECTL) delete --ignore-not-found -k config/admission
	$(KUBECTL) delete --ignore-not-found -k config/crd

##@ Tools

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN)
$(CONTROLLER_GEN):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN)/.controller-gen-$(CONTROLLER_TOOLS_VERSION) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/.controller-gen-$(CONTROLLER_TOOLS_VERSION)/controller-gen $(CONTROLLER_GEN)
	rmdir $(LOCALBIN)/.controller-gen-$(CONTROLLER_TOOLS_VERSION)

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT)
$(GOLANGCI_LINT): hack/lint/go.mod
	@mkdir -p $(LOCALBIN)
	@echo "building golangci-lint $(GOLANGCI_LINT_VERSION) into bin/ (once: 2-8 minutes on 2 cores, depending on load)"
	go build -C hack/lint -o $(GOLANGCI_LINT).tmp github.com/golangci/golangci-lint/v2/cmd/golangci-lint
	mv $(GOLANGCI_LINT).tmp $(GOLANGCI_LINT)
