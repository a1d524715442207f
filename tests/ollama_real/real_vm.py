"""The "real VM" mode of the test world: each running simulated instance is Debian's nginx, run with
the exact site config its user-data writes and the key and certificate its key script makes (real
openssl, as the setup script runs it at first boot), in front of the real `ollama serve`.
Only the Exoscale API stays simulated (`ExoscaleSimulator(machines=RealVMFleet(...))`).

The files go where cloud-init would put them, under a per-boot directory instead of
/etc/remote-ollama; the key is made once per instance on its "disk" (a per-instance directory)
and kept across boots, as a VM's is. The site's directives are kept as written, with three
substitutions a test machine needs: that directory for /etc/remote-ollama, the instance's
loopback address on its `listen` line, and the real Ollama's port for the one the VM's container
would publish.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import yaml
from cluster.control_plane import _die_with_parent

from remote_ollama.sandbox.exoscale.objects import Instance
from remote_ollama.sandbox.fleet import LoopbackPool
from remote_ollama.spec.names import PROXY_PORT, VM_PORT
from remote_ollama.vm.paths import CONF_DIR, NGINX_SITE_PATH, TLS_CERT_PATH, TLS_KEY_PATH, TLS_KEY_SCRIPT_PATH

log = logging.getLogger(__name__)

# Debian's /etc/nginx/nginx.conf (bookworm), with paths in the instance's directory; the site is
# what the user-data's setup script links into conf.d.
MAIN_CONF = """\
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
{user}
events {{ worker_connections 768; }}
http {{
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    ssl_prefer_server_ciphers on;
    access_log {dir}/access.log;
    gzip on;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    include {dir}{site};
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)


def write_vm_files(user_data: str, root: Path) -> None:
    """cloud-init's write_files, under `root` instead of / (only the remote-ollama files)."""
    doc = yaml.safe_load(base64.b64decode(user_data))
    for entry in doc["write_files"]:
        path = str(entry["path"])
        if not path.startswith(CONF_DIR + "/"):
            continue
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(str(entry["content"]))
        target.chmod(int(str(entry.get("permissions", "0644")), 8))


def make_vm_key(user_data: str, disk: Path, root: Path) -> None:
    """The user-data's key script run with its paths under `disk` (idempotent: a disk keeps its key
    across boots), then the key and certificate copied where this boot's nginx reads them."""
    doc = yaml.safe_load(base64.b64decode(user_data))
    scripts = [str(e["content"]) for e in doc["write_files"] if e["path"] == TLS_KEY_SCRIPT_PATH]
    if not scripts:  # a user-data of before enrolment carries the key itself
        return
    (disk / CONF_DIR.lstrip("/")).mkdir(parents=True, exist_ok=True)
    script = disk / "tls-key"
    script.write_text(scripts[0].replace(CONF_DIR, f"{disk}{CONF_DIR}"))
    subprocess.run(["sh", str(script)], check=True)
    for path in (TLS_CERT_PATH, TLS_KEY_PATH):
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(disk / path.lstrip("/"), target)


def site_config(root: Path, ip: str, port: int, ollama_port: int) -> str:
    """The user-data's nginx site with the three substitutions (module docstring)."""
    site = (root / NGINX_SITE_PATH.lstrip("/")).read_text()
    site = site.replace(CONF_DIR + "/", f"{root}{CONF_DIR}/")
    site = site.replace(f"listen {VM_PORT} ssl;", f"listen {ip}:{port} ssl;")
    return site.replace(f"127.0.0.1:{PROXY_PORT}", f"127.0.0.1:{ollama_port}")


class RealVM:
    """nginx for one instance, started from its user-data."""

    def __init__(self, instance: Instance, workdir: Path, port: int, ollama_port: int):
        self.instance, self.port = instance, port
        self.dir = workdir / f"{instance.id}-{time.monotonic_ns()}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.problem: str | None = None
        assert instance.user_data and instance.public_ip
        write_vm_files(instance.user_data, self.dir)
        make_vm_key(instance.user_data, workdir / f"{instance.id}-disk", self.dir)
        (self.dir / NGINX_SITE_PATH.lstrip("/")).write_text(
            site_config(self.dir, instance.public_ip, port, ollama_port)
        )
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.dir / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        user = "user root;" if os.geteuid() == 0 else ""
        (self.dir / "nginx-main.conf").write_text(
            MAIN_CONF.format(dir=self.dir, user=user, site=NGINX_SITE_PATH)
        )

    def start(self) -> None:
        binary = nginx_binary()
        assert binary, "nginx is needed for the real VM (apt-get install nginx-light; .ci/run does)"
        with (self.dir / "nginx.out").open("ab") as out:
            self.proc = subprocess.Popen(
                [binary, "-c", str(self.dir / "nginx-main.conf"), "-p", str(self.dir)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def stop(self) -> None:
        """Power off: nginx's fast shutdown (SIGTERM) closes every connection."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def log(self) -> str:
        return "".join(
            p.read_text(errors="replace")
            for p in (self.dir / "nginx.out", self.dir / "error.log")
            if p.exists()
        )


class RealVMFleet:
    """InstanceHooks for ExoscaleSimulator: a RealVM per running instance, all before one Ollama."""

    def __init__(self, workdir: Path, ollama_port: int, *, port: int = VM_PORT):
        self.workdir, self.ollama_port, self.port = workdir, ollama_port, port
        self.pool = LoopbackPool(port)
        self.vms: dict[str, RealVM] = {}

    def allocate_ip(self) -> str:
        return self.pool.allocate_ip()

    def release_ip(self, ip: str) -> None:
        self.pool.release_ip(ip)

    def booted(self, instance: Instance) -> None:
        old = self.vms.pop(instance.id, None)
        if old is not None:
            old.stop()
        vm = RealVM(instance, self.workdir, self.port, self.ollama_port)
        vm.start()
        self.vms[instance.id] = vm

    def halted(self, instance: Instance) -> None:
        vm = self.vms.pop(instance.id, None)
        if vm is not None:
            vm.stop()

    def close(self) -> None:
        for vm in self.vms.values():
            vm.stop()
        self.vms.clear()
