"""Bad input, fuzzed with hypothesis: the duration/type/spec parsers fail only with ValueError
(SpecError is one) and round-trip; annotation times never raise; the proxy never answers 500 of
its own to any method, path or header, and its errors are Ollama-shaped."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from proxy_world import World, threaded_world

from remote_ollama.kube.operator.status import parse_time
from remote_ollama.spec.fields_row import ZONES
from remote_ollama.spec.model import Spec, SpecError
from remote_ollama.spec.parse import parse_spec
from remote_ollama.spec.sections import (
    KNOWN_SIZES,
    IdlePolicy,
    format_duration,
    parse_duration,
    parse_instance_type,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


@given(st.one_of(st.text(), st.integers(), st.floats(), st.booleans()))
def test_parse_duration_returns_seconds_or_raises_value_error(value: Any) -> None:
    try:
        seconds = parse_duration(value)
    except ValueError:
        return
    assert isinstance(seconds, float) and seconds >= 0


@given(st.integers(0, 10**7))
def test_format_then_parse_duration_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds
    assert parse_duration(str(seconds)) == seconds


@given(st.integers(0, 999), st.integers(0, 999), st.integers(0, 999))
def test_hms_durations_add_up(h: int, m: int, s: int) -> None:
    assert parse_duration(f"{h}h{m}m{s}s") == h * 3600 + m * 60 + s


@given(st.one_of(st.text(), st.integers(), st.none(), st.binary()))
def test_parse_instance_type_returns_a_type_or_raises_value_error(value: Any) -> None:
    try:
        itype = parse_instance_type(value)
    except ValueError:
        return
    assert parse_instance_type(itype.name) == itype


@given(st.from_regex(r"\A[a-z0-9]{1,12}\Z"), st.sampled_from(sorted(KNOWN_SIZES)))
def test_instance_type_names_round_trip(family: str, size: str) -> None:
    try:
        itype = parse_instance_type(f"{family}.{size}")
    except ValueError:
        return
    assert parse_instance_type(itype.name) == itype
    assert itype.size == size


SPEC_KEYS = st.sampled_from(
    [
        "zone",
        "instanceType",
        "template",
        "diskSize",
        "models",
        "idle",
        "wake",
        "suspend",
        "allowedSourceCIDRs",
        "activityInterval",
        "credentialsSecretRef",
    ]
)
IDLE = st.fixed_dictionaries({}, optional={"stopAfter": json_values, "destroyAfter": json_values})


@given(st.dictionaries(SPEC_KEYS | st.text(max_size=20), json_values | IDLE, max_size=8) | st.none())
def test_parse_spec_returns_a_spec_or_raises_spec_error(raw: Any) -> None:
    try:
        spec = parse_spec(raw, require_credentials=False)
    except SpecError as exc:
        assert exc.problems and all(path.startswith("spec.") for path, _ in exc.problems)
        return
    assert isinstance(spec, Spec)


@given(
    zone=st.sampled_from(ZONES),
    disk=st.integers(10, 51200),
    stop=st.integers(1, 10**6),
    destroy=st.none() | st.integers(0, 10**6),
    models=st.lists(st.from_regex(r"\A[a-z][a-z0-9.-]{0,20}(:[a-z0-9]{1,8})?\Z"), min_size=1, max_size=3),
    suspend=st.booleans(),
)
def test_valid_specs_round_trip_through_their_dict(
    zone: str, disk: int, stop: int, destroy: int | None, models: list[str], suspend: bool
) -> None:
    spec = Spec(
        credentials_secret="creds",
        zone=zone,
        disk_size=disk,
        models=tuple(models),
        idle=IdlePolicy(float(stop), None if destroy is None else float(destroy)),
        suspend=suspend,
    )
    assert parse_spec(spec.to_dict()) == spec


@given(json_values | st.datetimes().map(str) | st.text())
def test_annotation_times_are_parsed_or_none_never_raise(value: Any) -> None:
    parsed = parse_time(value)
    assert parsed is None or parsed.tzinfo is not None


# -- the proxy's request path -------------------------------------------------------------------

TOKEN = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=12)
PATH_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/%?#[]"


@pytest.fixture(scope="module")
def proxy() -> Iterator[World]:
    with threaded_world() as (_, w):
        yield w


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
    | TOKEN.map(str.upper),
    path=st.sampled_from(
        ["/api/", "/v1/", "/", "/api/generate", "/api/chat", "/v1/chat/completions"]
    ).flatmap(lambda prefix: st.text(PATH_CHARS, max_size=40).map(lambda tail: prefix + tail)),
    headers=st.dictionaries(
        TOKEN, st.text(" abcdefghijklmnopqrstuvwxyz0123456789=;,/.", max_size=30), max_size=5
    ),
    body=st.none() | st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()),
)
def test_the_proxy_never_answers_500_of_its_own(
    proxy: World, method: str, path: str, headers: dict[str, str], body: bytes | None
) -> None:
    port = int(proxy.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {
        k: v.strip()
        for k, v in headers.items()
        if k.lower() not in ("content-length", "transfer-encoding", "host", "expect", "connection")
    }
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    assert resp.status != 500, (method, path, data[:300])
    assert resp.status < 500 or resp.status in (502, 503), (resp.status, data[:300])
    if resp.status >= 400 and method != "HEAD" and data:
        kind = resp.getheader("Content-Type", "")
        if "json" in kind:
            assert "error" in json.loads(data), data[:300]
        else:
            assert kind.startswith("text/plain") or not kind, (kind, data[:300])
