"""The VM's scripts the user-data writes: the setup recorder (`STEP_TOOL`), the first-boot setup,
the model pulls and the VM's own TLS key."""

from __future__ import annotations

from remote_ollama.spec.names import (
    PROXY_PORT,
    VM_TLS_SERVER_NAME,
)

from .download import DOWNLOAD_FUNCTIONS, NVIDIA_LIST_PATH
from .nvidia_key import NVIDIA_KEY_FUNCTION, NVIDIA_KEYRING_PATH
from .paths import (
    IMAGE_PATH,
    MODELS_PATH,
    NGINX_SITE_PATH,
    SETUP_DOC_PATH,
    SETUP_LOG_PATH,
    STEP_TOOL_PATH,
    TLS_CERT_PATH,
    TLS_ID_PATH,
    TLS_KEY_PATH,
    TLS_KEY_SCRIPT_PATH,
)
from .volume import VOLUME_STEP, volume_steps

STEP_TOOL = f"""\
#!/usr/bin/python3
# remote-ollama: record the VM's setup in {SETUP_DOC_PATH} (nginx serves it over mutual TLS).
# begin STEP...: a fresh document for this run | mark STEP STATE | fail STEP | pull MODEL | finish
import hashlib, json, os, re, sys, time, urllib.request

DOC, LOG = "{SETUP_DOC_PATH}", "{SETUP_LOG_PATH}"
SECRET = re.compile(r"-----BEGIN.*|[A-Za-z0-9+/_-]{{32,}}=*")


def this_run():
    with open("{TLS_CERT_PATH}") as f:
        body = "".join(line.strip() for line in f if not line.startswith("-----"))
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def load():
    # this run's document; a fresh one over another run's (a baked disk's, written at its boot)
    try:
        with open(DOC) as f:
            doc = json.load(f)
        if doc.get("run") == this_run():
            return doc
    except (OSError, ValueError):
        pass
    return {{"version": 1, "run": this_run(), "state": "running", "step": "", "steps": []}}


def save(doc):
    os.makedirs(os.path.dirname(DOC), exist_ok=True)
    os.chmod(os.path.dirname(DOC), 0o755)
    with open(DOC + ".tmp", "w") as f:
        json.dump(doc, f)
    os.chmod(DOC + ".tmp", 0o644)
    os.replace(DOC + ".tmp", DOC)


def mark(doc, name, state, **extra):
    doc["step"] = name
    found = [step for step in doc["steps"] if step["name"] == name]
    if not found:
        doc["steps"].append({{"name": name}})
        found = doc["steps"][-1:]
    found[0].update(state=state, **extra)


def there(model):
    # Ollama has the model (its files are in the model directory): no pull
    body = json.dumps({{"model": model}}).encode()
    try:
        urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:{PROXY_PORT}/api/show", body), timeout=60)
        return True
    except (OSError, ValueError):
        return False


cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "begin":
    with open("{MODELS_PATH}") as f:
        names = args + ["model:" + m.strip() for m in f if m.strip()]
    save({{"version": 1, "run": this_run(), "state": "running", "step": args[0],
          "steps": [{{"name": n, "state": "pending"}} for n in names]}})
    sys.exit(0)
doc = load()
if cmd == "mark":
    mark(doc, args[0], args[1])
elif cmd == "fail":
    mark(doc, args[0], "failed")
    doc["state"] = "failed"
    with open(LOG, errors="replace") as f:
        doc["log"] = [SECRET.sub("[redacted]", line)[:200] for line in f.read().splitlines()[-12:]]
elif cmd == "finish":
    doc["state"] = "done"
elif cmd == "pull" and there(args[0]):  # on the model volume or a baked disk already
    mark(doc, "model:" + args[0], "present")
elif cmd == "pull":
    name, shown = "model:" + args[0], 0.0
    mark(doc, name, "running")
    save(doc)
    body = json.dumps({{"model": args[0]}}).encode()
    req = urllib.request.Request("http://127.0.0.1:{PROXY_PORT}/api/pull", body)
    with urllib.request.urlopen(req, timeout=7200) as resp:
        for raw in resp:
            line = json.loads(raw)
            if "error" in line:
                print(line["error"])
                sys.exit(1)
            if line.get("total") and time.monotonic() - shown > 1:
                mark(doc, name, "running", done=line.get("completed", 0), total=line["total"])
                save(doc)
                shown = time.monotonic()
    mark(doc, name, "done")
save(doc)
"""

