"""The Exoscale API v2 simulator: an aiohttp server the real python-exoscale SDK talks to unchanged.

    async with ExoscaleSimulator(keys={"EXOtest": "secret"}) as sim:
        client = Client("EXOtest", "secret", url=sim.zone_url("at-vie-2"))

Every zone has its own state (instances, security groups, operations) under its own base URL,
`http://<host>:<port>/<zone>/v2`, as the real cloud has `https://api-<zone>.exoscale.com/v2`;
`url` is the template `http://<host>:<port>/{zone}/v2` the product's endpoint override takes
(each zone's client to its own zone). Quotas are the organisation's: they count every zone.
Requests are routed by the SDK's own openapi.json, signatures are checked, and faults can be
injected from tests or the sandbox. The SDK's `client.wait()` sleeps 3 s between polls: operations here finish
in `SimTimings.operation` seconds, and tests should patch `exoscale.api.v2._sleep` to poll faster.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from aiohttp import web

from remote_ollama.sandbox.exoscale.catalog import Catalog
from remote_ollama.sandbox.exoscale.faults import FailRule, Faults
from remote_ollama.sandbox.exoscale.handlers import HANDLERS, ApiContext
from remote_ollama.sandbox.exoscale.objects import ApiError, Instance
from remote_ollama.sandbox.exoscale.signing import SignatureError, verify
from remote_ollama.sandbox.exoscale.state import Account, CloudState, InstanceHooks, NoMachines
from remote_ollama.sandbox.exoscale.timings import SimTimings
from remote_ollama.sandbox.exoscale.volumes import BLOCK_STORAGE_ZONES, Volume, of
from remote_ollama.sandbox.exoscale.wire import (
    BASE_PATH,
    UNSIGNED_OPERATIONS,
    Call,
    answer,
    error,
    match_operation,
    query_of,
    split_zone,
)
from remote_ollama.sandbox.fleet import VMFleet
from remote_ollama.sandbox.vm import SimulatedVM
from remote_ollama.spec.fields_row import ZONES
from remote_ollama.spec.names import VM_PORT
from remote_ollama.spec.sections import DEFAULT_ZONE

__all__ = ["BLOCK_STORAGE_ZONES", "ExoscaleSimulator"]

log = logging.getLogger(__name__)
T = TypeVar("T")
ZONE = "{zone}"  # the placeholder in `url`, as in the API description's own server URL
MAX_CALLS = 20000


class ExoscaleSimulator:
    """A simulated Exoscale organisation: one state per zone, VMs on loopback when `vms` is true.

    `zone` is the default zone: `state` and the helpers called without `zone=` act on it."""

    def __init__(
        self,
        keys: Mapping[str, str] | None = None,
        *,
        zone: str = DEFAULT_ZONE,
        timings: SimTimings | None = None,
        gpu_quota: int = 4,
        instance_quota: int = 20,
        quota_error_status: int = 403,
        vms: bool = True,
        vm_port: int = VM_PORT,
        machines: InstanceHooks | None = None,
        zones: Iterable[str] = ZONES,
    ):
        self.keys = dict(keys or {"EXOtest": "secret"})
        self.zone = zone
        self.timings = timings or SimTimings()
        self.catalog = Catalog()
        # `machines`: other machines behind the instances (the tests' real nginx and Ollama)
        self.fleet: VMFleet | None = VMFleet(self.timings, port=vm_port) if vms and not machines else None
        hooks: InstanceHooks = machines or self.fleet or NoMachines()
        self.account = Account(gpu_quota=gpu_quota, instance_quota=instance_quota)
        faults = Faults()  # injected misbehaviour of the whole API (capacity may name a zone)
        self.states = {
            name: CloudState(self.timings, hooks, zone=name, account=self.account, faults=faults)
            for name in dict.fromkeys([zone, *zones])
        }
        if self.fleet is not None:  # a simulated VM finds its model volume's device
            self.fleet.volumes = self.attached_volumes
        self.quota_error_status = quota_error_status
        self.calls: list[Call] = []
        self.url = ""
        self._host, self._port = "127.0.0.1", 0
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def state(self) -> CloudState:
        """The default zone's state."""
        return self.states[self.zone]

    def zone_url(self, zone: str | None = None) -> str:
        """One zone's base URL (the default zone's without `zone`)."""
        return self.url.replace(ZONE, zone or self.zone)

    def instance(self, instance_id: str) -> Instance | None:
        """An instance in whichever zone holds it."""
        return next(
            (z.instances[instance_id] for z in self.states.values() if instance_id in z.instances), None
        )

    def attached_volumes(self, instance_id: str) -> list[Volume]:
        """The block-storage volumes attached to an instance, in whichever zone."""
        return [v for z in self.states.values() for v in of(z).attached_to(instance_id)]

    def zone_of(self, instance_id: str) -> str | None:
        return next((name for name, z in self.states.items() if instance_id in z.instances), None)

    # -- serving -------------------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._loop = asyncio.get_running_loop()
        self._runner = web.AppRunner(self.make_app(), shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        self._host = host
        self._site = web.TCPSite(self._runner, host, port)
        await self._site.start()
        self._port = int(self._runner.addresses[0][1])
        self.url = f"http://{host}:{self._port}/{ZONE}{BASE_PATH}"
        log.info("Exoscale API simulator (zones %s) listening on %s", ", ".join(self.states), self.url)
        return self.url

    async def stop(self) -> None:
        if self.fleet is not None:
            await self.fleet.close()
        if self._runner is not None:
            await self._drop_connections()
            await self._runner.cleanup()
        self._runner = self._site = None

    async def __aenter__(self) -> ExoscaleSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _drop_connections(self) -> None:
        if self._site is not None:
            await self._site.stop()
            self._site = None
        if self._runner is not None and self._runner.server is not None:
            for conn in list(self._runner.server.connections):
                conn.force_close()

    async def go_offline(self) -> None:
        """The API becomes unreachable: the listener closes, open connections are cut."""
        await self._drop_connections()

    async def go_online(self) -> None:
        """Listen again on the same address and port."""
        if self._runner is not None and self._site is None:
            self._site = web.TCPSite(self._runner, self._host, self._port)
            await self._site.start()

    # -- request handling ----------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw_path = request.raw_path.split("?", 1)[0]
        zone, path = split_zone(request.path)
        state = self.states.get(zone)
        route = (
            match_operation(request.method, path[len(BASE_PATH) :])
            if state is not None and path.startswith(BASE_PATH)
            else None
        )
        op_id, params = route if route else ("unknown", {})
        self.calls.append(Call(request.method, path, op_id, zone))
        if len(self.calls) > MAX_CALLS:  # a long sandbox session polls forever: keep the recent half
            del self.calls[: MAX_CALLS // 2]
        delay = self.state.faults.response_delay(op_id)
        if delay:
            await asyncio.sleep(delay)
        injected = self.state.faults.take_failure(op_id, path)
        if injected is not None:
            return error(injected.status, injected.message, op_id)
        body = await request.read()
        header = request.headers.get("Authorization")
        if op_id not in UNSIGNED_OPERATIONS or header:
            try:
                verify(
                    self.keys,
                    header,
                    method=request.method,
                    path=raw_path,
                    query=request.rel_url.raw_query_string,
                    body=body,
                    now=time.time(),
                )
            except SignatureError as exc:
                log.info("rejected %s %s: %s", request.method, path, exc)
                return error(403, "Invalid request signature", op_id)
        if state is None:
            return error(404, f"no zone {zone!r}: the API is served under /<zone>{BASE_PATH}")
        if route is None:
            return error(404, f"no route for {request.method} {path}")
        handler = HANDLERS.get(op_id)
        if handler is None:
            return error(501, f"{op_id} is not implemented by the simulator", op_id)
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            return error(400, "request body is not valid JSON", op_id)
        ctx = ApiContext(state, self.catalog, zone, self.url, self.quota_error_status)
        try:
            reply = handler(ctx, params, query_of(request), payload)
        except ApiError as exc:
            return error(exc.status, exc.message, op_id, payload)
        return answer(op_id, payload, 200, reply)

    # -- fault injection -----------------------------------------------------------------------
    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        *,
        operation: str | None = None,
        path_prefix: str | None = None,
        message: str | None = None,
    ) -> None:
        """The next `n` matching calls answer `status` (5xx or 429) before doing anything."""
        default = "Too many requests" if status == 429 else "Service temporarily unavailable"
        with self.state.faults.lock:
            self.state.faults.fail_rules.append(
                FailRule(n, status, operation, path_prefix, message or default)
            )

    def slow_responses(self, seconds: float, *, operation: str | None = None) -> None:
        """Every matching call waits `seconds` before answering (cumulative; clear_faults resets)."""
        with self.state.faults.lock:
            self.state.faults.response_delays.append((operation, seconds))

    def slow_operations(self, seconds: float) -> None:
        """Async operations and instance transitions take `seconds` longer."""
        self.state.faults.operation_delay = seconds

    def fail_capacity(
        self, n: int = 1, *, on: tuple[str, ...] = ("start", "create"), zone: str | None = None
    ) -> None:
        """The next `n` starts (and/or creates), in `zone` or any, end in operation failure,
        reason `unavailable`."""
        faults = self.state.faults
        with faults.lock:
            for action in on:
                if zone is None:
                    faults.capacity_failures[action] = n
                else:
                    faults.zone_capacity_failures[(action, zone)] = n

    def clear_faults(self) -> None:
        faults = self.state.faults
        with faults.lock:
            faults.fail_rules.clear()
            faults.response_delays.clear()
            faults.capacity_failures.clear()
            faults.zone_capacity_failures.clear()
            faults.operation_delay = 0.0

    def set_quota(self, entity: str, limit: int) -> None:
        """GPU family (e.g. `gpua5000`, counted in GPUs) or `instance`, in every zone; -1 is unlimited."""
        self.account.quota_limits[entity] = limit

    def exceed_quota(self, family: str) -> None:
        self.set_quota(family, 0)

    def set_authorized(self, name_or_family: str, authorized: bool) -> None:
        for itype in self.catalog.instance_types:
            if name_or_family in (itype.name, itype.family):
                itype.authorized = authorized

    def vanish(self, instance_id: str) -> None:
        """Delete an instance out of band; its VM stops answering. Callable from any thread."""
        self._on_loop(self.states[self.zone_of(instance_id) or self.zone].vanish, instance_id)

    def _on_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop:
            fn(*args)
            return

        async def call() -> None:
            fn(*args)

        asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=10)

    # -- introspection -------------------------------------------------------------------------
    def call_count(self, operation: str | None = None) -> int:
        return sum(1 for c in self.calls if operation is None or c.operation == operation)

    def vm(self, instance_id: str) -> SimulatedVM | None:
        return self.fleet.vms.get(instance_id) if self.fleet is not None else None

    async def wait_for(
        self, predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition"
    ) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            await asyncio.sleep(0.01)

    async def wait_instance_state(self, instance_id: str, state: str | None, timeout: float = 10.0) -> None:
        """`state=None` waits until the instance is gone."""

        def reached() -> bool:
            inst = self.instance(instance_id)
            return inst is None if state is None else inst is not None and inst.state == state

        await self.wait_for(reached, timeout, f"instance {instance_id} to be {state or 'gone'}")

    async def wait_vm_serving(self, instance_id: str, serving: bool = True, timeout: float = 10.0) -> None:
        def reached() -> bool:
            vm = self.vm(instance_id)
            return (vm is not None and vm.serving) == serving

        await self.wait_for(reached, timeout, f"VM {instance_id} serving={serving}")
