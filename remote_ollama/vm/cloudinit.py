"""Render the `#cloud-config` user-data that turns a stock Ubuntu VM into the VM of docs/design.md section 5.

The VM runs a pinned Ollama container on 127.0.0.1:11434 with the GPU, and nginx on 0.0.0.0:11435
terminating TLS 1.3 with a server key and self-signed certificate the VM makes itself at first boot
(`TLS_KEY_SCRIPT`, run by the setup script; the operator pins that certificate at first contact),
requiring a client certificate issued by the per-VM CA (the proxy's): mutual TLS, no bearer
secret. The user-data carries public material only: the CA certificate, the scripts and the
configuration (under /etc/remote-ollama, which the simulated VM reads too); no private key, ever.
Containers cannot reach the metadata server (a DOCKER-USER rule), the setup script echoes nothing,
and nginx shows no version. The optional EXOSCALE_OLLAMA_KEY, when a user sets one, is checked in
addition (exact, case-sensitive), documented as weaker: it sits in user-data. This module only ever
sees the VM's own credentials, never the Exoscale ones.

The setup reports itself: every step (nginx, driver, docker, image, ollama, each `model:<name>` with
bytes done/total) is recorded by a small Python tool (`STEP_TOOL`; python3 is on every cloud-init
image) in the setup status document, which nginx serves at SETUP_STATUS_PATH behind the same mutual
TLS before Ollama is up (shape: remote_ollama.core.setup). A failed step records the last log lines
(long opaque strings and PEM blocks redacted). The document names its run (a hash of this VM's own
certificate), so a copy left on a template's disk is never taken for this VM's. Every step checks
first whether what it installs is there (`present`): a VM booted from a baked disk skips them; its
TLS key is made anew (a new instance id), never the baked VM's.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from remote_ollama.spec.names import (
    PROXY_PORT,
    SETUP_HASH_LENGTH,
    SETUP_STATUS_PATH,
    VM_PORT,
    VM_TLS_SERVER_NAME,
)

from .ollama_release import DEFAULT_OLLAMA_IMAGE, env_problems
from .pki import VMCredentials

OLLAMA_IMAGE = DEFAULT_OLLAMA_IMAGE  # spec.ollama.image / OLLAMA_IMAGE override it
MAX_USER_DATA_B64 = 32768

CONF_DIR = "/etc/remote-ollama"
CA_PATH = f"{CONF_DIR}/ca.crt"
TLS_CERT_PATH = f"{CONF_DIR}/tls.crt"
TLS_KEY_PATH = f"{CONF_DIR}/tls.key"
API_KEY_PATH = f"{CONF_DIR}/api-key"
API_KEY_CHECK_PATH = f"{CONF_DIR}/api-key.conf"  # nginx include, 0600 (the nginx master reads it as root)
METADATA_SERVER = "169.254.169.254"
MODELS_PATH = f"{CONF_DIR}/models"
IMAGE_PATH = f"{CONF_DIR}/image"
TLS_ID_PATH = f"{CONF_DIR}/tls.instance-id"  # the instance the key was made for
SETUP_DOC_PATH = "/var/lib/remote-ollama/setup.json"
SETUP_LOG_PATH = "/var/log/remote-ollama-setup.log"
STEP_TOOL_PATH = "/usr/local/sbin/remote-ollama-step"
NGINX_SITE_PATH = f"{CONF_DIR}/nginx.conf"
SETUP_PATH = "/usr/local/sbin/remote-ollama-setup"
TLS_KEY_SCRIPT_PATH = "/usr/local/sbin/remote-ollama-tls-key"
PULL_PATH = "/usr/local/sbin/remote-ollama-pull-models"
OLLAMA_UNIT_PATH = "/etc/systemd/system/remote-ollama-ollama.service"
MODELS_UNIT_PATH = "/etc/systemd/system/remote-ollama-models.service"

# Characters nginx takes literally inside a quoted map key; a generated key (token_urlsafe) always fits.
_API_KEY_RE = re.compile(r"^[A-Za-z0-9_\-.+/=]{16,512}$")
_MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,199}$")


class UserDataError(ValueError):
    """The user-data cannot be rendered or is too large for Exoscale."""


NGINX_SITE = f"""\
# remote-ollama: mutual TLS in front of Ollama (unbuffered, so streams flow token by token)
server {{
    listen {VM_PORT} ssl;
    server_name _;
    server_tokens off;

    ssl_certificate        {TLS_CERT_PATH};
    ssl_certificate_key    {TLS_KEY_PATH};
    ssl_protocols          TLSv1.3;
    ssl_client_certificate {CA_PATH};
    ssl_verify_client      on;
    ssl_verify_depth       1;

    client_max_body_size 0;
    proxy_buffering off;
    proxy_request_buffering off;
    proxy_cache off;
    gzip off;
    proxy_connect_timeout 30s;
    proxy_read_timeout 3600s;
    proxy_send_timeout 3600s;
    send_timeout 3600s;

    location = {SETUP_STATUS_PATH} {{
        default_type application/json;
        alias {SETUP_DOC_PATH};
    }}

    location / {{
{{key_check}}        proxy_pass http://127.0.0.1:{PROXY_PORT};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host 127.0.0.1:{PROXY_PORT};
        proxy_set_header X-Ollama-Key "";
        proxy_set_header Authorization "";
    }}
}}
"""
# Only with EXOSCALE_OLLAMA_KEY: nginx's `!=` compares exactly (a map would ignore case).
KEY_CHECK_INCLUDE = f"        include {API_KEY_CHECK_PATH};\n"
KEY_CHECK = """if ($http_x_ollama_key != "{key}") {{ return 401 '{{"error":"missing or wrong X-Ollama-Key"}}\\n'; }}\n"""

OLLAMA_UNIT = """\
[Unit]
Description=remote-ollama: Ollama container on 127.0.0.1:{port}
After=docker.service
Requires=docker.service

