#!/usr/bin/env bash
# Build the real Ollama for the tests from its Go module, once per machine, into
# ~/.cache/remote-ollama/ollama-<version>-<recipe hash>/ollama. Prints that directory.
# Reuses it when the binary is there; rebuilds when the recipe changes.
# Module zips drop llama.cpp's vendor/ directories, so three header sets come from elsewhere:
# nlohmann/ and stb/ from Debian (nlohmann-json3-dev, libstb-dev), miniaudio/miniaudio.h from the
# PyPI sdist of miniaudio (fetched into the cache, never committed).
set -euo pipefail
recipe="$(cd "$(dirname "$0")/recipe" && pwd)"
version="$(awk '$1 == "github.com/ollama/ollama" && $2 ~ /^v/ {print $2}' "$recipe/go.mod")"
miniaudio_version=1.71
hash="$(cat "$0" "$recipe/go.mod" "$recipe/go.sum" | sha256sum | cut -c1-12)"
cache="${REMOTE_OLLAMA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/remote-ollama}"
dest="$cache/ollama-$version-$hash"

mkdir -p "$cache"
exec 9>"$cache/ollama-build.lock"
flock 9 # a concurrent build (CI + pytest) waits for the first one
if [ ! -x "$dest/ollama" ]; then
  command -v go >/dev/null || { echo "build.sh: the Go toolchain is needed to build $dest" >&2; exit 1; }
  for h in /usr/include/nlohmann/json_fwd.hpp /usr/include/stb/stb_image.h; do
    [ -f "$h" ] || { echo "build.sh: $h is missing (apt-get install nlohmann-json3-dev libstb-dev)" >&2; exit 1; }
  done
  tmp="$(mktemp -d "$cache/.ollama-build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  started=$SECONDS
  echo "build.sh: building ollama $version into $dest" >&2
  hdrs="$tmp/include"
  mkdir -p "$hdrs/miniaudio"
  # pip prepares an sdist's metadata to download it: in a throwaway venv with wheel (seconds), not in
  # an isolated build env (which would build cffi from source for --no-binary :all:)
  python3 -m venv "$tmp/venv"
  "$tmp/venv/bin/pip" install -q --disable-pip-version-check wheel setuptools >&2
  "$tmp/venv/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary :all: --no-build-isolation \
    -d "$tmp" "miniaudio==$miniaudio_version" >&2
  tar -xzf "$tmp/miniaudio-$miniaudio_version.tar.gz" -C "$tmp" "miniaudio-$miniaudio_version/miniaudio/miniaudio.h"
  mv "$tmp/miniaudio-$miniaudio_version/miniaudio/miniaudio.h" "$hdrs/miniaudio/"
  ldflags="-s -w -X github.com/ollama/ollama/version.Version=${version#v}"
  (cd "$recipe" && CGO_ENABLED=1 CGO_CPPFLAGS="-I$hdrs" \
    go build -trimpath -ldflags="$ldflags" -o "$tmp/ollama" github.com/ollama/ollama) >&2
  mkdir -p "$dest"
  mv -f "$tmp/ollama" "$dest/ollama"
  echo "build.sh: built in $((SECONDS - started)) s" >&2
  find "$cache" -maxdepth 1 -name 'ollama-v*' ! -name "ollama-$version-$hash" -exec rm -rf {} + # older recipes
fi
echo "$dest"
