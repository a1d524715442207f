"""`remote-ollama instance status|start|stop|destroy|describe`: the standalone VM, by hand.

For people without the server running: acts on Exoscale directly with standalone's variables. The
instance is the one the standalone state file names (REMOTE_OLLAMA_STATE_FILE, else the standalone
and embedded defaults) when that file exists; otherwise every instance labelled as standalone.
Exit codes a script can use: 0 ok, 1 no such instance, 2 bad configuration or usage, 3 cloud
error, 4 destroy not confirmed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from remote_ollama.cloud.errors import CloudError
from remote_ollama.cloud.exoscale.adapter import ExoscaleCloud, owner_labels
from remote_ollama.core.cost import prices_from
from remote_ollama.core.observed import GONE, ObservedInstance
from remote_ollama.spec.names import (
    LABEL_CLUSTER,
    LABEL_MANAGED_BY,
    LABEL_MANAGED_BY_VALUE,
    STANDALONE_CLUSTER,
)
from remote_ollama.spec.schedule import utcnow

from .settings import ConfigError, StandaloneConfig, default_state_file
from .state_file import StateFile

OK, NOT_FOUND, BAD_CONFIG, CLOUD_ERROR, NOT_CONFIRMED = 0, 1, 2, 3, 4
LEGACY_STATE_FILE = "/var/lib/remote-ollama/state.json"


class Failure(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class Selection:
    """Which instances this invocation is about, and why (for messages)."""

    labels: dict[str, str]
    source: str
    remembered_id: str | None = None


def select(env: Mapping[str, str]) -> Selection:
    paths = [env.get("REMOTE_OLLAMA_STATE_FILE", "").strip()] if env.get("REMOTE_OLLAMA_STATE_FILE") else []
    if not paths:
        # the old default first: a VM created by an earlier version is still found
        paths = [LEGACY_STATE_FILE, str(default_state_file(env))]
    for path in paths:
        if Path(path).is_file():
            try:
                state = StateFile(path).load()
            except (OSError, ValueError) as exc:
                raise Failure(BAD_CONFIG, f"state file {path} is unreadable: {exc}") from exc
            return Selection(owner_labels(state.owner_id, STANDALONE_CLUSTER), path, state.memory.instance_id)
    labels = {LABEL_MANAGED_BY: LABEL_MANAGED_BY_VALUE, LABEL_CLUSTER: STANDALONE_CLUSTER}
    return Selection(labels, "labels (no state file found)")


def age_seconds(inst: ObservedInstance, now: datetime) -> float | None:
    return (now - inst.created_at).total_seconds() if inst.created_at else None


def human_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    d, rest = divmod(int(seconds), 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{d}d{h}h" if d else f"{h}h{m}m" if h else f"{m}m{s}s" if m else f"{s}s"


def summary(inst: ObservedInstance, now: datetime) -> dict[str, Any]:
    return {
        "id": inst.id,
        "state": inst.state,
        "type": inst.instance_type,
        "zone": inst.zone,
        "ip": inst.public_ip,
        "created_at": inst.created_at.isoformat() if inst.created_at else None,
        "age_seconds": age_seconds(inst, now),
    }


def table(rows: Sequence[dict[str, Any]], out: TextIO) -> None:
    cols = [
        ("ID", "id"),
        ("STATE", "state"),
        ("TYPE", "type"),
        ("ZONE", "zone"),
        ("IP", "ip"),
        ("AGE", "age"),
    ]
    cells = [[str(r.get(key) or "-") for _, key in cols] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (h, _) in enumerate(cols)]
    for line in [[h for h, _ in cols], *cells]:
        out.write("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() + "\n")


class InstanceTool:
    def __init__(self, cloud: ExoscaleCloud, selection: Selection, out: TextIO, err: TextIO, as_json: bool):
        self.cloud, self.sel, self.out, self.err, self.json = cloud, selection, out, err, as_json
        self.now = utcnow()

    def emit(self, data: Any, text: str) -> None:
        self.out.write(json.dumps(data, indent=2, default=str) + "\n" if self.json else text + "\n")

    def instances(self) -> list[ObservedInstance]:
        live = [i for i in self.cloud.find_instances(self.sel.labels) if i.state not in GONE]
        return sorted(live, key=lambda i: (i.created_at or self.now, i.id))

    def one(self, wanted: str | None) -> ObservedInstance:
        if wanted:
            inst = self.cloud.get_instance(wanted)
            if inst is None or inst.state in GONE:
                raise Failure(NOT_FOUND, f"no instance {wanted} in zone {self.cloud.zone}")
            return inst
        found = self.instances()
        if not found:
            raise Failure(
                NOT_FOUND, f"no remote-ollama instance in zone {self.cloud.zone} ({self.sel.source})"
            )
        if len(found) > 1:
            ids = ", ".join(i.id for i in found)
            raise Failure(BAD_CONFIG, f"several instances match ({ids}): choose one with --id")
        return found[0]

    def status(self, wanted: str | None) -> None:
        found = [self.one(wanted)] if wanted else self.instances()
        if not found:
            raise Failure(
                NOT_FOUND, f"no remote-ollama instance in zone {self.cloud.zone} ({self.sel.source})"
            )
        rows = [summary(i, self.now) for i in found]
        if self.json:
            self.emit({"instances": rows}, "")
            return
        table([{**r, "age": human_age(r["age_seconds"])} for r in rows], self.out)

    def describe(self, wanted: str | None) -> None:
        inst = self.one(wanted)
        raw: dict[str, Any] = self.cloud._call("get_instance", id=inst.id)  # the API's full answer
        groups = []
        for ref in raw.get("security-groups") or []:
            try:
                sg = self.cloud._call("get_security_group", id=ref["id"])
            except CloudError:
                sg = {"id": ref["id"], "name": None, "rules": []}
            groups.append({"id": sg.get("id"), "name": sg.get("name"), "rules": sg.get("rules", [])})
        age = age_seconds(inst, self.now)
        table = prices_from(os.environ)
        price = table.per_hour.get(inst.instance_type)
        cost = round(price * age / 3600, 2) if price is not None and age is not None else None
        info: dict[str, Any] = {
            **summary(inst, self.now),
            "name": raw.get("name"),
            "disk_size": raw.get("disk-size"),
            "template_id": inst.template_id,
            "labels": inst.labels,
            "security_groups": groups,
            "hourly_price": price,
            "currency": table.currency,
            # An upper bound: the hourly price times the age, as if it had run all along.
            "estimated_cost_so_far": cost,
            "api": {k: v for k, v in raw.items() if k != "user-data"},
        }
        lines = [
            f"{k:<22}{info[k] if info[k] is not None else '-'}"
            for k in ("id", "name", "state", "type", "zone", "ip", "disk_size", "template_id", "created_at")
        ]
        lines.append(f"{'age':<22}{human_age(age)}")
        lines.append(f"{'labels':<22}" + ", ".join(f"{k}={v}" for k, v in sorted(inst.labels.items())))
        for g in groups:
            lines.append(f"{'security group':<22}{g['name']} ({g['id']})")
            for r in g["rules"]:
                ports = f"{r.get('start-port', '')}-{r.get('end-port', '')}".strip("-")
                lines.append(
                    f"{'':<24}{r.get('flow-direction')} {r.get('protocol')} {ports} from {r.get('network', '-')}"
                )
        money = (
            f"{cost:.2f} (at most: {price:.3f}/h since creation)"
            if cost is not None and price
            else "unknown type price"
        )
        lines.append(f"{'estimated cost':<22}{money}")
        self.emit(info, "\n".join(lines))

    def act(self, verb: str, wanted: str | None, wait: bool, timeout: float) -> None:
        inst = self.one(wanted)
        note = ""
        if verb == "start":
            after = self.cloud.start_instance(inst.id, wait=wait, deadline=timeout)
        else:
            if Path(self.sel.source).is_file():  # a server on this state file must not undo it
                StateFile(self.sel.source).request_sleep(self.now)
                note = "; a server running on this state file keeps it stopped until the next request"
            after = self.cloud.stop_instance(inst.id, wait=wait, deadline=timeout)
        self.emit(summary(after, self.now), f"instance {after.id} is {after.state}{note}")

    def destroy(self, wanted: str | None, yes: bool, wait: bool, timeout: float, stdin: TextIO) -> None:
        inst = self.one(wanted)
        if not yes:
            self.err.write(
                f"Destroy instance {inst.id} ({inst.instance_type}, {inst.state}) in {inst.zone} and its disk? [y/N] "
            )
            self.err.flush()
            if stdin.readline().strip().lower() not in ("y", "yes"):
                raise Failure(NOT_CONFIRMED, "not destroyed")
        raw: dict[str, Any] = self.cloud._call("get_instance", id=inst.id)
        names = []
        for ref in raw.get("security-groups") or []:
            sg = self.cloud._call("get_security_group", id=ref["id"])
            if str(sg.get("name", "")).startswith("remote-ollama-"):
                names.append(str(sg["name"]))
        self.cloud.delete_instance(inst.id, wait=wait or bool(names), deadline=timeout)
        for name in names:  # ours, now unused; a group still used elsewhere stays (retryable error)
            try:
                self.cloud.security_groups.delete_security_group(name, deadline=timeout)
            except CloudError as exc:
                self.err.write(f"security group {name} kept: {exc}\n")
        self.emit(
            {"id": inst.id, "state": "destroyed", "security_groups_deleted": names},
            f"instance {inst.id} destroyed"
            + (f"; security group {', '.join(names)} deleted" if names else ""),
        )


def run_instance(
    args: argparse.Namespace,
    env: Mapping[str, str] | None = None,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    env = os.environ if env is None else env
    try:
        config = StandaloneConfig.from_env(env)
    except ConfigError as exc:
        for line in exc.problems:
            err.write(f"remote-ollama: {line}\n")
        return BAD_CONFIG
    try:
        selection = select(env)
        cloud = ExoscaleCloud(config.api_key, config.api_secret, config.spec.zone, endpoint=config.endpoint)
        tool = InstanceTool(cloud, selection, out, err, args.output == "json")
        if args.action == "status":
            tool.status(args.instance_id)
        elif args.action == "describe":
            tool.describe(args.instance_id)
        elif args.action in ("start", "stop"):
            tool.act(args.action, args.instance_id, not args.no_wait, args.timeout)
        else:
            tool.destroy(args.instance_id, args.yes, not args.no_wait, args.timeout, stdin)
    except Failure as exc:
        err.write(f"remote-ollama: {exc}\n")
        return exc.code
    except CloudError as exc:
        err.write(f"remote-ollama: Exoscale: {exc} ({exc.reason})\n")
        return CLOUD_ERROR
    return OK
