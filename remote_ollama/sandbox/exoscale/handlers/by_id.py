"""The operations that are one verb of the cloud state on the path's id, answering the object (a get)
or the operation it started: registered from one table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from remote_ollama.sandbox.exoscale.handlers.registry import HANDLERS, ApiContext, Handler, Query
from remote_ollama.sandbox.exoscale.state import CloudState


class ToApi(Protocol):
    def to_api(self) -> dict[str, Any]: ...


def by_id(verb: Callable[[CloudState, str], ToApi]) -> Handler:
    def handle(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
        return verb(ctx.state, path["id"]).to_api()

    return handle


VERBS: dict[str, Callable[[CloudState, str], ToApi]] = {
    "get-instance": CloudState.get_instance,
    "start-instance": CloudState.start_instance,
    "stop-instance": CloudState.stop_instance,
    "reboot-instance": CloudState.reboot_instance,
    "delete-instance": CloudState.delete_instance,
    "create-snapshot": CloudState.create_snapshot,
    "get-snapshot": CloudState.get_snapshot,
    "delete-snapshot": CloudState.delete_snapshot,
    "get-security-group": CloudState.get_security_group,
    "delete-security-group": CloudState.delete_security_group,
}
HANDLERS.update({operation: by_id(verb) for operation, verb in VERBS.items()})
