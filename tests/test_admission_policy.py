"""The proxies' ServiceAccounts may update their RemoteOllama only by changing the activity
annotations: the shipped ValidatingAdmissionPolicy's CEL, evaluated with cel-python."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from admission_cel import PolicyEvaluator
from chart_world import render

ROOT = Path(__file__).resolve().parents[1]
PROXY = "system:serviceaccount:ai:granite-proxy"
RESOURCE: dict[str, Any] = {
    "apiVersion": "remoteollama.dev/v1alpha1",
    "kind": "RemoteOllama",
    "metadata": {
        "name": "granite",
        "namespace": "ai",
        "uid": "u-1",
        "labels": {"team": "a"},
        "finalizers": ["remoteollama.dev/cleanup"],
        "annotations": {
            "remoteollama.dev/last-activity": "2026-12-02T10:00:00.000Z",
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
        },
    },
    "spec": {
        "credentialsSecretRef": {"name": "exoscale"},
        "instanceType": "gpua5000.small",
        "budget": {"maxMonthlySpend": 100},
    },
}


def policies() -> list[dict[str, Any]]:
    plain = [
        d
        for d in yaml.safe_load_all((ROOT / "manifests" / "07-proxy-admission-policy.yaml").read_text())
        if d and d["kind"] == "ValidatingAdmissionPolicy"
    ]
    charted = [
        o
        for o in render()[0]
        if o["kind"] == "ValidatingAdmissionPolicy" and o["metadata"]["name"].endswith("proxy-activity-only")
    ]
    assert len(plain) == len(charted) == 1
    assert plain[0]["spec"] == charted[0]["spec"], "chart and manifests ship the same policy"
    return plain


@pytest.fixture(scope="module")
def policy() -> PolicyEvaluator:
    return PolicyEvaluator(policies()[0])


def changed(**edits: Any) -> dict[str, Any]:
    new = copy.deepcopy(RESOURCE)
    for path, value in edits.items():
        *parents, leaf = path.split("__")
        node = new
        for p in parents:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return new


def with_annotations(**ann: str | None) -> dict[str, Any]:
    new = copy.deepcopy(RESOURCE)
    for key, value in ann.items():
        name = "remoteollama.dev/" + key.replace("_", "-")
        if value is None:
            new["metadata"]["annotations"].pop(name, None)
        else:
            new["metadata"]["annotations"][name] = value
    return new


def test_the_policy_allows_exactly_the_annotations_the_proxy_writes() -> None:
    from remote_ollama.spec.names import ANN_IN_FLIGHT, ANN_LAST_ACTIVITY, ANN_WAKE_REQUESTED

    (variable,) = [v for v in policies()[0]["spec"]["variables"] if v["name"] == "allowed"]
    allowed = set(re.findall(r"'([^']+)'", variable["expression"]))
    assert allowed == {ANN_LAST_ACTIVITY, ANN_WAKE_REQUESTED, ANN_IN_FLIGHT}


def test_the_proxy_may_write_its_activity_annotations(policy: PolicyEvaluator) -> None:
    for new in (
        with_annotations(last_activity="2026-12-02T11:00:00.000Z"),
        with_annotations(wake_requested="2026-12-02T11:00:00.000Z"),
        with_annotations(in_flight="3"),
        with_annotations(last_activity="2026-12-02T11:00:00.000Z", in_flight="2"),
        with_annotations(last_activity=None),
        copy.deepcopy(RESOURCE),
    ):
        assert policy.admit(PROXY, RESOURCE, new) == (True, "allowed")


@pytest.mark.parametrize(
    "new",
    [
        changed(spec__budget={"maxMonthlySpend": 100000}),
        changed(spec__instanceType="gpub300.huge"),
        changed(spec__credentialsSecretRef={"name": "team-b-credentials"}),
        changed(metadata__labels={"team": "b"}),
        changed(metadata__finalizers=[]),
        changed(metadata__ownerReferences=[{"kind": "X", "name": "x", "uid": "x", "apiVersion": "v1"}]),
        with_annotations(sleep_requested="2026-12-02T11:00:00Z"),
        with_annotations(abandon_cloud_objects="true"),
        changed(metadata__annotations={"remoteollama.dev/last-activity": "2026-12-02T11:00:00.000Z"}),
    ],
    ids=["budget", "type", "credentials", "labels", "finalizers", "owners", "sleep", "abandon", "drop-other"],
)
def test_anything_else_by_the_proxy_is_denied(policy: PolicyEvaluator, new: dict[str, Any]) -> None:
    allowed, message = policy.admit(PROXY, RESOURCE, new)
    assert not allowed and message


def test_status_is_not_the_proxys(policy: PolicyEvaluator) -> None:
    assert not policy.admit(PROXY, RESOURCE, copy.deepcopy(RESOURCE), "status")[0]


def test_others_are_left_to_rbac(policy: PolicyEvaluator) -> None:
    spec_change = changed(spec__instanceType="gpub300.huge")
    for user in (
        "system:serviceaccount:remote-ollama:remote-ollama",  # the operator
        "alice@example.com",
        "system:serviceaccount:ai:other-proxy",  # another resource's proxy (its Role names only its own)
        "system:serviceaccount:team-b:granite-proxy",  # same name, another namespace
    ):
        assert policy.admit(user, RESOURCE, spec_change) == (True, "not matched"), user
