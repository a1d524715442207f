"""The scaler's memory outlives the operator (issue 19): a restart midway through `scaleDownAfter`
keeps the scale-down's original deadline, instead of starting the wait again (an operator restarted
every few minutes would otherwise keep every replica up, and bill its GPU).

The operator runs as a process on the real kube-apiserver with the Exoscale simulator; its clock runs
ahead of the real one by what the test says (`skew_clock`), so minutes pass in an instant."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from cluster.fixtures import KubeNamespace
from operator_world import CloudWorld, cloud_world, credentials_secret, skew_clock
from test_operator_replicas import SLOW, TARGET, burst, status
from test_operator_scale_in import two_at_most
from waiting import wait_until

from remote_ollama.spec.names import LABEL_REPLICA

SCALE_DOWN_AFTER = 600.0  # 10m


def pending_since(world: CloudWorld) -> str | None:
    """The time the status message says the load went below target (HH:MM:SS), while it waits."""
    found = re.search(r"load below 1 replica\(s\) since (\d\d:\d\d:\d\d)", str(status(world).get("message")))
    return found.group(1) if found else None


def observed_at(world: CloudWorld) -> datetime | None:
    """The operator's clock at its last round (status.cost.observedAt)."""
    stamp = (status(world).get("cost") or {}).get("observedAt")
    return datetime.fromisoformat(stamp) if stamp else None


def replica_states(world: CloudWorld) -> dict[str, str]:
    return {i.labels.get(LABEL_REPLICA, "0"): i.state for i in world.instances()}


def test_an_operator_restarted_midway_through_scale_down_after_stops_the_replica_at_the_first_deadline(
    kube: KubeNamespace,
) -> None:
    skew = kube.workdir / "clock-skew"
    skew_clock(skew, 0)
    with cloud_world(kube, SLOW) as world:
        world.apply(credentials_secret())
        first = world.start_operator(TEST_CLOCK_SKEW_FILE=str(skew))
        world.apply(two_at_most("1h"))  # the last replica stays: only the step from 2 to 1 is watched
        url = world.start_proxy()
        wait_until(lambda: status(world).get("phase") == "Stopped", 60, "starts at zero")
        out, threads = burst([url], 3 * TARGET)
        wait_until(lambda: status(world).get("readyReplicas") == 2, 90, "two Ready under load")
        for t in threads:
            t.join(120)
        assert all(isinstance(o, dict) and o.get("done") is True for o in out), out

        # the load is gone: the scale-down waits scaleDownAfter from the moment it went below target
        since = wait_until(lambda: pending_since(world), 60, "the scale-down pending")
        below = datetime.now(UTC)  # the wait began at or before this (the clock is not skewed yet)

        first.kill()  # the operator dies 6 minutes into the 10, and a new one starts
        skew_clock(skew, 6 * 60)
        world.start_operator(TEST_CLOCK_SKEW_FILE=str(skew))
        restarted = below + timedelta(minutes=6)
        wait_until(lambda: (observed_at(world) or below) >= restarted, 60, "a round of the new operator")
        assert pending_since(world) == since  # it waits on from the same moment
        assert replica_states(world) == {"0": "running", "1": "running"}

        # the first deadline passes: replica 1 stops now, not 10 minutes after the restart
        skew_clock(skew, SCALE_DOWN_AFTER + 5)
        wait_until(lambda: replica_states(world).get("1") == "stopped", 60, "replica 1 stopped")
        assert replica_states(world)["0"] == "running"
        wait_until(lambda: status(world).get("readyReplicas") == 1, 30, "one replica Ready")
