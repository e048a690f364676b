#!/usr/bin/env bash
# Builds, from KubeVirt's own source at the version hack/kubevirt/go.mod pins,
# what the KubeVirt provider's tests install on their kube-apiserver:
#   bin/kubevirt/<version>/crds/       KubeVirt's CRDs with their OpenAPI validation, as virt-operator makes them,
#                                      and CDI's DataVolume CRD, made by controller-gen from the kubebuilder
#                                      markers of CDI's API module at the version the operator's go.mod pins
#   bin/kubevirt/<version>/webhooks/   virt-api's ValidatingWebhookConfiguration for the webhooks served below
#   bin/kubevirt/<version>/virt-api-webhook   virt-api's validating admitters, served over HTTPS
# Everything compiles from the module proxy (hack/kubevirt is a module of its
# own: KubeVirt pins k8s.io/* at other versions than the operator). The output
# is kept until hack/kubevirt changes, so only the first run pays.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/hack/kubevirt"
version="$(awk '$1 == "kubevirt.io/kubevirt" { print $2 }' "$tools/go.mod")"
cdi_api="kubevirt.io/containerized-data-importer-api"
cdi_version="$(awk -v m="$cdi_api" '$1 == m { print $2 }' "$root/go.mod")"
controller_gen="${CONTROLLER_GEN:-$root/bin/controller-gen-$(awk -F'[ =?]+' '$1 == "CONTROLLER_TOOLS_VERSION" { print $2 }' "$root/Makefile")}"
out="$root/bin/kubevirt/$version"
# The stamp is the tools module's source and CDI's API version: a change to the generator, the
# webhook server or the pins rebuilds, anything else reuses the cache.
stamp="$( (cd "$tools" && find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) -print0 | sort -z | xargs -0 sha256sum; echo "$cdi_api $cdi_version") | sha256sum | cut -d' ' -f1)"
if [[ -f "$out/.stamp" && "$(cat "$out/.stamp")" == "$stamp" && -x "$out/virt-api-webhook" ]]; then
  echo "$out"
  exit 0
fi

if [[ ! -x "$controller_gen" ]]; then
  echo "no controller-gen at $controller_gen: run make kubevirt (it builds controller-gen first), or set CONTROLLER_GEN" >&2
  exit 1
fi

echo "building KubeVirt $version's CRDs and virt-api's admission webhook into ${out#$root/}:" >&2
echo "  about 7 minutes on 2 cores the first time (KubeVirt and its k8s.io/* modules compile), under a minute after a change to hack/kubevirt" >&2
start=$SECONDS
rm -rf "$out"
mkdir -p "$out"
export CGO_ENABLED=0
echo "  [1/4] downloading modules ..." >&2
(cd "$tools" && go mod download)
echo "  [2/4] building crd-gen and generating the CRDs and the webhook configuration ... ($((SECONDS - start))s)" >&2
(cd "$tools" && go build -trimpath -o "$out/crd-gen.tmp" ./crd-gen)
"$out/crd-gen.tmp" --out "$out"
rm "$out/crd-gen.tmp"
echo "  [3/4] generating CDI $cdi_version's DataVolume CRD with ${controller_gen#$root/} ... ($((SECONDS - start))s)" >&2
cdi_out="$(mktemp -d)"
trap 'rm -rf "$cdi_out"' EXIT
(cd "$root" && "$controller_gen" crd paths="$cdi_api/pkg/apis/core/v1beta1" output:crd:dir="$cdi_out")
cp "$cdi_out/cdi.kubevirt.io_datavolumes.yaml" "$out/crds/"
echo "  [4/4] building virt-api-webhook ... ($((SECONDS - start))s)" >&2
(cd "$tools" && go build -trimpath -o "$out/virt-api-webhook.tmp" ./virt-api-webhook)
mv "$out/virt-api-webhook.tmp" "$out/virt-api-webhook"
echo "$stamp" >"$out/.stamp"
echo "  done in $((SECONDS - start))s" >&2
echo "$out"
