"""Which models each Ready replica has loaded, for the router's preference (proxy/routing.py).

Two sources, both cheap: a request the proxy forwarded and the replica answered (200) says its
model is loaded there (`Router.learn`, on the request path: a set lookup); and `LoadedModels` asks
each Ready replica's `GET /api/ps` every `interval` seconds (a read capped at `PS_CAP`), which also
forgets models whose keep_alive ran out. Only while more than one replica is Ready: with one there
is nothing to choose.
"""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp

from remote_ollama.proxy.interfaces import Upstream
from remote_ollama.proxy.offline import full_name
from remote_ollama.proxy.routing import Router
from remote_ollama.proxy.upstream import UpstreamPool
from remote_ollama.spec.names import API_KEY_HEADER
from remote_ollama.vm.bounded import TooLarge, hang_up, read_capped

log = logging.getLogger(__name__)

PS_INTERVAL = 10.0  # seconds between two looks at a replica's /api/ps
PS_TIMEOUT = 5.0
PS_CAP = 256 * 1024  # /api/ps of a VM with dozens of models loaded is a few KiB


def loaded_names(body: bytes) -> frozenset[str] | None:
    """The models an /api/ps answer lists (as Ollama names them); None when it is not one."""
    try:
        models = json.loads(body)["models"]
        return frozenset(full_name(str(m.get("name") or m.get("model") or "")) for m in models) - {":latest"}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


class LoadedModels:
    def __init__(self, router: Router, pool: UpstreamPool, interval: float = PS_INTERVAL) -> None:
        self.router, self.pool, self.interval = router, pool, interval

    async def ask(self, upstream: Upstream) -> frozenset[str] | None:
        """One replica's loaded models, or None when it did not say (unreachable, not /api/ps)."""
        pooled = self.pool.acquire(upstream)
        headers = {API_KEY_HEADER: upstream.api_key} if upstream.api_key else {}
        try:
            async with pooled.session.get(
                upstream.url.rstrip("/") + "/api/ps",
                headers=headers,
                ssl=upstream.ssl if upstream.ssl is not None else True,
                server_hostname=upstream.server_hostname if upstream.url.startswith("https:") else None,
                timeout=aiohttp.ClientTimeout(total=PS_TIMEOUT),
            ) as resp:
                if resp.status != 200:
                    return None
                try:
                    return loaded_names(await read_capped(resp.content, PS_CAP, "GET /api/ps"))
                except TooLarge:
                    hang_up(resp)
                    return None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.debug("GET /api/ps on %s: %s", upstream.url, type(exc).__name__)
            return None
        finally:
            self.pool.release(pooled)

    async def look(self) -> None:
        """Ask every Ready replica once (together); forget replicas no longer Ready."""
        ready = self.router.ready if self.router.keyed else ()
        answers = await asyncio.gather(*(self.ask(u) for u in ready))
        loaded = self.router.loaded
        for upstream, models in zip(ready, answers, strict=True):
            if models is not None:
                loaded[upstream.url] = models
        for url in set(loaded) - {u.url for u in self.router.ready}:
            del loaded[url]

    async def run(self) -> None:
        """Every `interval`, until cancelled."""
        while True:
            try:
                await self.look()
            except Exception:  # a bug here must not end the look: routing would go stale
                log.exception("looking at the replicas' loaded models failed")
            await asyncio.sleep(self.interval)
