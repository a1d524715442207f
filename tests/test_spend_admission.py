"""The spend policy's admission objects: the chart and the plain manifests ship the same
ValidatingAdmissionPolicy, binding and Role, and the binding reads only the policy ConfigMap in the
operator's namespace (tests/test_spend_admission_cluster.py runs them on a real kube-apiserver)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from chart_world import render

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("ConfigMap", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "Role", "RoleBinding")


def shipped(objects: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    """Each object's content without its labels (Helm's differ from kubectl's)."""
    out: dict[tuple[str, str], Any] = {}
    for o in objects:
        name = o["metadata"]["name"]
        if o["kind"] in KINDS and not name.endswith(("-proxy-activity-only", "-operator-children-only")):
            body = {k: v for k, v in o.items() if k not in ("metadata", "apiVersion")}
            out[o["kind"], o["metadata"]["name"]] = (o["metadata"].get("namespace"), body)
    return out


def test_chart_and_manifests_ship_the_same_spend_policy() -> None:
    plain = [d for d in yaml.safe_load_all((ROOT / "manifests" / "08-spend-policy.yaml").read_text()) if d]
    charted = render({"image": {"repository": "x"}})[0]
    assert shipped(plain) == shipped(charted)
    assert sorted(shipped(plain)) == [
        ("ConfigMap", "remote-ollama-policy"),
        ("Role", "remote-ollama"),
        ("RoleBinding", "remote-ollama"),
        ("ValidatingAdmissionPolicy", "remote-ollama-spend-policy"),
        ("ValidatingAdmissionPolicyBinding", "remote-ollama-spend-policy"),
    ]


def test_the_operator_may_touch_configmaps_only_in_its_own_namespace() -> None:
    objects = render({"image": {"repository": "x"}})[0]
    (role,) = [o for o in objects if o["kind"] == "Role" and o["metadata"]["name"] == "remote-ollama"]
    assert role["metadata"]["namespace"] == "remote-ollama"
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "patch"]}
    ]
    (cluster_role,) = [o for o in objects if o["kind"] == "ClusterRole"]
    assert all("configmaps" not in r["resources"] for r in cluster_role["rules"])
