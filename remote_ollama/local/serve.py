"""Run standalone mode: the proxy app in front of a `LocalController`, with a clean SIGTERM.

On SIGTERM the listener closes, in-flight streams get `drain_timeout` to finish, then the VM is
left as the exit policy says, bounded by `exit_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable

from aiohttp import web

from remote_ollama.cloud.port import Cloud
from remote_ollama.engine.metrics import LifecycleMetrics, ReplicaMetrics
from remote_ollama.proxy.app import PROXY_KEY, make_proxy_app, start_proxy
from remote_ollama.proxy.guard import is_loopback_address
from remote_ollama.proxy.interfaces import proxy_settings
from remote_ollama.proxy.routing import Router

from .controller import LocalController, make_cloud
from .replicas import ReplicaGroup
from .settings import HOST_ENV, StandaloneConfig

log = logging.getLogger("remote_ollama")


def check_port_free(host: str, port: int) -> None:
    """Raise `PortInUse` now when `host:port` is taken, before anything else starts or is created
    (the real bind still reports a port taken in between)."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return  # the real bind says what is wrong with the address
    for family, kind, proto, _, address in infos[:1]:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise PortInUse(host, port) from None


class PortInUse(Exception):
    """The port to listen on is taken: said in one line, before anything is created."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(
            f"port {port} on {host} is already in use (is an Ollama already running there? "
            f"`ollama serve` listens on 11434); choose another with --port, e.g. --port {port + 1}"
        )


def make_controller(
    config: StandaloneConfig, cloud: Cloud | None, router: Router
) -> tuple[LocalController | ReplicaGroup, list[LocalController]]:
    """The lifecycle (a replica group for scale-out; one VM is the one controller, as always) and
    its controllers."""
    if config.spec.replicas.max > 1:
        group = ReplicaGroup(
            config.spec,
            cloud or make_cloud(config),
            config.state_file,
            router=router,
            ollama_key=config.ollama_key,
        )
        return group, group.members
    one = LocalController(
        config.spec, cloud or make_cloud(config), config.state_file, ollama_key=config.ollama_key
    )
    return one, [one]


def warn_if_open(config: StandaloneConfig, host: str, port: int) -> None:
    """Listening beyond loopback with no client keys: anyone reaching the port runs up the bill."""
    if config.client_keys or is_loopback_address(host):
        return
    # in the image the address comes from REMOTE_OLLAMA_HOST: the fix is where the port is published
    in_image = os.environ.get(HOST_ENV) == host
    fix = (
        f"publish the port on loopback only (docker run -p 127.0.0.1:{port}:{port})"
        if in_image
        else "leave out --host (the default is 127.0.0.1)"
    )
    log.warning(
        "WARNING: listening on %s with no client keys: anyone who can reach port %d can use "
        "(and run up the bill of) the GPU VM. Set REMOTE_OLLAMA_CLIENT_KEYS, or %s.",
        host,
        port,
        fix,
    )


def connect_proxy(
    app: web.Application, controller: LocalController | ReplicaGroup, members: list[LocalController]
) -> None:
    """The proxy's metrics and polling cache fed by the lifecycle."""
    proxy = app[PROXY_KEY]
    # the wake phase histograms (remote_ollama_wake_seconds{replica, phase}) on the proxy's /metrics
    wake_metrics = LifecycleMetrics(proxy.metrics.registry)
    if isinstance(controller, ReplicaGroup):
        controller.metrics = ReplicaMetrics(proxy.metrics.registry)
    for member in members:
        # real details once a VM answered; after a restart, what it answered before
        proxy.cache.learn(member.saved.ollama or {})
        member.on_answer = proxy.cache.learn
        member.on_wake = functools.partial(wake_metrics.observe_wake, replica=member.replica or 0)


async def serve_standalone(
    config: StandaloneConfig,
    host: str,
    port: int,
    *,
    cloud: Cloud | None = None,
    drain_timeout: float = 30.0,
    on_listening: Callable[[LocalController | ReplicaGroup], Awaitable[None]] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    router = Router(config.spec.replicas.routing)
    controller, members = make_controller(config, cloud, router)
    settings = proxy_settings(
        config.spec,
        os.environ,
        immediate_503=config.immediate_503,
        status_extra=controller.status,
        client_api_keys=config.client_keys,
    )
    warn_if_open(config, host, port)
    app = make_proxy_app(controller, controller, settings, router=router)
    connect_proxy(app, controller, members)
    try:
        runner, _ = await start_proxy(app, host, port, shutdown_timeout=drain_timeout)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(host, port) from None
        raise
    controller.start()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    log.info("listening on http://%s:%d (Ollama API)", host, port)
    if on_listening is not None:
        await on_listening(controller)
    try:
        await stop.wait()
    finally:
        log.info("shutting down: finishing in-flight requests, then on-exit policy %r", config.on_exit)
        await runner.cleanup()
        await controller.stop(config.on_exit, config.exit_timeout)
