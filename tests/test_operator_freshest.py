"""A round acts on the newest known resource: the API's answer to our status patch until the watch
delivers it (else a fallback's status.placement went back to the first zone: issue 23's xfail)."""

from __future__ import annotations

from typing import Any

from remote_ollama.kube.operator.freshest import Freshest


def resource(version: str, zone_index: int) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": version}, "status": {"placement": {"index": zone_index}}}


def test_a_body_older_than_our_patch_is_replaced_by_the_patch_answer() -> None:
    fresh = Freshest()
    assert fresh.read(resource("10", 0)) == resource("10", 0)
    fresh.wrote(resource("11", 1))  # the fallback moved on to the second placement
    assert fresh.read(resource("10", 0)) == resource("11", 1), "the watch has not delivered it yet"
    fresh.wrote(resource("12", 1))  # a second patch before the watch caught up
    assert fresh.read(resource("11", 1)) == resource("12", 1)
    assert fresh.read(resource("12", 1)) == resource("12", 1)  # caught up: the live body again
    assert fresh.read(resource("10", 0)) == resource("10", 0)  # nothing known newer: never guessed


def test_a_write_by_someone_else_after_ours_is_the_live_body() -> None:
    fresh = Freshest()
    fresh.read(resource("10", 0))
    fresh.wrote(resource("11", 1))
    assert fresh.read(resource("13", 2)) == resource("13", 2)  # unknown version: newer than ours
