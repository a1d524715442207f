"""The proxy's replica pick (proxy/routing.py): least outstanding requests among the Ready replicas;
while every one is at target and another is coming, hold; at max, the least busy one."""

from __future__ import annotations

from remote_ollama.proxy.interfaces import Upstream
from remote_ollama.proxy.routing import Router

A, B, C = (Upstream(f"https://127.0.10.{i}:11435") for i in (1, 2, 3))


def test_least_outstanding_first_and_the_lowest_among_equals() -> None:
    router = Router()
    assert router.pick([A, B, C], 4, more_coming=False) is A
    router.begin(A)
    assert router.pick([A, B, C], 4, more_coming=False) is B
    router.begin(B)
    router.begin(B)
    assert router.pick([A, B, C], 4, more_coming=False) is C
    router.end(B)
    router.end(B)
    assert router.pick([A, B, C], 4, more_coming=False) is B
    assert (router.total, router.usage(A.url), router.usage(B.url)) == (1, (1, 1), (0, 2))


def test_every_replica_at_target_holds_while_another_comes_else_queues_at_the_least_busy() -> None:
    router = Router()
    for _ in range(2):
        router.begin(A)
    for _ in range(3):
        router.begin(B)
    assert router.pick([A, B], 2, more_coming=True) is None  # held for the new one
    assert router.pick([A, B], 2, more_coming=False) is A  # at max: Ollama queues it
    assert router.pick([], 2, more_coming=False) is None  # nothing Ready: held (woken)


def test_an_ended_request_tells_the_holder() -> None:
    router = Router()
    told: list[int] = []
    router.on_change = lambda: told.append(router.total)
    router.begin(A)
    router.end(A)
    assert told == [0] and router.outstanding == {}
