"""`remote-ollama operator`: run kopf with our handlers, peering and a metrics endpoint."""

from __future__ import annotations

import argparse
import asyncio
import os

import kopf
from prometheus_client import start_http_server


def run_operator(args: argparse.Namespace) -> int:
    from . import handlers  # noqa: F401  (registers the handlers)
    from .context import OPERATOR

    port = int(os.environ.get("REMOTE_OLLAMA_METRICS_PORT", "9090"))
    if port:
        start_http_server(port, registry=OPERATOR.metrics.registry)
    asyncio.run(
        kopf.operator(
            clusterwide=not args.namespace,
            namespaces=args.namespace or (),
            liveness_endpoint=args.liveness,
            standalone=args.standalone,
            peering_name="remote-ollama",
            priority=int(os.environ.get("REMOTE_OLLAMA_PRIORITY", "0")),
        )
    )
    return 0
