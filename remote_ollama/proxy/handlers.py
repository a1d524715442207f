"""The proxy's request handlers: the edge checks (Host, origin, key, own paths), Ollama's routes
passed through (held, answered offline or streamed with wake progress while the VM is down) and the
proxy's own paths."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Handler

from remote_ollama.proxy.activity import ActivityReporter
from remote_ollama.proxy.cors import OriginPolicy, is_preflight
from remote_ollama.proxy.guard import (
    MODEL_MANAGEMENT_REFUSAL,
    OPEN_PATHS,
    OWN_PATHS,
    BodyTooLarge,
    ClientKeys,
    HeldBodies,
    HeldBytesExhausted,
    allowed_host,
    is_model_management,
    json_error,
    too_large,
)
from remote_ollama.proxy.hold import Hold, HoldRejected, not_ready_response
from remote_ollama.proxy.interfaces import ActivitySink, ProxySettings, RouteKey, Upstream, UpstreamResolver
from remote_ollama.proxy.loaded import LoadedModels
from remote_ollama.proxy.metrics import ProxyMetrics, route_class
from remote_ollama.proxy.offline import is_json_route, refusal, requested_model
from remote_ollama.proxy.polling import PollingCache, is_polling
from remote_ollama.proxy.route_key import route_key
from remote_ollama.proxy.routing import Router
from remote_ollama.proxy.upstream import (
    BodyBudgetSpent,
    BodyReadTimeout,
    Forwarder,
    UpstreamPool,
    UpstreamUnreachable,
)
from remote_ollama.proxy.waking import HELD, PROGRESS_HEADER, PROGRESS_ROUTES, stream_while_waking

ORIGIN = web.RequestKey("cors_origin", str)
API = ("/api/", "/v1/")  # Ollama's own paths: the only ones that wake the VM


class Proxy:
    def __init__(
        self,
        resolver: UpstreamResolver,
        sink: ActivitySink,
        settings: ProxySettings,
        router: Router | None = None,
    ) -> None:
        self.resolver = resolver
        # requests outstanding per upstream: a replicated endpoint's resolver routes by them
        self.router = router or Router()
        self.settings = settings
        self.metrics = ProxyMetrics()
        self.reporter = ActivityReporter(sink, settings.activity_interval)
        self.hold = Hold(resolver, self.reporter, settings, self.metrics)
        self.pool = UpstreamPool(connect_timeout=settings.connect_timeout)
        self.held_bodies = HeldBodies()
        # small bodies read whole while the VM is up count in the same budget as held ones; the VM's
        # Ollama never sees a browser Origin, so CORS headers are the proxy's alone
        self.forwarder = Forwarder(self.pool, self.metrics, self.held_bodies, settings.max_body)
        self.forwarder.request_drop = self.forwarder.request_drop | {PROGRESS_HEADER.lower()}
        self.cache = PollingCache(settings.models, settings.ollama_version)
        self.origins = OriginPolicy(settings.allowed_origins)
        # Replaced whole when the key Secret changes (operator mode), so rotation needs no restart.
        self.keys = ClientKeys(settings.client_api_keys, required=settings.client_auth_required)
        # Refuse foreign Host headers (DNS rebinding) when listening on loopback; set by start_proxy.
        self.guard_host = False

    # -- edge: origin, auth, metrics ---------------------------------------------------------------
    def at_edge(self, handler: Handler) -> Handler:
        """`handler` behind the edge checks. Every route is wrapped so (an aiohttp middleware did the
        same, at a third of the proxy's own time per request: bench/proxy.py)."""

        async def edged(request: web.Request) -> web.StreamResponse:
            return await self.edge(request, handler)

        return edged

    async def edge(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = route_class(request.path)
        code = "499"
        try:
            response = await self._checked(request, handler)
            code = str(response.status)
            return response
        except web.HTTPException as exc:
            code = str(exc.status)
            raise
        finally:
            self.metrics.answered(route, code)

    async def _checked(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        method, path = request.method, request.path
        if self.guard_host and not allowed_host(request.headers.get("Host", "")):
            return json_error(403, "Host not allowed: this endpoint listens on loopback only")
        origin = request.headers.get("Origin")
        if origin is not None:
            if not self.origins.allows(origin):
                return web.Response(status=403)
            request[ORIGIN] = origin
            if is_preflight(request):
                return self.origins.preflight(origin)
        read_only = method in ("GET", "HEAD")
        if (
            self.keys.enabled
            and not (read_only and path in OPEN_PATHS)
            and not self.keys.accepts_request(request.headers)
        ):
            return web.json_response(
                {"error": "unauthorized: send the endpoint's key as Authorization: Bearer <key>"},
                status=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        if path in OWN_PATHS and not read_only:  # the proxy's own, never forwarded (nor activity)
            return json_error(405, f"{method} {path} is not allowed (GET or HEAD)")
        if not self.settings.model_management and is_model_management(method, path):
            return json_error(403, MODEL_MANAGEMENT_REFUSAL)
        return await handler(request)

    async def on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        """on_response_prepare (one callback: it runs for every response)."""
        self.note_first_byte(request, response)
        self.add_cors(request, response)

    def note_first_byte(self, request: web.Request, response: web.StreamResponse) -> None:
        """A held request's answer starts now (error statuses are not served)."""
        if request.get(HELD) and response.status < 500:
            self.hold.first_byte()

    def add_cors(self, request: web.Request, response: web.StreamResponse) -> None:
        """Streamed answers get CORS headers before their headers go out (the upstream's never pass:
        the forwarder drops them). An allowed preflight is the proxy's own answer, complete already
        (methods, headers, max age)."""
        origin = request.get(ORIGIN)
        if origin is not None and not is_preflight(request):
            response.headers.update(self.origins.cors_headers(origin))

    # -- Ollama routes ------------------------------------------------------------------------------
    async def forward(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        method = request.method
        if is_polling(method, path):
            return await self._poll(request, path)
        body: bytes | None = None
        key: RouteKey | None = None
        try:
            if self.router.keyed and method == "POST" and path != "/api/show" and path.startswith(API):
                # several replicas: the one for this model and prompt, so its body is read first
                try:
                    body = await self.forwarder.read_small(request)
                except (BodyReadTimeout, BodyBudgetSpent) as exc:
                    return self.body_refusal(exc)
                key = route_key(body) if body is not None else None
            state = self.resolver.state(key)  # the one question to the resolver on the hot path
            if state.upstream is None and not path.startswith(API):
                return web.Response(status=404, text="404 page not found")  # no wake for stray paths
            if state.upstream is not None and path == "/api/show":  # a description is not use
                return await self.stream_or_502(request, state.upstream, None)
            if state.upstream is None and method in ("GET", "HEAD"):
                # a read never starts a GPU VM: any web page can make a browser send one (an <img>)
                return json_error(503, f"{state.down_words()}; a {method} request does not wake it")
            if state.upstream is None and is_json_route(method, path):
                early, body = await self._answer_offline(request, path, body)
                if early is not None:
                    return early  # the VM could only refuse it (or describe from memory): no wake
            response = await self._forward_as_use(request, path, state.upstream, body)
            if key is not None and state.upstream is not None and response.status == 200:
                self.router.learn(state.upstream.url, key.model)  # it has the model loaded now
            return response
        finally:
            if body:
                self.held_bodies.release(len(body))

    def body_refusal(self, exc: BodyReadTimeout | BodyBudgetSpent) -> web.Response:
        """A body not received in time (408), or no room for it now (503, retry)."""
        if isinstance(exc, BodyReadTimeout):
            return json_error(408, str(exc))
        refusal = json_error(503, str(exc))
        refusal.headers["Retry-After"] = str(self.settings.retry_after)
        return refusal

    async def _forward_as_use(
        self, request: web.Request, path: str, upstream: Upstream | None, body: bytes | None
    ) -> web.StreamResponse:
        self.reporter.begin()
        try:
            if upstream is not None:  # ready: straight through, nothing held
                self.reporter.instance_ready()
                return await self.stream_or_502(request, upstream, body)
            if request.method == "POST" and self._progress_for(request):
                return await stream_while_waking(self, request, path, body)
            return await self._admit_and_stream(request, body)
        finally:
            self.reporter.end()

    async def _answer_offline(
        self, request: web.Request, path: str, body: bytes | None
    ) -> tuple[web.StreamResponse | None, bytes | None]:
        """Read the body of a request that finds the VM down (unless read already, `body`) and
        answer it here when the VM could only refuse it (not JSON, a model it does not have) or
        when the proxy remembers the answer (`/api/show`). The body is read within the held-body
        bounds; a full hold reads nothing."""
        if body is None:
            if self.hold.held >= self.settings.max_held_requests and not self.settings.immediate_503:
                return None, None  # refused by the hold below, without reading a byte
            try:
                body = await self.held_bodies.read(request, self.settings.max_body)
            except BodyTooLarge:
                return too_large(self.settings.max_body), None
            except HeldBytesExhausted:
                return self.busy(), None
        refused = refusal(path, body, self.cache.known_models())
        if refused is not None:
            return refused, body
        if path == "/api/show":
            return self.cache.show(requested_model(json.loads(body))), body
        return None, body

    def busy(self) -> web.Response:
        phase = self.resolver.state().phase
        busy = HoldRejected(phase, "too many large requests waiting for the remote instance; retry shortly")
        return not_ready_response(busy, self.settings.retry_after)

    def _progress_for(self, request: web.Request) -> bool:
        """Pull always streams wake progress; generate and chat only when asked (strict clients)."""
        if request.path == "/api/pull":
            return True
        if request.path not in PROGRESS_ROUTES:
            return False
        asked = request.headers.get(PROGRESS_HEADER, "").strip().lower() in ("1", "true", "yes")
        return self.settings.wake_progress or asked

    async def _admit_and_stream(self, request: web.Request, body: bytes | None = None) -> web.StreamResponse:
        held = not self.resolver.state().ready  # admit() holds exactly when this is true
        try:
            upstream = await self.hold.admit()
        except HoldRejected as exc:
            return not_ready_response(exc, self.settings.retry_after)
        if held:
            request[HELD] = True
        return await self.stream_or_502(request, upstream, body)

    async def _poll(self, request: web.Request, path: str) -> web.StreamResponse:
        if self.resolver.state().ready:
            try:
                upstream = await self.hold.admit()
                status, headers, body = await self.forwarder.read_whole(request, upstream, route_class(path))
            except (HoldRejected, UpstreamUnreachable):
                pass  # answered below as while the VM is down
            else:
                if status == 200 and request.method == "GET":
                    self.cache.remember(path, body, headers.get("Content-Type", "application/json"))
                headers.popall("Content-Length", None)
                return web.Response(status=status, headers=headers, body=body)
        return self.cache.answer(path)

    async def stream_or_502(
        self, request: web.Request, upstream: Upstream, body: bytes | None = None
    ) -> web.StreamResponse:
        router = self.router
        router.begin(upstream)
        try:
            return await self.forwarder.stream(request, upstream, route_class(request.path), body=body)
        except (BodyReadTimeout, BodyBudgetSpent) as exc:
            return self.body_refusal(exc)
        except UpstreamUnreachable as exc:
            # The lifecycle thinks the VM is up but it does not answer (deleted out of band, crashed):
            # a wake request makes the operator / controller look now instead of at its next check.
            self.reporter.request_wake()
            return json_error(502, f"remote instance unreachable: {exc}")
        finally:
            router.end(upstream)

    # -- the proxy's own paths ----------------------------------------------------------------------
    async def status(self, request: web.Request) -> web.Response:
        state = self.resolver.state()
        body = dict(self.settings.status_extra())
        body.update({"phase": state.phase, "ready": state.ready, "held_requests": self.hold.held})
        return web.json_response(body)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        # Ready whatever the VM's state: the proxy must receive requests to hold them and wake the VM.
        return web.json_response({"status": "ok", "phase": self.resolver.state().phase})

    async def prometheus(self, request: web.Request) -> web.Response:
        body, content_type = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def lifetime(self, app: web.Application) -> AsyncIterator[None]:
        ticker = asyncio.create_task(self.reporter.run())
        # which replica has which model loaded (only looks while more than one is Ready)
        looker = asyncio.create_task(LoadedModels(self.router, self.pool).run())
        yield
        for task in (ticker, looker):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.reporter.settle()
        await self.pool.close()
