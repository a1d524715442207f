"""Prometheus metrics, one registry per app so several proxies (and tests) never share counters."""

from __future__ import annotations

import json
import re
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

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
_HOLD_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1200)


def route_class(path: str) -> str:
    if path in _FIXED_ROUTES:
        return path
    for pattern, name in _PATTERNS:
        if pattern.match(path):
            return name
    return "other"


class ProxyMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "remote_ollama_proxy_requests", "Requests answered", ["route", "code"], registry=r
        )
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
        self.upstream_latency = Histogram(
            "remote_ollama_proxy_upstream_latency_seconds",
            "Time from forwarding to the upstream's response headers",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.bytes = Counter(
            "remote_ollama_proxy_bytes", "Body bytes passed through", ["direction"], registry=r
        )
        self._answered: dict[tuple[str, ...], Any] = {}
        self._latency: dict[tuple[str, ...], Any] = {}
        self.bytes_in = self.bytes.labels("in")
        self.bytes_out = self.bytes.labels("out")
        self.tokens = Counter(
            "remote_ollama_proxy_tokens", "Tokens reported by final chunks", ["kind"], registry=r
        )

    def answered(self, route: str, code: str) -> None:
        """Count one answer."""
        self._child(self._answered, self.requests, route, code).inc()

    def upstream_took(self, route: str, seconds: float) -> None:
        self._child(self._latency, self.upstream_latency, route).observe(seconds)

    @staticmethod
    def _child(children: dict[tuple[str, ...], Any], metric: Any, *labels: str) -> Any:
        """The labelled child, looked up once per label set, not per request (hot path)."""
        child = children.get(labels)
        if child is None:
            child = children[labels] = metric.labels(*labels)
        return child

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def count_tokens(self, tail: bytes) -> None:
        """Read `prompt_eval_count`/`eval_count` from the last JSON line of a body, if it has them."""
        if b"eval_count" not in tail:
            return
        line = tail.rstrip().rsplit(b"\n", 1)[-1]
        try:
            final = json.loads(line)
        except ValueError:
            return
        if not isinstance(final, dict):
            return
        for key, kind in (("prompt_eval_count", "prompt"), ("eval_count", "eval")):
            value = final.get(key)
            if isinstance(value, int) and value >= 0:
                self.tokens.labels(kind).inc(value)
