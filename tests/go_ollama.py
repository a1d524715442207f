"""The real Go `ollama` CLI (0.17.4, from the real-Ollama build) as a user runs it against the proxy,
and the Open WebUI-style connect sequence: shared by the sandbox, standalone and operator tests."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from subprocess_world import clean_env

from remote_ollama.proxy.polling import CACHED_HEADER

MODEL = "granite3.1-dense:8b"
PULLED = "tinyllama:latest"  # a model the VM does not have yet


class GoOllama:
    """`ollama ARGS` with OLLAMA_HOST at the proxy; a panic or a failure fails the test."""

    def __init__(self, binary: Path, host: str, home: Path):
        self.binary = binary
        self.env = clean_env({"OLLAMA_HOST": host, "HOME": str(home)})

    def __call__(self, *args: str) -> str:
        out = subprocess.run(
            [str(self.binary), *args], env=self.env, capture_output=True, text=True, timeout=180
        )
        assert out.returncode == 0 and "panic" not in out.stderr, (args, out)
        return (
            out.stdout if args[0] in ("list", "ps") else out.stdout + out.stderr
        )  # pull: progress on stderr

    def listed(self) -> list[list[str]]:
        """`ollama list`'s rows (NAME, ID, SIZE...), header checked and dropped."""
        lines = self("list").splitlines()
        assert lines[0].split() == ["NAME", "ID", "SIZE", "MODIFIED"], lines
        return [line.split() for line in lines[1:]]


def first_contact(cli: GoOllama, asleep: Callable[[], bool]) -> None:
    """Before any VM: -v, list, ps and show answer, and none wakes it."""
    assert "0.35.1" in cli("-v")
    assert asleep(), "ollama -v woke the VM"
    assert cli.listed() == []  # nothing known to list yet (no digest to print), and no crash
    assert asleep(), "ollama list woke the VM"
    cli("ps")
    assert asleep(), "ollama ps woke the VM"
    cli("show", MODEL)
    assert asleep(), "ollama show woke the VM"


def with_a_vm_and_after_a_wake(
    cli: GoOllama, asleep: Callable[[], bool], wait_stopped: Callable[[], None], *, model_management: bool
) -> None:
    """run wakes; pull and rm work where model management is on; once the VM stopped again, -v,
    list, ps and show answer from what it said and do not wake it; pull, rm and run wake it again."""
    if model_management:
        assert "success" in cli("pull", PULLED)  # wakes the VM (if down), with progress, then pulls
        assert PULLED in [row[0] for row in cli.listed()]
        assert f"deleted '{PULLED}'" in cli("rm", PULLED)
        assert PULLED not in [row[0] for row in cli.listed()]
    assert cli("run", MODEL, "hi").strip()  # wakes the VM (or uses the one already up)
    (row,) = [r for r in cli.listed() if r[0] == MODEL]
    assert len(row[1]) == 12
    wait_stopped()
    assert "0.35.1" in cli("-v")
    assert [r[:2] for r in cli.listed() if r[0] == MODEL] == [row[:2]]  # the VM's list, kept
    assert "architecture" in cli("show", MODEL)  # the VM's description, kept
    cli("ps")
    assert asleep(), "-v, list, ps or show woke the stopped VM"
    if model_management:  # after a wake: the VM stopped, pull wakes it again
        assert "success" in cli("pull", PULLED)
        assert f"deleted '{PULLED}'" in cli("rm", PULLED)
    assert cli("run", MODEL, "again").strip()


def first_contact_and_after_a_wake(
    cli: GoOllama, asleep: Callable[[], bool], wait_stopped: Callable[[], None], *, model_management: bool
) -> None:
    first_contact(cli, asleep)
    with_a_vm_and_after_a_wake(cli, asleep, wait_stopped, model_management=model_management)


async def call(
    http: aiohttp.ClientSession, method: str, url: str, body: bytes | None = None
) -> tuple[int, dict[str, str], Any]:
    async with http.request(method, url, data=body) as r:
        raw = await r.read()
        return r.status, dict(r.headers), json.loads(raw) if raw.startswith((b"{", b"[")) else raw.decode()


async def connect_sequence(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    """What Open WebUI asks on connect: version, tags, ps, show for each listed model, /v1/models."""
    seen: dict[str, Any] = {}
    for path in ("/api/version", "/api/tags", "/api/ps", "/v1/models"):
        status, headers, body = await call(http, "GET", url + path)
        assert status == 200, (path, body)
        assert headers.get(CACHED_HEADER) == "true", path
        seen[path] = body
    names = [m["name"] for m in seen["/api/tags"]["models"]] or [m["id"] for m in seen["/v1/models"]["data"]]
    for name in names:
        status, headers, body = await call(
            http, "POST", url + "/api/show", json.dumps({"model": name}).encode()
        )
        assert status == 200 and headers.get(CACHED_HEADER) == "true", (name, body)
        seen[f"show {name}"] = body
    return seen
