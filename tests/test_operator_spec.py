"""Spec changes: what needs a new VM gets one, what does not is changed in place, nonsense is refused."""

from __future__ import annotations

from typing import Any

from cluster.fixtures import KubeNamespace
from operator_world import CloudWorld, cloud_world, credentials_secret, remote_ollama
from waiting import LIFECYCLE, wait_until


def patch_spec(world: CloudWorld, spec: str) -> None:
    world.kube.kubectl("patch", "rol", "granite", "--type=merge", "-p", f'{{"spec":{spec}}}', check=True)


def ingress(world: CloudWorld) -> list[str]:
    (sg,) = world.security_groups()
    return sorted(r.network for r in sg.rules if r.flow_direction == "ingress")


def ready_on(world: CloudWorld, instance_id: str) -> dict[str, Any] | None:
    obj = world.get("remoteollama", "granite") or {}
    st = obj.get("status") or {}
    ok = st.get("phase") == "Ready" and (st.get("instance") or {}).get("id") == instance_id
    return obj if ok else None


def test_disk_size_replaces_the_vm_and_cidrs_change_in_place(kube: KubeNamespace) -> None:
    with cloud_world(kube) as world:
        world.apply(credentials_secret())
        world.start_operator()
        world.apply(remote_ollama(idle={"stopAfter": "10m"}))
        first = world.wait_phase("Ready")["status"]["instance"]["id"]
        assert ingress(world) == ["0.0.0.0/0"]

        patch_spec(world, '{"allowedSourceCIDRs":["10.0.0.0/8","192.0.2.0/24"]}')
        wait_until(
            lambda: ingress(world) == ["10.0.0.0/8", "192.0.2.0/24"], 15, "security group rules updated"
        )
        assert [i.id for i in world.instances()] == [first]
        assert world.calls("create-instance") == 1

        patch_spec(world, '{"diskSize":200}')
        wait_until(lambda: world.calls("create-instance") == 2, LIFECYCLE, "a replacement VM")
        obj = wait_until(
            lambda: next((ready_on(world, i.id) for i in world.instances() if i.id != first), None),
            20,
            "Ready on the new VM",
        )
        (new,) = world.instances()
        assert new.id != first and new.disk_size == 200
        assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
        assert ingress(world) == ["10.0.0.0/8", "192.0.2.0/24"]


def test_invalid_specs_are_refused_by_kubectl_naming_the_field(kube: KubeNamespace) -> None:
    cases = {
        "spec.diskSize": {"diskSize": 5},
        "spec.instanceType": {"instanceType": "not a type"},
        "spec.allowedSourceCIDRs": {"allowedSourceCIDRs": ["everyone"]},
        "spec.idle.stopAfter": {"idle": {"stopAfter": "soon"}},
    }
    for field, spec in cases.items():
        out = kube.kubectl("apply", "-f", "-", input=remote_ollama(**spec))
        assert out.returncode != 0, f"{field}: accepted {spec}"
        assert field in out.stderr, f"{field} not named in: {out.stderr}"
    assert kube.kubectl("get", "rol", "-o", "name").stdout.strip() == ""
