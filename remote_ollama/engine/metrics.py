"""Lifecycle metrics of both shells: wake phase histograms and cloud errors, in Prometheus format
(the operator serves them on its metrics port, standalone on the proxy's /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from remote_ollama.core.types import WakeTiming

WAKE_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200)


class LifecycleMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self.wake_seconds = Histogram(
            "remote_ollama_wake_seconds",
            "Wake duration by phase: to_running (requested -> VM running), to_ollama (-> Ollama answering),"
            " to_models (-> every model present), to_ready (-> Ready, after the warm-up load), total",
            ["phase"],
            buckets=WAKE_BUCKETS,
            registry=self.registry,
        )
        self.cloud_errors = Counter(
            "remote_ollama_cloud_errors_total",
            "Cloud API errors by reason",
            ["reason"],
            registry=self.registry,
        )

    def observe_wake(self, wake: WakeTiming) -> None:
        for phase, seconds in wake.phases().items():
            self.wake_seconds.labels(phase).observe(seconds)
