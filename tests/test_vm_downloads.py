"""A failed download fails its setup step on the VM, with nothing half-written: the setup script's
own `docker` step, run by dash (no pipefail) with a stand-in `curl` that writes part of the file and
fails, is recorded as failed naming the URL before apt runs, and leaves no apt source or key behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from remote_ollama.vm import scripts
from remote_ollama.vm.download import NVIDIA_LIST_PATH, NVIDIA_LIST_URL
from remote_ollama.vm.nvidia_key import NVIDIA_KEY_URL, NVIDIA_KEYRING_PATH

LIST = "deb https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /\n"


def docker_step(
    tmp_path: Path, failing: str, stub_key: bool
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The setup script's step machinery and its real `docker` step, its files under `tmp_path/root`;
    `curl` serves LIST but writes half of it and fails for URLs containing `failing`."""
    bindir, root, log = tmp_path / "bin", tmp_path / "root", tmp_path / "log"
    bindir.mkdir()
    root.mkdir()
    (tmp_path / "served").write_text(LIST)
    tools = {  # `curl -fsSL URL -o FILE`
        "curl": f'echo curl "$2" >> {log}\ncase "$2" in *{failing}*) echo "deb https://nvid" > "$4"; exit 22;; esac\n'
        f'cp {tmp_path / "served"} "$4"',
        "step": f'echo "$@" >> {log}',
        **{tool: f'echo {tool} "$@" >> {log}' for tool in ("apt-get", "nvidia-ctk", "systemctl")},
    }
    for name, body in tools.items():
        (bindir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bindir / name).chmod(0o755)
    script = scripts.SETUP_SCRIPT
    machinery = script[script.index("trap ") : script.index("IMAGE=")]
    functions = script[script.index("IMAGE=") : script.index("run nginx")].split("\n", 1)[1]
    docker = script[script.index("run docker") : script.index("run image")]
    for path in (NVIDIA_LIST_PATH, NVIDIA_KEYRING_PATH, "/etc/docker/daemon.json"):
        docker = docker.replace(path, f"{root}/{path.replace('/', '_')}")
    stub = "nvidia_key() { :; }\n" if stub_key else ""  # the key's own checks: tests/test_nvidia_key.py
    text = f"set -eu\nSTEP={bindir / 'step'}\nNOW=nginx\n{machinery}{functions}{stub}{docker}"
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    out = subprocess.run(["dash", "-c", text], env=env, capture_output=True, text=True, timeout=60)
    out.stdout += log.read_text() if log.exists() else ""
    return out, root


def test_a_failed_apt_source_download_fails_the_docker_step_before_apt(tmp_path: Path) -> None:
    out, root = docker_step(tmp_path, failing="toolkit.list", stub_key=True)
    assert out.returncode != 0
    assert f"download failed: {NVIDIA_LIST_URL}" in out.stdout
    assert "fail docker" in out.stdout and "mark docker done" not in out.stdout  # the recorder's failure
    assert "apt-get" not in out.stdout  # not a later, misleading "Unable to locate package"
    assert list(root.iterdir()) == []  # no empty or half apt source, no partial download


def test_a_failed_key_download_fails_the_docker_step(tmp_path: Path) -> None:
    out, root = docker_step(tmp_path, failing="gpgkey", stub_key=False)
    assert out.returncode != 0
    assert f"download failed: {NVIDIA_KEY_URL}" in out.stdout
    assert "fail docker" in out.stdout and "mark docker done" not in out.stdout
    assert "apt-get" not in out.stdout and NVIDIA_LIST_URL not in out.stdout
    assert list(root.iterdir()) == []


def test_a_whole_download_becomes_the_apt_source_signed_by_the_pinned_keyring(tmp_path: Path) -> None:
    out, root = docker_step(tmp_path, failing="nothing-fails", stub_key=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "mark docker done" in out.stdout and "apt-get install -y nvidia-container-toolkit" in out.stdout
    (written,) = root.iterdir()
    assert written.name == NVIDIA_LIST_PATH.replace("/", "_")
    assert written.read_text() == LIST.replace(
        "deb https://", f"deb [signed-by={NVIDIA_KEYRING_PATH}] https://"
    )
