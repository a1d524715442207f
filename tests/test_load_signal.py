"""The load signal of a replicated endpoint (issue 19): what the operator believes of the proxies'
Leases (live ones of this resource only, summed, capped), and the proxy's resolver that routes,
holds and counts."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from remote_ollama.kube.signal import (
    DURATION,
    LeaseWriter,
    micro_time,
    read_signal,
    signal_from,
    signal_labels,
)
from remote_ollama.proxy.interfaces import NotReady, Refusal, Upstream
from remote_ollama.proxy.replicated import ReplicaResolver
from remote_ollama.proxy.routing import Router
from remote_ollama.spec.names import ANN_SIGNAL_HELD, ANN_SIGNAL_IN_FLIGHT

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def lease(
    pod: str, in_flight: dict[str, Any], held: str = "0", *, resource: str = "granite", age: float = 1.0
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{resource}-proxy-{pod}",
            "labels": signal_labels(resource),
            "annotations": {ANN_SIGNAL_IN_FLIGHT: json.dumps(in_flight), ANN_SIGNAL_HELD: held},
        },
        "spec": {
            "holderIdentity": pod,
            "leaseDurationSeconds": DURATION,
            "renewTime": micro_time(NOW - timedelta(seconds=age)),
        },
    }


def test_the_live_leases_of_the_resource_are_summed_per_replica() -> None:
    got = signal_from([lease("a", {"0": 2, "1": 1}, "1"), lease("b", {"0": 3}, "2")], "granite", NOW)
    assert (got.in_flight, got.held, got.proxies) == ({0: 5, 1: 1}, 3, 2)


def test_a_dead_proxys_lease_counts_for_nothing_once_expired() -> None:
    got = signal_from([lease("a", {"0": 2}), lease("dead", {"0": 7}, "4", age=DURATION + 1)], "granite", NOW)
    assert (got.in_flight, got.held, got.proxies) == ({0: 2}, 0, 1)


def test_leases_of_another_resource_or_unlabelled_or_forged_are_ignored() -> None:
    other = lease("a", {"0": 9}, "9", resource="llama")
    relabelled = lease("b", {"0": 9})
    relabelled["metadata"]["labels"] = signal_labels("llama")
    misnamed = lease("c", {"0": 9})
    misnamed["metadata"]["name"] = "something-else"
    garbage = lease("d", {"0": -5, "x": 3, "99": 4, "1": "7"}, "lots")
    huge = lease("e", {"2": 10**12})
    got = signal_from([other, relabelled, misnamed, garbage, huge], "granite", NOW)
    assert got.in_flight == {2: 100_000} and got.held == 0


def upstream(n: int) -> Upstream:
    return Upstream(f"https://127.0.0.{n}:11435")


async def test_the_resolver_routes_least_busy_and_holds_while_all_are_at_target_and_one_is_coming() -> None:
    router = Router()
    resolver = ReplicaResolver(router)
    resolver.configure(target=1, replicas_max=3)
    resolver.set_members({0: upstream(1)}, desired=1)
    first = resolver.state().upstream
    assert first == upstream(1)
    router.begin(first)
    # at target, none coming: the least busy takes it (its Ollama queues)
    assert resolver.state().upstream == upstream(1)
    resolver.set_members({0: upstream(1)}, desired=2)  # the operator scaled up
    loop = asyncio.get_running_loop()
    held = asyncio.ensure_future(resolver.await_ready(loop.time() + 10))
    await asyncio.sleep(0)
    assert not held.done() and resolver.waiting == 1 and resolver.in_flight() == {0: 1}
    resolver.set_members({0: upstream(1), 1: upstream(2)}, desired=2)
    assert await held == upstream(2)
    assert resolver.waiting == 0


def test_the_resolver_forgets_the_endpoints_of_replicas_long_gone() -> None:
    """Replicas come and go with new addresses; only the members' and those of requests still
    running are remembered (each departed one stayed, for the life of the proxy)."""
    router = Router()
    resolver = ReplicaResolver(router)
    resolver.configure(target=1, replicas_max=2)
    resolver.set_members({0: upstream(1), 1: upstream(2)}, desired=2)
    router.begin(upstream(2))  # a request to replica 1 that outlives its VM
    for n in range(3, 103):
        resolver.set_members({0: upstream(1), 1: upstream(n)}, desired=2)
        router.begin(upstream(n))
        router.end(upstream(n))
    assert resolver.in_flight() == {1: 1}
    assert set(resolver.index_of) == {upstream(1).url, upstream(102).url, upstream(2).url}
    assert set(router.begun) == {upstream(102).url, upstream(2).url}  # the router's counts likewise
    router.end(upstream(2))
    resolver.set_members({0: upstream(1)}, desired=1)
    assert set(resolver.index_of) == {upstream(1).url} and not router.begun


async def test_with_max_one_it_is_the_one_vm_resolver_as_before() -> None:
    resolver = ReplicaResolver(Router())
    resolver.base.set_refusing("Failed", Refusal("quota exceeded"))
    with pytest.raises(NotReady, match="quota exceeded"):
        await resolver.await_ready(asyncio.get_running_loop().time() + 5)
    resolver.base.set_ready(upstream(1))
    assert resolver.state().upstream == upstream(1)


def test_the_proxys_lease_says_its_counts_and_goes_with_the_resource() -> None:
    writer = LeaseWriter(None, "ai", "granite", "granite-proxy-7c9-x", lambda: ({0: 2, 1: 0}, 3))  # type: ignore[arg-type]
    writer.owner = {"kind": "RemoteOllama", "uid": "u-1"}
    body = writer.body(NOW)
    assert body["metadata"]["name"] == "granite-proxy-granite-proxy-7c9-x"
    assert body["metadata"]["ownerReferences"] == [{"kind": "RemoteOllama", "uid": "u-1"}]
    got = signal_from([body], "granite", NOW + timedelta(seconds=1))
    assert (got.in_flight, got.held) == ({0: 2}, 3) and got.last_activity == {0: NOW}


class ListingAPI:
    """The API calls read_signal makes, answered from a list of Leases."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items, self.deleted = items, []  # type: ignore[var-annotated]

    async def request(self, method: str, path: str, body: Any = None, **_: Any) -> dict[str, Any]:
        if method == "DELETE":
            self.deleted.append(path.rsplit("/", 1)[1])
        return {"items": self.items}


async def test_the_operator_deletes_the_lease_of_a_proxy_gone_for_ten_minutes_and_only_that() -> None:
    api = ListingAPI(
        [lease("live", {"0": 1}), lease("late", {"0": 1}, age=DURATION + 5), lease("gone", {}, age=601)]
    )
    got = await read_signal(api, "ai", "granite", NOW)  # type: ignore[arg-type]
    assert api.deleted == ["granite-proxy-gone"] and got.in_flight == {0: 1}
