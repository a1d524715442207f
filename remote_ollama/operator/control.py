"""`remote-ollama status|wake|sleep NAME` (and `kubectl remoteollama ...`) through the kubeconfig.

wake and sleep only write the annotations a user may set; the operator does the rest.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import Any

from ..resource import (
    ANN_SLEEP_REQUESTED,
    ANN_WAKE_REQUESTED,
    GROUP,
    PLURAL,
    VERSION,
    format_duration,
    parse_duration,
)
from .kubeapi import KubeAPI, KubeError, path_for
from .status import parse_time, rfc3339


def _current_namespace() -> str:
    try:
        from kubernetes import config

        _, active = config.list_kube_config_contexts()
        return str((active or {}).get("context", {}).get("namespace") or "default")
    except Exception:
        return "default"


def describe(obj: dict[str, Any], now: datetime) -> list[str]:
    """The lines `status` prints: phase, endpoint, idle countdown, last wake timing."""
    meta, spec, st = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    lines = [
        f"{meta.get('namespace')}/{meta.get('name')}: {st.get('phase', 'Pending')}"
        + (f" ({st['message']})" if st.get("message") else "")
    ]
    lines.append(f"  service:  {st.get('serviceURL', '-')}")
    lines.append(
        f"  endpoint: {st.get('endpoint') or '-'}   instance: {(st.get('instance') or {}).get('id', '-')}"
    )
    stop_after = (spec.get("idle") or {}).get("stopAfter")
    last = parse_time((meta.get("annotations") or {}).get("remoteollama.dev/last-activity")) or parse_time(
        st.get("lastActivity")
    )
    if st.get("phase") == "Ready" and stop_after is not None:
        ref = last or parse_time((st.get("lifecycle") or {}).get("readyAt"))
        if ref is not None:
            left = parse_duration(stop_after) - (now - ref).total_seconds()
            lines.append(f"  idle:     scales to zero in {format_duration(max(0.0, left))} without requests")
    elif stop_after is None:
        lines.append("  idle:     always on (no idle.stopAfter)")
    wake = st.get("lastWake") or {}
    if wake:
        lines.append(
            f"  last wake: {wake.get('seconds')} s (requested {wake.get('requestedAt')}, "
            f"running {wake.get('runningAt')}, ready {wake.get('readyAt')})"
        )
    for c in st.get("conditions") or []:
        lines.append(
            f"  {c.get('type')}={c.get('status')} {c.get('reason', '')} {c.get('message', '')}".rstrip()
        )
    return lines


async def _control(command: str, name: str, namespace: str, output: str) -> int:
    api = KubeAPI.from_environment("cli")
    path = path_for(f"{GROUP}/{VERSION}", PLURAL, namespace, name)
    try:
        if command in ("wake", "sleep"):
            key = ANN_WAKE_REQUESTED if command == "wake" else ANN_SLEEP_REQUESTED
            await api.merge_patch(path, {"metadata": {"annotations": {key: rfc3339(datetime.now(UTC))}}})
        obj = await api.get(path)
    except KubeError as exc:
        print(f"remote-ollama {command}: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await api.close()
    if obj is None:
        print(f"remote-ollama {command}: RemoteOllama {namespace}/{name} not found", file=sys.stderr)
        return 1
    if output == "json":
        print(
            json.dumps(
                {"metadata": {"name": name, "namespace": namespace}, "status": obj.get("status") or {}}
            )
        )
    elif command == "status":
        print("\n".join(describe(obj, datetime.now(UTC))))
    else:
        print(
            f"{namespace}/{name}: {command} requested (phase {(obj.get('status') or {}).get('phase', 'Pending')})"
        )
    return 0


def control(command: str, name: str, namespace: str | None, output: str) -> int:
    return asyncio.run(_control(command, name, namespace or _current_namespace(), output))
