"""Two operator replicas with kopf peering: only the one of highest priority acts."""

from __future__ import annotations

import json

from cluster.fixtures import KubeNamespace
from operator_world import CloudWorld, cloud_world, credentials_secret, remote_ollama
from waiting import LIFECYCLE, wait_until


def peers(world: CloudWorld) -> dict[str, object]:
    out = world.kube.kubectl("get", "clusterkopfpeering", "remote-ollama", "-o", "json")
    if out.returncode != 0:
        return {}
    return dict(json.loads(out.stdout).get("status") or {})


def test_only_the_highest_priority_replica_acts(kube: KubeNamespace) -> None:
    with cloud_world(kube) as world:
        # the peering CRD came with the chart; the object itself is created by the first replica
        kube.kubectl("delete", "clusterkopfpeering", "remote-ollama", "--ignore-not-found", check=True)
        low = world.start_operator(standalone=False, REMOTE_OLLAMA_PRIORITY="10")
        high = world.start_operator(standalone=False, REMOTE_OLLAMA_PRIORITY="20")
        wait_until(lambda: len(peers(world)) == 2, LIFECYCLE, "both replicas registered in the peering")
        priorities = sorted(int(p["priority"]) for p in peers(world).values())  # type: ignore[index]
        assert priorities == [10, 20]
        assert "created the ClusterKopfPeering remote-ollama" in low.log() + high.log()
        wait_until(lambda: "Pausing operations" in low.log(), LIFECYCLE, "the low-priority replica pauses")

        world.apply(credentials_secret())
        world.apply(remote_ollama(idle={"stopAfter": "10m"}))
        world.wait_phase("Ready")
        assert world.calls("create-instance") == 1
        assert "creating instance" in high.log()
        assert "creating instance" not in low.log()
        assert low.alive() and high.alive()
