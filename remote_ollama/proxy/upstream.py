"""Forwarding to the VM: pooled sessions, header rules, bodies streamed both ways.

Nothing is buffered or recoded: request bodies (multi-GB blobs, either framing) are piped as they
arrive, responses (NDJSON, SSE) are written chunk by chunk as they come, and neither side
compresses. There is no read timeout (a model load can send nothing for minutes), only a
connect timeout. If the client goes away the handler is cancelled (the runner sets
`handler_cancellation`) or its next write fails, and the upstream request is closed at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from remote_ollama.proxy.guard import HeldBodies
from remote_ollama.proxy.interfaces import Upstream
from remote_ollama.proxy.metrics import ProxyMetrics
from remote_ollama.proxy.nginx_pages import PAGE_CAP, NginxRefusal, is_nginx_page, translate
from remote_ollama.spec.names import API_KEY_HEADER
from remote_ollama.vm.bounded import TooLarge, read_capped

log = logging.getLogger(__name__)

# RFC 9110 7.6.1: these, and every header named in Connection, belong to one hop only.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
)
# Request headers the proxy owns: the upstream's Host, its key, identity encoding, its own
# Origin checks (the VM's Ollama would refuse browser origins the proxy allows), Expect (answered
# here), and the client's credentials (a client key is the proxy's, never the VM's).
_REQUEST_DROP = frozenset(
    {"host", API_KEY_HEADER.lower(), "authorization", "x-api-key", "accept-encoding", "origin", "expect"}
)
_DROPPED_PREFIXES = ("proxy-", "access-control-")  # the VM's CORS headers never pass: CORS is the proxy's
_SKIP_AUTO = frozenset({"Accept-Encoding", "User-Agent", "Accept", "Content-Type"})
_TAIL = 4096
SMALL_BODY = 256 * 1024  # request bodies up to this size (with a Content-Length) are read, then sent
# The most of a VM answer read whole (polling routes, an error's body): a list of hundreds of models
# is tens of KiB; past it the proxy answers from what it last saw.
MAX_WHOLE_REPLY = 1 << 20
# A small body read whole must arrive within this (a slow sender otherwise holds its bytes forever).
BODY_READ_TIMEOUT = 30.0


class BodyReadTimeout(Exception):
    """The client did not send its (small) body in time: 408."""


class BodyBudgetSpent(Exception):
    """Request bodies in memory already fill the budget: 503 with Retry-After."""


def end_to_end(
    headers: Mapping[str, str] | CIMultiDictProxy[str], drop: Iterable[str] = ()
) -> list[tuple[str, str]]:
    """Headers without hop-by-hop ones (fixed list, Proxy-*, those listed in Connection) and `drop`
    (a frozenset is taken as already lower case and holding HOP_BY_HOP: the forwarder's, built
    once, on the hot path), as pairs: aiohttp copies what it is given into its own multidict."""
    skip = (
        drop if isinstance(drop, frozenset) and drop >= HOP_BY_HOP else HOP_BY_HOP | {d.lower() for d in drop}
    )
    if "Connection" in headers:
        getall = headers.getall if isinstance(headers, CIMultiDictProxy) else None
        connection = getall("Connection") if getall else [headers["Connection"]]
        skip = skip | {token.strip().lower() for value in connection for token in value.split(",") if token}
    return [
        (name, value)
        for name, value in headers.items()
        if (lname := name.lower()) not in skip and not lname.startswith(_DROPPED_PREFIXES)
    ]


@functools.lru_cache(maxsize=64)  # the same few upstream URLs on every request (hot path)
def _origin(url: str) -> str:
    return str(URL(url).origin())


def pool_key(upstream: Upstream) -> tuple[str, int, str | None]:
    return _origin(upstream.url), id(upstream.ssl), upstream.server_hostname


@dataclass
class _Pooled:
    session: aiohttp.ClientSession
    upstream: Upstream  # keeps the SSLContext alive, so its id() in the key stays unique
    key: tuple[str, int, str | None]
    in_flight: int = 0
    retired: bool = False


MAX_POOLS = 128  # sessions kept (one per replica's origin); past it the oldest idle ones close


@dataclass
class UpstreamPool:
    """One `ClientSession` per upstream origin (each replica's VM), for its CA identity and TLS name:
    a replaced one (a new CA or name at the same origin) is closed once its last request finishes,
    so a new endpoint never cuts streams still running on the old. Replicas never replace each
    other's sessions: alternating between VMs reuses each one's kept-alive connections."""

    connect_timeout: float = 10.0
    _pools: dict[str, _Pooled] = field(default_factory=dict)

    def acquire(self, upstream: Upstream) -> _Pooled:
        key = pool_key(upstream)
        pooled = self._pools.get(key[0])
        if pooled is None or pooled.key != key:
            if pooled is not None:
                self._retire(key[0])
            excess = len(self._pools) + 1 - MAX_POOLS
            if excess > 0:  # endpoints of VMs long gone (dict order: the oldest first)
                for origin in [o for o, p in self._pools.items() if p.in_flight == 0][:excess]:
                    self._retire(origin)
            pooled = _Pooled(self._new_session(), upstream, key)
            self._pools[key[0]] = pooled
        pooled.in_flight += 1
        return pooled

    def _retire(self, origin: str) -> None:
        old = self._pools.pop(origin)
        old.retired = True
        if old.in_flight == 0:
            asyncio.get_running_loop().create_task(old.session.close())

    def release(self, pooled: _Pooled) -> None:
        pooled.in_flight -= 1
        if pooled.retired and pooled.in_flight == 0:
            asyncio.get_running_loop().create_task(pooled.session.close())

    def _new_session(self) -> aiohttp.ClientSession:
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self.connect_timeout, sock_connect=self.connect_timeout, sock_read=None
        )
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, enable_cleanup_closed=False),
            timeout=timeout,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),  # clients' cookies must never mix
            trust_env=False,
            read_bufsize=2**17,
            skip_auto_headers=_SKIP_AUTO,  # the client's own, or none: built once, not per request
        )

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pooled in pools:
            await pooled.session.close()


class _WithFirstBytes(web.StreamResponse):
    """A streamed answer whose headers wait for its first write (as aiohttp's own `Response`):
    one send, not two, for an answer whose first bytes are at hand."""

    _send_headers_immediately = False


class UpstreamUnreachable(Exception):
    """Connecting to (or sending to) the upstream failed before any response."""


@dataclass
class Forwarder:
    pool: UpstreamPool
    metrics: ProxyMetrics
    # the held-body budget small bodies read whole are counted in, and the most held per request
    bodies: HeldBodies
    max_body: int
    request_drop: frozenset[str] = HOP_BY_HOP | _REQUEST_DROP
    response_drop: frozenset[str] = HOP_BY_HOP

    def _request_headers(self, request: web.BaseRequest, upstream: Upstream) -> list[tuple[str, str]]:
        headers = end_to_end(request.headers, self.request_drop)
        if upstream.api_key:
            headers.append((API_KEY_HEADER, upstream.api_key))  # the client's was dropped
        return headers

    async def read_small(self, request: web.BaseRequest) -> bytes | None:
        """A prompt's body read whole: sent with its length (no chunked encoding, no generator, as
        cheap as the library's floor) and readable for routing. Counted in the held-body budget
        until the caller's `bodies.release(len(body))`. None for what is streamed as it comes (an
        upload, a body of unknown length or over SMALL_BODY or `max_body`). `BodyBudgetSpent` when
        the budget is spent (streaming instead would cost an upstream connection each, more than
        the body); `BodyReadTimeout` past BODY_READ_TIMEOUT (a slow sender holds no bytes forever)."""
        length = request.content_length
        if length is None or length > SMALL_BODY or length > self.max_body:
            return None
        if not self.bodies.reserve(length, self.max_body):
            raise BodyBudgetSpent("too many request bodies in flight; retry shortly")
        try:
            content = request.content
            if content.is_eof():  # arrived with the headers, as a prompt does: no await, no timer
                return content.read_nowait()  # Content-Length bounds it (the parser enforces it)
            async with asyncio.timeout(BODY_READ_TIMEOUT):
                return await request.read()
        except TimeoutError:
            self.bodies.release(length)
            raise BodyReadTimeout(f"request body not received within {BODY_READ_TIMEOUT:g}s") from None
        except BaseException:
            self.bodies.release(length)
            raise

    async def _body(self, request: web.BaseRequest, counted: list[int]) -> AsyncIterator[bytes]:
        async for chunk in request.content.iter_any():
            counted[0] += len(chunk)
            yield chunk

    async def open(
        self, request: web.BaseRequest, upstream: Upstream, route: str, body: bytes | None = None
    ) -> tuple[aiohttp.ClientResponse, _Pooled, list[int]]:
        """Send the request; returns the response once its headers arrived (body still streaming)."""
        counted = [0]
        data: bytes | AsyncIterator[bytes] | None = body
        read = 0  # bytes read here, counted in the budget until sent
        if body is not None:
            counted[0] = len(body)
        elif request.body_exists:
            data = await self.read_small(request)
            if data is None:
                data = self._body(request, counted)
            else:
                counted[0] = read = len(data)
        try:
            url = URL(upstream.url.rstrip("/") + request.raw_path, encoded=True)
            pooled = self.pool.acquire(upstream)
            started = time.monotonic()
            try:
                response = await pooled.session.request(
                    request.method,
                    url,
                    headers=self._request_headers(request, upstream),
                    data=data,
                    ssl=upstream.ssl if upstream.ssl is not None else True,
                    server_hostname=upstream.server_hostname if url.scheme == "https" else None,
                    allow_redirects=False,
                    auto_decompress=False,
                    compress=None,
                )
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
                self.pool.release(pooled)
                raise UpstreamUnreachable(str(exc) or type(exc).__name__) from exc
            except BaseException:
                self.pool.release(pooled)
                raise
        finally:
            self.bodies.release(read)  # sent, or never will be: no longer held here
        self.metrics.upstream_took(route, time.monotonic() - started)
        return response, pooled, counted

    def response_headers(self, upstream_response: aiohttp.ClientResponse) -> list[tuple[str, str]]:
        return end_to_end(upstream_response.headers, self.response_drop)

    async def stream(
        self,
        request: web.BaseRequest,
        upstream: Upstream,
        route: str,
        body: bytes | None = None,
    ) -> web.StreamResponse:
        """Forward and stream the answer back as it arrives (`body`: already read from the client)."""
        up, pooled, counted = await self.open(request, upstream, route, body)
        sent = 0
        try:
            if is_nginx_page(up.status, up.content_type):
                refusal = await self.nginx_refusal(up)
                return web.Response(
                    status=refusal.status, body=refusal.body(), content_type="application/json"
                )
            # Body bytes that came with the headers (a whole small answer, a stream's first line) go
            # out in one send with the headers; with none yet, the headers go at once, as they came.
            kind = _WithFirstBytes if up.content.total_bytes else web.StreamResponse
            response = kind(status=up.status, reason=up.reason, headers=self.response_headers(up))
            await response.prepare(request)
            sent, complete = await self.pipe(request, up, response)
            if complete:
                try:
                    await response.write_eof()
                except ConnectionResetError:  # the client hung up as its answer ended: nothing to tell it
                    log.info("client went away before the end of its answer")
            return response
        finally:
            up.close()  # unread body: drop the upstream connection, which is what cancels Ollama
            self.pool.release(pooled)
            self.metrics.bytes_in.inc(counted[0])
            self.metrics.bytes_out.inc(sent)

    async def nginx_refusal(self, up: aiohttp.ClientResponse) -> NginxRefusal:
        """nginx's HTML error page (never Ollama's) as an Ollama-shaped error naming the cause."""
        try:
            page = await up.content.read(PAGE_CAP)
        except aiohttp.ClientError:
            page = b""
        refusal = translate(up.status, page)
        log.warning("the VM's nginx answered %d text/html: %s: %s", up.status, refusal.cause, refusal.message)
        return refusal

    async def pipe(
        self, request: web.BaseRequest, up: aiohttp.ClientResponse, response: web.StreamResponse
    ) -> tuple[int, bool]:
        """Copy the upstream body chunk by chunk; returns (bytes sent, whether it ended cleanly).

        Counts tokens from the last line of NDJSON/JSON bodies (in the last two chunks: a final
        line is a few hundred bytes, written at once; nothing is copied per chunk).
        """
        watch = up.content_type in ("application/x-ndjson", "application/json")
        previous = last = b""
        sent = 0
        try:
            async for chunk in up.content.iter_any():
                sent += len(chunk)
                previous, last = last, chunk
                await response.write(chunk)
        except aiohttp.ClientPayloadError as exc:
            # The upstream broke off mid-body: the status is already sent, so the honest signal is
            # an incomplete response; close the client connection rather than end it cleanly.
            log.warning("upstream body broke off: %s", exc)
            response.force_close()
            if request.transport is not None:
                request.transport.abort()
            return sent, False
        if watch:
            self.metrics.count_tokens(previous[-_TAIL:] + last if len(last) < _TAIL else last)
        return sent, True

    async def read_whole(
        self, request: web.BaseRequest, upstream: Upstream, route: str
    ) -> tuple[int, CIMultiDict[str], bytes]:
        """Forward a small request (the polling routes) and read the whole answer."""
        up, pooled, counted = await self.open(request, upstream, route)
        try:
            if is_nginx_page(up.status, up.content_type):
                refusal = await self.nginx_refusal(up)
                return refusal.status, CIMultiDict({"Content-Type": "application/json"}), refusal.body()
            body = await read_capped(up.content, MAX_WHOLE_REPLY, f"{request.method} {request.path}")
        except (aiohttp.ClientError, TooLarge) as exc:
            raise UpstreamUnreachable(str(exc)) from exc
        finally:
            up.close()
            self.pool.release(pooled)
        self.metrics.bytes_in.inc(counted[0])
        self.metrics.bytes_out.inc(len(body))
        return up.status, CIMultiDict(self.response_headers(up)), body
