"""Operator metrics: wake phase histograms and reconcile outcomes, in Prometheus format."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from ..lifecycle import WakeTiming

WAKE_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200)


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self.wake_seconds = Histogram(
            "remote_ollama_wake_seconds",
            "Wake duration by phase (requested->running, running->ready, total)",
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
        self.wake_seconds.labels("total").observe(wake.seconds)
        if wake.running_at is not None:
            self.wake_seconds.labels("to_running").observe(
                (wake.running_at - wake.requested_at).total_seconds()
            )
            self.wake_seconds.labels("to_ready").observe((wake.ready_at - wake.running_at).total_seconds())
