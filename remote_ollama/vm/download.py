"""Downloads in the VM's setup script that fail their step when the download fails.

The setup script runs under dash, which has no `pipefail`: `curl URL | sed ... > FILE` takes the
status of `sed`, so a failed download left an empty (or half) apt source behind and the setup
failed later, at apt, naming the wrong cause. Here each download goes to a file of its own with
`curl -f`, its exit status is checked, and only a whole download is transformed and moved into
place: on failure the step fails naming the URL (the setup recorder records it) and nothing is left.
"""

from __future__ import annotations

from .nvidia_key import NVIDIA_KEYRING_PATH

NVIDIA_LIST_URL = "https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list"
NVIDIA_LIST_PATH = "/etc/apt/sources.list.d/nvidia-container-toolkit.list"

# POSIX sh functions for the setup script. Each failure is a `return 1`, which fails the step under
# `set -e` (and the caller's `|| return 1` when it runs in a condition, where `set -e` is off).
# `download URL FILE`: FILE holds the whole download or does not exist.
# `nvidia_list LIST`: NVIDIA's apt source, signed-by the pinned keyring (vm/nvidia_key.py).
DOWNLOAD_FUNCTIONS = f"""\
download() {{
  rm -f "$2" "$2.part"
  if ! curl -fsSL "$1" -o "$2.part"; then
    rm -f "$2.part"
    echo "download failed: $1"
    return 1
  fi
  mv "$2.part" "$2"
}}
nvidia_list() {{
  download {NVIDIA_LIST_URL} "$1.download" || return 1
  sed 's#deb https://#deb [signed-by={NVIDIA_KEYRING_PATH}] https://#' "$1.download" > "$1.new" || return 1
  rm -f "$1.download"
  mv "$1.new" "$1"
}}
"""
