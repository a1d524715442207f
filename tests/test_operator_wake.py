"""Wake and sleep by hand: the annotation reaches the cloud by the watch; suspend forces zero.

Also the user's tools: `remote-ollama status|wake|sleep` and the `kubectl remoteollama` plugin.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cluster.fixtures import KubeNamespace
from operator_world import CloudWorld, cloud_world, credentials_secret, remote_ollama
from waiting import LIFECYCLE, deadline, wait_until

from remote_ollama.core.lifecycle import POLL_STEADY
from remote_ollama.kube.operator.status import parse_time

BIN = Path(sys.executable).parent


def run(world: CloudWorld, *args: str) -> str:
    """A user's command with the venv's bin on PATH (where kubectl finds its plugins)."""
    env = {**world.kube.env(), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"{args}: {out.stderr}"
    return out.stdout


def later_second(obj: dict[str, Any]) -> None:
    """Wake stamps have second precision, like the recorded scale-down: the wake must be a later second."""
    scaled_down = parse_time(obj["status"]["lifecycle"]["scaledDownAt"])
    assert scaled_down is not None
    wait_until(lambda: datetime.now(UTC).replace(microsecond=0) > scaled_down, LIFECYCLE, "a newer second")


def instance_state(world: CloudWorld) -> list[str]:
    return [i.state for i in world.instances()]


def test_sleep_wake_suspend_and_the_cli(kube: KubeNamespace) -> None:
    with cloud_world(kube) as world:
        world.apply(credentials_secret())
        world.start_operator()
        world.apply(remote_ollama(idle={"stopAfter": "10m"}))
        world.wait_phase("Ready")

        text = run(world, str(BIN / "remote-ollama"), "status", "granite", "-n", world.namespace)
        assert f"{world.namespace}/granite: Ready" in text
        assert "endpoint: https://127." in text
        assert "scales to zero in 9m" in text or "scales to zero in 10m" in text, text

        text = run(world, "kubectl", "remoteollama", "sleep", "granite", "-n", world.namespace)
        assert "sleep requested" in text
        obj = world.wait_phase("Stopped")
        wait_until(lambda: instance_state(world) == ["stopped"], LIFECYCLE, "instance stopped")
        assert obj["status"]["endpoint"], "the endpoint is kept while stopped"

        # wake-requested must be newer than the recorded scale-down (both have second precision)
        later_second(obj)
        starts = world.calls("start-instance")
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        world.kube.kubectl(
            "annotate",
            "rol",
            "granite",
            f"remoteollama.dev/wake-requested={stamp}",
            "--overwrite",
            check=True,
        )
        # A Stopped resource is looked at again only at the steady horizon (minutes, past this
        # deadline): the start is the annotation's doing, seen by the watch (how fast: bench/operator_resources.py).
        assert deadline(LIFECYCLE) < POLL_STEADY
        wait_until(lambda: world.calls("start-instance") > starts, LIFECYCLE, "start-instance call")

        obj = world.wait_phase("Ready")
        assert obj["status"]["lastWake"]["seconds"] > 0
        text = run(world, "kubectl", "remoteollama", "status", "granite")
        assert "Ready" in text and "last wake:" in text, text

        # `remote-ollama wake` on a stopped VM, via the CLI this time
        run(world, "kubectl", "remoteollama", "sleep", "granite")
        obj = world.wait_phase("Stopped")
        wait_until(lambda: instance_state(world) == ["stopped"], LIFECYCLE, "instance stopped")
        later_second(obj)
        text = run(world, str(BIN / "remote-ollama"), "wake", "granite", "-n", world.namespace)
        assert "wake requested" in text
        world.wait_phase("Ready")

        # suspend forces zero at once, whatever the activity
        world.kube.kubectl(
            "patch", "rol", "granite", "--type=merge", "-p", '{"spec":{"suspend":true}}', check=True
        )
        obj = world.wait_phase("Stopped")
        assert "suspend" in obj["status"]["message"]
        wait_until(lambda: instance_state(world) == ["stopped"], LIFECYCLE, "instance stopped")
