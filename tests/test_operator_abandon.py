"""Deleting a resource whose credentials the cloud refuses: it must not hang forever on the finalizer.

With nothing ever created it goes at once; with a VM out there it waits (deleting the VM is the
finalizer's promise) until the user fixes the Secret or says to abandon the cloud objects with the
documented annotation, and a Warning Event names what may remain.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from cluster.fixtures import KubeNamespace
from operator_world import KEY, CloudWorld, cloud_world, credentials_secret, remote_ollama
from waiting import LIFECYCLE, wait_until

from remote_ollama.spec.names import ANN_ABANDON_CLOUD_OBJECTS


def wrong_secret() -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "exoscale"},  # the test's namespace (kubectl's context)
            "stringData": {"api-key": KEY, "api-secret": "not-the-secret"},
        }
    )


def events(world: CloudWorld) -> list[dict[str, Any]]:
    out = world.kube.kubectl("get", "events", "-n", world.namespace, "-o", "json")
    items: list[dict[str, Any]] = json.loads(out.stdout)["items"] if out.returncode == 0 else []
    return items


def refused(world: CloudWorld) -> bool:
    obj = world.get("remoteollama", "granite") or {}
    conds = (obj.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "False" and "redential" in c["reason"] for c in conds)


def test_wrong_credentials_and_nothing_created_deletes_at_once(kube: KubeNamespace) -> None:
    with cloud_world(kube) as world:
        world.apply(wrong_secret())
        world.start_operator()
        world.apply(remote_ollama())
        wait_until(lambda: refused(world), LIFECYCLE, "Ready=False for the refused credentials")
        kube.kubectl("delete", "rol", "granite", "--wait=false", check=True)
        wait_until(lambda: world.get("remoteollama", "granite") is None, LIFECYCLE, "the resource gone")
        assert world.instances() == []


def test_a_vm_left_behind_waits_for_the_secret_or_the_abandon_annotation(kube: KubeNamespace) -> None:
    with cloud_world(kube) as world:
        world.apply(credentials_secret())
        world.start_operator()
        world.apply(remote_ollama(idle={"stopAfter": "10m"}))
        kube.kubectl("annotate", "rol", "granite", "remoteollama.dev/wake-requested=2099-01-01T00:00:00Z")
        wait_until(lambda: world.instances(), 30, "a VM")
        world.wait_phase("Ready")
        (vm,) = world.instances()
        world.apply(wrong_secret())  # credentials revoked
        kube.kubectl("delete", "rol", "granite", "--wait=false", check=True)
        # the delete was tried and refused by the cloud; the finalizer keeps the resource: deleting
        # the VM is its promise
        wait_until(
            lambda: [e for e in events(world) if "deleting cloud objects" in e.get("message", "")],
            30,
            "the refused clean-up's Event",
        )
        assert world.get("remoteollama", "granite") is not None
        kube.kubectl("annotate", "rol", "granite", f"{ANN_ABANDON_CLOUD_OBJECTS}=true", check=True)
        wait_until(lambda: world.get("remoteollama", "granite") is None, 40, "the resource gone")
        assert [i.id for i in world.instances()] == [vm.id]  # abandoned, as asked
        warned = wait_until(
            lambda: [e for e in events(world) if e.get("reason") == "CloudObjectsAbandoned"], 20, "the Event"
        )
        assert warned[0]["type"] == "Warning" and vm.id in warned[0]["message"]
        (group,) = world.security_groups()  # abandoned too, and named in the Event
        assert group.name in warned[0]["message"]
