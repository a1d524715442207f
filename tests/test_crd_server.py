"""The RemoteOllama CRD as the real kube-apiserver serves it (installed by `helm install`): its
validation (OpenAPI and CEL), its defaults, `kubectl explain` and the `kubectl get` columns."""

from __future__ import annotations

import json
from typing import Any

import yaml
from cluster.fixtures import KubeNamespace
from crd_schema import apply_defaults, load_crd
from test_crd import INVALID_SPECS, make


def named(name: str, **spec: Any) -> dict[str, Any]:
    obj = make(**spec)
    obj["metadata"] = {"name": name}  # the test's namespace (kubectl's context)
    return obj


def test_the_server_rejects_every_invalid_spec_naming_the_field(kube: KubeNamespace) -> None:
    missed = []
    for i, (spec, field) in enumerate(INVALID_SPECS):
        obj = named(f"bad-{i}")
        obj["spec"].update(spec)
        out = kube.kubectl("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(obj))
        if out.returncode == 0 or field not in out.stderr:
            missed.append((spec, field, out.stderr.strip() or "accepted"))
    assert missed == [], "\n".join(map(str, missed))
    assert kube.kubectl("get", "rol", "-o", "name", check=True).stdout.strip() == ""


def test_the_cel_rule_is_enforced_by_the_server(kube: KubeNamespace) -> None:
    rule = load_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    (cel,) = rule["properties"]["idle"]["x-kubernetes-validations"]
    out = kube.kubectl("apply", "-f", "-", input=yaml.safe_dump(named("a", idle={"destroyAfter": "24h"})))
    assert out.returncode != 0 and cel["message"] in out.stderr, out.stderr
    ok = named("b", idle={"stopAfter": "30m", "destroyAfter": "24h"})
    kube.kubectl("apply", "-f", "-", input=yaml.safe_dump(ok), check=True)


def test_the_server_defaults_as_the_offline_schema_does(kube: KubeNamespace) -> None:
    for spec in ({}, {"idle": {"stopAfter": "1h"}}, {"wake": {}}):
        obj = named("granite", **spec)
        out = kube.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", input=yaml.safe_dump(obj))
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["spec"] == apply_defaults(obj)["spec"], spec


def test_kubectl_explain_and_columns_come_from_the_server(kube: KubeNamespace) -> None:
    explain = kube.kubectl("explain", "remoteollama.spec.idle", check=True).stdout
    assert "stopAfter" in explain and "destroyAfter" in explain and "30m" in explain, explain
    kube.kubectl("apply", "-f", "-", input=yaml.safe_dump(named("granite")), check=True)
    header = kube.kubectl("get", "rol", check=True).stdout.splitlines()[0].split()
    (version,) = load_crd()["spec"]["versions"]
    columns = [c["name"].upper() for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert header == ["NAME", *columns], header
    assert "granite" in kube.kubectl("get", "ai", check=True).stdout  # the category


def test_kubectl_scale_sets_the_replica_floor_within_max(kube: KubeNamespace) -> None:
    """`kubectl scale rol X --replicas N` (the scale subresource) sets spec.replicas.min; above max
    the server refuses it naming the rule."""
    kube.kubectl("apply", "-f", "-", input=yaml.safe_dump(named("granite", replicas={"max": 3})), check=True)
    kube.kubectl("scale", "rol", "granite", "--replicas", "2", check=True)
    stored = json.loads(kube.kubectl("get", "rol", "granite", "-o", "json", check=True).stdout)
    assert stored["spec"]["replicas"] == {
        "min": 2,
        "max": 3,
        "scaleDownAfter": "5m",
        "routing": "leastOutstanding",
    }
    refused = kube.kubectl("scale", "rol", "granite", "--replicas", "4")
    assert refused.returncode != 0 and "min must not exceed max" in refused.stderr, refused.stderr
