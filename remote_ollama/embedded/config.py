"""The embedded API's settings: its keywords are standalone's environment variables, parsed by `local/settings.py`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from remote_ollama.local.settings import StandaloneConfig, default_state_file

KWARG_ENV = {
    "api_key": "EXOSCALE_API_KEY",
    "api_secret": "EXOSCALE_API_SECRET",
    "zone": "EXOSCALE_ZONE",
    "instance_type": "EXOSCALE_INSTANCE_TYPE",
    "template": "EXOSCALE_TEMPLATE",
    "disk_size": "EXOSCALE_DISK_SIZE",
    "idle_timeout": "EXOSCALE_IDLE_TIMEOUT",
    "model": "OLLAMA_MODEL",
    "ollama_key": "EXOSCALE_OLLAMA_KEY",
    "endpoint": "EXOSCALE_API_ENDPOINT",
    "state_file": "REMOTE_OLLAMA_STATE_FILE",
    "on_exit": "REMOTE_OLLAMA_ON_EXIT",
    "exit_timeout": "REMOTE_OLLAMA_EXIT_TIMEOUT",
    "hold_timeout": "REMOTE_OLLAMA_HOLD_TIMEOUT",
    "destroy_after": "REMOTE_OLLAMA_DESTROY_AFTER",
}


def config_from(env: Mapping[str, str], overrides: Mapping[str, Any]) -> StandaloneConfig:
    """The standalone config for `env` with keyword `overrides` (names as `RemoteOllama` takes them)."""
    merged = dict(env)
    unknown = sorted(set(overrides) - set(KWARG_ENV))
    if unknown:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(unknown)}")
    for name, value in overrides.items():
        if value is None:
            continue
        if name == "model" and not isinstance(value, str):
            value = ",".join(value)
        merged[KWARG_ENV[name]] = str(value)
    if not merged.get("REMOTE_OLLAMA_STATE_FILE"):
        merged["REMOTE_OLLAMA_STATE_FILE"] = str(default_state_file(env))
    return StandaloneConfig.from_env(merged)
