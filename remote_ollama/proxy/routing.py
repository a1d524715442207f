"""Which replica a request goes to: least outstanding requests among the Ready ones (issue 19).

The proxy counts the requests it has outstanding per upstream (`begin`/`end` around each one, a
dict update: the per-request path stays lean); the resolver of a replicated endpoint asks `pick`
which Ready replica takes the next request. A replica at its target is "busy": while another is on
its way up, `pick` answers None and the request is held for the first replica with room (a new
one, or one that finished a request); with no other coming it goes to the least busy (its Ollama
queues it). With one replica nothing of this matters: the proxy's counting is all that runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from remote_ollama.proxy.interfaces import Upstream


class Router:
    def __init__(self) -> None:
        self.outstanding: dict[str, int] = {}
        self.total = 0  # the sum of outstanding: the load signal, kept as it changes
        self.begun: dict[str, int] = {}  # requests ever begun per upstream: "used since" for idleness
        self.on_change: Callable[[], None] | None = None  # a request ended: held ones may fit now

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

    def pick(self, ready: Sequence[Upstream], target: int, *, more_coming: bool) -> Upstream | None:
        """The Ready replica with the fewest outstanding requests (the first among equals, so the
        lowest replicas fill first and the highest idle first, to be scaled down); None when every
        one is at `target` and another replica is on its way (hold for it)."""
        best: Upstream | None = None
        fewest = 0
        for upstream in ready:
            n = self.outstanding.get(upstream.url, 0)
            if best is None or n < fewest:
                best, fewest = upstream, n
        if best is None or (fewest >= target and more_coming):
            return None
        return best
