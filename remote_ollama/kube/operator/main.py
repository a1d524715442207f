"""`remote-ollama operator`: run kopf with our handlers, peering and a metrics endpoint."""

from __future__ import annotations

import argparse
import os
import zlib

import kopf
from prometheus_client import start_http_server

from remote_ollama.kube.api import KubeAPI
from remote_ollama.proxy.runloop import run

from .peering import PEERING, ensure_peering


def peering_priority(env: dict[str, str]) -> int:
    """Replicas must differ in priority or kopf pauses them all: derive it from the pod name."""
    if env.get("REMOTE_OLLAMA_PRIORITY"):
        return int(env["REMOTE_OLLAMA_PRIORITY"])
    pod = env.get("POD_NAME", "")
    return zlib.crc32(pod.encode()) % 10_000 if pod else 0


def run_operator(args: argparse.Namespace) -> int:
    from . import handlers  # noqa: F401  (registers the handlers)
    from .context import OPERATOR

    port = int(os.environ.get("REMOTE_OLLAMA_METRICS_PORT", "9090"))
    if port:
        start_http_server(port, registry=OPERATOR.metrics.registry)
    run(_operate(args))
    return 0


async def _operate(args: argparse.Namespace) -> None:
    if not args.standalone:
        api = KubeAPI.from_environment()
        try:
            await ensure_peering(api, PEERING)
        finally:
            await api.close()
    await kopf.operator(
        clusterwide=not args.namespace,
        namespaces=args.namespace or (),
        liveness_endpoint=args.liveness,
        standalone=args.standalone,
        peering_name=PEERING,
        priority=peering_priority(dict(os.environ)),
    )
