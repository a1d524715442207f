"""The nginx-like front of a simulated VM: TLS 1.3 with a client certificate (mutual TLS), the
optional `X-Ollama-Key` check, and nginx's own pages for what it refuses."""

from __future__ import annotations

import hmac
import logging
import os
import ssl
import tempfile
from collections.abc import Awaitable, Callable

from aiohttp import web

from remote_ollama.spec.names import API_KEY_HEADER

log = logging.getLogger(__name__)

# What the cloud-init nginx site answers (vm/cloudinit.py: `return 401 '…'` under default_type).
NGINX_401 = '{"error":"missing or wrong X-Ollama-Key"}\n'

NGINX_502 = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>\n"


def server_ssl_context(cert_pem: bytes, key_pem: bytes, client_ca_pem: bytes | None = None) -> ssl.SSLContext:
    """nginx's `ssl_protocols TLSv1.3; ssl_verify_client on;` (load_cert_chain only reads files:
    they go to a private temp dir for the call). nginx asks for a certificate and verifies one that
    is sent, but a client sending none still gets its TLS session, then an HTTP 400 page
    (`client_cert_check`). A certificate of another CA fails the handshake here, where nginx also
    answers 400: Python cannot accept a certificate it failed to verify (the real-nginx tests cover it)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if client_ca_pem is not None:
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(cadata=client_ca_pem.decode())
    with tempfile.TemporaryDirectory(prefix="sim-vm-") as tmp:
        cert, key = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
        for path, data in ((cert, cert_pem), (key, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        ctx.load_cert_chain(cert, key)
    return ctx


def key_check(api_key: str) -> Callable[..., Awaitable[web.StreamResponse]]:
    """nginx's `if ($http_x_ollama_key != …) { return 401; }`, outermost."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        given = request.headers.get(API_KEY_HEADER, "")
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            return web.Response(
                status=401,
                body=NGINX_401.encode(),
                content_type="application/octet-stream",
                headers={"Server": "nginx"},
            )
        return await handler(request)

    return middleware


def nginx_page(status: int, title: str, line: str) -> web.Response:
    """An nginx error page as nginx-light 1.22 sends it (495/496 go out as 400)."""
    page = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} Bad Request</h1></center>\r\n<center>{line}</center>\r\n"
        "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
    return web.Response(status=status, text=page, content_type="text/html", headers={"Server": "nginx"})


@web.middleware
async def client_cert_check(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """nginx's `ssl_verify_client on` for a client that sent no certificate, before anything else."""
    if not request.transport or not request.transport.get_extra_info("peercert"):
        return nginx_page(
            400, "400 No required SSL certificate was sent", "No required SSL certificate was sent"
        )
    return await handler(request)
