"""Reads with a ceiling: a peer (a VM whose image the tenant chose, a client) decides how much it
sends, so nothing it says is read whole without a cap. Pure stream handling, no HTTP semantics."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp

MiB = 1 << 20
CHUNK = 64 * 1024


class TooLarge(ValueError):
    """The peer sent more than the cap allows; the message says what was being read and the cap."""

    def __init__(self, what: str, cap: int):
        super().__init__(f"{what}: more than {cap} bytes; not read")
        self.what, self.cap = what, cap


async def read_capped(stream: aiohttp.StreamReader, cap: int, what: str) -> bytes:
    """The whole body, or TooLarge as soon as it passes `cap` bytes (the rest is never read)."""
    out = bytearray()
    async for chunk in stream.iter_chunked(CHUNK):
        out += chunk
        if len(out) > cap:
            raise TooLarge(what, cap)
    return bytes(out)


async def capped_lines(stream: aiohttp.StreamReader, cap: int, what: str) -> AsyncIterator[bytes]:
    """Newline-delimited lines (without the newline), each at most `cap` bytes, else TooLarge."""
    pending = bytearray()
    async for chunk in stream.iter_chunked(CHUNK):
        pending += chunk
        while (end := pending.find(b"\n")) >= 0:
            line = bytes(pending[:end])
            del pending[: end + 1]
            if len(line) > cap:
                raise TooLarge(what, cap)
            yield line
        if len(pending) > cap:
            raise TooLarge(what, cap)
    if pending:
        yield bytes(pending)


def hang_up(resp: aiohttp.ClientResponse) -> None:
    """Drop the connection now: a TLS close would keep reading (and discarding) what the peer
    still sends until its close_notify, which a hostile peer never sends."""
    connection = resp.connection
    transport = connection.transport if connection is not None else None
    if transport is not None:
        transport.abort()
    resp.close()
