"""`python -m remote_ollama.proxy --upstream URL`: the proxy in front of one fixed upstream.

For the bench, the tests that need the proxy in its own process, and trying the proxy against any
Ollama by hand. The upstream key is read from REMOTE_OLLAMA_UPSTREAM_KEY (never from argv).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import sys
from pathlib import Path

from remote_ollama.proxy.app import make_proxy_app, start_proxy
from remote_ollama.proxy.interfaces import ProxySettings, Upstream
from remote_ollama.proxy.local import LocalResolver, RecordingSink
from remote_ollama.proxy.runloop import run
from remote_ollama.spec.sections import DEFAULT_MAX_HELD_BODY
from remote_ollama.vm.pki import client_ssl_context


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m remote_ollama.proxy")
    parser.add_argument("--upstream", required=True, help="e.g. https://127.0.10.5:11435")
    parser.add_argument("--ca", help="PEM file of the upstream's certificate (or its CA) to trust")
    parser.add_argument("--server-name", help="name the upstream certificate is issued for")
    parser.add_argument("--client-cert", help="PEM file of the client certificate to present (mutual TLS)")
    parser.add_argument("--client-key", help="PEM file of that certificate's key")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--down", action="store_true", help="the VM never comes up: requests are held")
    parser.add_argument("--max-body", type=int, default=DEFAULT_MAX_HELD_BODY, help="bytes held per request")
    parser.add_argument("--header-timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    if args.client_cert and not args.ca:
        parser.error("--client-cert needs --ca (the upstream's pinned certificate)")
    if bool(args.client_cert) != bool(args.client_key):
        parser.error("--client-cert and --client-key go together")
    upstream = Upstream(
        args.upstream, upstream_context(args), os.environ.get("REMOTE_OLLAMA_UPSTREAM_KEY"), args.server_name
    )

    async def serve() -> None:
        settings = ProxySettings(max_body=args.max_body, header_timeout=args.header_timeout)
        resolver = LocalResolver(None, "Stopped") if args.down else LocalResolver(upstream)
        app = make_proxy_app(resolver, RecordingSink(), settings)
        runner, port = await start_proxy(app, args.host, args.port)
        print(f"listening on {args.host}:{port}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        run(serve())
    except KeyboardInterrupt:
        sys.exit(0)


def upstream_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The product's one client context (TLS 1.3, the pinned certificate as its own anchor) from
    the PEM files given; None without --ca (the system's roots)."""
    if not args.ca:
        return None
    key = Path(args.client_key).read_text() if args.client_key else ""
    cert = Path(args.client_cert).read_text() if args.client_cert else ""
    return client_ssl_context(Path(args.ca).read_text(), cert, key)


if __name__ == "__main__":
    main()
