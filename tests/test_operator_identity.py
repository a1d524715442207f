"""A status patch cannot hand the operator someone else's VM (issue 18): whoever may patch
`remoteollamas/status` (namespace admins with `resources: ["*"]`) names another team's instance;
the operator keeps acting on the one it recorded at create, leaves the named one untouched, and
says so in a Warning Event."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from cluster.fixtures import KubeNamespace
from operator_world import cloud_world, credentials_secret, remote_ollama
from test_operator_orphans import planted, touched
from waiting import LIFECYCLE, wait_until


def patch_status(kube: KubeNamespace, status: dict[str, object]) -> None:
    """What anyone allowed to patch `remoteollamas/status` can do."""
    patch = json.dumps({"status": status})
    kube.kubectl("patch", "rol", "granite", "--subresource=status", "--type=merge", "-p", patch, check=True)


def test_a_status_naming_another_teams_vm_does_not_hand_it_over(kube: KubeNamespace) -> None:
    with cloud_world(kube) as world:
        world.apply(credentials_secret())
        world.start_operator()
        world.apply(remote_ollama(idle={}))
        ours = world.wait_phase("Ready")["status"]["instance"]["id"]
        foreign = planted(world, world.cluster_id(), "team-b")  # another team's VM, this cluster
        wait_until(
            lambda: {i.id: i.state for i in world.instances()}.get(foreign) == "running", 20, "theirs up"
        )
        user_data = world.sim.sim.state.instances[foreign].user_data

        patch_status(kube, {"instance": {"id": foreign}})
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        kube.kubectl(
            "annotate", "rol", "granite", f"remoteollama.dev/sleep-requested={now}", "--overwrite", check=True
        )

        def warned() -> list[dict[str, object]]:
            items = json.loads(kube.kubectl("get", "events", "-o", "json", check=True).stdout)["items"]
            return [
                e
                for e in items
                if e.get("reason") == "ForeignInstanceIgnored" and foreign in str(e.get("message"))
            ]

        wait_until(
            lambda: touched(world, ours) == ["stop-instance"], 30, "our VM stopped on the sleep request"
        )
        (event,) = wait_until(warned, LIFECYCLE, "Warning Event ForeignInstanceIgnored")
        assert event["type"] == "Warning"
        assert touched(world, foreign) == []
        after = world.sim.sim.state.instances[foreign]
        assert after.state == "running" and after.user_data == user_data and not after.replaced_user_data
        obj = world.get("remoteollama", "granite")
        assert obj is not None and obj["status"]["instance"]["id"] == ours  # the mirror is repaired
