#!/usr/bin/env bash
# Builds kube-apiserver, etcd and kubectl from the Go module proxy into
# bin/k8s/<version>/, the folder envtest's KUBEBUILDER_ASSETS points at.
# No binary is downloaded: everything compiles from hack/tools/go.mod, so the
# only network this needs is the module proxy. A binary already built for the
# pinned version is kept, so only the first run pays (about 8 minutes cold).
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

build() { # name package
  local name="$1" pkg="$2"
  if [[ -x "$out/$name" ]]; then
    return
  fi
  echo "building $name ($pkg) into ${out#$root/} ..." >&2
  (cd "$tools" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/$name.tmp" "$pkg")
  mv "$out/$name.tmp" "$out/$name"
}

build etcd go.etcd.io/etcd/server/v3
build kubectl k8s.io/kubernetes/cmd/kubectl
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
echo "$out"
