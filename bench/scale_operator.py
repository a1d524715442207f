"""bench/scale.py --operator: the scale-out scenarios through the operator on a real kube-apiserver.

One cluster for the whole run (tests/cluster: kube-apiserver, etcd, kube-controller-manager, built
once per machine), the CRD and the credentials Secret applied, the operator as its own process
(`remote-ollama operator --standalone`, as the tests' harness runs it) and the Exoscale simulator in
this process. Each scenario applies its own RemoteOllama and runs the proxy as its Deployment says
(args, env, its ServiceAccount's token), then deletes the resource (the operator destroys its VMs).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import yaml  # noqa: E402
from cluster.control_plane import ControlPlane, build_binaries  # noqa: E402
from cluster.fixtures import KubeNamespace  # noqa: E402
from operator_world import KEY, SECRET, OperatorProcess, OperatorWorld, credentials_secret  # noqa: E402
from scale import MODEL, Mode, Stack  # noqa: E402

from remote_ollama.sandbox.exoscale.thread import SimulatorThread  # noqa: E402
from remote_ollama.sandbox.exoscale.timings import SimTimings  # noqa: E402
from remote_ollama.sandbox.exoscale.wire import Call  # noqa: E402
from remote_ollama.spec.sections import ReplicaPolicy  # noqa: E402

ASKING = ("create-instance", "start-instance")  # a replica asked for, as the cloud sees it
_names = itertools.count(1)


class StampedCalls(list[Call]):
    """The simulator's call log, each call stamped (monotonic clock) as the simulator receives it."""

    def __init__(self) -> None:
        super().__init__()
        self.at: list[tuple[float, Call]] = []

    def append(self, call: Call) -> None:
        self.at.append((time.monotonic(), call))
        super().append(call)


def resource(name: str, args: argparse.Namespace, replicas: ReplicaPolicy) -> str:
    """The RemoteOllama of a scenario: the standalone stack's spec, as a cluster user writes it."""
    body = {
        "apiVersion": "remoteollama.dev/v1alpha1",
        "kind": "RemoteOllama",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "credentialsSecretRef": {"name": "exoscale"},
            "models": [MODEL],
            "idle": {"stopAfter": "1h"},
            "wake": {"holdTimeout": "5m"},
            "ollama": {"env": {"OLLAMA_NUM_PARALLEL": str(args.parallel)}},
            "replicas": {
                "min": replicas.min,
                "max": replicas.max,
                "targetInFlight": replicas.target_in_flight,
            },
        },
    }
    return yaml.safe_dump(body)


class Cluster:
    """The control plane, simulator and operator the scenarios share."""

    def __init__(self, sim_timings: SimTimings) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="bench-scale-operator-")
        work = Path(self.tmp.name)
        self.plane = ControlPlane(work, build_binaries()).start()
        self.kube = KubeNamespace(self.plane, "default", work)
        self.sim = SimulatorThread(keys={KEY: SECRET}, timings=sim_timings, gpu_quota=-1, instance_quota=-1)
        self.sim.start()
        try:
            self.setup(work)
        except BaseException:
            self.sim.stop()
            self.plane.stop()
            raise

    def setup(self, work: Path) -> None:
        self.calls = StampedCalls()
        self.sim.sim.calls = self.calls
        self.world = OperatorWorld(self.kube, self.sim)
        self.plane.install_crd()
        self.world.apply(credentials_secret())
        env = {
            **self.kube.env(),
            "EXOSCALE_API_ENDPOINT": self.sim.url,
            "REMOTE_OLLAMA_METRICS_PORT": "0",
            "PYTHONUNBUFFERED": "1",
        }
        self.operator = OperatorProcess(env, work / "operator.log")

    def close(self) -> None:
        self.operator.stop()
        self.world.stop_procs()
        self.sim.stop()
        self.plane.stop()
        self.tmp.cleanup()

    def status(self, name: str) -> dict[str, Any]:
        return dict((self.world.get("remoteollama", name) or {}).get("status") or {})


class OperatorStack(Stack):
    """One scenario's RemoteOllama and its proxy on the shared cluster."""

    poll = 0.3  # each look is a kubectl process

    def __init__(self, cluster: Cluster, args: argparse.Namespace, replicas: ReplicaPolicy) -> None:
        super().__init__(args, replicas)
        self.cluster, self.name = cluster, f"scale-{next(_names)}"

    async def __aenter__(self) -> OperatorStack:
        c = self.cluster
        self.since = len(c.calls.at)
        await asyncio.to_thread(c.world.apply, resource(self.name, self.args, self.replicas))
        self.url = await asyncio.to_thread(c.world.start_proxy, self.name)
        self.proxy = c.world.procs[-1]
        await self.until(self.seen)
        return self

    async def seen(self) -> bool:
        """The operator took the resource in hand (a first status with its phase)."""
        return bool((await asyncio.to_thread(self.cluster.status, self.name)).get("phase"))

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
        self.proxy.terminate()
        await asyncio.to_thread(self.proxy.wait, 15)
        # the operator's finalizer destroys the VMs before the resource goes
        await asyncio.to_thread(
            self.cluster.kube.kubectl, "delete", "rol", self.name, "--timeout=120s", timeout=150
        )

    async def ready(self) -> int:
        return int((await asyncio.to_thread(self.cluster.status, self.name)).get("readyReplicas") or 0)

    def asked(self) -> list[tuple[float, int]]:
        """Each create or start of a VM since the scenario began: (when, replicas asked for so far)."""
        out: list[tuple[float, int]] = []
        started: set[str] = set()
        for at, call in self.cluster.calls.at[self.since :]:
            if call.operation not in ASKING or (call.operation == "start-instance" and call.path in started):
                continue
            started.add(call.path)
            out.append((at, len(out) + 1))
        return out


@asynccontextmanager
async def operator_mode(args: argparse.Namespace, sim_timings: SimTimings) -> AsyncIterator[Mode]:
    cluster = await asyncio.to_thread(Cluster, sim_timings)
    try:

        def mode(a: argparse.Namespace, replicas: ReplicaPolicy) -> OperatorStack:
            return OperatorStack(cluster, a, replicas)

        yield mode
    finally:
        await asyncio.to_thread(cluster.close)
