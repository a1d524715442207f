"""Private templates baked from a set-up VM's disk: create-snapshot of the stopped instance,
promote-snapshot-to-template, then delete the snapshot (a template outlives its instance, a snapshot
does not, and the template is all a later create needs).

`ExoscaleCloud.templates`. Templates and snapshots carry no labels, so a baked template is found by
its name (spec.names.template_name: cluster, owner uid and setup hash) and described as ours.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from remote_ollama.cloud.errors import CloudError, NotFoundError

from .transport import JSON, ExoscaleTransport

log = logging.getLogger(__name__)


class Templates:
    """Private templates of one zone (blocking)."""

    def __init__(self, api: ExoscaleTransport) -> None:
        self._call: Callable[..., Any] = api.call
        self._wait_operation: Callable[[JSON, float], JSON] = api.wait_operation

    def private_templates(self, prefix: str) -> list[JSON]:
        """Private templates whose name starts with `prefix`."""
        found: list[JSON] = self._call("list_templates", visibility="private").get("templates", [])
        return [t for t in found if str(t.get("name", "")).startswith(prefix)]

    def bake_template(self, instance_id: str, name: str, description: str, deadline: float = 3600) -> JSON:
        """The stopped instance's disk as private template `name` (returned as the API shows it)."""
        done = self._wait_operation(self._call("create_snapshot", id=instance_id), deadline)
        snapshot_id = str(done["reference"]["id"])
        log.info(
            "exoscale snapshot %s of instance %s taken; promoting it to template %s",
            snapshot_id,
            instance_id,
            name,
        )
        try:
            op = self._call(
                "promote_snapshot_to_template",
                id=snapshot_id,
                name=name,
                description=description,
                default_user="ubuntu",
                ssh_key_enabled=True,
                password_enabled=False,
            )
            template_id = str(self._wait_operation(op, deadline)["reference"]["id"])
        finally:
            with contextlib.suppress(CloudError):
                self._call("delete_snapshot", id=snapshot_id)
        template: JSON = self._call("get_template", id=template_id)
        return template

    def delete_template(self, template_id: str) -> None:
        """Delete one private template; an absent one is already deleted."""
        try:
            op = self._call("delete_template", id=template_id)
        except NotFoundError:
            return
        if isinstance(op, dict) and "state" in op:
            self._wait_operation(op, 600)
