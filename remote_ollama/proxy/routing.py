"""Which replica a request goes to (issue 19): least outstanding requests among the Ready ones,
preferring one that has the request's model loaded, or (spec.replicas.routing prefixAffinity) the
replica the prompt's prefix hashes to, within a bound on its load.

The proxy counts the requests it has outstanding per upstream (`begin`/`end` around each one, a
dict update: the per-request path stays lean); the resolver of a replicated endpoint asks `pick`
which Ready replica takes the next request. A replica at its target is "busy": while another is on
its way up, `pick` answers None and the request is held for the first replica with room (a new
one, or one that finished a request); with no other coming it goes to the least busy (its Ollama
queues it). With one replica nothing of this matters: the proxy's counting is all that runs.

Loading a model takes seconds to minutes, a free parallel slot nothing: so a replica with the model
loaded and room (below target) is taken before a less busy one without it (`least_outstanding`).
What is loaded where is learned by `LoadedModels` (proxy/loaded.py) into `Router.loaded`.

Prefix affinity is consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam 2018):
the key goes to the first replica clockwise on a ring of virtual nodes whose load stays within
`LOAD_BOUND` x the average, so a conversation returns to the VM holding its KV cache, no replica
takes more than its share, and a replica leaving moves only its own keys. The hash is blake2b, not
Python's `hash()`, so every proxy replica maps a key alike.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from remote_ollama.proxy.interfaces import RouteKey, Upstream
from remote_ollama.proxy.offline import full_name
from remote_ollama.spec.fields_row import ROUTINGS

LEAST_OUTSTANDING, PREFIX_AFFINITY = ROUTINGS  # spec.replicas.routing
LOAD_BOUND = 1.25  # prefix affinity: no replica above this times the average load (with the new request)
VNODES = 100  # points per replica on the ring: shares within a few percent of even


def _point(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class Ring:
    """The consistent-hash ring of a set of replicas (by URL), `VNODES` points each."""

    def __init__(self, urls: Sequence[str]) -> None:
        points = sorted((_point(f"{url}#{i}".encode()), url) for url in urls for i in range(VNODES))
        self.hashes = [h for h, _ in points]
        self.urls = [u for _, u in points]
        self.replicas = tuple(dict.fromkeys(urls))
        self.members = len(self.replicas)

    def walk(self, key: bytes) -> Iterator[str]:
        """The replicas in ring order from `key`'s point, each once."""
        if not self.urls:
            return
        start = bisect.bisect(self.hashes, _point(key))
        seen: set[str] = set()
        for i in range(len(self.urls)):
            url = self.urls[(start + i) % len(self.urls)]
            if url not in seen:
                seen.add(url)
                yield url
                if len(seen) == self.members:
                    return


def bounded_choice(ring: Ring, key: bytes, loads: Mapping[str, int], bound: float = LOAD_BOUND) -> str | None:
    """The first replica on `ring` from `key` whose load with this request stays within `bound`
    times the average (rounded up, so an idle set always has room): None for an empty ring."""
    if not ring.members:
        return None
    total = sum(loads.get(u, 0) for u in ring.replicas) + 1
    cap = math.ceil(bound * total / ring.members)
    first: str | None = None
    for url in ring.walk(key):
        first = first or url
        if loads.get(url, 0) + 1 <= cap:
            return url
    return first  # unreachable: some replica is at or below the average


def least_outstanding(loads: Sequence[int], has_model: Sequence[bool], target: int) -> int:
    """The index to take: among those with the model and room (below `target`) the least busy;
    else the least busy of all, one with the model first among equals, then the lowest index (so
    the lowest replicas fill first and the highest idle first, to be scaled down). -1 when empty."""
    best, best_rank = -1, (0, 0, 0)
    for i, (n, model) in enumerate(zip(loads, has_model, strict=True)):
        rank = (0 if model and n < target else 1, n, 0 if model else 1)
        if best < 0 or rank < best_rank:
            best, best_rank = i, rank
    return best


class Router:
    def __init__(self, routing: str = LEAST_OUTSTANDING) -> None:
        self.routing = routing
        self.outstanding: dict[str, int] = {}
        self.total = 0  # the sum of outstanding: the load signal, kept as it changes
        self.begun: dict[str, int] = {}  # requests begun per upstream (kept): "used since" for idleness
        self.on_change: Callable[[], None] | None = None  # a request ended: held ones may fit now
        self.loaded: dict[str, frozenset[str]] = {}  # models loaded per upstream URL, as last learned
        self.ready: tuple[Upstream, ...] = ()  # the Ready replicas of the last pick (polled for models)
        self._ring: Ring = Ring(())
        self._ring_of: tuple[str, ...] = ()

    @property
    def keyed(self) -> bool:
        """More than one replica to choose from: a request's key (model, prompt) is worth reading."""
        return len(self.ready) > 1

    def begin(self, upstream: Upstream) -> None:
        url = upstream.url
        self.outstanding[url] = self.outstanding.get(url, 0) + 1
        self.total += 1
        self.begun[url] = self.begun.get(url, 0) + 1

    def end(self, upstream: Upstream) -> None:
        url = upstream.url
        self.total -= 1
        left = self.outstanding.get(url, 0) - 1
        if left > 0:
            self.outstanding[url] = left
        else:
            self.outstanding.pop(url, None)
        if self.on_change is not None:
            self.on_change()

    def count(self, url: str) -> int:
        return self.outstanding.get(url, 0)

    def usage(self, url: str | None) -> tuple[int, int]:
        """(requests outstanding, requests ever begun) on `url`; (0, 0) for None."""
        return (self.outstanding.get(url, 0), self.begun.get(url, 0)) if url else (0, 0)

    def keep(self, urls: Iterable[str]) -> None:
        """Forget the upstreams that are neither in `urls` (the members, as their owner learned them)
        nor serving a request: VMs come and go with new addresses, the maps stay that small."""
        kept = set(urls) | self.outstanding.keys()
        for known in (self.begun, self.loaded):
            for url in known.keys() - kept:
                del known[url]

    def learn(self, url: str, model: str) -> None:
        """`url` just answered `model`: it is loaded there (until the next /api/ps says otherwise)."""
        models = self.loaded.get(url, frozenset())
        name = full_name(model) if model else ""
        if name and name not in models:
            self.loaded[url] = models | {name}

    def pick(
        self, ready: Sequence[Upstream], target: int, *, more_coming: bool, key: RouteKey | None = None
    ) -> Upstream | None:
        """The Ready replica for the next request (see the module's docstring); None when every one
        is at `target` and another replica is on its way (hold for it)."""
        self.ready = tuple(ready)
        if not ready:
            return None
        outstanding = self.outstanding
        loads = [outstanding.get(u.url, 0) for u in ready]
        if min(loads) >= target and more_coming:
            return None
        if key is not None and key.prefix and self.routing == PREFIX_AFFINITY:
            urls = tuple(u.url for u in ready)
            if urls != self._ring_of:
                self._ring, self._ring_of = Ring(urls), urls
            chosen = bounded_choice(self._ring, key.model.encode() + b"\0" + key.prefix, outstanding)
            return next(u for u in ready if u.url == chosen)
        model = full_name(key.model) if key is not None and key.model else ""
        has = [bool(model) and model in self.loaded.get(u.url, ()) for u in ready]
        return ready[least_outstanding(loads, has, target)]
