"""Run `remote-ollama` as a real subprocess and watch it from outside: output file, /status, exit.

Tests here treat the program as a user does: the console script, environment variables, HTTP.
Every wait is on a condition with a deadline.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ports import free_port
from waiting import wait_until

from remote_ollama.sandbox.exoscale.wire import RECORD_ENV

BIN = shutil.which("remote-ollama", path=str(Path(sys.executable).parent)) or "remote-ollama"


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The parent environment without any EXOSCALE_/OLLAMA_/REMOTE_OLLAMA_ variable, plus `extra`;
    the test harness's record of a simulator's exchanges (conftest.py) is kept."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k == RECORD_ENV or not k.startswith(("EXOSCALE_", "OLLAMA_", "REMOTE_OLLAMA_"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class Program:
    """One `remote-ollama ...` process with its stdout+stderr in a file."""

    def __init__(self, args: list[str], env: Mapping[str, str], log_path: Path, port: int | None = None):
        self.args = args
        self.port = port
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in wait()/kill()
        self.proc = subprocess.Popen(
            [BIN, *args], env=dict(env), stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, dict[str, str], Any]:
        """(status, headers, JSON body) of a GET; (0, {}, None) when nothing listens yet."""
        return self.request("GET", path, None, timeout)

    def request(
        self, method: str, path: str, body: Any, timeout: float = 5.0
    ) -> tuple[int, dict[str, str], Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), json.loads(exc.read() or b"null")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, {}, None

    def status(self) -> dict[str, Any] | None:
        code, _, body = self.get("/status")
        return body if code == 200 else None

    def wait_listening(self, timeout: float = 20.0) -> dict[str, Any]:
        def up() -> dict[str, Any] | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"exited with {self.proc.returncode}:\n{self.output()}")
            return self.status()

        result: dict[str, Any] = wait_until(up, timeout, f"{self.url}/status to answer")
        return result

    def wait_status(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            st = self.status()
            return st if st is not None and predicate(st) else None

        try:
            result: dict[str, Any] = wait_until(check, timeout, what, interval=0.1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last /status {self.status()}\n{self.output()}") from None
        return result

    def terminate(self, timeout: float) -> int:
        """SIGTERM, then the exit code; fails (after killing it) if it outlives `timeout`."""
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"still running {timeout}s after SIGTERM:\n{self.output()}") from None
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


def sandbox_program(tmp_path: Path, *args: str) -> Program:
    """`remote-ollama sandbox` on a free port, its simulated VMs booting in 0.5 s, plus `args`; its
    log in `tmp_path`. The caller kills it."""
    port = free_port()
    return Program(
        ["sandbox", "--port", str(port), "--boot", "0.5", *args],
        clean_env(),
        tmp_path / "sandbox.log",
        port=port,
    )


def standalone_program(tmp_path: Path, env: Mapping[str, str], port: int | None = None) -> Program:
    """`remote-ollama standalone` on 127.0.0.1 (`port`, or a free one) with `env` over a clean
    environment; its log in `tmp_path`. The caller kills it."""
    port = port or free_port()
    host = "127.0.0.1"
    return Program(
        ["standalone", "--host", host, "--port", str(port)],
        clean_env(env),
        tmp_path / "standalone.log",
        port=port,
    )
