"""The real Ollama (built by tests/ollama_real/build.sh) serving the tiny model on loopback.

`ollama serve` runs with its own HOME and OLLAMA_MODELS in a temp dir; the tiny model is created
through Ollama's own HTTP path (`POST /api/blobs/sha256:<digest>`, then `POST /api/create`), the
path the proxy forwards when model management is on.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from cluster.control_plane import Daemon, _die_with_parent
from ports import free_port

from .tiny_model import write_tiny_gguf

BUILD = Path(__file__).resolve().parent / "build.sh"
VERSION = "0.17.4"
TINY = "tiny:latest"


@functools.cache
def build_ollama() -> Path:
    """The real `ollama` binary (built if missing: minutes on a cold machine).

    Called at the end of collection (tests/conftest.py), outside any test's timeout."""
    override = os.environ.get("REMOTE_OLLAMA_OLLAMA_BIN")
    if override:
        return Path(override)
    out = subprocess.run(["bash", str(BUILD)], stdout=subprocess.PIPE, text=True, check=True)
    return Path(out.stdout.strip().splitlines()[-1]) / "ollama"


def _call(url: str, body: bytes | None = None, timeout: float = 60.0) -> Any:
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


class RealOllama:
    """`ollama serve` on 127.0.0.1:<port>; `start()` returns once the tiny model answers."""

    def __init__(self, workdir: Path, binary: Path, port: int | None = None):
        self.workdir, self.binary = workdir, binary
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        home = workdir / "home"
        home.mkdir(parents=True, exist_ok=True)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "OLLAMA_HOST": f"127.0.0.1:{self.port}",
            "OLLAMA_MODELS": str(workdir / "models"),
            "OLLAMA_NOPRUNE": "1",
            "OLLAMA_KEEP_ALIVE": "10m",
        }
        self.daemon = Daemon("ollama", [str(binary), "serve"], workdir / "ollama.log")

    def start(self, timeout: float = 120.0) -> None:
        self._start()
        deadline = time.monotonic() + timeout
        while True:
            self.daemon.check()
            try:
                if _call(f"{self.url}/api/version", timeout=5)["version"] == VERSION:
                    break
            except (OSError, urllib.error.URLError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"ollama serve did not answer on {self.url} in {timeout} s")
            time.sleep(0.1)
        self.create_tiny()

    def _start(self) -> None:
        with self.daemon.log_path.open("ab") as out:
            self.daemon.proc = subprocess.Popen(
                self.daemon.args,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def create_tiny(self, name: str = TINY) -> None:
        gguf = write_tiny_gguf(self.workdir / "tiny.gguf").read_bytes()
        digest = "sha256:" + hashlib.sha256(gguf).hexdigest()
        _call(f"{self.url}/api/blobs/{digest}", gguf)
        _call(f"{self.url}/api/create", json.dumps(create_request(name, digest)).encode(), timeout=120)
        # load it once, so the first test's request does not pay the load
        _call(f"{self.url}/api/generate", json.dumps({"model": name, "prompt": "hi", "stream": False,
                                                      "options": {"num_predict": 1}}).encode())  # fmt: skip

    def stop(self) -> None:
        self.daemon.stop()


def create_request(name: str, digest: str) -> dict[str, Any]:
    """`POST /api/create` for the tiny model from its uploaded blob (what `ollama create` sends)."""
    return {
        "model": name,
        "files": {"tiny.gguf": digest},
        "template": "{{ .Prompt }}",
        "parameters": {"num_ctx": 256},
        "stream": False,
    }
