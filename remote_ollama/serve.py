"""Run standalone mode: the proxy app in front of a `LocalController`, with a clean SIGTERM.

On SIGTERM the listener closes, in-flight streams get `drain_timeout` to finish, then the VM is
left as the exit policy says, bounded by `exit_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable

from .cloud.async_cloud import AsyncExoscaleCloud
from .metrics import LifecycleMetrics
from .ollama_release import version_of
from .proxy.app import PROXY_KEY, make_proxy_app, start_proxy
from .proxy.guard import is_loopback_address
from .proxy.interfaces import ProxySettings, wake_progress_from_env
from .settings import StandaloneConfig
from .standalone import LocalController, make_cloud

log = logging.getLogger("remote_ollama")


async def serve_standalone(
    config: StandaloneConfig,
    host: str,
    port: int,
    *,
    cloud: AsyncExoscaleCloud | None = None,
    drain_timeout: float = 30.0,
    on_listening: Callable[[LocalController], Awaitable[None]] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    controller = LocalController(
        config.spec, cloud or make_cloud(config), config.state_file, ollama_key=config.ollama_key
    )
    settings = ProxySettings(
        hold_timeout=config.spec.wake.hold_timeout,
        max_held_requests=config.spec.wake.max_held_requests,
        immediate_503=config.immediate_503,
        status_extra=controller.status,
        wake_progress=config.spec.wake.progress or wake_progress_from_env(os.environ),
        client_api_keys=config.client_keys,
        model_management=config.spec.model_management,
        max_body=config.spec.wake.max_held_body_bytes,
        models=config.spec.models,
        ollama_version=version_of(config.spec.ollama.image),
    )
    if not config.client_keys and not is_loopback_address(host):
        log.warning(
            "WARNING: listening on %s with no client keys: anyone who can reach port %d can use "
            "(and run up the bill of) the GPU VM. Set REMOTE_OLLAMA_CLIENT_KEYS, or listen on "
            "127.0.0.1 (docker: publish 127.0.0.1:%d:11434).",
            host,
            port,
            port,
        )
    app = make_proxy_app(controller, controller, settings)
    # real details once a VM answered; after a restart, what it answered before
    app[PROXY_KEY].cache.learn(controller.saved.ollama or {})
    controller.on_answer = app[PROXY_KEY].cache.learn
    # the wake phase histograms (remote_ollama_wake_seconds) on the proxy's /metrics
    controller.on_wake = LifecycleMetrics(app[PROXY_KEY].metrics.registry).observe_wake
    runner, _ = await start_proxy(app, host, port, shutdown_timeout=drain_timeout)
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
