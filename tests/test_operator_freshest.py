"""A round acts on the newest status: the API's answer to our last status patch, whatever the watch
has delivered so far (else a fallback's status.placement went back to the first zone)."""

from __future__ import annotations

from typing import Any

from remote_ollama.kube.operator.freshest import Freshest


def resource(version: str, zone_index: int, woken: str = "") -> dict[str, Any]:
    return {
        "metadata": {"resourceVersion": version, "annotations": {"wake": woken}},
        "status": {"placement": {"index": zone_index}},
    }


def test_the_status_of_our_last_patch_wins_over_an_older_live_body() -> None:
    fresh = Freshest()
    assert fresh.read(resource("10", 0)) == resource("10", 0)  # nothing written yet: the live body
    fresh.wrote(resource("11", 1))  # the fallback moved on to the second placement
    assert fresh.read(resource("10", 0))["status"] == {"placement": {"index": 1}}


def test_annotations_written_by_others_come_from_the_live_body() -> None:
    fresh = Freshest()
    fresh.wrote(resource("11", 1))
    # the proxy's annotation (written before our patch, delivered after it): its metadata, our status
    seen = fresh.read(resource("12", 0, woken="now"))
    assert seen["metadata"]["annotations"] == {"wake": "now"} and seen["status"]["placement"]["index"] == 1
