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

from remote_ollama.proxy.app import make_proxy_app, start_proxy
from remote_ollama.proxy.interfaces import ProxySettings, Upstream
from remote_ollama.proxy.local import LocalResolver, RecordingSink
from remote_ollama.proxy.runloop import run
from remote_ollama.spec.sections import DEFAULT_MAX_HELD_BODY


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
    context = ssl.create_default_context(cafile=args.ca) if args.ca else None
    if context is not None and args.client_cert:
        context.load_cert_chain(args.client_cert, args.client_key)
    upstream = Upstream(
        args.upstream, context, os.environ.get("REMOTE_OLLAMA_UPSTREAM_KEY"), args.server_name
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


if __name__ == "__main__":
    main()
