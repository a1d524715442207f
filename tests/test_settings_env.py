"""Standalone settings from the environment: the new variables parse, and bad values are named."""

from __future__ import annotations

import pytest

from remote_ollama.local.settings import ConfigError, StandaloneConfig

BASE = {"EXOSCALE_API_KEY": "EXOkey", "EXOSCALE_API_SECRET": "secret"}


def test_new_variables_parse() -> None:
    cfg = StandaloneConfig.from_env(
        BASE
        | {
            "REMOTE_OLLAMA_CLIENT_KEYS": "k1, k2",
            "REMOTE_OLLAMA_MODEL_MANAGEMENT": "false",
            "REMOTE_OLLAMA_MAX_BODY": "1024",
            "REMOTE_OLLAMA_WAKE_PROGRESS": "1",
            "OLLAMA_IMAGE": "ollama/ollama:0.11.4",
            "OLLAMA_ENV": "OLLAMA_NUM_PARALLEL=4,OLLAMA_FLASH_ATTENTION=1",
            "REMOTE_OLLAMA_MAX_REPLICAS": "3",
            "REMOTE_OLLAMA_TARGET_IN_FLIGHT": "2",
            "REMOTE_OLLAMA_SCALE_DOWN_AFTER": "90s",
            "REMOTE_OLLAMA_ROUTING": "prefixAffinity",
        }
    )
    assert cfg.spec.replicas.max == 3 and cfg.spec.target_in_flight == 2
    assert cfg.spec.replicas.routing == "prefixAffinity"
    assert cfg.spec.replicas.scale_down_after == 90
    assert cfg.client_keys == {"k1", "k2"}
    assert cfg.spec.model_management is False
    assert cfg.spec.wake.max_held_body_bytes == 1024 and cfg.spec.wake.progress is True
    assert cfg.spec.ollama.image == "ollama/ollama:0.11.4"
    assert dict(cfg.spec.ollama.env) == {"OLLAMA_NUM_PARALLEL": "4", "OLLAMA_FLASH_ATTENTION": "1"}


def test_standalone_defaults_for_new_variables() -> None:
    cfg = StandaloneConfig.from_env(BASE)
    assert cfg.client_keys == frozenset()
    assert cfg.spec.model_management is True  # standalone: the user owns the VM
    assert cfg.spec.wake.max_held_body_bytes == 64 * 1024 * 1024 and cfg.spec.wake.progress is False
    assert cfg.spec.ollama.image is None and cfg.spec.ollama.env == ()
    assert cfg.spec.replicas.max == 1 and cfg.spec.target_in_flight == 4  # one VM, as before
    assert cfg.spec.replicas.routing == "leastOutstanding"
    parallel = StandaloneConfig.from_env(BASE | {"OLLAMA_ENV": "OLLAMA_NUM_PARALLEL=3"})
    assert parallel.spec.target_in_flight == 3


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REMOTE_OLLAMA_MODEL_MANAGEMENT", "maybe"),
        ("REMOTE_OLLAMA_MAX_BODY", "-1"),
        ("REMOTE_OLLAMA_WAKE_PROGRESS", "sometimes"),
        ("OLLAMA_IMAGE", "ollama/ollama; reboot"),
        ("OLLAMA_ENV", "HOME=/root"),
        ("OLLAMA_ENV", "OLLAMA_X=$(id)"),
        ("OLLAMA_ENV", "OLLAMA_X"),
        ("REMOTE_OLLAMA_MAX_REPLICAS", "0"),
        ("REMOTE_OLLAMA_MAX_REPLICAS", "65"),
        ("REMOTE_OLLAMA_MAX_REPLICAS", "two"),
        ("REMOTE_OLLAMA_TARGET_IN_FLIGHT", "0"),
        ("REMOTE_OLLAMA_SCALE_DOWN_AFTER", "soon"),
        ("REMOTE_OLLAMA_ROUTING", "roundRobin"),
    ],
)
def test_bad_values_are_named(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        StandaloneConfig.from_env(BASE | {name: value})
    assert any(line.startswith(name) for line in info.value.problems), info.value.problems


def test_idle_timeout_zero_means_never_stop() -> None:
    cfg = StandaloneConfig.from_env(BASE | {"EXOSCALE_IDLE_TIMEOUT": "0"})
    assert cfg.spec.idle.stop_after is None  # always on, as /status says with idle_timeout 0
    with pytest.raises(ConfigError) as info:
        StandaloneConfig.from_env(BASE | {"EXOSCALE_IDLE_TIMEOUT": "0", "REMOTE_OLLAMA_DESTROY_AFTER": "1h"})
    assert any(p.startswith("REMOTE_OLLAMA_DESTROY_AFTER") for p in info.value.problems)


def test_defaults_come_from_the_one_table() -> None:
    """The documented standalone defaults (disk 50, idle 1800 s, hold 600 s) from spec_fields.py."""
    cfg = StandaloneConfig.from_env(BASE)
    assert cfg.spec.disk_size == 50 and cfg.spec.idle.stop_after == 1800 and cfg.spec.wake.hold_timeout == 600


def test_a_bad_model_name_is_a_configuration_problem() -> None:
    with pytest.raises(ConfigError) as info:
        StandaloneConfig.from_env(BASE | {"OLLAMA_MODEL": "granite3.1-dense:8b,bad model"})
    assert any(p.startswith("OLLAMA_MODEL") and "bad model" in p for p in info.value.problems)
