"""Simulated GPU VMs: what a real instance exposes once cloud-init has run (docs/design.md section 5).

Each running instance gets its own loopback address (its public IP) and, on port 11435, an
nginx-like front: TLS 1.3 requiring a client certificate issued by the CA found in the user-data
(mutual TLS; a client sending none gets nginx's own 400 page, as Debian's nginx answers it), plus
the optional `X-Ollama-Key` check when the user-data sets a key, passing to a simulated Ollama.
Everything is taken from the instance's user-data at its first boot, as cloud-init does, and the
server key is made then, as the user-data's key script does on a real VM (`user_data.py`): the
files stay on the VM's disk, so a user-data replaced later changes nothing until the instance is
re-created. A broken user-data gives a VM that answers nothing, exactly as a real one would.

Like the real setup script (vm/cloudinit.py), a first boot goes through its steps (driver, Docker,
image, Ollama start, each model's pull) taking `SimTimings`' durations, and serves the setup status
document at SETUP_STATUS_PATH (behind the same mutual TLS) while Ollama routes answer nginx's 502;
`VMFleet.fail_steps` makes a step fail with a log line. What a step installed stays on the disk, so
a later boot (a start, or a boot from a template of this disk) finds it present and skips it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from remote_ollama.core.setup import run_id
from remote_ollama.sandbox.exoscale.timings import SimTimings
from remote_ollama.sandbox.ollama.server import make_ollama_app, ollama_state
from remote_ollama.sandbox.vm_front import (
    NGINX_502,
    client_cert_check,
    key_check,
    server_ssl_context,
)
from remote_ollama.spec.names import SETUP_STATUS_PATH
from remote_ollama.vm.ollama_release import DEFAULT_OLLAMA_VERSION
from remote_ollama.vm.volume import VOLUME_WAIT

from .user_data import UserDataError, VMConfig, parse_user_data
from .vm_volume import VolumeLookup, mounted, wait_for

log = logging.getLogger(__name__)

# The setup steps of a first boot, in order (a model pull per model follows them).
SETUP_STEPS = ("nginx", "driver", "docker", "image", "ollama")
SETUP_DONE = "setup-done"  # on the disk once the whole setup ran
FORMATTED = "filesystem"  # on a model volume once a setup formatted it


def setup_steps(config: VMConfig) -> list[str]:
    """The setup's steps for this user-data: the volume step only when it names a model volume."""
    return [*SETUP_STEPS[:-1], *(["volume"] if config.volume_id else []), SETUP_STEPS[-1]]


@dataclass
class Disk:
    """What is on a simulated VM's disk: the files cloud-init wrote at the first boot (`config`),
    and what the setup installed (`installed`: step names, `image:<ref>`, `model:<name>`)."""

    config: VMConfig
    installed: set[str] = field(default_factory=set)

    @property
    def cert_pem(self) -> bytes:
        """The VM's own certificate (made at its first boot), on this disk."""
        return self.config.cert_pem

    @property
    def key_pem(self) -> bytes:
        return self.config.key_pem


class SetupDocument:
    """The setup status document the VM serves (the shape core.setup reads)."""

    def __init__(self, run: str, steps: list[str]) -> None:
        self.run = run
        self.state = "running"
        self.step = steps[0] if steps else ""
        self.steps: list[dict[str, Any]] = [{"name": s, "state": "pending"} for s in steps]
        self.log: list[str] = []

    def _entry(self, name: str) -> dict[str, Any]:
        return next(s for s in self.steps if s["name"] == name)

    def mark(self, name: str, state: str, **extra: int) -> None:
        self.step = name
        self._entry(name).update(state=state, **extra)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": 1, "run": self.run, "state": self.state, "step": self.step}
        out["steps"] = [dict(s) for s in self.steps]
        if self.log:
            out["log"] = list(self.log)
        return out


def make_vm_ollama_app(
    models: list[str],
    *,
    token_delay: float,
    pull_delay: float,
    version: str = DEFAULT_OLLAMA_VERSION,
    num_parallel: int | None = None,
) -> web.Application:
    return make_ollama_app(
        models, token_delay=token_delay, pull_delay=pull_delay, version=version, num_parallel=num_parallel
    )


def _add_model(app: web.Application, name: str) -> None:
    ollama_state(app).add_model(name)


# -- one VM ----------------------------------------------------------------------------------------


