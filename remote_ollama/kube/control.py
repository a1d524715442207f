"""`remote-ollama status|wake|sleep NAME` (and `kubectl remoteollama ...`) through the kubeconfig.

wake and sleep only write the annotations a user may set; the operator does the rest.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime, timedelta
from typing import Any

from remote_ollama.kube.operator.status import parse_time, rfc3339
from remote_ollama.spec.model import SpecError
from remote_ollama.spec.names import ANN_SLEEP_REQUESTED, ANN_WAKE_REQUESTED, GROUP, PLURAL, VERSION
from remote_ollama.spec.parse import parse_spec
from remote_ollama.spec.schedule import active_window, utcnow
from remote_ollama.spec.sections import format_duration, parse_duration
from remote_ollama.spec.vocabulary import Phase

from .api import KubeAPI, KubeError, path_for


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
    window = _keep_warm(spec, now)
    if st.get("phase") == Phase.READY and window is not None:
        lines.append(
            f"  idle:     kept warm by spec.schedule until {rfc3339(window[1])}; then scales to zero after "
            f"{format_duration(parse_duration(stop_after)) if stop_after is not None else 'never'} without requests"
        )
    elif st.get("phase") == Phase.READY and stop_after is not None:
        ref = idle_since(meta, st)
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


def idle_since(meta: dict[str, Any], st: dict[str, Any]) -> datetime | None:
    """Where the lifecycle counts idleness from: the latest use, wake request or readiness (a VM
    just woken is not idle since a request made before it slept)."""
    ann = meta.get("annotations") or {}
    stamps = [
        parse_time(ann.get("remoteollama.dev/last-activity")),
        parse_time(st.get("lastActivity")),
        parse_time(ann.get(ANN_WAKE_REQUESTED)),
        parse_time((st.get("lifecycle") or {}).get("readyAt")),
        parse_time(meta.get("creationTimestamp")),
    ]
    present = [s for s in stamps if s is not None and s <= utcnow() + timedelta(seconds=60)]
    return max(present) if present else None


def _keep_warm(spec: dict[str, Any], now: datetime) -> tuple[datetime, datetime] | None:
    """The keep-warm window (spec.schedule) `now` is in, if any."""
    if not spec.get("schedule"):
        return None
    try:
        parsed = parse_spec(spec, require_credentials=False)
    except SpecError:
        return None
    return active_window(parsed.schedule, now)


async def _control(command: str, name: str, namespace: str, output: str) -> int:
    try:
        path = path_for(f"{GROUP}/{VERSION}", PLURAL, namespace, name)
    except ValueError as exc:  # "." or "..": refused before anything is asked
        print(f"remote-ollama {command}: {exc}", file=sys.stderr)
        return 2
    api = KubeAPI.from_environment("cli")
    try:
        if command in ("wake", "sleep"):
            key = ANN_WAKE_REQUESTED if command == "wake" else ANN_SLEEP_REQUESTED
            await api.merge_patch(path, {"metadata": {"annotations": {key: rfc3339(utcnow())}}})
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
        print("\n".join(describe(obj, utcnow())))
    else:
        print(
            f"{namespace}/{name}: {command} requested (phase {(obj.get('status') or {}).get('phase', 'Pending')})"
        )
    return 0


def control(command: str, name: str, namespace: str | None, output: str) -> int:
    return asyncio.run(_control(command, name, namespace or _current_namespace(), output))
