"""The embedded API's settings: its keywords are standalone's environment variables, parsed by
`local/settings.py`. A keyword is its variable's name by one rule (`spec.env.keyword`: lower case,
without an EXOSCALE_ or REMOTE_OLLAMA_ prefix), for every variable; `model` and `endpoint` are kept
as the first releases' names of `ollama_model` and `api_endpoint`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from remote_ollama.local.settings import VARIABLES, ConfigError, StandaloneConfig, default_state_file
from remote_ollama.spec.env import keyword

ALIASES = {"model": "OLLAMA_MODEL", "endpoint": "EXOSCALE_API_ENDPOINT"}


VARIABLE_NAMES = tuple(variable for variable, _ in VARIABLES)


def keywords(variables: tuple[str, ...] = VARIABLE_NAMES) -> dict[str, str]:
    """Each keyword the embedded API takes, with the variable it sets (REMOTE_OLLAMA_HOST is the
    constructor's own `host`, the local endpoint's address)."""
    return {keyword(name): name for name in variables if name != "REMOTE_OLLAMA_HOST"} | ALIASES


KWARG_ENV = keywords()


def _text(value: Any) -> str:
    """A keyword's value as its variable would spell it (lists comma-separated, maps NAME=value)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(str(v) for v in value)
    return str(value)


def config_from(env: Mapping[str, str], overrides: Mapping[str, Any]) -> StandaloneConfig:
    """The standalone config for `env` with keyword `overrides` (names as `RemoteOllama` takes them);
    a ConfigError names the keyword of every problem a keyword caused."""
    merged = dict(env)
    unknown = sorted(set(overrides) - set(KWARG_ENV))
    if unknown:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(unknown)}")
    given: dict[str, str] = {}
    for name, value in overrides.items():
        if value is not None:
            merged[KWARG_ENV[name]] = _text(value)
            given[KWARG_ENV[name]] = name
    if not merged.get("REMOTE_OLLAMA_STATE_FILE"):
        merged["REMOTE_OLLAMA_STATE_FILE"] = str(default_state_file(env))
    try:
        config = StandaloneConfig.from_env(merged)
    except ConfigError as exc:
        raise ConfigError([_by_keyword(line, given) for line in exc.problems]) from None
    return one_vm(config, given)


def one_vm(config: StandaloneConfig, given: Mapping[str, str] | None = None) -> StandaloneConfig:
    """`config`, unless it asks for more than one VM: the embedded API runs one LocalController, so
    saying yes to max_replicas above 1 would run one VM silently (scale out is standalone's)."""
    if config.spec.replicas.max > 1:
        line = (
            f"REMOTE_OLLAMA_MAX_REPLICAS={str(config.spec.replicas.max)!r}: the embedded API runs one VM;"
            " scale out with `remote-ollama standalone`"
        )
        raise ConfigError([_by_keyword(line, given or {})])
    return config


def _by_keyword(line: str, given: Mapping[str, str]) -> str:
    for variable, name in given.items():
        if line.startswith(variable):
            return f"{name} ({variable}){line.removeprefix(variable)}"
    return line
