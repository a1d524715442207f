"""5xx bursts on every Exoscale call the standalone engine makes: absorbed by the adapter's retries
when short, surfaced in /status then recovered when long; never a leaked or duplicate instance."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest
import yaml
from standalone_world import ENGINE_OPERATIONS, full_cycle, standalone_world
from waiting import LIFECYCLE, until

from remote_ollama.sandbox.exoscale.faults import FailRule

RETRIES = 3


async def test_the_faulted_operations_are_exactly_those_a_full_cycle_uses(tmp_path: Path) -> None:
    async with standalone_world(tmp_path, retries=RETRIES) as w:
        w.scenario = "clean full cycle"
        await full_cycle(w)
        used = {c.operation for c in w.sim.calls}
        w.note = f"{len(w.sim.calls)} calls"
    # no update-instance: the user-data holds no key to scrub (a VM made before that: test below);
    # delete-snapshot (after the template is baked) has its own test below: its failure must not surface
    assert used == set(ENGINE_OPERATIONS) | {"delete-snapshot"}, (
        "a new call is not covered by the fault suite"
    )
    assert (w.duplicates, len(w.live())) == (0, 0)
    assert len(w.seen_ids) == 1, "stop/start must reuse the one instance"


@pytest.mark.parametrize("burst", ["absorbed", "surfaced"])
@pytest.mark.parametrize("operation", ENGINE_OPERATIONS)
async def test_5xx_burst(
    operation: str, burst: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    # absorbed: fewer failures than the adapter retries; surfaced: more than one call's worth of retries.
    n = RETRIES if burst == "absorbed" else RETRIES + 2
    async with standalone_world(tmp_path, retries=RETRIES) as w:
        w.scenario = f"5xx x{n} {operation}"
        w.sim.fail_next(n, 503, operation=operation)
        rule: FailRule = w.sim.state.faults.fail_rules[-1]
        await full_cycle(w)
        assert rule.remaining == 0, f"the {operation} burst was not consumed"
        errors = [s["error"] for s in w.statuses if "error" in s]
        if burst == "surfaced":
            assert errors and all("unavailable" in e.lower() for e in errors), w.statuses
            assert any("cloud error (CloudUnavailable)" in r.getMessage() for r in caplog.records)
        else:
            assert not errors, f"a burst within the retries must not reach /status: {errors}"
        # recovered: the round after the burst is clean (a bake that failed at the last stop is
        # retried by the round that deletes the VM, which may still be finishing here)
        await until(lambda: "error" not in w.controller.status(), LIFECYCLE, "a clean round after the burst")
        assert w.controller._task is not None and not w.controller._task.done()
        await until(lambda: w.recovered() == len(w.faults()) == n, what="a clean status after each failure")
    assert w.duplicates == 0
    assert len(w.live()) == 0
    assert len(w.seen_ids) == 1


async def test_a_failing_user_data_scrub_is_retried_and_never_stops_the_service(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A VM made before the VM made its own key (the key in its user-data and in the credentials),
    met by this version once Ready: its user-data is replaced by today's, which holds no key; a
    failing update-instance is retried and never surfaces."""
    caplog.set_level(logging.WARNING)
    async with standalone_world(tmp_path, retries=RETRIES) as w:
        w.scenario, w.note = "5xx on update-instance", "scrub retried"
        await w.wake()
        await w.ready()
        (inst,) = w.live()
        vm = w.sim.vm(inst.id)
        assert vm is not None and vm.disk is not None and w.controller.saved.credentials is not None
        key = vm.disk.key_pem.decode()  # as the operator made it and wrote it in user-data
        w.controller.saved.credentials = {**w.controller.saved.credentials, "tls.key": key}
        doc = yaml.safe_load(base64.b64decode(inst.user_data or ""))
        doc["write_files"].append(
            {"path": "/etc/remote-ollama/tls.key", "content": key, "permissions": "0600"}
        )
        inst.user_data = base64.b64encode(("#cloud-config\n" + yaml.safe_dump(doc)).encode()).decode()
        w.controller.reconciler._scrubbed.clear()  # this version's first look at that VM
        w.sim.fail_next(RETRIES + 2, 503, operation="update-instance")
        await until(lambda: bool(inst.replaced_user_data), LIFECYCLE, "the scrub, once the API answers again")
        assert any("could not remove the TLS key" in r.getMessage() for r in caplog.records)
        assert b"PRIVATE KEY" not in base64.b64decode(inst.user_data or "")
        assert "error" not in w.controller.status()
        await w.ready()
        await w.sleep_now()  # and the lifecycle goes on: scaled to zero, cleanly
        await until(lambda: w.recovered() == len(w.faults()) == RETRIES + 2, what="clean after the scrub")


async def test_a_failing_snapshot_delete_keeps_the_baked_template_and_the_snapshot_dies_with_its_vm(
    tmp_path: Path,
) -> None:
    """The template is baked; the snapshot it came from is only left behind (it dies with its instance)."""
    async with standalone_world(tmp_path, retries=RETRIES) as w:
        w.scenario, w.note = "5xx on delete-snapshot", "template kept"
        w.sim.fail_next(RETRIES + 2, 503, operation="delete-snapshot")
        await full_cycle(w)
        assert "error" not in w.controller.status() and not any("error" in s for s in w.statuses)
        assert len(w.sim.state.templates) == 1, "baked once, not again"
        await until(
            lambda: not w.sim.state.snapshots, LIFECYCLE, "the snapshot gone with the deleted instance"
        )
        # one whole call failed (with its retries); the snapshot went with its VM before another
        await until(lambda: w.recovered() == len(w.faults()) >= RETRIES + 1, what="clean after the failures")