[Service]
# containers must not reach the metadata server (it serves the user-data, keys included)
ExecStartPre=/bin/sh -c 'iptables -C DOCKER-USER -d {metadata}/32 -j REJECT 2>/dev/null \
|| iptables -I DOCKER-USER -d {metadata}/32 -j REJECT'
ExecStartPre=-/usr/bin/docker rm -f ollama
ExecStart=/usr/bin/docker run --rm --name ollama --gpus all -p 127.0.0.1:{port}:{port} \
-v /var/lib/ollama:/root/.ollama -e OLLAMA_KEEP_ALIVE=-1 {env}{image}
ExecStop=/usr/bin/docker stop ollama
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
"""

MODELS_UNIT = f"""\
[Unit]
Description=remote-ollama: pull the models listed in {MODELS_PATH}
After=remote-ollama-ollama.service
Wants=remote-ollama-ollama.service

[Service]
Type=oneshot
ExecStart={PULL_PATH}
Restart=on-failure
RestartSec=15

[Install]
WantedBy=multi-user.target
"""

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
"$STEP" begin nginx driver docker image ollama
NOW=nginx
trap '[ $? -eq 0 ] || "$STEP" fail "$NOW"' EXIT
run() {{ NOW=$1; echo "== $1"; "$STEP" mark "$1" running; }}
ok() {{ "$STEP" mark "$NOW" "${{1:-done}}"; }}
IMAGE=$(cat {IMAGE_PATH})

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
  curl -fsSL https://nvidia.github.io/libnvidia-container/gpgkey \\
    | gpg --batch --yes --dearmor -o /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
  curl -fsSL https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list \\
    | sed 's#deb https://#deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] https://#' \\
    > /etc/apt/sources.list.d/nvidia-container-toolkit.list
  apt-get update
  apt-get install -y nvidia-container-toolkit
  nvidia-ctk runtime configure --runtime=docker
  systemctl restart docker
  ok
fi

run image
if docker image inspect "$IMAGE" >/dev/null 2>&1; then ok present; else docker pull -q "$IMAGE"; ok; fi

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


def setup_hash(ollama_image: str | None = None) -> str:
    """What a baked template holds and a change of which needs a new one (spec.coldStart): the driver
    and toolkit steps, the Ollama image, the nginx config, the units and the recorder; not the models
    (a template boot pulls what is missing) nor the per-VM files (certificates, key, models list)."""
    parts = (
        SETUP_SCRIPT,
        STEP_TOOL,
        PULL_SCRIPT,
        NGINX_SITE,
        OLLAMA_UNIT,
        MODELS_UNIT,
        ollama_image or OLLAMA_IMAGE,
    )
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:SETUP_HASH_LENGTH]


class _LiteralDumper(yaml.SafeDumper):
    """Dump multi-line strings as `|` blocks so the user-data stays readable on the VM."""


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_LiteralDumper.add_representer(str, _str_representer)


def _file(path: str, content: str, permissions: str) -> dict[str, Any]:
    return {"path": path, "content": content, "owner": "root:root", "permissions": permissions}


def render_user_data(
    creds: VMCredentials,
    models: Sequence[str],
    *,
    ollama_image: str | None = None,
    ollama_env: Mapping[str, str] | None = None,
) -> str:
    """The `#cloud-config` document for one resource's VM (see module docstring).

    `ollama_env` (spec.ollama.env) goes to the Ollama
    container as quoted `-e` arguments of the unit's ExecStart; `env_problems` refuses whatever
    could end the quotes or the line.
    """
    ollama_image = ollama_image or OLLAMA_IMAGE
    env = dict(ollama_env or {})
    problems = env_problems(env)
    if problems:
        raise UserDataError("invalid spec.ollama.env: " + "; ".join(problems))
    env_args = "".join(f'"-e" "{name}={value}" ' for name, value in sorted(env.items()))
    if creds.api_key is not None and not _API_KEY_RE.fullmatch(creds.api_key):
        raise UserDataError(
            "VM API key must be 16-512 characters from A-Z a-z 0-9 _ - . + / = (it is matched by nginx)"
        )
    bad = [m for m in models if not _MODEL_RE.fullmatch(m)]
    if bad or not models:
        raise UserDataError(f"invalid model names: {bad!r}" if bad else "at least one model is required")
    if not re.fullmatch(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$", ollama_image):
        raise UserDataError(f"invalid image reference: {ollama_image!r}")
    site = NGINX_SITE.replace("{key_check}", KEY_CHECK_INCLUDE if creds.api_key else "")
    files = [_file(CA_PATH, creds.ca_pem, "0644")]  # public: the VM's own key is made on the VM
    if creds.api_key:  # EXOSCALE_OLLAMA_KEY: an extra, weaker check (it is in user-data)
        files.append(_file(API_KEY_PATH, creds.api_key + "\n", "0600"))
        files.append(_file(API_KEY_CHECK_PATH, KEY_CHECK.format(key=creds.api_key), "0600"))
    unit = OLLAMA_UNIT.format(port=PROXY_PORT, image=ollama_image, env=env_args, metadata=METADATA_SERVER)
    files += [
        _file(MODELS_PATH, "".join(f"{m}\n" for m in models), "0644"),
        _file(IMAGE_PATH, ollama_image + "\n", "0644"),
        _file(NGINX_SITE_PATH, site, "0644"),
        _file(OLLAMA_UNIT_PATH, unit, "0644"),
        _file(MODELS_UNIT_PATH, MODELS_UNIT, "0644"),
        _file(PULL_PATH, PULL_SCRIPT, "0755"),
        _file(TLS_KEY_SCRIPT_PATH, TLS_KEY_SCRIPT, "0755"),
        _file(STEP_TOOL_PATH, STEP_TOOL, "0755"),
        _file(SETUP_PATH, SETUP_SCRIPT, "0755"),
    ]
    doc: dict[str, Any] = {
        "package_update": True,
        "packages": ["docker.io", "nginx", "curl", "gnupg", "ca-certificates", "ubuntu-drivers-common"],
        "write_files": files,
        "runcmd": [[SETUP_PATH]],
    }
    body = yaml.dump(doc, Dumper=_LiteralDumper, sort_keys=False, default_flow_style=False, width=1000)
    return "#cloud-config\n" + body


def encode_user_data(text: str) -> str:
    """Base64 as Exoscale's `user-data` wants it; refuses what Exoscale would reject (> 32768 chars)."""
    encoded = base64.b64encode(text.encode()).decode("ascii")
    if len(encoded) > MAX_USER_DATA_B64:
        raise UserDataError(
            f"user-data is {len(encoded)} base64 characters; Exoscale accepts at most {MAX_USER_DATA_B64} "
            "(fewer or shorter model names would help)"
        )
    return encoded
