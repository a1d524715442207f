"""The Exoscale adapter, driven through the real python-exoscale SDK against the API simulator.

The async tests run the simulator on the test's own event loop and the adapter through
`AsyncExoscaleCloud`: a blocking SDK call on the loop thread would deadlock them, so they also
prove that the adapter keeps blocking I/O off the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from cloud_adapter_world import (
    CLUSTER,
    FAST,
    GPU_TYPE,
    KEY,
    OWNER,
    SECRET,
    SG_NAME,
    TEMPLATE,
    ZONE,
    SleepLog,
    instance_args,
    make_cloud,
    ollama_get,
    provision,
    user_data,
    wait_reachable,
)
from waiting import deadline

from remote_ollama.cloud.errors import (
    CapacityError,
    CloudError,
    CloudUnavailable,
    CredentialsError,
    InstanceTypeNotFound,
    NotAuthorizedError,
    QuotaError,
    TemplateNotFound,
)
from remote_ollama.cloud.exoscale.adapter import ExoscaleCloud, owner_labels
from remote_ollama.cloud.exoscale.async_cloud import AsyncExoscaleCloud
from remote_ollama.sandbox.exoscale import wire as simulator_wire
from remote_ollama.sandbox.exoscale.api import ExoscaleSimulator
from remote_ollama.sandbox.exoscale.thread import SimulatorThread
from remote_ollama.spec.names import VM_PORT
from remote_ollama.vm.pki import VMCredentials, generate_vm_credentials


@pytest.fixture
async def sim() -> AsyncIterator[ExoscaleSimulator]:
    async with ExoscaleSimulator(keys={KEY: SECRET}, zone=ZONE, timings=FAST) as s:
        yield s


@pytest.fixture
def sim_thread() -> Iterator[SimulatorThread]:
    with SimulatorThread(keys={KEY: SECRET}, zone=ZONE, timings=FAST, vms=False) as s:
        yield s


@pytest.fixture(scope="module")
def creds() -> VMCredentials:
    """With the optional EXOSCALE_OLLAMA_KEY, so both checks of the VM are exercised."""
    return generate_vm_credentials(api_key="vm-key-chosen-0123456789abcdef")


# --- the life of one instance -------------------------------------------------------------------------


async def test_provision_stop_start_destroy(sim: ExoscaleSimulator, creds: VMCredentials) -> None:
    cloud = AsyncExoscaleCloud(make_cloud(sim.url))
    await cloud.check_credentials()

    inst = await provision(cloud, creds)
    assert inst.state == "running" and inst.public_ip
    assert inst.instance_type == GPU_TYPE and inst.zone == ZONE and inst.disk_size == 50
    assert inst.labels == owner_labels(OWNER, CLUSTER) and inst.created_at is not None
    version = await wait_reachable(inst.public_ip, creds)
    assert "version" in version
    status, _ = await ollama_get(inst.public_ip, "/api/version", None, creds)
    assert status == 401
    status, _ = await ollama_get(inst.public_ip, "/api/version", "wrong-key-0123456789", creds)
    assert status == 401
    # the right key but no client certificate: nginx's 400 page, as the real nginx answers it
    status, page = await ollama_get(inst.public_ip, "/api/version", creds.api_key, creds, client_cert=False)
    assert status == 400 and "<title>400 No required SSL certificate was sent</title>" in page

    stopped = await cloud.stop_instance(inst.id, deadline=10)
    assert stopped.id == inst.id and stopped.state == "stopped"
    with pytest.raises(aiohttp.ClientConnectionError):
        await ollama_get(inst.public_ip, "/api/version", creds.api_key, creds)
    assert (await cloud.stop_instance(inst.id, deadline=10)).state == "stopped"  # idempotent

    started = await cloud.start_instance(inst.id, deadline=10)
    assert started.id == inst.id and started.state == "running"
    assert list(sim.state.instances) == [inst.id]  # no second instance
    assert started.public_ip
    await wait_reachable(started.public_ip, creds)

    found = await cloud.find_instance(OWNER, CLUSTER)
    assert found is not None and found.id == inst.id

    await cloud.delete_instance(inst.id, deadline=10)
    assert await cloud.get_instance(inst.id) is None
    assert sim.state.instances == {}
    await cloud.delete_instance(inst.id, deadline=10)  # already gone: fine
    await cloud.delete_security_group(SG_NAME)
    assert sim.state.security_groups == {}
    await cloud.delete_security_group(SG_NAME)  # already gone: fine
    assert await cloud.find_instance(OWNER, CLUSTER) is None


async def test_fresh_adapter_adopts_the_running_instance_by_label(
    sim: ExoscaleSimulator, creds: VMCredentials
) -> None:
    first = await provision(AsyncExoscaleCloud(make_cloud(sim.url)), creds)
    fresh = AsyncExoscaleCloud(make_cloud(sim.url))  # no memory of the first
    found = await fresh.find_instance(OWNER, CLUSTER)
    assert found is not None and found.id == first.id and found.state == "running"
    assert found.instance_type == GPU_TYPE and found.public_ip == first.public_ip
    assert found.disk_size == 50 and found.labels == owner_labels(OWNER, CLUSTER)
    assert found.template_id == (await fresh.resolve_template(TEMPLATE))["id"]
    assert await fresh.find_instance(OWNER, "another-cluster") is None
    assert await fresh.find_instance("another-owner", CLUSTER) is None
    assert sim.call_count("create-instance") == 1
    assert len(sim.state.instances) == 1


async def test_security_group_rules_are_made_exact(sim: ExoscaleSimulator) -> None:
    cloud = AsyncExoscaleCloud(make_cloud(sim.url))
    sg_id = await cloud.ensure_security_group(SG_NAME, ["10.0.0.0/8", "192.168.1.7/24"])
    # someone adds an SSH rule and a rule on our port from elsewhere
    client = cloud.sync.client
    for port, network in ((22, "0.0.0.0/0"), (VM_PORT, "203.0.113.0/24")):
        await asyncio.to_thread(
            client.add_rule_to_security_group,
            id=sg_id,
            flow_direction="ingress",
            protocol="tcp",
            network=network,
            start_port=port,
            end_port=port,
        )
    assert await cloud.ensure_security_group(SG_NAME, ["10.0.0.0/8"]) == sg_id
    rules = [
        (r.flow_direction, r.protocol, r.network, r.start_port, r.end_port)
        for r in sim.state.security_groups[sg_id].rules
    ]
    assert rules == [("ingress", "tcp", "10.0.0.0/8", VM_PORT, VM_PORT)]
    writes = sim.call_count("add-rule-to-security-group") + sim.call_count("delete-rule-from-security-group")
    assert await cloud.ensure_security_group(SG_NAME, ["10.0.0.0/8"]) == sg_id
    again = sim.call_count("add-rule-to-security-group") + sim.call_count("delete-rule-from-security-group")
    assert again == writes  # converged: nothing to change
    assert len(sim.state.security_groups) == 1


async def test_security_group_in_use_is_a_retryable_error(
    sim: ExoscaleSimulator, creds: VMCredentials
) -> None:
    cloud = AsyncExoscaleCloud(make_cloud(sim.url))
    await provision(cloud, creds)
    with pytest.raises(CloudError) as err:
        await cloud.delete_security_group(SG_NAME)
    assert err.value.retryable and err.value.reason == "SecurityGroupInUse"


# --- errors a person must act on ----------------------------------------------------------------------


async def test_wrong_credentials_fail_once_with_a_clear_error(sim: ExoscaleSimulator) -> None:
    sleeps = SleepLog()
    cloud = AsyncExoscaleCloud(make_cloud(sim.url, secret="not-the-secret", sleep=sleeps))
    with pytest.raises(CredentialsError) as err:
        await cloud.check_credentials()
    assert sim.call_count() == 1 and sleeps.delays == []  # not retried
    assert err.value.reason == "InvalidCredentials" and not err.value.retryable
    assert "credentials" in str(err.value) and "Invalid request signature" in str(err.value)
    assert "not-the-secret" not in str(err.value)


async def test_exhausted_gpu_quota_names_family_zone_and_limit_and_creates_nothing(
    sim: ExoscaleSimulator, creds: VMCredentials
) -> None:
    sim.exceed_quota("gpua5000")
    cloud = AsyncExoscaleCloud(make_cloud(sim.url))
    with pytest.raises(QuotaError) as err:
        await provision(cloud, creds)
    msg = str(err.value)
    assert "gpua5000" in msg and ZONE in msg and "limit 0" in msg
    assert err.value.family == "gpua5000" and err.value.limit == 0 and err.value.zone == ZONE
    assert sim.call_count("create-instance") == 0 and sim.state.instances == {}


async def test_quota_refused_by_create_itself_is_a_quota_error_not_bad_credentials(
    sim: ExoscaleSimulator, creds: VMCredentials
) -> None:
    cloud = AsyncExoscaleCloud(make_cloud(sim.url))
    msg = "Quota exceeded for resource 'gpua5000': limit 1, usage 1, requested 1"
    sim.fail_next(1, status=403, operation="create-instance", message=msg)
    with pytest.raises(QuotaError) as err:
        await provision(cloud, creds)
    assert err.value.family == "gpua5000" and "gpua5000" in str(err.value)
    assert sim.state.instances == {}


async def test_unauthorized_or_absent_types_and_templates_are_named(sim: ExoscaleSimulator) -> None:
    cloud = AsyncExoscaleCloud(make_cloud(sim.url))
    assert (await cloud.resolve_instance_type("a5000.small"))["family"] == "gpua5000"  # the short alias
    assert (await cloud.resolve_template(TEMPLATE))["name"] == TEMPLATE
    with pytest.raises(InstanceTypeNotFound, match=r"gpu3\.small is not offered in at-vie-2"):
        await cloud.resolve_instance_type("gpu3.small")
    with pytest.raises(InstanceTypeNotFound, match=r"gpua40\.small does not exist"):
        await cloud.resolve_instance_type("gpua40.small")
    with pytest.raises(TemplateNotFound, match="Windows 95"):
        await cloud.resolve_template("Windows 95")
    sim.set_authorized("gpua5000", False)
    with pytest.raises(NotAuthorizedError, match=r"gpua5000\.small is not authorized") as err:
        await cloud.resolve_instance_type(GPU_TYPE)
    assert isinstance(err.value, QuotaError) and not err.value.retryable


async def test_no_capacity_on_start_is_a_retryable_capacity_error(
    sim: ExoscaleSimulator, creds: VMCredentials
) -> None:
    cloud = AsyncExoscaleCloud(make_cloud(sim.url))
    inst = await provision(cloud, creds)
    await cloud.stop_instance(inst.id, deadline=10)
    sim.fail_capacity(1, on=("start",))
    with pytest.raises(CapacityError) as err:
        await cloud.start_instance(inst.id, deadline=10)
    assert err.value.retryable and err.value.reason == "InsufficientCapacity"
    await sim.wait_instance_state(inst.id, "stopped")
    assert (await cloud.start_instance(inst.id, deadline=10)).state == "running"


async def test_instance_deleted_out_of_band_is_seen_as_gone(
    sim: ExoscaleSimulator, creds: VMCredentials
) -> None:
    cloud = AsyncExoscaleCloud(make_cloud(sim.url))
    inst = await provision(cloud, creds)
    sim.vanish(inst.id)
    assert await cloud.get_instance(inst.id) is None
    assert await cloud.find_instance(OWNER, CLUSTER) is None
    await cloud.delete_instance(inst.id)  # nothing to do, no error


# --- retries --------------------------------------------------------------------------------------------


def test_5xx_burst_is_survived_with_growing_jittered_backoff(sim_thread: SimulatorThread) -> None:
    sleeps = SleepLog()
    cloud = make_cloud(sim_thread.url, sleep=sleeps, backoff_base=0.2)
    sim_thread.sim.fail_next(4, status=503)
    cloud.catalogue.check_credentials()
    assert sim_thread.sim.call_count("list-instance-types") == 5
    assert len(sleeps.delays) == 4
    for attempt, delay in enumerate(sleeps.delays):
        assert 0 <= delay <= 0.2 * 2**attempt


def test_429_is_retried(sim_thread: SimulatorThread) -> None:
    cloud = make_cloud(sim_thread.url, sleep=SleepLog())
    sim_thread.sim.fail_next(2, status=429)
    assert cloud.catalogue.resolve_template(TEMPLATE)["name"] == TEMPLATE
    assert sim_thread.sim.call_count("list-templates") == 3


def test_other_4xx_is_not_retried(sim_thread: SimulatorThread) -> None:
    sleeps = SleepLog()
    cloud = make_cloud(sim_thread.url, sleep=sleeps)
    sim_thread.sim.fail_next(1, status=400, message="invalid parameter")
    with pytest.raises(CloudError, match="invalid parameter") as err:
        cloud.catalogue.check_credentials()
    assert not err.value.retryable and sleeps.delays == []
    assert sim_thread.sim.call_count() == 1


def test_an_outlasting_outage_becomes_a_retryable_error(sim_thread: SimulatorThread) -> None:
    cloud = make_cloud(sim_thread.url, sleep=SleepLog(), retries=3)
    sim_thread.sim.fail_next(10, status=502)
    with pytest.raises(CloudUnavailable) as err:
        cloud.catalogue.check_credentials()
    assert err.value.retryable and "after 4 attempts" in str(err.value)
    assert sim_thread.sim.call_count() == 4


def test_connection_refused_is_retried_until_the_api_is_back(sim_thread: SimulatorThread) -> None:
    calls: list[float] = []

    def sleep(seconds: float) -> None:
        calls.append(seconds)
        if len(calls) == 2:
            sim_thread.online()

    cloud = make_cloud(sim_thread.url, sleep=sleep)
    sim_thread.offline()
    cloud.catalogue.check_credentials()
    assert len(calls) == 2


def test_a_hanging_api_times_out_instead_of_blocking_forever(
    sim_thread: SimulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    answered: list[str] = []
    observers = [*simulator_wire.EXCHANGE_OBSERVERS, lambda operation, *_: answered.append(operation)]
    monkeypatch.setattr(simulator_wire, "EXCHANGE_OBSERVERS", observers)
    sim_thread.sim.slow_responses(3.0)
    cloud = make_cloud(sim_thread.url, timeout=0.3, retries=1, sleep=SleepLog())
    with pytest.raises(CloudUnavailable, match="Timeout"):
        cloud.catalogue.check_credentials()
    assert answered == [], "the adapter waited for the slow answer instead of timing out"


def test_retried_create_adopts_the_instance_instead_of_making_a_twin(
    sim_thread: SimulatorThread, creds: VMCredentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A create whose answer was lost (gateway 5xx after the fact) must not leave a second VM."""
    cloud = make_cloud(sim_thread.url, sleep=SleepLog())
    sg_id = cloud.security_groups.ensure_security_group(SG_NAME, ["0.0.0.0/0"])
    labels = owner_labels(OWNER, CLUSTER)
    original = cloud._create

    def create_then_lose_answer(*args: Any) -> dict[str, Any]:
        original(*args)  # the cloud did it...
        sim_thread.sim.fail_next(1, status=504, operation="create-instance")
        return original(*args)  # ...but the retry's answer is a 504, so the adapter must look first

    monkeypatch.setattr(cloud, "_create", create_then_lose_answer)
    inst = cloud.create_instance(
        "granite-ai", GPU_TYPE, TEMPLATE, 50, user_data(creds), sg_id, labels, deadline=10
    )
    assert len(sim_thread.sim.state.instances) == 1
    assert inst.id in sim_thread.sim.state.instances


