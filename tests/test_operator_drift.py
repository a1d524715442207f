"""The proxy's Deployment and Service are the operator's: deleted ones come back, edited ones are reset."""

from __future__ import annotations

import json
from typing import Any

from cluster.fixtures import KubeNamespace
from operator_world import CloudWorld, cloud_world, credentials_secret, remote_ollama
from waiting import LIFECYCLE, wait_until


def recreated(world: CloudWorld, kind: str, old_uid: str) -> dict[str, Any] | None:
    obj = world.get(kind, "granite")
    return obj if obj is not None and obj["metadata"]["uid"] != old_uid else None


def start(world: CloudWorld) -> None:
    world.apply(credentials_secret())
    world.start_operator()
    world.apply(remote_ollama(idle={"stopAfter": "10m"}))
    world.wait_phase("Ready")


def test_deleted_children_are_recreated_at_once(kube: KubeNamespace) -> None:
    """With the periodic repair at its default (5 minutes), a deletion is still repaired in seconds."""
    with cloud_world(kube) as world:
        start(world)
        for kind in ("deployment", "service"):
            obj = world.get(kind, "granite")
            assert obj is not None
            kube.kubectl("delete", kind, "granite", check=True)
            back = wait_until(
                lambda kind=kind, obj=obj: recreated(world, kind, obj["metadata"]["uid"]), 10, kind
            )
            assert back["metadata"]["ownerReferences"][0]["kind"] == "RemoteOllama"
        assert world.phase() == "Ready"


def test_edited_children_are_reset_by_the_periodic_repair(kube: KubeNamespace) -> None:
    with cloud_world(kube, env={"REMOTE_OLLAMA_CHILDREN_INTERVAL": "1"}) as world:
        start(world)
        kube.kubectl(
            "patch", "service", "granite", "--type=merge",
            "-p", '{"spec":{"ports":[{"name":"ollama","port":9999,"targetPort":"ollama"}]}}',
            check=True,
        )  # fmt: skip
        kube.kubectl(
            "patch", "deployment", "granite", "--type=merge", "-p", '{"spec":{"replicas":0}}', check=True
        )

        def repaired() -> bool:
            svc, dep = world.get("service", "granite"), world.get("deployment", "granite")
            return bool(
                svc and dep and svc["spec"]["ports"][0]["port"] == 11434 and dep["spec"]["replicas"] == 1
            )

        wait_until(repaired, LIFECYCLE, "Service port and Deployment replicas reset")


CHILD_KINDS = "deployment,service,serviceaccount,role,rolebinding,secret,networkpolicy"


def owned_by(world: CloudWorld, uid: str) -> list[str]:
    out = world.kube.kubectl("get", CHILD_KINDS, "-o", "json", check=True)
    return [
        f"{o['kind']}/{o['metadata']['name']}"
        for o in json.loads(out.stdout)["items"]
        if any(ref["uid"] == uid for ref in o["metadata"].get("ownerReferences") or [])
    ]


def test_children_are_deleted_by_the_garbage_collector_through_their_owner_references(
    kube: KubeNamespace,
) -> None:
    """With no operator running and the finalizer dropped, only kube-controller-manager's garbage
    collector can remove the children: it does so only if their ownerReferences are right."""
    with cloud_world(kube) as world:
        operator = world.start_operator()
        world.apply(credentials_secret())
        world.apply(remote_ollama(suspend=True))
        uid = world.uid()
        children = wait_until(lambda: len(owned_by(world, uid)) >= 6 and owned_by(world, uid), 30, "children")
        assert {c.split("/")[0] for c in children} >= {"Deployment", "Service", "ServiceAccount", "Role"}
        operator.stop()
        kube.kubectl("patch", "rol", "granite", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
        kube.kubectl("delete", "rol", "granite", "--wait=false", check=True)
        wait_until(lambda: owned_by(world, uid) == [], 60, f"the garbage collector to delete {children}")
