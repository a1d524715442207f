"""Input that passes the CRD schema but fails at the cloud, and malformed annotations: a clear
condition and Event, backoff instead of a retry storm, never a crash."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from cluster.fixtures import KubeNamespace
from operator_world import SECRET, CloudWorld, cloud_world, credentials_secret, remote_ollama
from waiting import wait_until


def ready_condition(world: CloudWorld) -> dict[str, Any] | None:
    obj = world.get("remoteollama", "granite") or {}
    conds = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == "Ready"), None)


def events(world: CloudWorld) -> list[dict[str, Any]]:
    out = world.kube.kubectl("get", "events", "-n", world.namespace, "-o", "json")
    return list(json.loads(out.stdout).get("items", [])) if out.returncode == 0 else []


def test_unknown_template_is_ready_false_with_the_reason_and_backs_off(kube: KubeNamespace) -> None:
    with cloud_world(kube) as world:
        operator = world.start_operator()
        world.apply(credentials_secret())
        world.apply(remote_ollama(template="Linux Plan9 4th Edition"))

        def failed() -> dict[str, Any] | None:
            cond = ready_condition(world)
            return (
                cond if cond and cond["status"] == "False" and cond["reason"] == "TemplateNotFound" else None
            )

        cond = wait_until(failed, 30, "Ready=False with reason TemplateNotFound")
        assert "Plan9" in cond["message"]
        assert world.phase() == "Failed"
        assert any(
            e.get("reason") == "TemplateNotFound" and e.get("type") == "Warning" for e in events(world)
        )
        assert world.calls("create-instance") == 0
        # no retry storm: over the next 6 s at most a few more attempts (exponential backoff)
        before = world.calls("list-templates")
        time.sleep(6)  # a measured window, not a wait for a condition: we count what happens in it
        assert world.calls("list-templates") - before <= 3
        assert operator.alive()


def test_malformed_annotation_is_ignored_with_an_event(kube: KubeNamespace) -> None:
    with cloud_world(kube) as world:
        operator = world.start_operator()
        world.apply(credentials_secret())
        world.apply(remote_ollama())
        wait_until(lambda: world.phase() == "Ready", 40, "Ready")
        kube.kubectl(
            "annotate",
            "rol",
            "granite",
            "remoteollama.dev/wake-requested=yesterday-ish",
            "--overwrite",
            check=True,
        )
        wait_until(
            lambda: any(e.get("reason") == "MalformedAnnotation" for e in events(world)),
            20,
            "a MalformedAnnotation Event",
        )
        event = next(e for e in events(world) if e.get("reason") == "MalformedAnnotation")
        assert "remoteollama.dev/wake-requested" in event["message"]
        assert operator.alive()
        assert world.phase() == "Ready"
        # no secret value in any Event, the status or the annotations
        secret = world.get("secret", "granite-remote-ollama")
        assert secret is not None
        # the proxy's client key (mutual TLS; no bearer secret exists): a line of its PEM body
        vm_key = base64.b64decode(secret["data"]["client.key"]).decode().splitlines()[1]
        visible = kube.kubectl("get", "events,rol", "-A", "-o", "json").stdout
        assert '"kind": "Event"' in visible and '"endpoint": "https://' in visible
        for value in (vm_key, SECRET):
            assert value not in visible