class SimulatedVM:
    """The machine behind one instance: boots from its user-data, serves TLS on ip:port.

    `disk`: this instance's disk from an earlier boot (None: the first boot); `base`: what a private
    template's disk had installed (a first boot from a template finds those steps present)."""

    def __init__(
        self,
        instance_id: str,
        ip: str,
        user_data: str | None,
        *,
        port: int,
        timings: SimTimings,
        disk: Disk | None = None,
        base: set[str] | None = None,
        fail_steps: dict[str, str] | None = None,
        volumes: VolumeLookup | None = None,
    ):
        self.instance_id = instance_id
        self.ip = ip
        self.port = port
        self.timings = timings
        self.user_data = user_data
        self.disk = disk
        self.base = base
        self.fail_steps = fail_steps if fail_steps is not None else {}
        self.volumes = volumes  # the model volume's device, when the user-data names one
        self.problem: str | None = None
        self.setup: SetupDocument | None = None
        self.ollama_up = False
        self._runner: web.AppRunner | None = None
        self._app: web.Application | None = None

    @property
    def url(self) -> str:
        return f"https://{self.ip}:{self.port}"

    @property
    def serving(self) -> bool:
        return self._runner is not None

    async def boot(self) -> None:
        first = self.disk is None
        if self.disk is None:
            try:
                self.disk = Disk(parse_user_data(self.user_data), set(self.base or ()))
            except UserDataError as exc:
                self.problem = str(exc)
                log.warning(
                    "simulated VM %s (%s): %s; nothing listens on %d",
                    self.instance_id,
                    self.ip,
                    exc,
                    self.port,
                )
                return
        disk, config = self.disk, self.disk.config
        # cloud-init's packages (nginx, Docker) on a first boot; from a template they are installed
        # already (cloud-init only refreshes the package lists): `template_boot` instead
        await asyncio.sleep(
            (self.timings.template_boot if self.base else self.timings.cloud_init) if first else 0.0
        )
        try:
            ctx = server_ssl_context(config.cert_pem, config.key_pem, config.client_ca_pem)
        except (ssl.SSLError, ValueError) as exc:
            self.problem = f"nginx cannot load the TLS certificate or key: {exc}"
            log.warning("simulated VM %s: %s", self.instance_id, self.problem)
            return
        models = list(config.models)
        volume = mounted(self.volumes, self.instance_id, config.volume_id)  # in fstab: a later boot
        store = volume.contents if volume is not None else disk.installed
        self.setup = SetupDocument(
            run_id(config.cert_pem.decode()), [*setup_steps(config), *(f"model:{m}" for m in models)]
        )
        self._app = app = self._nginx_and_ollama(config, store)
        runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        self._runner = runner  # set first: a shutdown racing this boot still cleans it up
        await runner.setup()
        try:
            await web.TCPSite(runner, self.ip, self.port, ssl_context=ctx).start()
        except OSError as exc:
            await self.shutdown()
            self.problem = f"cannot listen on {self.ip}:{self.port}: {exc}"
            log.warning("simulated VM %s: %s", self.instance_id, self.problem)
            return
        self.problem = None
        log.info("simulated VM %s: nginx answers on %s; setting up", self.instance_id, self.url)
        if first or SETUP_DONE not in disk.installed:  # cut short before: the script runs again
            await self._set_up(disk, models, store)
        else:
            await self._start_services(self.setup)
        if self.ollama_up:
            log.info("simulated VM %s serving %s with models %s", self.instance_id, self.url, models)

    def _nginx_and_ollama(self, config: VMConfig, store: set[str]) -> web.Application:
        """The Ollama with the models in `store` (the disk's or the model volume's), behind nginx's
        checks: the client certificate, then this front (setup document, 502 until Ollama is up),
        then the key (when set)."""
        app = make_vm_ollama_app(
            [m for m in config.models if f"model:{m}" in store],
            token_delay=self.timings.token,
            pull_delay=self.timings.pull,
            version=config.ollama_version,
            num_parallel=config.num_parallel,
        )
        if config.api_key is not None:
            app.middlewares.insert(0, key_check(config.api_key))
        app.middlewares.insert(0, self._front)  # inside the certificate check, as nginx's location
        if config.client_ca_pem is not None:
            app.middlewares.insert(0, client_cert_check)
        return app

    async def _start_services(self, setup: SetupDocument) -> None:
        """A later boot: the enabled units start Docker and Ollama; the disk has the rest."""
        for name in setup.body()["steps"]:
            setup.mark(name["name"], "present")
        await asyncio.sleep(self.timings.services)
        self.ollama_up = True
        setup.state = "done"

    async def _set_up(self, disk: Disk, models: list[str], store: set[str]) -> None:
        """The setup script's steps: present ones are skipped, each takes its duration; a step in
        `fail_steps` fails with its log line (the VM keeps serving the document, Ollama never starts).
        The models are in `store`: the disk's, or the model volume's once the volume step mounted it."""
        assert self.setup is not None
        durations = {
            "nginx": 0.0,
            "driver": self.timings.driver,
            "docker": self.timings.docker,
            "image": self.timings.image,
            "ollama": self.timings.ollama_start,
        }
        image = f"image:{disk.config.image}"
        for name in [*setup_steps(disk.config), *(f"model:{m}" for m in models)]:
            key = image if name == "image" else name
            if name == "volume":
                store = await self._mount(disk.config) or store
                if self.setup.state == "failed":
                    return
                continue
            if key in (store if name.startswith("model:") else disk.installed) and name not in (
                "nginx",
                "ollama",
            ):
                self.setup.mark(name, "present")
                if name.startswith("model:") and self._app is not None:
                    _add_model(self._app, name.removeprefix("model:"))
                continue
            self.setup.mark(name, "running")
            log.info("simulated VM %s: setup step %s", self.instance_id, name)
            if name.startswith("model:"):
                await self._pull(name, disk.config.models)
            else:
                await asyncio.sleep(durations[name])
            failure = self.fail_steps.get(name)
            if failure is not None:
                self.setup.mark(name, "failed")
                self.setup.state = "failed"
                self.setup.log = [f"+ {name}", *failure.splitlines()]
                log.warning("simulated VM %s: setup step %s failed: %s", self.instance_id, name, failure)
                return
            self.setup.mark(name, "done")
            (store if name.startswith("model:") else disk.installed).add(key)
            if name == "ollama":
                self.ollama_up = True
            elif name.startswith("model:") and self._app is not None:
                _add_model(self._app, name.removeprefix("model:"))
        self.setup.state = "done"
        disk.installed.add(SETUP_DONE)

    async def _mount(self, config: VMConfig) -> set[str] | None:
        """The `volume` step: wait for the attached device, format it if blank (`present` when not),
        mount it; the models are then on it. Fails as the script does when it never comes."""
        assert self.setup is not None and config.volume_id is not None
        self.setup.mark("volume", "running")
        volume = await wait_for(self.volumes, self.instance_id, config.volume_id)
        if volume is None:
            self.setup.mark("volume", "failed")
            self.setup.state = "failed"
            self.setup.log = ["+ volume", f"volume {config.volume_id} not attached after {VOLUME_WAIT} s"]
            return None
        self.setup.mark("volume", "present" if FORMATTED in volume.contents else "done")
        volume.contents.add(FORMATTED)
        return volume.contents

    async def _pull(self, name: str, models: tuple[str, ...]) -> None:
        assert self.setup is not None
        total = self.timings.model_bytes
        seconds = total / self.timings.bandwidth if self.timings.bandwidth > 0 else 0.0
        parts = 10 if seconds > 0 else 1
        for i in range(1, parts + 1):
            await asyncio.sleep(seconds / parts)
            self.setup.mark(name, "running", done=total * i // parts, total=total)

    @web.middleware
    async def _front(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """nginx: the setup document from its own location, Ollama's routes 502 until it runs."""
        if request.path == SETUP_STATUS_PATH and self.setup is not None:
            return web.json_response(self.setup.body(), headers={"Server": "nginx"})
        if not self.ollama_up:
            return web.Response(
                status=502, text=NGINX_502, content_type="text/html", headers={"Server": "nginx"}
            )
        return await handler(request)

    async def shutdown(self) -> None:
        """Power off: the listener and every open connection go away at once."""
        runner, self._runner = self._runner, None
        self.ollama_up = False
        if runner is None:
            return
        for site in list(runner.sites):
            await site.stop()
        if runner.server is not None:
            for conn in list(runner.server.connections):
                conn.force_close()
        await runner.cleanup()
        log.info("simulated VM %s (%s) is down", self.instance_id, self.ip)
