"""What the proxy refuses before any work: clients without a key, foreign Hosts on loopback, model
management when it is off, bodies it would have to hold beyond its bound, slow headers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from proxy_world import MODELS, world
from waiting import LIFECYCLE, deadline, until

from remote_ollama.proxy.app import PROXY_KEY
from remote_ollama.proxy.interfaces import ProxySettings
from remote_ollama.spec.names import API_KEY_HEADER

MODEL = MODELS[0]
KEY = "client-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_without_a_key_only_probes_and_metrics_are_open(http: aiohttp.ClientSession) -> None:
    async with world(ProxySettings(client_api_keys=frozenset({KEY}))) as w:
        for method, path in [
            ("GET", "/api/tags"),
            ("POST", "/api/generate"),
            ("GET", "/status"),
            ("GET", "/"),
        ]:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
                async with http.request(method, f"{w.url}{path}", headers=headers, json={}) as r:
                    assert r.status == 401, (method, path, headers)
                    assert "error" in await r.json()
                    assert r.headers["WWW-Authenticate"] == "Bearer"
        for path in ("/healthz", "/readyz", "/metrics"):
            for method in ("GET", "HEAD"):
                async with http.request(method, f"{w.url}{path}") as r:
                    assert r.status == 200, path
        assert w.state.last_headers == {}, "an unauthenticated request reached the VM"
        async with http.post(
            f"{w.url}/api/generate", json={"model": MODEL, "stream": False}, headers=AUTH
        ) as r:
            assert r.status == 200
        seen = {k.lower() for k in w.state.last_headers["/api/generate"]}
        assert "authorization" not in seen


async def test_own_paths_are_exempt_only_for_get_and_head(http: aiohttp.ClientSession) -> None:
    async with world(ProxySettings(client_api_keys=frozenset({KEY}))) as w:
        for path in ("/metrics", "/healthz", "/readyz", "/status"):
            async with http.post(f"{w.url}{path}", data=b"x") as r:
                assert r.status == 401, path
            async with http.post(f"{w.url}{path}", data=b"x", headers=AUTH) as r:
                assert r.status == 405, path
        assert w.state.last_headers == {}, "the proxy's own path was forwarded to the VM"
        assert w.sink.touches == [] and w.proxy[PROXY_KEY].reporter.in_flight == 0
    async with world() as w:  # without client auth too: never forwarded
        async with http.post(f"{w.url}/metrics", data=b"x") as r:
            assert r.status == 405
        assert w.state.last_headers == {}


async def test_keys_are_replaced_while_running(http: aiohttp.ClientSession) -> None:
    async with world(ProxySettings(client_auth_required=True)) as w:
        async with http.get(f"{w.url}/api/tags", headers=AUTH) as r:
            assert r.status == 401, "auth required but no key read yet: fail closed"
        w.proxy[PROXY_KEY].keys.replace([KEY, "second-key"])
        async with http.get(f"{w.url}/api/tags", headers=AUTH) as r:
            assert r.status == 200
        w.proxy[PROXY_KEY].keys.replace(["second-key"])  # rotation: the old key is gone
        async with http.get(f"{w.url}/api/tags", headers=AUTH) as r:
            assert r.status == 401
        async with http.get(f"{w.url}/api/tags", headers={"Authorization": "bearer second-key"}) as r:
            assert r.status == 200


async def test_client_credentials_are_never_forwarded(http: aiohttp.ClientSession) -> None:
    async with world() as w:
        headers = {"Authorization": "Bearer sk-for-someone-else", API_KEY_HEADER: "forged"}
        async with http.get(f"{w.url}/api/tags", headers=headers) as r:
            assert r.status == 200
        seen = w.state.last_headers["/api/tags"]
        assert "Authorization" not in seen and seen[API_KEY_HEADER] != "forged"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/pull"),
        ("POST", "/api/push"),
        ("POST", "/api/create"),
        ("POST", "/api/copy"),
        ("DELETE", "/api/delete"),
        ("POST", "/api/blobs/sha256:" + "0" * 64),
        ("HEAD", "/api/blobs/sha256:" + "0" * 64),
    ],
)
async def test_model_management_off_is_403(http: aiohttp.ClientSession, method: str, path: str) -> None:
    async with world(ProxySettings(model_management=False)) as w:
        async with http.request(method, f"{w.url}{path}", json={"model": MODEL}) as r:
            assert r.status == 403
            if method != "HEAD":
                assert "spec.modelManagement" in (await r.json())["error"]
        assert path not in w.state.last_headers
        async with http.post(f"{w.url}/api/show", json={"model": MODEL}) as r:
            assert r.status == 200, "reading models stays allowed"


async def test_model_management_on_by_default(http: aiohttp.ClientSession) -> None:
    async with world() as w, http.post(f"{w.url}/api/copy", json={"source": MODEL, "destination": "x"}) as r:
        assert r.status == 200


async def test_a_held_body_over_the_bound_is_413(http: aiohttp.ClientSession) -> None:
    settings = ProxySettings(max_body=1 << 20, hold_timeout=5)
    progress = {"X-Remote-Ollama-Progress": "true"}
    async with world(settings, ready=False) as w:
        big = b'{"model": "m", "prompt": "' + b"x" * (2 << 20) + b'"}'

        async def chunked() -> AsyncIterator[bytes]:
            for i in range(0, len(big), 65536):
                yield big[i : i + 65536]

        for body in (big, chunked()):  # declared length, and chunked (read only up to the bound)
            async with http.post(f"{w.url}/api/generate", data=body, headers=progress) as r:
                assert r.status == 413
                assert "REMOTE_OLLAMA_MAX_BODY" in (await r.json())["error"]
        async with http.post(f"{w.url}/api/pull", data=big) as r:  # pull streams progress always
            assert r.status == 413
        assert w.proxy[PROXY_KEY].hold.held == 0


async def test_hold_capacity_is_checked_before_the_body_is_read(http: aiohttp.ClientSession) -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(10_000):
            sent += 65536
            yield b"x" * 65536

    async with world(ProxySettings(max_held_requests=0), ready=False) as w:
        started = time.monotonic()
        headers = {"X-Remote-Ollama-Progress": "true"}
        with pytest.raises((aiohttp.ClientError, ConnectionError)):
            async with http.post(f"{w.url}/api/generate", data=endless(), headers=headers) as r:
                assert r.status == 503
                await r.read()
                raise aiohttp.ClientPayloadError("answered")  # the answer came: that is what we want
        assert time.monotonic() - started < deadline(30)
        assert sent < 200 * 65536, f"{sent} bytes were taken before refusing"
        assert w.proxy[PROXY_KEY].hold.held == 0


async def test_headers_must_arrive_within_the_header_timeout() -> None:
    async with world(ProxySettings(header_timeout=0.5)) as w:
        host, port = w.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        await writer.drain()
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), deadline(30)) == b""
        assert time.monotonic() - started > 0.3, "closed before the header timeout"
        writer.close()


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:11434", True),
        ("localhost:11434", True),
        ("[::1]:11434", True),
        ("myhost.local", True),
        ("10.1.2.3", True),
        ("evil.example:11434", False),
        ("attacker.example", False),
    ],
)
async def test_on_loopback_foreign_hosts_are_refused(host: str, allowed: bool) -> None:
    async with world() as w:
        _, port = w.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection("127.0.0.1", int(port))
        writer.write(f"GET /api/version HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        status_line = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        assert (status_line.split()[1] == b"200") is allowed, status_line


async def test_held_bodies_together_are_bounded_too(http: aiohttp.ClientSession) -> None:
    """Each held body may be up to max_body, all of them together at most twice that: a third
    large request waiting for the VM gets 503 (retry), and memory is given back when they end."""
    limit = 1 << 20
    async with world(ProxySettings(max_body=limit, hold_timeout=30), ready=False) as w:
        progress = {"X-Remote-Ollama-Progress": "true"}
        body = b'{"model": "m", "prompt": "' + b"x" * (limit - 100) + b'"}'
        proxy = w.proxy[PROXY_KEY]
        first = [await http.post(f"{w.url}/api/generate", data=body, headers=progress) for _ in range(2)]
        assert [r.status for r in first] == [200, 200]  # streaming waking lines, bodies held
        assert proxy.held_bodies.in_memory == 2 * len(body)
        async with http.post(f"{w.url}/api/generate", data=body, headers=progress) as r:
            assert r.status == 503 and "retry" in (await r.json())["error"]
        assert proxy.held_bodies.in_memory == 2 * len(body)
        for r in first:
            r.close()
        await until(lambda: proxy.held_bodies.in_memory == 0, LIFECYCLE, "held bodies released")


@pytest.mark.parametrize("header", [b"Authorization: Bearer \xff\xfe", b"X-Api-Key: \xc3\x28\xff"])
async def test_a_key_that_is_not_utf8_is_401_not_500(header: bytes) -> None:
    async with world(ProxySettings(client_api_keys=frozenset({KEY}))) as w:
        host, port = w.url.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1\r\n" + header + b"\r\nConnection: close\r\n\r\n"
        )
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert b'"error"' in answer
