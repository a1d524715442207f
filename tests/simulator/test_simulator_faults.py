"""The Exoscale simulator's failures, as a caller of the real cloud would see them: quota, capacity,
injected 5xx and rate limits, vanished instances, slow operations, an unreachable API; and its
thread runner for synchronous callers."""

from __future__ import annotations

import pytest
import requests
from exoscale.api.exceptions import (
    ExoscaleAPIAuthException,
    ExoscaleAPIClientException,
    ExoscaleAPIException,
    ExoscaleAPIServerException,
)
from exoscale.api.v2 import Client
from sim_api_world import (
    KEY,
    MODELS,
    SECRET,
    TLSMaterial,
    create_instance,
    instance_state,
    sdk,
    serves,
    serving_vm,
    until,
    vm_models,
    vm_refuses,
)

from remote_ollama.sandbox.exoscale.api import ExoscaleSimulator
from remote_ollama.sandbox.exoscale.thread import SimulatorThread


async def test_quota_counts_gpus_and_refuses_beyond_the_limit(sim: ExoscaleSimulator, client: Client) -> None:
    sim.set_quota("gpua5000", 1)
    await create_instance(client)
    quota = await sdk(client.get_quota, entity="gpua5000")
    assert quota == {"resource": "gpua5000", "usage": 1, "limit": 1}
    with pytest.raises(ExoscaleAPIException) as err:
        await create_instance(client)
    assert "Quota exceeded" in err.value.response.json()["message"]

    sim.exceed_quota("gpu3080ti")
    assert (await sdk(client.get_quota, entity="gpu3080ti"))["limit"] == 0
    with pytest.raises(ExoscaleAPIException):
        await create_instance(client, type_name="gpu3080ti.small")
    entities = {q["resource"] for q in (await sdk(client.list_quotas))["quotas"]}
    assert {"gpua5000", "gpu3080ti", "instance"} <= entities


async def test_unauthorized_instance_type_is_refused(sim: ExoscaleSimulator, client: Client) -> None:
    sim.set_authorized("gpua5000", False)
    types = (await sdk(client.list_instance_types))["instance-types"]
    assert not next(t for t in types if t["family"] == "gpua5000")["authorized"]
    with pytest.raises(ExoscaleAPIAuthException):
        await create_instance(client)


# -- fault injection -------------------------------------------------------------------------------


async def test_injected_server_errors_and_rate_limits(sim: ExoscaleSimulator, client: Client) -> None:
    sim.fail_next(2, 503, operation="list-instances")
    for _ in range(2):
        with pytest.raises(ExoscaleAPIServerException):
            await sdk(client.list_instances)
    assert (await sdk(client.list_instances))["instances"] == []
    sim.fail_next(1, 429, path_prefix="/v2/instance-type")
    with pytest.raises(ExoscaleAPIClientException) as err:
        await sdk(client.list_instance_types)
    assert err.value.response.status_code == 429
    assert sim.call_count("list-instances") == 3 and sim.call_count("list-instance-types") == 1


async def test_capacity_failure_on_start_fails_the_operation(
    sim: ExoscaleSimulator, client: Client, tls: TLSMaterial
) -> None:
    instance_id = await create_instance(client, tls.user_data())
    await instance_state(client, instance_id, "running")
    await sdk(client.wait, operation_id=(await sdk(client.stop_instance, id=instance_id))["id"])
    await instance_state(client, instance_id, "stopped")

    sim.fail_capacity(1, on=("start",))
    op = await sdk(client.start_instance, id=instance_id)
    with pytest.raises(ExoscaleAPIServerException, match="unavailable"):
        await sdk(client.wait, operation_id=op["id"])
    failed = await sdk(client.get_operation, id=op["id"])
    assert (
        failed["state"] == "failure" and failed["reason"] == "unavailable" and "capacity" in failed["message"]
    )
    await instance_state(client, instance_id, "stopped")

    await sdk(client.wait, operation_id=(await sdk(client.start_instance, id=instance_id))["id"])
    await instance_state(client, instance_id, "running")


