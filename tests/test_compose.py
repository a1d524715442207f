"""compose.yaml runs the standalone image with the variables of docs/design.md section 4."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from remote_ollama.local.settings import StandaloneConfig

ROOT = Path(__file__).resolve().parents[1]
DESIGN_VARS = {
    "EXOSCALE_API_KEY", "EXOSCALE_API_SECRET", "EXOSCALE_ZONE", "EXOSCALE_INSTANCE_TYPE", "EXOSCALE_TEMPLATE",
    "EXOSCALE_DISK_SIZE", "EXOSCALE_IDLE_TIMEOUT", "OLLAMA_MODEL", "EXOSCALE_API_ENDPOINT",
    "REMOTE_OLLAMA_STATE_FILE", "EXOSCALE_OLLAMA_KEY",
}  # fmt: skip
_VAR = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def service() -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "compose.yaml").read_text())
    (name,) = doc["services"]
    svc: dict[str, Any] = doc["services"][name]
    svc["_volumes"] = doc.get("volumes") or {}
    return svc


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} against `env` (the .env file)."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        if env.get(name):
            return env[name]
        if op == "?":
            raise KeyError(f"{name}: {arg}")
        return arg if op == "-" else ""

    return _VAR.sub(one, value)


def test_service_port_command_and_state_volume() -> None:
    svc = service()
    assert svc["command"] == ["standalone"]
    assert svc["ports"] == ["127.0.0.1:11434:11434"], "published on loopback only, as Ollama binds"
    (mount,) = svc["volumes"]
    volume, path = mount.split(":")[:2]
    assert volume in svc["_volumes"], "the state file lives on a named volume"
    assert Path(svc["environment"]["REMOTE_OLLAMA_STATE_FILE"]).parent == Path(path)


def test_variables_are_the_designs_and_their_defaults_are_valid() -> None:
    env = service()["environment"]
    names = set(env)
    assert names >= DESIGN_VARS
    readme = (ROOT / "README.md").read_text()
    for extra in names - DESIGN_VARS:
        assert extra.startswith(("REMOTE_OLLAMA_", "OLLAMA_")) and f"`{extra}`" in readme, extra
    dotenv = {"EXOSCALE_API_KEY": "EXOkey", "EXOSCALE_API_SECRET": "secret"}
    resolved = {k: interpolate(str(v), dotenv) for k, v in env.items()}
    cfg = StandaloneConfig.from_env(resolved)
    assert (cfg.spec.zone, cfg.spec.instance_type.name, cfg.spec.disk_size) == (
        "at-vie-2",
        "gpua5000.small",
        50,
    )
    assert cfg.spec.idle.stop_after == 1800 and cfg.ollama_key is None and cfg.endpoint is None
    with pytest.raises(KeyError, match="EXOSCALE_API_KEY"):
        interpolate(str(env["EXOSCALE_API_KEY"]), {})


def _has_compose() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(not _has_compose(), reason="no `docker compose` here")
def test_docker_compose_accepts_it(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("EXOSCALE_API_KEY=EXOkey\nEXOSCALE_API_SECRET=secret\n")
    res = subprocess.run(
        [
            "docker",
            "compose",
            "-f",
            str(ROOT / "compose.yaml"),
            "--env-file",
            str(tmp_path / ".env"),
            "config",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr


def readme_table_variables() -> list[str]:
    """The variables of the README's standalone table (the ones users are told to put in .env)."""
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| Variable | Meaning | Default |") :].split("\n\n", 1)[0]
    return re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", table, re.MULTILINE)


def test_every_variable_of_the_readme_table_reaches_the_container() -> None:
    names = readme_table_variables()
    assert "REMOTE_OLLAMA_DESTROY_AFTER" in names and len(names) >= 15
    env_file = {name: f"value-of-{name}" for name in names}
    container = {k: interpolate(str(v), env_file) for k, v in service()["environment"].items()}
    # fixed by the image, not passed: the state file's volume, and the in-container address
    # (0.0.0.0; loopback is where compose publishes the port)
    fixed = {"REMOTE_OLLAMA_STATE_FILE", "REMOTE_OLLAMA_HOST"}
    dropped = [n for n in names if n not in fixed and container.get(n) != env_file[n]]
    assert dropped == [], f"compose.yaml does not pass {dropped} from .env to the container"
    assert "REMOTE_OLLAMA_HOST" not in container
    # the state file is fixed to the named volume (the README says so)
    assert container["REMOTE_OLLAMA_STATE_FILE"] == "/data/state.json"


def test_the_image_is_built_here_never_pulled_by_its_name() -> None:
    """The project publishes no image under compose's name; a pull would run whatever the holder of
    that registry namespace put there. Built from the Dockerfile, whose base is pinned by digest."""
    svc = service()
    assert svc["build"] == "." and svc["pull_policy"] == "build"