PULL_SCRIPT = f"""\
#!/bin/sh
# At every boot: wait for Ollama, then pull every model in {MODELS_PATH} (a present one is only
# checked), recording each step in the setup status document.
set -eu
exec >>{SETUP_LOG_PATH} 2>&1
STEP={STEP_TOOL_PATH}
NOW=ollama
trap '[ $? -eq 0 ] || "$STEP" fail "$NOW"' EXIT
"$STEP" mark ollama running
i=0
until curl -fsS -o /dev/null http://127.0.0.1:{PROXY_PORT}/api/version; do
  i=$((i + 1)); [ "$i" -lt 300 ] || exit 1; sleep 2
done
"$STEP" mark ollama done
while IFS= read -r model || [ -n "$model" ]; do
  [ -n "$model" ] || continue
  NOW="model:$model"
  "$STEP" pull "$model"
done < {MODELS_PATH}
"$STEP" finish
"""

TLS_KEY_SCRIPT = f"""\
#!/bin/sh
# The VM's own TLS key and self-signed certificate, made on the VM at first boot: no private key is
# ever in user-data. The operator pins this certificate at its first contact (design section 5).
# (openssl comes with ca-certificates.)
set -eu
umask 077
# Kept across reboots of this instance (the operator pinned it), made anew for a new instance: a VM
# booted from a template baked from another VM's disk never serves that VM's key.
ID=$(cat /var/lib/cloud/data/instance-id 2>/dev/null || echo unknown)
[ -s {TLS_KEY_PATH} ] && [ -s {TLS_CERT_PATH} ] && [ "$(cat {TLS_ID_PATH} 2>/dev/null)" = "$ID" ] && exit 0
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \\
  -subj "/O=remote-ollama/CN={VM_TLS_SERVER_NAME}" -addext "subjectAltName=DNS:{VM_TLS_SERVER_NAME}" \\
  -addext "basicConstraints=critical,CA:FALSE" -addext "keyUsage=critical,digitalSignature,keyAgreement" \\
  -addext "extendedKeyUsage=serverAuth" -keyout {TLS_KEY_PATH}.new -out {TLS_CERT_PATH}.new 2>/dev/null
chmod 0644 {TLS_CERT_PATH}.new
mv {TLS_KEY_PATH}.new {TLS_KEY_PATH}
mv {TLS_CERT_PATH}.new {TLS_CERT_PATH}
echo "$ID" > {TLS_ID_PATH}
"""

SETUP_SCRIPT = f"""\
#!/bin/sh
# First boot of an instance: nginx (mutual TLS), GPU driver, NVIDIA container toolkit, the Ollama
# image, then the Ollama services. Each step is recorded (and skipped when already there, as on a
# disk baked from an earlier VM). No xtrace: nothing this script reads may end up in its log.
set -eu
umask 077
exec >>{SETUP_LOG_PATH} 2>&1
{TLS_KEY_SCRIPT_PATH}
STEP={STEP_TOOL_PATH}
"$STEP" begin nginx driver docker image {volume_steps()} ollama
NOW=nginx
trap '[ $? -eq 0 ] || "$STEP" fail "$NOW"' EXIT
run() {{ NOW=$1; echo "== $1"; "$STEP" mark "$1" running; }}
ok() {{ "$STEP" mark "$NOW" "${{1:-done}}"; }}
{DOWNLOAD_FUNCTIONS}IMAGE=$(cat {IMAGE_PATH})
{NVIDIA_KEY_FUNCTION}
run nginx
chmod 0600 {TLS_KEY_PATH}
rm -f /etc/nginx/sites-enabled/default
ln -sf {NGINX_SITE_PATH} /etc/nginx/conf.d/remote-ollama.conf
nginx -t
systemctl enable nginx
systemctl restart nginx
ok

# NVIDIA driver (stock Ubuntu templates carry none)
run driver
export DEBIAN_FRONTEND=noninteractive
if nvidia-smi >/dev/null 2>&1; then ok present; else
  ubuntu-drivers install --gpgpu || apt-get install -y nvidia-headless-550-server nvidia-utils-550-server
  ok
fi

# NVIDIA container toolkit, so that docker run --gpus all works
run docker
if grep -qs nvidia /etc/docker/daemon.json; then ok present; else
  nvidia_key {NVIDIA_KEYRING_PATH}  # only the key of the pinned fingerprint (vm/nvidia_key.py)
  nvidia_list {NVIDIA_LIST_PATH}  # a failed download fails this step (vm/download.py)
  apt-get update
  apt-get install -y nvidia-container-toolkit
  nvidia-ctk runtime configure --runtime=docker
  systemctl restart docker
  ok
fi

run image
if docker image inspect "$IMAGE" >/dev/null 2>&1; then ok present; else docker pull -q "$IMAGE"; ok; fi

# the model volume (spec.coldStart.modelVolume), mounted at Ollama's model directory before it starts
{VOLUME_STEP}
systemctl daemon-reload
systemctl enable remote-ollama-ollama.service remote-ollama-models.service
if nvidia-smi; then
  systemctl restart remote-ollama-ollama.service
  systemctl restart --no-block remote-ollama-models.service
else
  # the new kernel module loads only after a reboot; the enabled units take over then
  systemctl reboot
fi
"""
