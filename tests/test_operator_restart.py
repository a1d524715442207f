"""The operator process dies (SIGKILL) at the worst moments; nothing is duplicated and nothing is left.

The operator runs as `remote-ollama operator --standalone` in a subprocess, as in a cluster.
"""

from __future__ import annotations

from cluster.fixtures import KubeNamespace
from operator_world import CloudWorld, cloud_world, credentials_secret, remote_ollama
from waiting import LIFECYCLE, wait_until

from remote_ollama.sandbox.exoscale.timings import SimTimings

SLOW_BOOT = SimTimings(boot=2.0, stop=0.3, destroy=0.3, operation=0.05, cloud_init=0.2, pull=0.1)


def nothing_left(world: CloudWorld, uid: str) -> bool:
    return (
        not world.owned(uid)
        and not world.security_groups()
        and world.get("secret", "granite-remote-ollama") is None
    )


def test_killed_right_after_create_restarts_and_adopts(kube: KubeNamespace) -> None:
    with cloud_world(kube, SLOW_BOOT) as world:
        world.apply(credentials_secret())
        # the adapter reads the new instance back after creating it: hold that answer so the
        # operator dies knowing nothing of the instance (no id in status)
        world.sim.sim.slow_responses(10, operation="get-instance")
        first = world.start_operator()
        world.apply(remote_ollama())
        uid = world.uid()
        wait_until(lambda: world.owned(uid), 30, "the create call reached the cloud")
        first.kill()
        status = (world.get("remoteollama", "granite") or {}).get("status") or {}
        assert not status.get("instance"), status
        world.sim.sim.clear_faults()

        world.start_operator()
        obj = world.wait_phase("Ready")
        assert world.calls("create-instance") == 1
        assert [i.id for i in world.owned(uid)] == [obj["status"]["instance"]["id"]]


def test_deleted_while_provisioning_leaves_nothing(kube: KubeNamespace) -> None:
    with cloud_world(kube, SLOW_BOOT) as world:
        world.apply(credentials_secret())
        world.start_operator()
        world.apply(remote_ollama())
        uid = world.uid()
        wait_until(lambda: [i.state for i in world.owned(uid)] == ["starting"], 30, "instance starting")
        world.kube.kubectl("delete", "rol", "granite", "--wait=false", check=True)
        wait_until(lambda: world.get("remoteollama", "granite") is None, 30, "resource gone")
        wait_until(lambda: nothing_left(world, uid), LIFECYCLE, "no instance, security group or secret")
        assert world.calls("create-instance") == 1


def test_deleted_while_the_create_call_is_in_flight_leaves_nothing(kube: KubeNamespace) -> None:
    """The create answers late (the finalizer may already have looked): the instance must not survive."""
    env = {"REMOTE_OLLAMA_ORPHAN_GRACE": "0", "REMOTE_OLLAMA_ORPHAN_INTERVAL": "1"}
    with cloud_world(kube, SLOW_BOOT, env) as world:
        world.apply(credentials_secret())
        world.sim.sim.slow_responses(3, operation="create-instance")
        world.start_operator()
        world.apply(remote_ollama())
        uid = world.uid()
        wait_until(lambda: world.calls("create-instance") == 1, 30, "create call sent")
        world.kube.kubectl("delete", "rol", "granite", "--wait=false", check=True)
        wait_until(lambda: world.get("remoteollama", "granite") is None, 30, "resource gone")
        wait_until(lambda: nothing_left(world, uid), LIFECYCLE, "no instance, security group or secret")
        assert world.calls("create-instance") == 1


def test_killed_while_provisioning_then_deleted_cleans_up_on_restart(kube: KubeNamespace) -> None:
    with cloud_world(kube, SLOW_BOOT) as world:
        world.apply(credentials_secret())
        first = world.start_operator()
        world.apply(remote_ollama())
        uid = world.uid()
        wait_until(lambda: world.owned(uid), 30, "instance created")
        first.kill()
        world.kube.kubectl("delete", "rol", "granite", "--wait=false", check=True)
        # the finalizer holds the resource while no operator runs
        assert world.get("remoteollama", "granite") is not None
        world.start_operator()
        wait_until(lambda: world.get("remoteollama", "granite") is None, 30, "resource gone")
        wait_until(lambda: nothing_left(world, uid), LIFECYCLE, "no instance, security group or secret")
        assert world.calls("create-instance") == 1


def test_watches_survive_a_kube_apiserver_restart(kube: KubeNamespace) -> None:
    """kube-apiserver stops and starts again (same port, same etcd) under a running operator: the
    operator's watches reconnect, and changes made afterwards reach it, without it restarting."""
    with cloud_world(kube) as world:
        world.apply(credentials_secret())
        operator = world.start_operator()
        world.apply(remote_ollama(idle={"stopAfter": "10m"}))
        world.wait_phase("Ready")

        kube.plane.restart_apiserver()
        world.apiserver_restarted = True

        kube.kubectl("patch", "rol", "granite", "--type=merge", "-p", '{"spec":{"suspend":true}}', check=True)
        world.wait_phase("Stopped", timeout=60)
        world.apply(remote_ollama("second", idle={"stopAfter": "10m"}))
        world.wait_phase("Ready", name="second", timeout=60)
        assert operator.alive() and world.operators == [operator]
        assert world.calls("create-instance") == 2
