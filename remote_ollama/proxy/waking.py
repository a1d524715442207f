"""Wake progress: a streaming request that finds the VM down gets "waking" lines while it starts,
then the real stream in the same response (pull always; generate and chat when asked)."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from aiohttp import web

from remote_ollama.proxy.guard import (
    BodyTooLarge,
    HeldBytesExhausted,
    too_large,
)
from remote_ollama.proxy.held_body import held_fields
from remote_ollama.proxy.hold import HoldRejected, not_ready_response, progress_line
from remote_ollama.proxy.interfaces import Upstream
from remote_ollama.proxy.metrics import route_class
from remote_ollama.proxy.nginx_pages import is_nginx_page
from remote_ollama.proxy.upstream import (
    MAX_WHOLE_REPLY,
    UpstreamUnreachable,
)
from remote_ollama.spec.schedule import utcnow
from remote_ollama.vm.bounded import TooLarge, read_capped

if TYPE_CHECKING:
    from remote_ollama.proxy.handlers import Proxy

HELD = web.RequestKey("held", bool)  # this request waited for the VM (for the first-byte metric)
# Streaming generate/chat get wake progress chunks with this header (or ProxySettings.wake_progress).
PROGRESS_HEADER = "X-Remote-Ollama-Progress"
PROGRESS_ROUTES = frozenset({"/api/generate", "/api/chat"})


async def stream_while_waking(
    proxy: Proxy, request: web.Request, path: str, body: bytes | None = None
) -> web.StreamResponse:
    """Streaming pull (and, when asked, generate/chat) gets "waking" lines while the VM starts,
    then the real stream in the same response. Non-streaming requests are only held.

    The body must be read to know whether the client streams, so the hold's capacity is taken
    first and at most `max_body` bytes are read: a held request costs bounded memory."""
    held = [0]  # body bytes counted in the shared budget, released when the request ends
    try:
        return await hold_with_body(proxy, request, path, held, body)
    finally:
        proxy.held_bodies.release(held[0])


async def hold_with_body(
    proxy: Proxy, request: web.Request, path: str, held: list[int], read: bytes | None
) -> web.StreamResponse:
    try:
        started = proxy.hold.enter()
    except HoldRejected as exc:
        return not_ready_response(exc, proxy.settings.retry_after)
    waiting = asyncio.ensure_future(proxy.hold.wait(started))
    response: web.StreamResponse | None = None
    try:
        if read is not None:
            body = read  # read (and counted) by the caller
        else:
            try:
                body = await proxy.held_bodies.read(request, proxy.settings.max_body)
            except BodyTooLarge:
                return too_large(proxy.settings.max_body)
            except HeldBytesExhausted:
                return proxy.busy()
            held[0] = len(body)
        streaming, model = held_fields(body)
        if streaming:
            response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
            await response.prepare(request)
            while True:
                state = proxy.resolver.state()
                await response.write(waking_line(path, model, state.phase, state.detail))
                done, _ = await asyncio.wait({waiting}, timeout=proxy.settings.pull_progress_interval)
                if done:
                    break
        try:
            upstream = await waiting
        except HoldRejected as exc:
            if response is None:
                return not_ready_response(exc, proxy.settings.retry_after)
            await response.write(progress_line({"error": exc.message}))
            return response
    finally:
        waiting.cancel()
        proxy.hold.leave(started)
    if response is None:  # not streaming: only held
        request[HELD] = True
        return await proxy.stream_or_502(request, upstream, body)
    await continue_stream(proxy, request, response, upstream, body)
    return response


async def continue_stream(
    proxy: Proxy, request: web.Request, response: web.StreamResponse, upstream: Upstream, body: bytes
) -> None:
    """The real lines follow the waking lines; an error status becomes an error line."""
    proxy.router.begin(upstream)
    try:
        await continue_counted(proxy, request, response, upstream, body)
    finally:
        proxy.router.end(upstream)


async def continue_counted(
    proxy: Proxy, request: web.Request, response: web.StreamResponse, upstream: Upstream, body: bytes
) -> None:
    route = route_class(request.path)
    try:
        up, pooled, _ = await proxy.forwarder.open(request, upstream, route, body=body)
    except UpstreamUnreachable as exc:
        proxy.reporter.request_wake()
        await response.write(progress_line({"error": f"remote instance unreachable: {exc}"}))
        return
    proxy.hold.first_byte()
    try:
        if up.status == 200:
            sent, complete = await proxy.forwarder.pipe(request, up, response)
            proxy.metrics.bytes_out.inc(sent)
            if not complete:
                return
        elif is_nginx_page(up.status, up.content_type):
            message = (await proxy.forwarder.nginx_refusal(up)).message
        else:
            try:
                answer = await read_capped(up.content, MAX_WHOLE_REPLY, "the error's body")
            except TooLarge:
                answer = b""
            try:
                message = str(json.loads(answer)["error"])
            except (ValueError, KeyError, TypeError):
                message = answer.decode(errors="replace").strip() or f"status {up.status}"
            await response.write(progress_line({"error": message}))
    finally:
        up.close()
        proxy.pool.release(pooled)
    await response.write_eof()


def waking_line(path: str, model: str, phase: str, detail: str = "") -> bytes:
    """One wake progress line. For generate and chat it is shaped as an empty, unfinished chunk of
    that route (strict clients parse it as one), with the news under the extra key `remote_ollama`.
    `detail`: what the wake is doing (the VM's setup step), when known."""
    status = f"waking remote instance ({phase}{': ' + detail if detail else ''})"
    if path == "/api/pull":
        return progress_line({"status": status})
    chunk: dict[str, object] = {
        "model": model,
        "created_at": utcnow().isoformat().replace("+00:00", "Z"),
    }
    if path == "/api/chat":
        chunk["message"] = {"role": "assistant", "content": ""}
    else:
        chunk["response"] = ""
    chunk["done"] = False
    chunk["remote_ollama"] = {"status": status, "phase": phase, **({"detail": detail} if detail else {})}
    return progress_line(chunk)
