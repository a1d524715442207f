"""The wake histograms as a scrape shows them: wakes counted per replica (issue 19)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def wakes_by_replica(text: str) -> dict[str, float]:
    """remote_ollama_wake_seconds_count{phase="total"} per replica label, from /metrics text."""
    return {
        s.labels.get("replica", "(none)"): s.value
        for family in text_string_to_metric_families(text)
        if family.name == "remote_ollama_wake_seconds"
        for s in family.samples
        if s.name == "remote_ollama_wake_seconds_count" and s.labels.get("phase") == "total"
    }
