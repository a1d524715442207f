"""The VM client's background work: watching a coming VM until its Ollama answers (following its
setup document meanwhile), pulling models and warming one up."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import aiohttp

from remote_ollama.core.conditions import WARM_UP_TIMEOUT
from remote_ollama.core.observed import ObservedInstance
from remote_ollama.vm.bounded import TooLarge, capped_lines

from .credentials import PROBE_TIMEOUT

if TYPE_CHECKING:
    from .vm_client import VMClient

log = logging.getLogger("remote_ollama.engine.reconciler")

# While a VM comes up, its Ollama is asked this often (directly, not the cloud API), so the round
# that declares it Ready runs within a second of it answering instead of at the next 5 s recheck.
WATCH_INTERVAL = 0.25
WATCH_ATTEMPT_TIMEOUT = 1.0
WATCH_FOR = 1800.0
# The most the operator reads of one VM reply (or one line of pull progress): /api/tags of a VM with
# hundreds of models is tens of KiB; the VM runs an image the tenant chose, and the operator is shared.
MAX_VM_REPLY = 1 << 20
# A pull still going after this is abandoned (it is asked again by a later round while models lack).
PULL_DEADLINE = 4 * 3600.0


async def watch_ollama(client: VMClient, instance: ObservedInstance) -> None:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + WATCH_FOR
    attempt = aiohttp.ClientTimeout(total=WATCH_ATTEMPT_TIMEOUT)
    seen: tuple[str, str] | None = None
    while loop.time() < give_up:
        try:
            creds = await client.credentials(instance)
            if creds is None:
                raise aiohttp.ClientError("not reachable yet")
            await client.vm_request(instance, creds, "GET", "/api/version", timeout=attempt)
        except (aiohttp.ClientError, TimeoutError, ValueError, OSError):
            report = await client.fetch_setup(instance, creds) if creds is not None else None
            now = (report.state, report.step) if report else None
            if now is not None and now != seen and client.notify is not None:
                client.notify()
            seen = now or seen
            if report is not None and report.failed:
                return
            await asyncio.sleep(WATCH_INTERVAL)
            continue
        log.debug("instance %s: Ollama answers; looking now", instance.id)
        if client.notify is not None:
            client.notify()
        return


async def pull(client: VMClient, instance: ObservedInstance, model: str) -> None:
    creds = await client.credentials(instance)
    if creds is None:
        return
    what = f"POST /api/pull {model} on instance {instance.id}"
    try:
        async with client.vm_response(
            instance,
            creds,
            "POST",
            "/api/pull",
            json={"model": model, "stream": True},
            timeout=aiohttp.ClientTimeout(total=PULL_DEADLINE, sock_connect=PROBE_TIMEOUT),
        ) as resp:
            # progress line by line, each capped, only the last kept; the round sees the result
            async for _line in capped_lines(resp.content, MAX_VM_REPLY, what):
                pass
    except TooLarge as exc:
        log.warning("pull refused: %s", exc)
    except TimeoutError:
        log.warning("%s: not done after %.0f s; abandoned (the next round asks again)", what, PULL_DEADLINE)
    except (aiohttp.ClientError, ValueError) as exc:
        log.debug("%s failed: %s", what, type(exc).__name__)


async def warm_up(client: VMClient, instance: ObservedInstance, model: str, keep_alive: str) -> None:
    """An empty generate loads the model and answers once it is in memory (Ollama's own way)."""
    creds = await client.credentials(instance)
    if creds is None:
        return
    try:
        await client.vm_request(
            instance,
            creds,
            "POST",
            "/api/generate",
            json={
                "model": model,
                "prompt": "",
                "keep_alive": ollama_keep_alive(keep_alive),
                "stream": False,
            },
            timeout=aiohttp.ClientTimeout(total=WARM_UP_TIMEOUT, sock_connect=PROBE_TIMEOUT),
        )
        log.info("warm-up: %s is loaded on %s", model, instance.id)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        log.warning("warm-up of %s on %s failed: %s", model, instance.id, str(exc) or type(exc).__name__)
    finally:
        if client.notify is not None:
            client.notify()


def ollama_keep_alive(text: str) -> str | float:
    """Ollama reads a string keep_alive as a Go duration, which must carry a unit: "-1" and "0"
    (allowed by the CRD) go as numbers of seconds."""
    try:
        return float(text)
    except ValueError:
        return text
