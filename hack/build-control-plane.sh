#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, etcd and kubectl from the Go module proxy into
# bin/k8s/<version>/, the folder envtest's KUBEBUILDER_ASSETS points at.
# No binary is downloaded: everything compiles from hack/tools/go.mod, so the
# only network this needs is the module proxy. A binary already built for the
# pinned version is kept, so only the first run pays (12-16 minutes cold on 2
# cores), and it says so up front and prints the elapsed time as it goes.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/hack/tools"
k8s_version="$(awk '$1 == "k8s.io/kubernetes" { print $2 }' "$tools/go.mod")"
etcd_version="$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2 }' "$tools/go.mod")"
out="$root/bin/k8s/$k8s_version"
mkdir -p "$out"

minor="${k8s_version#v1.}"
minor="${minor%%.*}"
ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=$k8s_version \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version \
 -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

# shellcheck source=hack/progress.sh
source "$root/hack/progress.sh"

# What is built, and about how long each takes on 2 cores with a cold Go
# build cache (measured on the team's 2-core machines; more cores, less time).
binaries=(
  "etcd go.etcd.io/etcd/server/v3 1-2"
  "kubectl k8s.io/kubernetes/cmd/kubectl 2-3"
  "kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver 5-6"
  "kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager 4-5"
)

missing=()
for b in "${binaries[@]}"; do
  read -r name _ _ <<<"$b"
  [[ -x "$out/$name" ]] || missing+=("$name")
done
if ((${#missing[@]} > 0)); then
  echo "The control plane ($k8s_version) is built once, from the Go module proxy, into ${out#"$root"/}:" >&2
  echo "${missing[*]} to build, about 12-16 minutes in all on 2 cores (kube-apiserver alone 5-6)." >&2
  echo "Later runs reuse it. Elapsed time is printed every ${PROGRESS_INTERVAL:-10} seconds." >&2
fi

for b in "${binaries[@]}"; do
  read -r name pkg minutes <<<"$b"
  if [[ -x "$out/$name" ]]; then
    continue
  fi
  echo "building $name ($pkg), about $minutes minutes on 2 cores ..." >&2
  (cd "$tools" && export CGO_ENABLED=0 && with_progress "building $name" \
    go build -trimpath -ldflags "$ldflags" -o "$out/$name.tmp" "$pkg")
  mv "$out/$name.tmp" "$out/$name"
done
echo "$out"
