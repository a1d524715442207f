"""Lifecycle metrics of both shells: wake phase histograms and cloud errors, in Prometheus format
(the operator serves them on its metrics port, standalone on the proxy's /metrics)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from remote_ollama.core.types import WakeTiming
from remote_ollama.spec.fields_row import MAX_REPLICAS

WAKE_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200)


class LifecycleMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self.wake_seconds = Histogram(
            "remote_ollama_wake_seconds",
            "Wake duration by replica (its index; 0 for one VM) and phase: to_running (requested -> VM"
            " running), to_ollama (-> Ollama answering), to_models (-> every model present), to_ready"
            " (-> Ready, after the warm-up load), total",
            ["replica", "phase"],
            buckets=WAKE_BUCKETS,
            registry=self.registry,
        )
        self.cloud_errors = Counter(
            "remote_ollama_cloud_errors_total",
            "Cloud API errors by reason",
            ["reason"],
            registry=self.registry,
        )

    def observe_wake(self, wake: WakeTiming, replica: int = 0) -> None:
        """One wake of replica `replica`. Only indices below MAX_REPLICAS (the spec's bound) are
        counted, so the label's series stay bounded whatever an index came from."""
        if not 0 <= replica < MAX_REPLICAS:
            return
        for phase, seconds in wake.phases().items():
            self.wake_seconds.labels(str(replica), phase).observe(seconds)


class ReplicaMetrics:
    """A replicated endpoint's replicas (issue 19): how many are in each state, and how many the
    load asks for. `per`: labels naming the endpoint (the operator's: namespace, name; standalone
    serves one endpoint and has none)."""

    STATES = ("ready", "starting", "stopped")

    def __init__(self, registry: CollectorRegistry, per: tuple[str, ...] = ()):
        self.replicas = Gauge(
            "remote_ollama_replicas",
            "Replicas (VMs) of the endpoint by state: ready, starting (on the way up), stopped",
            [*per, "state"],
            registry=registry,
        )
        self.desired = Gauge(
            "remote_ollama_desired_replicas",
            "Replicas the requests in flight ask for, within spec.replicas.min and max",
            list(per),
            registry=registry,
        )

    def observe(self, by_state: Mapping[str, int], desired: int, *endpoint: str) -> None:
        for state in self.STATES:
            self.replicas.labels(*endpoint, state).set(by_state.get(state, 0))
        (self.desired.labels(*endpoint) if endpoint else self.desired).set(desired)

    def forget(self, *endpoint: str) -> None:
        """The endpoint is gone: its series go too."""
        for state in self.STATES:
            with contextlib.suppress(KeyError):
                self.replicas.remove(*endpoint, state)
        with contextlib.suppress(KeyError):
            self.desired.remove(*endpoint)
