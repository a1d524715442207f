"""The proxy's replica pick (proxy/routing.py): least outstanding requests among the Ready replicas,
preferring the model's replica; or prefix affinity (consistent hashing with bounded load); while
every one is at target and another is coming, hold; at max, the least busy one."""

from __future__ import annotations

import json

from remote_ollama.proxy.interfaces import RouteKey, Upstream
from remote_ollama.proxy.route_key import PREFIX_CHARS, route_key
from remote_ollama.proxy.routing import (
    PREFIX_AFFINITY,
    Ring,
    Router,
    bounded_choice,
    least_outstanding,
)

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


# -- the model's replica (issue 19: prefer one whose /api/ps shows the model loaded) ---------------


def test_equal_loads_go_to_the_replica_holding_the_model() -> None:
    router = Router()
    router.learn(C.url, "granite3.1-dense:8b")
    key = RouteKey("granite3.1-dense:8b")
    assert router.pick([A, B, C], 4, more_coming=False, key=key) is C
    assert router.pick([A, B, C], 4, more_coming=False, key=RouteKey("llama3")) is A  # nobody has it
    router.learn(B.url, "llama3")  # learned as Ollama lists it: llama3:latest
    assert router.pick([A, B, C], 4, more_coming=False, key=RouteKey("llama3:latest")) is B


def test_the_model_holder_with_room_wins_over_a_less_busy_one_but_not_at_target() -> None:
    router = Router()
    router.learn(B.url, "m:1")
    router.begin(B)
    key = RouteKey("m:1")
    assert router.pick([A, B], 2, more_coming=False, key=key) is B  # a free slot beats a model load
    router.begin(B)  # B at target: the least outstanding wins again
    assert router.pick([A, B], 2, more_coming=False, key=key) is A
    assert router.pick([A, B], 2, more_coming=False) is A


def test_least_outstanding_on_plain_data() -> None:
    assert least_outstanding([], [], 4) == -1
    assert least_outstanding([1, 0, 0], [False, False, True], 4) == 2  # among equals the holder
    assert least_outstanding([3, 0], [True, False], 4) == 0  # the holder has room
    assert least_outstanding([4, 1], [True, False], 4) == 1  # the holder is at target
    assert least_outstanding([5, 4], [True, False], 4) == 1  # all at target: least busy
    assert least_outstanding([4, 4], [False, True], 4) == 1  # ... the holder among equals


# -- prefix affinity: consistent hashing with bounded load ------------------------------------------

KEYS = [f"conversation {i}: what is in this picture?".encode() for i in range(300)]
URLS = [f"https://127.0.10.{i}:11435" for i in range(1, 5)]


def test_the_same_conversation_maps_to_the_same_replica_and_keys_spread() -> None:
    ring = Ring(URLS)
    first = [bounded_choice(ring, k, {}) for k in KEYS]
    assert first == [bounded_choice(Ring(list(reversed(URLS))), k, {}) for k in KEYS]  # order-free
    shares = {u: first.count(u) for u in URLS}
    assert min(shares.values()) >= 0.6 * len(KEYS) / len(URLS), shares


def test_a_replica_over_the_bound_is_skipped() -> None:
    ring = Ring(URLS)
    key = KEYS[0]
    home = bounded_choice(ring, key, {})
    # 7 in flight, 8 with this one: the cap is ceil(1.25 * 8 / 4) = 3, so home (at 3) is full
    loads = {home: 3, **{u: 1 for u in URLS if u != home}}
    loads[next(u for u in URLS if u != home)] = 2
    assert sum(loads.values()) == 7
    other = bounded_choice(ring, key, loads)
    assert other != home and other == next(u for u in ring.walk(key) if u != home and loads[u] + 1 <= 3)
    assert bounded_choice(ring, key, {**loads, home: 2}) == home  # within the bound: home again


