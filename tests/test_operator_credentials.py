"""Missing credentials block the resource visibly and cost nothing; fixing the Secret recovers it."""

from __future__ import annotations

from typing import Any

import yaml
from cluster.fixtures import KubeNamespace
from operator_world import KEY, CloudWorld, cloud_world, credentials_secret, remote_ollama
from waiting import LIFECYCLE, wait_until


def credentials(world: CloudWorld) -> dict[str, Any] | None:
    obj = world.get("remoteollama", "granite") or {}
    conds = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == "CredentialsValid"), None)


def blocked_with(world: CloudWorld, words: str) -> bool:
    cond = credentials(world)
    return bool(cond and cond["status"] == "False" and words in cond["message"])


def test_missing_secret_or_key_blocks_without_cloud_calls_then_recovers(kube: KubeNamespace) -> None:
    with cloud_world(kube, env={"REMOTE_OLLAMA_CREDENTIALS_RETRY": "0.5"}) as world:
        world.start_operator()
        world.apply(remote_ollama())

        wait_until(
            lambda: blocked_with(world, "not found"), LIFECYCLE, "CredentialsValid=False, Secret not found"
        )
        cond = credentials(world)
        assert cond is not None and cond["reason"] == "InvalidCredentials"
        assert "'exoscale'" in cond["message"]
        obj = world.get("remoteollama", "granite")
        assert obj is not None
        assert obj["status"]["phase"] in ("Pending", "Stopped")
        ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "False"

        partial = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "exoscale", "namespace": world.namespace},
            "stringData": {"api-key": KEY},
        }
        world.apply(yaml.safe_dump(partial))
        wait_until(
            lambda: blocked_with(world, "api-secret"), LIFECYCLE, "CredentialsValid=False naming api-secret"
        )
        assert world.sim.sim.calls == [], "no Exoscale call without credentials"
        assert world.instances() == []

        world.apply(credentials_secret())
        obj = world.wait_phase("Ready")
        cond = credentials(world)
        assert cond is not None and cond["status"] == "True"
        assert len(world.instances()) == 1