async def test_capacity_failure_on_create_leaves_no_instance(sim: ExoscaleSimulator, client: Client) -> None:
    sim.fail_capacity(1, on=("create",))
    with pytest.raises(ExoscaleAPIServerException, match="unavailable"):
        await create_instance(client)

    async def none_left() -> bool:
        return not (await sdk(client.list_instances))["instances"]

    await until(none_left, "failed instance removed")


async def test_vanished_instance_is_gone_and_its_vm_silent(
    sim: ExoscaleSimulator, client: Client, tls: TLSMaterial
) -> None:
    instance_id, ip = await serving_vm(client, tls)

    sim.vanish(instance_id)
    with pytest.raises(ExoscaleAPIClientException) as err:
        await sdk(client.get_instance, id=instance_id)
    assert err.value.response.status_code == 404
    assert (await sdk(client.list_instances, labels="managed-by=remote-ollama"))["instances"] == []
    await until(lambda: vm_refuses(ip, tls), "VM down")


async def test_slow_operations_stay_pending(sim: ExoscaleSimulator, client: Client) -> None:
    sim.slow_operations(0.5)
    op = await sdk(client.create_security_group, name="slow")
    assert (await sdk(client.get_operation, id=op["id"]))["state"] == "pending"
    with pytest.raises(ExoscaleAPIClientException, match="max wait"):
        await sdk(client.wait, operation_id=op["id"], max_wait_time=0)
    assert (await sdk(client.wait, operation_id=op["id"]))["state"] == "success"


async def test_unreachable_api_refuses_connections_until_restored(
    sim: ExoscaleSimulator, client: Client
) -> None:
    await sdk(client.list_instances)
    await sim.go_offline()
    with pytest.raises(requests.ConnectionError):
        await sdk(client.list_instances)
    await sim.go_online()
    assert (await sdk(client.list_instances))["instances"] == []


async def test_list_instances_label_filter(client: Client) -> None:
    instance_id = await create_instance(client)
    found = await sdk(client.list_instances, labels="remote-ollama-owner=uid-1")
    assert [i["id"] for i in found["instances"]] == [instance_id]
    assert "user-data" not in found["instances"][0]
    assert (await sdk(client.list_instances, labels="remote-ollama-owner=other"))["instances"] == []
    # The SDK turns a dict into repeated `labels=<key>`: matched as "has this label".
    assert len((await sdk(client.list_instances, labels={"managed-by": "x"}))["instances"]) == 1


# -- the thread runner for synchronous callers -----------------------------------------------------


def test_simulator_thread_serves_synchronous_clients(sim_thread: SimulatorThread) -> None:
    client = Client(KEY, SECRET, zone="at-vie-2", url=sim_thread.sim.zone_url())
    types = client.list_instance_types()["instance-types"]
    templates = client.list_templates(visibility="public")["templates"]
    op = client.create_instance(
        name="sync-vm",
        instance_type={"id": next(t["id"] for t in types if t["family"] == "gpua5000")},
        template={"id": templates[0]["id"]},
        disk_size=50,
    )
    instance_id = client.wait(op["id"])["reference"]["id"]
    sim_thread.run(sim_thread.sim.wait_instance_state(instance_id, "running"))
    sim_thread.sim.vanish(instance_id)
    with pytest.raises(ExoscaleAPIClientException):
        client.get_instance(id=instance_id)
    sim_thread.offline()
    with pytest.raises(requests.ConnectionError):
        client.list_instances()
    sim_thread.online()
    assert client.list_instances() == {"instances": []}


async def test_reboot_takes_the_vm_down_and_back(
    sim: ExoscaleSimulator, client: Client, tls: TLSMaterial
) -> None:
    instance_id, ip = await serving_vm(client, tls)
    with pytest.raises(ExoscaleAPIClientException):
        await sdk(client.start_instance, id=instance_id)  # already running
    machine_before = sim.vm(instance_id)
    await sdk(client.wait, operation_id=(await sdk(client.reboot_instance, id=instance_id))["id"])
    await sim.wait_for(lambda: sim.vm(instance_id) not in (None, machine_before), what="a fresh boot")
    await until(lambda: serves(ip, tls), "VM serving after reboot")
    assert await vm_models(ip, tls) == sorted(MODELS)