def test_removing_a_replica_moves_only_its_keys() -> None:
    before = {k: bounded_choice(Ring(URLS), k, {}) for k in KEYS}
    gone = URLS[1]
    after = {k: bounded_choice(Ring([u for u in URLS if u != gone]), k, {}) for k in KEYS}
    moved = {k for k in KEYS if before[k] != after[k]}
    assert moved == {k for k in KEYS if before[k] == gone}
    assert moved and gone not in after.values()


def test_prefix_affinity_routes_by_the_key_and_holds_as_least_outstanding_does() -> None:
    router = Router(PREFIX_AFFINITY)
    replicas = [Upstream(u) for u in URLS]
    key = RouteKey("m:1", KEYS[7])
    home = router.pick(replicas, 4, more_coming=False, key=key)
    assert home is not None and home.url == bounded_choice(Ring(URLS), b"m:1\0" + KEYS[7], {})
    for _ in range(3):  # the turns of one conversation, one after the other
        router.begin(home)
        router.end(home)
        assert router.pick(replicas, 4, more_coming=False, key=key) is home
    for u in replicas:
        router.begin(u)  # one in flight everywhere: home is within the bound, ceil(1.25 * 5 / 4) = 2
    assert router.pick(replicas, 4, more_coming=False, key=key) is home
    router.begin(home)  # home at 2 of 5 in flight: over ceil(1.25 * 6 / 4) = 2 with this one
    assert router.pick(replicas, 4, more_coming=False, key=key) not in (home, None)
    least = next(u for u in replicas if u is not home)
    assert router.pick(replicas, 4, more_coming=False, key=RouteKey("m:1")) is least  # no prompt
    for u in replicas:
        while router.count(u.url) < 4:
            router.begin(u)
    assert router.pick(replicas, 4, more_coming=True, key=key) is None  # every one at target: hold


# -- the key, from the raw body --------------------------------------------------------------------


def test_a_conversation_keeps_its_key_turn_after_turn() -> None:
    first = {"role": "user", "content": "hi there"}
    chat = {"model": "llama3", "messages": [first], "stream": True}
    key = route_key(json.dumps(chat).encode())
    assert key.model == "llama3" and b"hi there" in key.prefix
    for turns in range(1, 4):  # later turns add messages (and options) after the opening
        history = [
            first,
            *[{"role": "assistant", "content": "hello"}, {"role": "user", "content": "go on"}] * turns,
        ]
        later = {"model": "llama3", "messages": history, "options": {"seed": turns}}
        assert route_key(json.dumps(later, separators=(",", ":")).encode()).prefix == key.prefix
    other = dict(chat, messages=[{"role": "user", "content": "another conversation"}])
    assert route_key(json.dumps(other).encode()).prefix != key.prefix


def test_the_key_of_a_prompt_is_its_first_characters_only() -> None:
    generate = route_key(b'{"prompt":"Why is the sky blue?","model":"a\\u00e9:1","options":{"seed":1}}')
    assert generate == RouteKey("a\u00e9:1", b"Why is the sky blue?")
    long = route_key(json.dumps({"model": "m", "prompt": "x" * 5000}).encode())
    assert long.prefix == b"x" * PREFIX_CHARS
    assert route_key(b"not json") == RouteKey()
    assert route_key(b'{"model":"m","messages":' + b"[" * 60_000 + b"]" * 60_000 + b"}") == RouteKey("m")


def test_a_long_shared_system_prompt_still_tells_conversations_apart() -> None:
    def body(question: str, *later: dict[str, str]) -> bytes:
        system = {"role": "system", "content": "You are helpful. " * 100}
        messages = [system, {"role": "user", "content": question}, *later]
        return json.dumps({"model": "m", "messages": messages}).encode()

    one, two = route_key(body("first question")), route_key(body("second question"))
    assert one.prefix != two.prefix
    assert route_key(body("first question", {"role": "assistant", "content": "an answer"})) == one
