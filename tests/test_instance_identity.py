"""The operator acts only on an instance it created for this resource (issue 18).

What others can write is not proof: status (a namespace admin may patch `remoteollamas/status`) and
labels (anyone in the organisation who may list instances can copy them). The id recorded in the
resource's own store at create time, plus our owner and cluster labels, is. Against the Exoscale
simulator, one round (`look` then `act`) at a time, as the operator and standalone run it.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from memory_data import MemoryData, memory_store

from remote_ollama.cloud.exoscale.async_cloud import AsyncExoscaleCloud
from remote_ollama.core.cost import PriceTable
from remote_ollama.core.observed import ObservedInstance
from remote_ollama.core.types import Activity, Memory, Phase
from remote_ollama.engine.credentials import CredentialStore, InstanceRecord
from remote_ollama.engine.reconciler import Reconciler
from remote_ollama.engine.target import Target
from remote_ollama.sandbox.exoscale.api import ExoscaleSimulator
from remote_ollama.sandbox.exoscale.timings import SimTimings
from remote_ollama.spec.model import Spec
from remote_ollama.spec.names import (
    LABEL_CLUSTER,
    LABEL_CREATION,
    LABEL_MANAGED_BY,
    LABEL_MANAGED_BY_VALUE,
    LABEL_OWNER,
    security_group_name,
)
from remote_ollama.spec.parse import parse_spec
from remote_ollama.spec.vocabulary import Reason
from remote_ollama.vm.pki import generate_vm_credentials

KEY, SECRET, ZONE = "EXOidentitytest0123", "identity-test-secret", "at-vie-2"
CLUSTER = "0f5e2d9c-1111-4222-8333-444455556666"
OURS, THEIRS = "aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002"
SPEC = parse_spec(
    {"credentialsSecretRef": {"name": "exoscale"}, "idle": {"stopAfter": "10m"}, "warmUp": False}
)


@pytest.fixture
async def world() -> AsyncIterator[tuple[ExoscaleSimulator, AsyncExoscaleCloud]]:
    timings = SimTimings(boot=0.1, stop=0.1, destroy=0.1, operation=0.02)
    async with ExoscaleSimulator(keys={KEY: SECRET}, zone=ZONE, timings=timings) as sim:
        cloud = AsyncExoscaleCloud.connect(KEY, SECRET, ZONE, endpoint=sim.url, poll_interval=0.02)
        yield sim, cloud


def reconciler(
    cloud: AsyncExoscaleCloud, uid: str = OURS, store: CredentialStore | None = None
) -> tuple[Reconciler, list[tuple[str, str]]]:
    target = Target(
        uid, CLUSTER, f"remote-ollama-{uid[:8]}", security_group_name(CLUSTER, uid), mark_group=True
    )
    rec = Reconciler(cloud, target, store or memory_store())
    warnings: list[tuple[str, str]] = []
    rec.warn = lambda reason, message: warnings.append((reason, message))
    return rec, warnings


async def their_instance(cloud: AsyncExoscaleCloud, labels: dict[str, str]) -> ObservedInstance:
    """An instance someone else made (another team's VM, or a look-alike with copied labels)."""
    sg = await cloud.ensure_security_group("someone-elses", ("0.0.0.0/0",))
    user_data = base64.b64encode(b"#cloud-config\n# theirs\n").decode()
    made = await cloud.create_instance(
        name="theirs",
        instance_type=SPEC.instance_type.name,
        template=SPEC.template,
        disk_size=SPEC.disk_size,
        user_data_b64=user_data,
        security_group_id=sg,
        labels=labels,
        wait=True,
    )
    return made


def their_labels(uid: str = THEIRS) -> dict[str, str]:
    return {LABEL_MANAGED_BY: LABEL_MANAGED_BY_VALUE, LABEL_OWNER: uid, LABEL_CLUSTER: CLUSTER}


def touched(sim: ExoscaleSimulator, instance_id: str) -> list[str]:
    """Every call that changes the instance (stop, start, delete, user-data, ...)."""
    return [f"{c.method} {c.operation}" for c in sim.calls if instance_id in c.path and c.method != "GET"]


async def one_round(rec: Reconciler, memory: Memory, activity: Activity, spec: Spec = SPEC) -> Any:
    now = datetime.now(UTC)
    look = await rec.look(spec, memory, activity, None, PriceTable(), lambda: now)
    await rec.act(look, spec)
    return look


def status_memory(instance_id: str) -> Memory:
    """What `status` says after a tenant's patch: Ready, on the instance the patch names."""
    now = datetime.now(UTC)
    return Memory(created_at=now, instance_id=instance_id, phase=Phase.READY, ready_at=now)


async def test_a_status_naming_another_teams_instance_does_not_hand_it_over(world: Any) -> None:
    sim, cloud = world
    foreign = await their_instance(cloud, their_labels())
    user_data = sim.state.instances[foreign.id].user_data
    rec, warnings = reconciler(cloud)
    now = datetime.now(UTC)

    look = await one_round(rec, status_memory(foreign.id), Activity(sleep_requested=now))
    assert look.instance is None
    await one_round(rec, status_memory(foreign.id), Activity(wake_requested=now))

    assert touched(sim, foreign.id) == []
    assert sim.state.instances[foreign.id].state == "running"
    assert sim.state.instances[foreign.id].user_data == user_data
    assert [r for r, m in warnings if foreign.id in m] == [Reason.FOREIGN_INSTANCE_IGNORED]


async def test_a_status_naming_an_instance_without_our_labels_beside_our_own_is_ignored(world: Any) -> None:
    """Our VM exists and its id is recorded: a patched status cannot swap it for another."""
    sim, cloud = world
    rec, warnings = reconciler(cloud)
    now = datetime.now(UTC)
    first = await one_round(rec, Memory(created_at=now), Activity(wake_requested=now))
    ours = first.decision.memory.instance_id or (await cloud.find_instances(their_labels(OURS)))[0].id
    foreign = await their_instance(cloud, {"team": "b"})

    look = await one_round(rec, status_memory(foreign.id), Activity(sleep_requested=now))
    assert look.instance is not None and look.instance.id == ours
    assert touched(sim, foreign.id) == []
    assert sim.state.instances[foreign.id].state == "running"
    assert any(r == Reason.FOREIGN_INSTANCE_IGNORED and foreign.id in m for r, m in warnings)


async def test_a_look_alike_with_copied_labels_is_never_adopted(world: Any) -> None:
    """Nothing recorded (a new resource, a lost id): labels alone adopt nothing; a VM of our own is
    made, and the look-alike gets no call and no request."""
    sim, cloud = world
    look_alike = await their_instance(
        cloud, {**their_labels(OURS), "remote-ollama-spec": SPEC.instance_hash()}
    )
    rec, warnings = reconciler(cloud)
    now = datetime.now(UTC)

    look = await one_round(rec, Memory(created_at=now), Activity(wake_requested=now))
    assert look.instance is None or look.instance.id != look_alike.id
    again = await one_round(rec, look.decision.memory, Activity(wake_requested=now))
    assert again.instance is not None and again.instance.id != look_alike.id
    assert again.decision.endpoint is None or (look_alike.public_ip or "?") not in again.decision.endpoint
    assert touched(sim, look_alike.id) == []
    assert any(r == Reason.UNRECORDED_INSTANCE_IGNORED and look_alike.id in m for r, m in warnings)


async def test_our_recorded_instance_gone_a_look_alike_is_not_adopted(world: Any) -> None:
    sim, cloud = world
    rec, _ = reconciler(cloud)
    now = datetime.now(UTC)
    first = await one_round(rec, Memory(created_at=now), Activity(wake_requested=now))
    (ours,) = await cloud.find_instances(their_labels(OURS))
    await cloud.delete_instance(ours.id, wait=True)
    look_alike = await their_instance(cloud, {**their_labels(OURS), LABEL_CREATION: "copied"})

    look = await one_round(rec, first.decision.memory, Activity(wake_requested=now))
    assert look.instance is None or look.instance.id != look_alike.id
    assert touched(sim, look_alike.id) == []


async def test_after_a_crash_before_the_id_was_recorded_our_instance_not_its_copy_is_adopted(
    world: Any,
) -> None:
    """The create's token is recorded before the call: the oldest instance with it is ours, a
    copy of its labels (token included) made afterwards is not."""
    sim, cloud = world
    rec, _ = reconciler(cloud)
    now = datetime.now(UTC)
    await one_round(rec, Memory(created_at=now), Activity(wake_requested=now))
    store = rec.store
    data = store.data
    assert isinstance(data, MemoryData) and data.map is not None
    record = InstanceRecord.from_data(data.map)
    assert record.instance_id and record.creation_token
    (ours,) = await cloud.find_instances(their_labels(OURS))
    look_alike = await their_instance(cloud, dict(ours.labels))
    # the copy can be made only once ours is listed: a later second on the API's clock
    later = (ours.created_at or now) + timedelta(seconds=1)
    sim.state.instances[look_alike.id].created_at = later.strftime("%Y-%m-%dT%H:%M:%SZ")
    await store.keep(InstanceRecord(creation_token=record.creation_token))  # the id never got recorded

    fresh, _ = reconciler(cloud, store=store)
    look = await one_round(fresh, Memory(created_at=now), Activity(wake_requested=now))
    assert look.instance is not None and look.instance.id == ours.id
    assert InstanceRecord.from_data(data.map).instance_id == ours.id
    assert touched(sim, look_alike.id) == []


async def test_a_copy_made_in_the_same_second_makes_neither_adopted(world: Any) -> None:
    sim, cloud = world
    rec, warnings = reconciler(cloud)
    now = datetime.now(UTC)
    await one_round(rec, Memory(created_at=now), Activity(wake_requested=now))
    store = rec.store
    data = store.data
    assert isinstance(data, MemoryData) and data.map is not None
    token = InstanceRecord.from_data(data.map).creation_token
    (ours,) = await cloud.find_instances(their_labels(OURS))
    look_alike = await their_instance(cloud, dict(ours.labels))
    sim.state.instances[look_alike.id].created_at = sim.state.instances[ours.id].created_at
    await store.keep(InstanceRecord(creation_token=token))

    look = await one_round(rec, Memory(created_at=now), Activity(wake_requested=now))
    assert look.instance is None or look.instance.id not in (ours.id, look_alike.id)
    assert touched(sim, look_alike.id) == [] and touched(sim, ours.id) == []
    assert {ours.id, look_alike.id} <= {m.split()[1] for r, m in warnings if r == "UnrecordedInstanceIgnored"}


async def test_a_vm_from_before_records_is_kept_if_labelled_ours_and_then_recorded(world: Any) -> None:
    """Credentials made by a version that kept no record: the remembered id is trusted only for an
    instance with our labels, and recorded from then on."""
    sim, cloud = world
    ours = await their_instance(cloud, their_labels(OURS))
    foreign = await their_instance(cloud, their_labels())
    rec, _ = reconciler(cloud)
    store = rec.store
    assert isinstance(store.data, MemoryData)
    store.data.map = generate_vm_credentials().to_secret_data()  # no instance-id, no creation-token
    now = datetime.now(UTC)

    look = await one_round(rec, status_memory(ours.id), Activity(last_activity=now))
    assert look.instance is not None and look.instance.id == ours.id
    assert InstanceRecord.from_data(store.data.map).instance_id == ours.id

    other = memory_store(generate_vm_credentials().to_secret_data())
    fresh, warnings = reconciler(cloud, store=other)  # another version's status, now patched to name theirs
    look = await one_round(fresh, status_memory(foreign.id), Activity(last_activity=now))
    assert look.instance is None or look.instance.id != foreign.id
    assert touched(sim, foreign.id) == []
    assert any(r == Reason.FOREIGN_INSTANCE_IGNORED and foreign.id in m for r, m in warnings)
