"""NVIDIA's container-toolkit repository key, pinned by fingerprint for the VM's setup script.

The key is fetched over HTTPS from nvidia.github.io at first boot; whoever can change what that URL
serves (the site, a CA, a proxy on the path) could otherwise have apt trust their packages, which
then run as root next to the tenant's prompts. The script keeps the key only when the file holds
exactly one primary key and its fingerprint is this one; otherwise the `docker` step fails (the
setup recorder reports it, the VM goes) and apt never sees the file.

The fingerprint: `gpg --show-keys` of https://nvidia.github.io/libnvidia-container/gpgkey as shown
in NVIDIA/nvidia-container-toolkit issue #1460 ("pub rsa4096 2017-09-28 [SCE]
C95B321B61E88C1809C4F759DDCAE044F796ECB0, NVIDIA CORPORATION (Open Source Projects)
<cudatools@nvidia.com>"), the key whose id F796ECB0 an NVIDIA maintainer confirmed as "the correct
one" in NVIDIA/libnvidia-container issue #171. NVIDIA's own install guide publishes the URL, not
the fingerprint. When NVIDIA rotates the key, the step fails naming both fingerprints: update here.
"""

from __future__ import annotations

NVIDIA_KEY_URL = "https://nvidia.github.io/libnvidia-container/gpgkey"
NVIDIA_KEY_FINGERPRINT = "C95B321B61E88C1809C4F759DDCAE044F796ECB0"
NVIDIA_KEYRING_PATH = "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"

# A POSIX sh function for the setup script (dash: no pipefail, so each stage is checked on its own).
# `nvidia_key KEYRING`: fetch (`download`, vm/download.py), print the primary keys' fingerprints,
# compare, then dearmor.
NVIDIA_KEY_FUNCTION = f"""\
nvidia_key() {{
  download {NVIDIA_KEY_URL} "$1.asc" || return 1
  gpg --batch --show-keys --with-colons "$1.asc" > "$1.colons"
  found=$(awk -F: '$1 == "pub" {{ primary = 1; next }} primary && $1 == "fpr" {{ print $10; primary = 0 }}' "$1.colons")
  rm -f "$1.colons"
  if [ "$found" != "{NVIDIA_KEY_FINGERPRINT}" ]; then
    echo "NVIDIA repository key refused: fingerprint $(echo $found) is not the pinned {NVIDIA_KEY_FINGERPRINT}"
    rm -f "$1.asc"
    return 1
  fi
  gpg --batch --yes --dearmor -o "$1" "$1.asc"
  rm -f "$1.asc"
}}
"""
