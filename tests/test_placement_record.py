"""The instance record keeps the zone its VM is in (issues 18/19): where the operator looks for the
VM is its own record, not status.placement, which the tenant can write. The record round trip,
the fallback's move, an older version's record, and the pure choice of the placement to act on."""

from __future__ import annotations

from datetime import UTC, datetime

from memory_data import memory_store
from test_instance_identity import KEY, SECRET, SPEC, ZONE, one_round, reconciler
from test_secret_split import BODY, OWN, FakeAPI, decoded

from remote_ollama.cloud.exoscale.async_cloud import AsyncExoscaleCloud
from remote_ollama.core import placement
from remote_ollama.core.placement import PlacementState
from remote_ollama.core.types import Activity, Memory
from remote_ollama.engine.credentials import CredentialStore, InstanceRecord
from remote_ollama.kube.operator.context import SecretStore
from remote_ollama.sandbox.exoscale.api import ExoscaleSimulator
from remote_ollama.spec.parse import parse_spec
from remote_ollama.vm.pki import generate_vm_credentials

PLACED = parse_spec(
    {
        "credentialsSecretRef": {"name": "exoscale"},
        "zone": "at-vie-2",
        "placements": [
            {"zone": "de-fra-1"},
            {"zone": "at-vie-2", "instanceType": "gpu3080ti.small"},
            {"zone": "ch-gva-2", "instanceType": "gpu3080ti.small"},
        ],
    }
)


async def test_the_record_keeps_its_zone_in_the_operators_secret() -> None:
    api = FakeAPI()
    store = CredentialStore(SecretStore(api, BODY))  # type: ignore[arg-type]
    await store.save(generate_vm_credentials(), InstanceRecord(creation_token="t", zone="de-fra-1"))
    await store.keep(InstanceRecord("i-1", "t", "de-fra-1"))
    assert decoded(api.objects[OWN])["instance-zone"] == "de-fra-1"
    fresh = CredentialStore(SecretStore(api, BODY))  # type: ignore[arg-type]
    assert await fresh.record() == InstanceRecord("i-1", "t", "de-fra-1")
    await fresh.moved("ch-gva-2")  # a capacity fallback moved on: the record follows
    again = CredentialStore(SecretStore(api, BODY))  # type: ignore[arg-type]
    assert await again.record() == InstanceRecord("i-1", "t", "ch-gva-2")
    await again.keep(InstanceRecord("i-2"))  # a record without a zone drops the old one's
    assert "instance-zone" not in decoded(api.objects[OWN])


async def test_an_older_versions_record_has_no_zone_and_nothing_moves_without_credentials() -> None:
    assert InstanceRecord.from_data({"instance-id": "i-1", "creation-token": "t"}) == InstanceRecord(
        "i-1", "t"
    )
    store = memory_store()
    await store.moved("de-fra-1")
    assert await store.record() is None


async def test_a_create_records_its_zone_and_an_older_record_gets_one() -> None:
    async with ExoscaleSimulator(keys={KEY: SECRET}, zone=ZONE) as sim:
        cloud = AsyncExoscaleCloud.connect(KEY, SECRET, ZONE, endpoint=sim.url, poll_interval=0.02)
        await created_then_upgraded(cloud)


async def created_then_upgraded(cloud: AsyncExoscaleCloud) -> None:
    store = memory_store()
    rec, _ = reconciler(cloud, store=store)
    now = datetime.now(UTC)
    await one_round(rec, Memory(created_at=now), Activity(wake_requested=now), SPEC)
    made = await store.record()
    assert made is not None and made.instance_id and made.zone == ZONE
    await store.keep(InstanceRecord(made.instance_id, made.creation_token))  # as an older version kept it
    await one_round(rec, Memory(created_at=now), Activity(), SPEC)
    assert await store.record() == made  # its instance found where it looked: the zone is recorded


def test_the_recorded_zone_wins_over_status() -> None:
    forged = placement.from_status(
        PLACED, {"zone": "de-fra-1", "instanceType": "gpua5000.small", "tried": ["x"]}
    )
    assert forged == PlacementState(1, ("x",))
    assert placement.in_zone(PLACED, forged, "at-vie-2") == PlacementState(0, ("x",))  # the same type
    assert placement.in_zone(PLACED, PlacementState(3), "at-vie-2") == PlacementState(2)  # the same type
    assert placement.in_zone(PLACED, PlacementState(3), "de-fra-1") == PlacementState(1)  # the first there
    assert placement.in_zone(PLACED, forged, None) == forged  # an older version's record: status, as before
    assert placement.in_zone(PLACED, forged, "de-fra-1") == forged  # they agree
    assert placement.in_zone(PLACED, forged, "ch-dk-2") == forged  # a zone the spec no longer names
