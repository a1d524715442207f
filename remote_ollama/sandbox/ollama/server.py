"""A simulated Ollama HTTP server: the native API, the OpenAI- and Anthropic-compatible APIs, CORS.

It is what the sandbox's simulated GPU instances serve behind their TLS front, and what the proxy's
black-box compatibility tests talk to with the official clients. Tests steer and observe it through
`ollama_state(app)` (see `OllamaState`: models, request counters, fault hooks, cancellations).

Runner settings: the simulator notices a client disconnect by itself (a shared watcher polls the
transports of generations in flight every 10 ms), so `web.AppRunner(app)` with defaults is enough.
A runner built with `handler_cancellation=True` makes it immediate; both are recorded the same way.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import hdrs, web

from remote_ollama.sandbox.ollama import anthropic as ollama_anthropic
from remote_ollama.sandbox.ollama import generate as ollama_generate
from remote_ollama.sandbox.ollama import native as ollama_native
from remote_ollama.sandbox.ollama import openai as ollama_openai
from remote_ollama.sandbox.ollama.http import (
    BadRequest,
    anthropic_error,
    cors_preflight,
    dumps,
    native_error,
    openai_error,
    origin_allowed,
    text_response,
)
from remote_ollama.sandbox.ollama.state import Cancellation, ClientGone, OllamaState
from remote_ollama.vm.ollama_release import DEFAULT_OLLAMA_VERSION, serves

__all__ = ["OLLAMA_STATE", "Cancellation", "OllamaState", "make_ollama_app", "ollama_state"]

OLLAMA_STATE = web.AppKey("ollama_state", OllamaState)
CLIENT_MAX_SIZE = 1 << 40  # blobs are streamed; this only lifts aiohttp's cap on read() bodies
STATUS_CLIENT_CLOSED = 499

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
StateHandler = Callable[[web.Request, OllamaState], Awaitable[web.StreamResponse]]


def ollama_state(app: web.Application) -> OllamaState:
    """The state object of an app made by `make_ollama_app`."""
    return app[OLLAMA_STATE]


def _render_error(path: str, status: int, message: str) -> web.Response:
    if path.startswith("/v1/messages"):
        return anthropic_error(status, message)
    if path.startswith("/v1/"):
        return openai_error(status, message)
    return native_error(status, message)


def _injected(status: int, body: Any) -> web.Response:
    if isinstance(body, bytes):
        return web.Response(status=status, body=body, content_type="application/octet-stream")
    if isinstance(body, str):
        return web.Response(status=status, text=body, content_type="text/plain")
    return web.Response(status=status, body=dumps(body), content_type="application/json")


@web.middleware
async def _cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Ollama's Origin check: disallowed origins get an empty 403, allowed preflights a 204."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        return await handler(request)
    if not origin_allowed(origin, request.host, ollama_state(request.app).extra_origins):
        return web.Response(status=403)
    if request.method == hdrs.METH_OPTIONS and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers:
        return cors_preflight(origin)
    return await handler(request)


async def _cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is not None and response.status != 403:
        response.headers.setdefault(hdrs.ACCESS_CONTROL_ALLOW_ORIGIN, origin)
        response.headers.setdefault(hdrs.VARY, "Origin")


@web.middleware
async def _observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count the request, remember its headers and JSON body, and apply an injected failure."""
    state = ollama_state(request.app)
    path = request.path
    state.requests[path] += 1
    state.last_headers[path] = dict(request.headers)
    if request.content_type == "application/json" and not path.startswith("/api/blobs/"):
        try:
            state.last_body[path] = json.loads(await request.read())
        except ValueError:
            state.last_body[path] = None
    failure = state.take_failure(path)
    if failure is not None:
        return _injected(failure.status, failure.body)
    return await handler(request)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render errors like Ollama (Gin's text 404/405, JSON errors per API flavour)."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return text_response("404 page not found", 404)
    except web.HTTPMethodNotAllowed:
        return text_response("405 method not allowed", 405)
    except BadRequest as exc:
        return _render_error(request.path, exc.status, exc.message)
    except ClientGone as exc:
        return exc.response or web.Response(status=STATUS_CLIENT_CLOSED)
    except ConnectionError:
        return web.Response(status=STATUS_CLIENT_CLOSED)


def _bind(fn: StateHandler) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await fn(request, request.app[OLLAMA_STATE])

    return handler


async def _root(request: web.Request, state: OllamaState) -> web.StreamResponse:
    return text_response("Ollama is running", 200)


async def _generate(request: web.Request, state: OllamaState) -> web.StreamResponse:
    return await ollama_generate.generate(request, state, chat=False)


async def _chat(request: web.Request, state: OllamaState) -> web.StreamResponse:
    return await ollama_generate.generate(request, state, chat=True)


_ROUTES: list[tuple[str, str, StateHandler]] = [
    ("GET", "/", _root),
    ("GET", "/api/version", ollama_native.version),
    ("GET", "/api/tags", ollama_native.tags),
    ("GET", "/api/ps", ollama_native.ps),
    ("POST", "/api/show", ollama_native.show),
    ("POST", "/api/generate", _generate),
    ("POST", "/api/chat", _chat),
    ("POST", "/api/embed", ollama_generate.embed),
    ("POST", "/api/embeddings", ollama_generate.embeddings),
    ("POST", "/api/pull", ollama_native.pull),
    ("POST", "/api/push", ollama_native.push),
    ("POST", "/api/create", ollama_native.create),
    ("POST", "/api/copy", ollama_native.copy),
    ("DELETE", "/api/delete", ollama_native.delete),
    ("HEAD", "/api/blobs/{digest}", ollama_native.blob_head),
    ("POST", "/api/blobs/{digest}", ollama_native.blob_upload),
    ("POST", "/api/me", ollama_native.me),
    ("POST", "/v1/chat/completions", ollama_openai.chat_completions),
    ("POST", "/v1/completions", ollama_openai.completions),
    ("POST", "/v1/embeddings", ollama_openai.embeddings),
    ("GET", "/v1/models", ollama_openai.list_models),
    ("GET", "/v1/models/{model:.+}", ollama_openai.retrieve_model),
    ("POST", "/v1/messages", ollama_anthropic.messages),
]


def make_ollama_app(
    models: list[str],
    *,
    token_delay: float = 0.02,
    pull_delay: float = 0.0,
    version: str = DEFAULT_OLLAMA_VERSION,
    num_parallel: int | None = None,
) -> web.Application:
    """An aiohttp app that behaves like `ollama serve` `version` with `models` already pulled.

    `num_parallel` (OLLAMA_NUM_PARALLEL): generations served at once; more queue, as Ollama's do.

    Routes `version` does not serve are absent (404, as Gin answers), per `ollama_release`.
    """
    app = web.Application(client_max_size=CLIENT_MAX_SIZE, middlewares=[_cors, _errors, _observe])
    state = OllamaState(
        version=version, token_delay=token_delay, pull_delay=pull_delay, num_parallel=num_parallel
    )
    state.set_models(models)
    app[OLLAMA_STATE] = state
    for method, path, fn in _ROUTES:
        if not serves(version, method, path):
            continue
        if method == "GET":
            app.router.add_get(path, _bind(fn))  # GET routes also answer HEAD, as Ollama's do
        else:
            app.router.add_route(method, path, _bind(fn))
    app.on_response_prepare.append(_cors_headers)

    async def _close(app: web.Application) -> None:
        await ollama_state(app).close()

    app.on_cleanup.append(_close)
    return app
