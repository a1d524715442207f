"""Standalone configuration from its environment variables (docs/design.md section 4).

Checked completely before any cloud call, so a mistyped variable costs one clear line, not a VM.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from remote_ollama.spec.fields import MODEL_PATTERN, ZONES, env_default
from remote_ollama.spec.model import Spec
from remote_ollama.spec.sections import (
    DEFAULT_INSTANCE_TYPE,
    DEFAULT_MAX_HELD_BODY,
    DEFAULT_MODEL,
    DEFAULT_TEMPLATE,
    DEFAULT_ZONE,
    KNOWN_FAMILIES,
    KNOWN_SIZES,
    MAX_DISK,
    MAX_HELD_BODY,
    MIN_DISK,
    IdlePolicy,
    InstanceType,
    OllamaSettings,
    WakePolicy,
    check_ollama_env,
    parse_duration,
    parse_instance_type,
    parse_ollama_image,
)

EXIT_POLICIES = ("keep", "stop", "destroy")
# The address `standalone` listens on when --host is not given (the image sets 0.0.0.0).
HOST_ENV = "REMOTE_OLLAMA_HOST"
# Every variable standalone mode reads, with its meaning: `standalone --help` prints them, and a
# test holds them equal to the README's table.
VARIABLES: tuple[tuple[str, str], ...] = (
    ("EXOSCALE_API_KEY", "Exoscale API key (required)"),
    ("EXOSCALE_API_SECRET", "Exoscale API secret (required)"),
    ("EXOSCALE_ZONE", "zone, e.g. at-vie-2, ch-gva-2, de-fra-1 (default at-vie-2)"),
    ("EXOSCALE_INSTANCE_TYPE", "<family>.<size> (default gpua5000.small)"),
    ("EXOSCALE_TEMPLATE", "OS template name"),
    ("EXOSCALE_DISK_SIZE", "root disk, GiB (default 50)"),
    ("EXOSCALE_IDLE_TIMEOUT", "stop the VM after this long without requests (1800, 30m; 0: never)"),
    ("OLLAMA_MODEL", "model(s) pulled at boot, comma-separated"),
    ("EXOSCALE_OLLAMA_KEY", "optional extra key the VM's nginx checks (X-Ollama-Key)"),
    (
        "EXOSCALE_API_ENDPOINT",
        "API base URL override (private endpoints, the simulator); `{zone}` in it is replaced by the zone",
    ),
    ("REMOTE_OLLAMA_STATE_FILE", "where the instance id, VM key and CA are kept"),
    ("REMOTE_OLLAMA_HOST", "address to listen on without --host (default 127.0.0.1; image 0.0.0.0)"),
    ("REMOTE_OLLAMA_DESTROY_AFTER", "destroy a VM stopped this long (0: destroy instead of stopping)"),
    ("REMOTE_OLLAMA_HOLD_TIMEOUT", "how long a request waits for the VM to wake (default 600)"),
    ("REMOTE_OLLAMA_FIRST_REQUEST", "hold (wait for the VM) or 503 (answer at once)"),
    ("REMOTE_OLLAMA_ON_EXIT", "on SIGTERM: keep, stop or destroy the VM (default stop)"),
    ("REMOTE_OLLAMA_EXIT_TIMEOUT", "bound on the cloud call made at exit (default 30)"),
    ("REMOTE_OLLAMA_CLIENT_KEYS", "comma-separated keys clients must send as Authorization: Bearer"),
    ("REMOTE_OLLAMA_MODEL_MANAGEMENT", "false refuses pull, push, create, copy, delete and blobs"),
    ("REMOTE_OLLAMA_MAX_BODY", "most bytes of one request body held while the VM wakes"),
    ("REMOTE_OLLAMA_WAKE_PROGRESS", "1: held streaming generate/chat get wake progress chunks"),
    ("OLLAMA_IMAGE", "the VM's Ollama image (changing it replaces the VM)"),
    ("OLLAMA_ENV", "Ollama server settings for the VM, NAME=value comma-separated"),
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
        zone = get("EXOSCALE_ZONE", DEFAULT_ZONE)
        if zone not in ZONES:
            problems.append(f"EXOSCALE_ZONE={zone!r} is not an Exoscale zone; one of {', '.join(ZONES)}")
        itype = parse_instance_type(DEFAULT_INSTANCE_TYPE)
        raw_type = get("EXOSCALE_INSTANCE_TYPE", DEFAULT_INSTANCE_TYPE)
        try:
            itype = parse_instance_type(raw_type)
            if itype.family not in KNOWN_FAMILIES or itype.size not in KNOWN_SIZES:
                problems.append(
                    f"EXOSCALE_INSTANCE_TYPE={raw_type!r} is not a known instance type "
                    f"(e.g. gpua5000.small, gpu3080ti.small, gpu2.medium)"
                )
        except ValueError as exc:
            problems.append(f"EXOSCALE_INSTANCE_TYPE: {exc}")
        disk: int = env_default("diskSize")
        raw_disk = get("EXOSCALE_DISK_SIZE", str(disk))
        if not raw_disk.isdigit() or not MIN_DISK <= int(raw_disk) <= MAX_DISK:
            problems.append(
                f"EXOSCALE_DISK_SIZE={raw_disk!r} must be a whole number of GiB between {MIN_DISK} and {MAX_DISK}"
            )
        else:
            disk = int(raw_disk)

        def duration(name: str, default: str, allow_zero: bool = False) -> float:
            raw = get(name, default)
            try:
                value = parse_duration(raw)
            except ValueError:
                problems.append(f"{name}={raw!r} is not a duration (seconds, or e.g. 30m, 1h30m)")
                return parse_duration(default)
            if value <= 0 and not allow_zero:
                problems.append(f"{name}={raw!r} must be greater than 0")
            return value

        # 0 means never stop for idleness (as /status reports it: idle_timeout 0 is always on)
        idle = duration("EXOSCALE_IDLE_TIMEOUT", env_default("idle.stopAfter"), allow_zero=True)
        raw_destroy = get("REMOTE_OLLAMA_DESTROY_AFTER")
        destroy = duration("REMOTE_OLLAMA_DESTROY_AFTER", "0", allow_zero=True) if raw_destroy else None
        if destroy is not None and idle == 0:
            problems.append(
                "REMOTE_OLLAMA_DESTROY_AFTER needs EXOSCALE_IDLE_TIMEOUT > 0 (0 never stops the VM)"
            )
        hold = duration("REMOTE_OLLAMA_HOLD_TIMEOUT", env_default("wake.holdTimeout"))
        exit_timeout = duration("REMOTE_OLLAMA_EXIT_TIMEOUT", "30")
        on_exit = get("REMOTE_OLLAMA_ON_EXIT", "stop")
        if on_exit not in EXIT_POLICIES:
            problems.append(f"REMOTE_OLLAMA_ON_EXIT={on_exit!r} must be one of {', '.join(EXIT_POLICIES)}")
        models = tuple(m.strip() for m in get("OLLAMA_MODEL", DEFAULT_MODEL).split(",") if m.strip())
        bad_models = [m for m in models if not re.fullmatch(MODEL_PATTERN, m)]
        if bad_models or not models:
            problems.append(f"OLLAMA_MODEL={get('OLLAMA_MODEL')!r}: not Ollama model names: {bad_models!r}")
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

        def flag(name: str, default: bool) -> bool:
            raw = get(name).lower()
            if not raw:
                return default
            if raw not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                problems.append(f"{name}={raw!r} must be true or false (1/0, yes/no, on/off)")
            return raw in ("1", "true", "yes", "on")

        model_management = flag("REMOTE_OLLAMA_MODEL_MANAGEMENT", True)
        progress = flag("REMOTE_OLLAMA_WAKE_PROGRESS", False)
        raw_body = get("REMOTE_OLLAMA_MAX_BODY", str(DEFAULT_MAX_HELD_BODY))
        max_body = DEFAULT_MAX_HELD_BODY
        if not raw_body.isdigit() or int(raw_body) > MAX_HELD_BODY:
            problems.append(
                f"REMOTE_OLLAMA_MAX_BODY={raw_body!r} must be a number of bytes 0..{MAX_HELD_BODY}"
            )
        else:
            max_body = int(raw_body)
        image = None
        if get("OLLAMA_IMAGE"):
            try:
                image = parse_ollama_image(get("OLLAMA_IMAGE"))
            except ValueError as exc:
                problems.append(f"OLLAMA_IMAGE: {exc}")
        ollama_env: dict[str, str] = {}
        for item in (i.strip() for i in get("OLLAMA_ENV").split(",")):
            if item:
                k, sep, v = item.partition("=")
                if not sep:
                    problems.append(f"OLLAMA_ENV: {item!r} must be NAME=value (comma-separated)")
                ollama_env[k.strip()] = v.strip()
        problems += [
            f"OLLAMA_ENV: {path.removeprefix('OLLAMA_ENV.')} {msg}"
            for path, msg in check_ollama_env(ollama_env, "OLLAMA_ENV")
        ]
        client_keys = frozenset(k.strip() for k in get("REMOTE_OLLAMA_CLIENT_KEYS").split(",") if k.strip())
        if problems:
            raise ConfigError(problems)
        spec = Spec(
            zone=zone,
            instance_type=InstanceType(itype.family, itype.size),
            template=get("EXOSCALE_TEMPLATE", DEFAULT_TEMPLATE),
            disk_size=disk,
            models=models,
            idle=IdlePolicy(stop_after=idle or None, destroy_after=destroy),
            wake=WakePolicy(hold_timeout=hold, max_held_body_bytes=max_body, progress=progress),
            model_management=model_management,
            ollama=OllamaSettings(image, tuple(sorted(ollama_env.items()))),
        )
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
