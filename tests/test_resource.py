"""Spec parsing: defaults, durations, instance types and validation with field paths."""

import pytest

from remote_ollama.spec.model import SpecError
from remote_ollama.spec.parse import parse_spec
from remote_ollama.spec.sections import format_duration, parse_duration, parse_instance_type


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30m", 1800),
        ("1h30m", 5400),
        ("1800", 1800),
        ("1800s", 1800),
        (1800, 1800),
        ("0.5h", 1800),
        ("1h", 3600),
        ("0", 0),
        ("2m30s", 150),
        (" 45s ", 45),
    ],
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "30x", "-5", "1d", "h30", "30 m", True, -1, "1m1h"])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)  # type: ignore[arg-type]


def test_format_duration_round_trips() -> None:
    for s in (0, 45, 60, 1800, 5400, 86400, 3661):
        assert parse_duration(format_duration(s)) == s


def test_instance_type_and_its_short_alias() -> None:
    assert parse_instance_type("gpua5000.small").name == "gpua5000.small"
    assert parse_instance_type("a5000.small").name == "gpua5000.small"
    assert parse_instance_type("GPU2.Medium").name == "gpu2.medium"
    for bad in ("gpua5000", "gpu.a.b", "", ".small", "gpu2_medium"):
        with pytest.raises(ValueError, match="family"):
            parse_instance_type(bad)


def test_defaults() -> None:
    spec = parse_spec({"credentialsSecretRef": {"name": "exo"}})
    assert spec.zone == "at-vie-2"
    assert spec.instance_type.name == "gpua5000.small"
    assert spec.template == "Linux Ubuntu 22.04 LTS 64-bit"
    assert spec.disk_size == 100
    assert spec.models == ("granite3.1-dense:8b",)
    assert spec.idle.stop_after == 1800 and spec.idle.destroy_after == 86400
    assert spec.wake.hold_timeout == 600 and spec.wake.max_held_requests == 256
    assert spec.suspend is False
    assert spec.allowed_source_cidrs == ("0.0.0.0/0",)


def test_every_problem_reported_with_its_path() -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(
            {
                "zone": "mars-1",
                "instanceType": "big",
                "diskSize": 5,
                "models": [],
                "idle": {"destroyAfter": "1h"},
                "wake": {"maxHeldRequests": -1},
                "allowedSourceCIDRs": ["10.0.0.0/33"],
                "suspend": "yes",
                "colour": "red",
            }
        )
    paths = {p for p, _ in err.value.problems}
    assert paths == {
        "spec.credentialsSecretRef.name",
        "spec.zone",
        "spec.instanceType",
        "spec.diskSize",
        "spec.models",
        "spec.idle.destroyAfter",
        "spec.wake.maxHeldRequests",
        "spec.allowedSourceCIDRs",
        "spec.suspend",
        "spec.colour",
    }
    assert "spec.zone: unknown zone 'mars-1'" in str(err.value)


def test_instance_hash_ignores_runtime_fields() -> None:
    base = parse_spec({"credentialsSecretRef": {"name": "x"}})
    same = parse_spec(
        {
            "credentialsSecretRef": {"name": "x"},
            "models": ["llama3"],
            "idle": {"stopAfter": "5m"},
            "suspend": True,
            "allowedSourceCIDRs": ["1.2.3.0/24"],
        }
    )
    assert base.instance_hash() == same.instance_hash()
    for change in (
        {"zone": "ch-gva-2"},
        {"instanceType": "gpua5000.medium"},
        {"template": "Other"},
        {"diskSize": 200},
    ):
        other = parse_spec({"credentialsSecretRef": {"name": "x"}, **change})
        assert other.instance_hash() != base.instance_hash(), change
