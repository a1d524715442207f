"""A round acts on the newest status: the API's answer to our last status patch while the watch
still delivers an older one of ours (else a fallback's status.placement went back to the first
zone); a status someone else wrote is read as it is."""

from __future__ import annotations

from typing import Any

from remote_ollama.kube.operator.freshest import Freshest


def resource(zone_index: int, woken: str = "", instance: str = "i-1") -> dict[str, Any]:
    return {
        "metadata": {"annotations": {"wake": woken}},
        "status": {"placement": {"index": zone_index}, "instance": {"id": instance}},
    }


def test_an_older_status_of_ours_is_replaced_by_our_last() -> None:
    fresh = Freshest()
    assert fresh.read(resource(0)) == resource(0)  # nothing written yet: the live body
    fresh.wrote(resource(0))
    fresh.wrote(resource(1))  # the fallback moved on to the second placement
    # the proxy's annotation, written before our patch and delivered after it: its metadata, our status
    seen = fresh.read(resource(0, woken="now"))
    assert seen["metadata"]["annotations"] == {"wake": "now"} and seen["status"] == resource(1)["status"]
    assert fresh.read(resource(1)) == resource(1)  # the watch caught up


def test_a_status_we_never_wrote_is_read_as_it_is() -> None:
    fresh = Freshest()
    fresh.wrote(resource(0))
    fresh.wrote(resource(1))
    edited = resource(1, instance="i-of-another-team")
    assert fresh.read(edited) == edited  # judged by the round, not hidden by our memory
