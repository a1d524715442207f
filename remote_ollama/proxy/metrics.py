"""Prometheus metrics, one registry per app so several proxies (and tests) never share counters."""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

# Route classes keep label cardinality bounded whatever paths clients send.
_FIXED_ROUTES = frozenset(
    {
        "/",
        "/api/generate",
        "/api/chat",
        "/api/embed",
        "/api/embeddings",
        "/api/tags",
        "/api/show",
        "/api/create",
        "/api/copy",
        "/api/delete",
        "/api/pull",
        "/api/push",
        "/api/ps",
        "/api/version",
        "/api/status",
        "/api/me",
        "/api/signout",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/responses",
        "/v1/embeddings",
        "/v1/models",
        "/v1/messages",
        "/v1/audio/transcriptions",
    }
)
_PATTERNS = (
    (re.compile(r"^/api/blobs/[^/]+$"), "/api/blobs/:digest"),
    (re.compile(r"^/v1/models/.+$"), "/v1/models/:model"),
)
_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
)
# A final chunk's counts (`"eval_count":12`); "prompt_eval_count" is not matched as "eval_count".
_PROMPT_COUNT = re.compile(rb'"prompt_eval_count"\s*:\s*(\d{1,18})[,}\s]')
_EVAL_COUNT = re.compile(rb'(?<!prompt_)"eval_count"\s*:\s*(\d{1,18})[,}\s]')
_HOLD_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1200)


def route_class(path: str) -> str:
    if path in _FIXED_ROUTES:
        return path
    for pattern, name in _PATTERNS:
        if pattern.match(path):
            return name
    return "other"


class Tally:
    """A counter the request path adds to (a float add): exported at scrape time by `HotMetrics`."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class HotMetrics(Collector):
    """What every request counts, kept in plain numbers and turned into Prometheus samples only when
    scraped: prometheus_client's own metrics take a lock and a label lookup per update, a
    measurable part of the proxy's added time per request (bench/proxy_profile.py)."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], int] = {}
        self.latency: dict[str, list[float]] = {}  # route -> counts per bucket (+Inf last), then the sum
        self.bytes_in, self.bytes_out = Tally(), Tally()
        self.prompt_tokens, self.eval_tokens = Tally(), Tally()

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "remote_ollama_proxy_requests", "Requests answered", labels=["route", "code"]
        )
        for (route, code), n in list(self.answers.items()):
            requests.add_metric([route, code], n)
        yield requests
        latency = HistogramMetricFamily(
            "remote_ollama_proxy_upstream_latency_seconds",
            "Time from forwarding to the upstream's response headers",
            labels=["route"],
        )
        for route, counts in list(self.latency.items()):
            cumulative = list(itertools.accumulate(counts[:-1]))
            bounds = [*(repr(float(b)) for b in _LATENCY_BUCKETS), "+Inf"]
            latency.add_metric([route], list(zip(bounds, cumulative, strict=True)), counts[-1])
        yield latency
        traffic = CounterMetricFamily(
            "remote_ollama_proxy_bytes", "Body bytes passed through", labels=["direction"]
        )
        traffic.add_metric(["in"], self.bytes_in.value)
        traffic.add_metric(["out"], self.bytes_out.value)
        yield traffic
        tokens = CounterMetricFamily(
            "remote_ollama_proxy_tokens", "Tokens reported by final chunks", labels=["kind"]
        )
        tokens.add_metric(["prompt"], self.prompt_tokens.value)
        tokens.add_metric(["eval"], self.eval_tokens.value)
        yield tokens


class ProxyMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.held = Gauge("remote_ollama_proxy_held_requests", "Requests waiting for the VM", registry=r)
        self.hold_seconds = Histogram(
            "remote_ollama_proxy_hold_seconds",
            "Time requests waited for the VM",
            buckets=_HOLD_BUCKETS,
            registry=r,
        )
        self.wake_first_request = Histogram(
            "remote_ollama_proxy_wake_first_request_seconds",
            "Per wake: from the first request held to the first response byte of a held request",
            buckets=_HOLD_BUCKETS,
            registry=r,
        )
        self.hot = HotMetrics()
        r.register(self.hot)
        self.bytes_in, self.bytes_out = self.hot.bytes_in, self.hot.bytes_out

    def answered(self, route: str, code: str) -> None:
        """Count one answer."""
        answers = self.hot.answers
        key = (route, code)
        answers[key] = answers.get(key, 0) + 1

    def upstream_took(self, route: str, seconds: float) -> None:
        counts = self.hot.latency.get(route)
        if counts is None:
            counts = self.hot.latency[route] = [0.0] * (len(_LATENCY_BUCKETS) + 2)
        counts[bisect.bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        counts[-1] += seconds

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def count_tokens(self, tail: bytes) -> None:
        """Read `prompt_eval_count`/`eval_count` from the last JSON line of a body, if it has them
        (two searches of that line: a final chunk is flat, its counts plain integers)."""
        if b"eval_count" not in tail:
            return
        line = tail.rstrip().rsplit(b"\n", 1)[-1]
        for pattern, tally in ((_PROMPT_COUNT, self.hot.prompt_tokens), (_EVAL_COUNT, self.hot.eval_tokens)):
            found = pattern.search(line)
            if found is not None:
                tally.inc(int(found.group(1)))
