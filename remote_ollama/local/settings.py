"""Standalone configuration from its environment variables (docs/design.md section 4).

Checked completely before any cloud call, so a mistyped variable costs one clear line, not a VM.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from remote_ollama.spec.env import cr_shape, env_rows, named
from remote_ollama.spec.model import Spec, SpecError
from remote_ollama.spec.parse import parse_spec
from remote_ollama.spec.sections import parse_duration

EXIT_POLICIES = ("keep", "stop", "destroy")
# The address `standalone` listens on when --host is not given (the image sets 0.0.0.0).
HOST_ENV = "REMOTE_OLLAMA_HOST"
# Every variable standalone mode reads, with its meaning: `standalone --help` prints them, and a
# test holds them equal to the README's table.
# The variables of the process itself; the spec's own come from the field table (spec/env.py).
PROCESS_VARIABLES: tuple[tuple[str, str], ...] = (
    ("EXOSCALE_OLLAMA_KEY", "optional extra key the VM's nginx checks (X-Ollama-Key)"),
    (
        "EXOSCALE_API_ENDPOINT",
        "API base URL override (private endpoints, the simulator); `{zone}` in it is replaced by the zone",
    ),
    ("REMOTE_OLLAMA_STATE_FILE", "where the instance id, VM key and CA are kept"),
    ("REMOTE_OLLAMA_HOST", "address to listen on without --host (default 127.0.0.1; image 0.0.0.0)"),
    ("REMOTE_OLLAMA_FIRST_REQUEST", "hold (wait for the VM) or 503 (answer at once)"),
    ("REMOTE_OLLAMA_ON_EXIT", "on SIGTERM: keep, stop or destroy the VM (default stop)"),
    ("REMOTE_OLLAMA_EXIT_TIMEOUT", "bound on the cloud call made at exit (default 30)"),
    ("REMOTE_OLLAMA_CLIENT_KEYS", "comma-separated keys clients must send as Authorization: Bearer"),
)
CREDENTIAL_VARIABLES: tuple[tuple[str, str], ...] = (
    ("EXOSCALE_API_KEY", "Exoscale API key (required)"),
    ("EXOSCALE_API_SECRET", "Exoscale API secret (required)"),
)
# Every variable standalone mode reads, with its meaning: `standalone --help` prints them, and a
# test holds them equal to the README's table.
VARIABLES: tuple[tuple[str, str], ...] = (
    CREDENTIAL_VARIABLES + tuple((str(f.env), f.env_doc) for f in env_rows()) + PROCESS_VARIABLES
)


def default_state_file(env: Mapping[str, str] | None = None) -> Path:
    """The state file unless REMOTE_OLLAMA_STATE_FILE says otherwise: the XDG state directory
    ($XDG_STATE_HOME, else ~/.local/state); the image sets /data/state.json."""
    env = os.environ if env is None else env
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "remote-ollama" / "state.json"


def standalone_variables() -> str:
    """The variables as `standalone --help` lists them (the README's table has the details)."""
    width = max(len(name) for name, _ in VARIABLES)
    lines = [f"  {name:<{width}}  {meaning}" for name, meaning in VARIABLES]
    return "environment variables (README: Standalone):\n" + "\n".join(lines)


# What nginx on the VM can match (cloud/cloudinit.py refuses any other key when rendering user-data).
VM_KEY_RE = re.compile(r"^[A-Za-z0-9_\-.+/=]{16,512}$")


class ConfigError(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class StandaloneConfig:
    api_key: str
    api_secret: str
    spec: Spec
    endpoint: str | None
    state_file: str
    ollama_key: str | None
    on_exit: str
    exit_timeout: float
    immediate_503: bool
    client_keys: frozenset[str] = frozenset()  # REMOTE_OLLAMA_CLIENT_KEYS; empty: no client auth

    def __repr__(self) -> str:  # credentials never reach a log line
        return f"StandaloneConfig(zone={self.spec.zone!r}, type={self.spec.instance_type.name!r})"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StandaloneConfig:
        """Parse and check every variable; raise ConfigError listing every problem, one per line."""
        problems: list[str] = []

        def get(name: str, default: str = "") -> str:
            return env.get(name, "").strip() or default

        key, secret = get("EXOSCALE_API_KEY"), get("EXOSCALE_API_SECRET")
        if not key:
            problems.append("EXOSCALE_API_KEY is required (your Exoscale API key, EXO...)")
        if not secret:
            problems.append("EXOSCALE_API_SECRET is required (the secret of that API key)")
        exit_timeout = 30.0
        raw_exit = get("REMOTE_OLLAMA_EXIT_TIMEOUT", "30")
        try:
            exit_timeout = parse_duration(raw_exit)
        except ValueError:
            problems.append(
                f"REMOTE_OLLAMA_EXIT_TIMEOUT={raw_exit!r} is not a duration (seconds, or e.g. 30m)"
            )
        on_exit = get("REMOTE_OLLAMA_ON_EXIT", "stop")
        if on_exit not in EXIT_POLICIES:
            problems.append(f"REMOTE_OLLAMA_ON_EXIT={on_exit!r} must be one of {', '.join(EXIT_POLICIES)}")
        endpoint = get("EXOSCALE_API_ENDPOINT") or None
        if endpoint and not endpoint.startswith(("http://", "https://")):
            problems.append(
                f"EXOSCALE_API_ENDPOINT={endpoint!r} must be an http(s) URL, e.g. http://127.0.0.1:8080/v2"
            )
        mode = get("REMOTE_OLLAMA_FIRST_REQUEST", "hold")
        if mode not in ("hold", "503"):
            problems.append(f"REMOTE_OLLAMA_FIRST_REQUEST={mode!r} must be hold or 503")
        ollama_key = get("EXOSCALE_OLLAMA_KEY") or None
        if ollama_key is not None and not VM_KEY_RE.fullmatch(ollama_key):
            problems.append(
                "EXOSCALE_OLLAMA_KEY must be 16-512 characters from A-Z a-z 0-9 _ - . + / = (or unset for a random key)"
            )

        shaped, shape_problems = cr_shape(env)
        problems += shape_problems
        spec = Spec()
        try:
            spec = parse_spec(shaped, require_credentials=False)
        except SpecError as exc:
            problems += named(exc, env)
        client_keys = frozenset(k.strip() for k in get("REMOTE_OLLAMA_CLIENT_KEYS").split(",") if k.strip())
        if problems:
            raise ConfigError(problems)
        return cls(
            api_key=key,
            api_secret=secret,
            spec=spec,
            endpoint=endpoint,
            state_file=get("REMOTE_OLLAMA_STATE_FILE", str(default_state_file(env))),
            ollama_key=ollama_key,
            on_exit=on_exit,
            exit_timeout=exit_timeout,
            immediate_503=mode == "503",
            client_keys=client_keys,
        )
