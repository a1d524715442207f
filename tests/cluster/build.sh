#!/usr/bin/env bash
# Build the test control plane (kube-apiserver, kube-controller-manager, etcd) and helm from their
# Go modules, once per machine, into ~/.cache/remote-ollama/kube-<version>-<recipe hash>/.
# Prints that directory. Reuses it when every binary is there; rebuilds when the recipe changes.
# One `go build` for all four commands so they share compilation (they share most dependencies).
set -euo pipefail
recipe="$(cd "$(dirname "$0")/recipe" && pwd)"
version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2}' "$recipe/go.mod")"
helm_version="$(awk '$1 == "helm.sh/helm/v4" && $2 ~ /^v/ {print $2}' "$recipe/go.mod")"
hash="$(cat "$0" "$recipe/go.mod" "$recipe/go.sum" "$recipe/etcd/main.go" | sha256sum | cut -c1-12)"
cache="${REMOTE_OLLAMA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/remote-ollama}"
dest="$cache/kube-$version-$hash"
bins=(kube-apiserver kube-controller-manager etcd helm)

complete() {
  local b
  for b in "${bins[@]}"; do [ -x "$dest/$b" ] || return 1; done
}

mkdir -p "$cache"
exec 9>"$cache/build.lock"
flock 9 # a concurrent build (CI + pytest fixture) waits for the first one
if ! complete; then
  command -v go >/dev/null || { echo "build.sh: the Go toolchain is needed to build $dest" >&2; exit 1; }
  tmp="$(mktemp -d "$cache/.build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  started=$SECONDS
  echo "build.sh: building kube-apiserver, kube-controller-manager, etcd, helm ($version) into $dest" >&2
  # the versions the servers report (/version: Helm checks the chart's kubeVersion against it)
  minor="${version#v1.}"
  minor="${minor%%.*}"
  kv=k8s.io/component-base/version
  ldflags="-s -w -X $kv.gitVersion=$version -X $kv.gitMajor=1 -X $kv.gitMinor=$minor -X $kv.gitTreeState=clean"
  ldflags+=" -X helm.sh/helm/v4/internal/version.version=$helm_version"
  (cd "$recipe" && CGO_ENABLED=0 go build -trimpath -ldflags="$ldflags" -o "$tmp/" tool ./etcd) >&2
  mkdir -p "$dest"
  for b in "${bins[@]}"; do mv -f "$tmp/$b" "$dest/$b"; done
  echo "build.sh: built in $((SECONDS - started)) s" >&2
  find "$cache" -maxdepth 1 -name 'kube-*' ! -name "kube-$version-$hash" -exec rm -rf {} + # older recipes
fi
echo "$dest"
