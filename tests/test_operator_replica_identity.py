"""Issue 18's identity check holds for each replica of a replicated endpoint (issue 19): a status
patch naming another team's VM as replica 1's hands nothing over; the operator keeps acting on the
instance replica 1's own Secret records, warns, and repairs the mirror."""

from __future__ import annotations

import json
from typing import Any

from cluster.fixtures import KubeNamespace
from operator_world import cloud_world, credentials_secret, remote_ollama
from test_operator_identity import patch_status
from test_operator_orphans import planted, touched
from waiting import wait_until


def test_a_status_naming_another_teams_vm_as_a_replica_does_not_hand_it_over(kube: KubeNamespace) -> None:
    with cloud_world(kube) as world:
        world.sim.sim.set_quota("gpua5000", 10)
        world.apply(credentials_secret())
        world.start_operator()
        world.apply(
            remote_ollama(
                replicas={"min": 2, "max": 2, "scaleDownAfter": "1s"}, idle={"stopAfter": "3s"}, warmUp=False
            )
        )

        def members() -> dict[int, dict[str, Any]]:
            obj = world.get("remoteollama", "granite") or {}
            return {m["index"]: m for m in (obj.get("status") or {}).get("replicas") or []}

        wait_until(
            lambda: [m.get("phase") for m in members().values()] == ["Ready", "Ready"], 90, "two Ready"
        )
        ours = members()[1]["instanceID"]
        assert ours != members()[0]["instanceID"]
        foreign = planted(world, world.cluster_id(), "team-b")
        wait_until(
            lambda: {i.id: i.state for i in world.instances()}.get(foreign) == "running", 20, "theirs up"
        )
        user_data = world.sim.sim.state.instances[foreign].user_data

        forged = [dict(m, instanceID=foreign) if i == 1 else m for i, m in sorted(members().items())]
        patch_status(kube, {"replicas": forged})
        # back to zero: both replicas stop, replica 1's own VM included, theirs untouched
        kube.kubectl("scale", "rol", "granite", "--replicas", "0", check=True)

        def warned() -> list[dict[str, Any]]:
            items = json.loads(kube.kubectl("get", "events", "-o", "json", check=True).stdout)["items"]
            return [
                e
                for e in items
                if e.get("reason") == "ForeignInstanceIgnored" and foreign in str(e.get("message"))
            ]

        wait_until(lambda: "stop-instance" in touched(world, ours), 60, "replica 1's own VM stopped")
        (event,) = wait_until(warned, 30, "Warning Event ForeignInstanceIgnored")
        assert event["type"] == "Warning"
        assert touched(world, foreign) == []
        after = world.sim.sim.state.instances[foreign]
        assert after.state == "running" and after.user_data == user_data and not after.replaced_user_data
        wait_until(lambda: members()[1].get("instanceID") == ours, 20, "the mirror repaired")