def test_operation_deadline_is_enforced(sim_thread: SimulatorThread, creds: VMCredentials) -> None:
    cloud = make_cloud(sim_thread.url)
    sg_id = cloud.security_groups.ensure_security_group(SG_NAME, ["0.0.0.0/0"])
    sim_thread.sim.slow_operations(5.0)
    with pytest.raises(CloudError) as err:
        cloud.create_instance(*instance_args(creds, sg_id), deadline=0.3)
    assert err.value.reason == "OperationTimeout" and err.value.retryable


def test_unknown_zone_without_endpoint_is_refused_clearly() -> None:
    with pytest.raises(CloudError, match="zone") as err:
        ExoscaleCloud(KEY, SECRET, "xx-nowhere-1")
    assert err.value.reason == "InvalidZone"
    assert ExoscaleCloud(KEY, SECRET, "de-fra-1").client.endpoint == "https://api-de-fra-1.exoscale.com/v2"


def test_secrets_never_reach_the_logs(
    sim_thread: SimulatorThread, creds: VMCredentials, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cloud = make_cloud(sim_thread.url, sleep=SleepLog())
    sim_thread.sim.fail_next(1, status=503)
    sg_id = cloud.security_groups.ensure_security_group(SG_NAME, ["0.0.0.0/0"])
    inst = cloud.create_instance(*instance_args(creds, sg_id), deadline=deadline(30))
    cloud.delete_instance(inst.id, deadline=10)
    assert inst.id in caplog.text  # ids are logged...
    for secret in (SECRET, str(creds.api_key), creds.client_key_pem, user_data(creds)[:40]):
        assert secret not in caplog.text  # ...secrets are not
    assert SECRET not in repr(cloud) and SECRET not in repr(cloud.client)


# --- zones ----------------------------------------------------------------------------------------------


async def test_the_endpoint_override_sends_each_zone_to_its_own_zone(
    sim: ExoscaleSimulator, creds: VMCredentials
) -> None:
    """`{zone}` in the override is the zone's name: the VM is created where the adapter was told to,
    and the other zone does not list it; the security group is the organisation's, in every zone."""
    fra = AsyncExoscaleCloud(ExoscaleCloud(KEY, SECRET, "de-fra-1", endpoint=sim.url, poll_interval=0.03))
    vie = AsyncExoscaleCloud(make_cloud(sim.url))
    inst = await provision(fra, creds)
    assert inst.zone == "de-fra-1"
    assert sim.zone_of(inst.id) == "de-fra-1" and inst.id not in sim.states[ZONE].instances
    assert [c.zone for c in sim.calls if c.operation == "create-instance"] == ["de-fra-1"]
    assert await vie.find_instances(owner_labels(OWNER, CLUSTER)) == []
    assert [i.id for i in await fra.find_instances(owner_labels(OWNER, CLUSTER))] == [inst.id]
    assert len(sim.states[ZONE].security_groups) == 1
    assert await vie.ensure_security_group(SG_NAME, ["0.0.0.0/0"]) in sim.states["de-fra-1"].security_groups
    # the organisation's quota counts every zone: one A5000 in Frankfurt leaves three for Vienna
    sim.set_quota("gpua5000", 1)
    with pytest.raises(QuotaError):
        await provision(vie, creds)
    await fra.delete_instance(inst.id, wait=True, deadline=10)


def test_list_zones_points_each_simulated_zone_at_its_own_url(sim_thread: SimulatorThread) -> None:
    from exoscale.api.v2 import Client

    zones = Client(KEY, SECRET, url=sim_thread.sim.zone_url("ch-gva-2")).list_zones()["zones"]
    endpoints = {z["name"]: z["api-endpoint"] for z in zones}
    assert endpoints["de-fra-1"] == sim_thread.sim.zone_url("de-fra-1") != endpoints["at-vie-2"]
    assert sim_thread.url.endswith("/{zone}/v2")
