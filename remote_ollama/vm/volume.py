"""The VM's side of spec.coldStart.modelVolume: a script that puts Ollama's model directory on the
block-storage volume the operator attaches, before Ollama starts.

The user-data names the volume (VOLUME_PATH holds its id; absent: no volume). The setup's `volume`
step waits for the block device (by the serial virtio gives it, the id's first 20 characters, else
the one disk that is not the root disk), formats it only when it holds no filesystem, mounts it
at MODEL_DIR (the directory the Ollama container keeps its models in) and records it in fstab by
UUID with `nofail`, so a start from stopped mounts it again and a boot without it still comes up.
A drop-in makes the Ollama unit wait for that mount. It prints `present` when the volume held a
filesystem already (the models on it are then found by the pulls), `done` when it was blank. With
no volume, a copy of these settings on a disk baked from a VM that had one is removed.
"""

from __future__ import annotations

from .paths import CONF_DIR

VOLUME_PATH = f"{CONF_DIR}/volume"
VOLUME_SCRIPT_PATH = "/usr/local/sbin/remote-ollama-volume"
MODEL_DIR = "/var/lib/ollama"  # the Ollama container's /root/.ollama
VOLUME_LABEL = "ollama-models"
VOLUME_WAIT = 300  # seconds the step waits for the device before it fails
_DROP_IN = "/etc/systemd/system/remote-ollama-ollama.service.d/volume.conf"

VOLUME_SCRIPT = f"""\
#!/bin/sh
# remote-ollama: the model volume (its id as $1; none: undo a baked disk's copy), before Ollama starts.
set -eu
DIR={MODEL_DIR}
sed -i '\\#^UUID=[^ ]* {MODEL_DIR} #d' /etc/fstab
if [ -z "${{1:-}}" ]; then rm -f {_DROP_IN}; exit 0; fi
SERIAL=$(printf %s "$1" | cut -c1-20)
ROOT=/dev/$(lsblk -ndo PKNAME "$(findmnt -no SOURCE /)")
device() {{
  [ -b "/dev/disk/by-id/virtio-$SERIAL" ] && {{ readlink -f "/dev/disk/by-id/virtio-$SERIAL"; return; }}
  lsblk -dnpo NAME,TYPE | awk -v root="$ROOT" '$2 == "disk" && $1 != root {{ print $1; exit }}'
}}
i=0
until DEV=$(device) && [ -n "$DEV" ]; do
  i=$((i + 1))
  [ "$i" -lt {VOLUME_WAIT // 2} ] || {{ echo "volume $1 not attached after {VOLUME_WAIT} s" >&2; exit 1; }}
  sleep 2
done
STATE=present
if ! blkid "$DEV" >/dev/null 2>&1; then mkfs.ext4 -q -L {VOLUME_LABEL} "$DEV"; STATE=done; fi
echo "UUID=$(blkid -s UUID -o value "$DEV") $DIR ext4 defaults,nofail 0 2" >> /etc/fstab
mkdir -p "$DIR" "$(dirname {_DROP_IN})"
mountpoint -q "$DIR" || mount "$DIR"
printf '[Unit]\\nRequiresMountsFor=%s\\n' "$DIR" > {_DROP_IN}
echo "$STATE"
"""

# The setup script's step (vm/cloudinit.py SETUP_SCRIPT, after the image, before Ollama's start).
VOLUME_STEP = f"""\
if [ -s {VOLUME_PATH} ]; then
  run volume
  MOUNTED=$({VOLUME_SCRIPT_PATH} "$(cat {VOLUME_PATH})")
  ok "$MOUNTED"
else
  {VOLUME_SCRIPT_PATH}
fi
"""


def volume_steps() -> str:
    """The step names `remote-ollama-step begin` gets for the volume: listed only when there is one."""
    return f"$([ -s {VOLUME_PATH} ] && echo volume || true)"
