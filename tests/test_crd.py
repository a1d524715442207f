"""The RemoteOllama CRD: valid resources pass, invalid ones fail naming the field, defaults agree."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import pytest
from crd_schema import InvalidResource, apply_defaults, load_crd, openapi_schema, validate_remoteollama

from remote_ollama.spec import fields_row, patterns
from remote_ollama.spec import names as resource
from remote_ollama.spec.model import SpecError
from remote_ollama.spec.parse import parse_spec
from remote_ollama.spec.sections import (
    DEFAULT_ACTIVITY_INTERVAL,
    DEFAULT_DISK_SIZE,
    DEFAULT_HOLD_TIMEOUT,
    DEFAULT_INSTANCE_TYPE,
    DEFAULT_MAX_HELD,
    DEFAULT_MAX_HELD_BODY,
    DEFAULT_MODEL,
    DEFAULT_TEMPLATE,
    DEFAULT_ZONE,
    MAX_DISK,
    MIN_DISK,
    IdlePolicy,
)


def make(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "remoteollama.dev/v1alpha1",
        "kind": "RemoteOllama",
        "metadata": {"name": "granite", "namespace": "ai"},
        "spec": {"credentialsSecretRef": {"name": "exoscale-credentials"}, **spec},
    }


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path or "<root>", node
    for key, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{key}" if path else key)
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def test_names_match_the_design() -> None:
    crd = load_crd()
    spec = crd["spec"]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{resource.PLURAL}.{resource.GROUP}"
    assert spec["group"] == resource.GROUP
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == resource.KIND
    assert spec["names"]["plural"] == resource.PLURAL
    assert spec["names"]["shortNames"] == [resource.SHORT_NAME]
    assert spec["names"]["categories"] == ["ai"]
    (version,) = spec["versions"]
    assert version["name"] == resource.VERSION and version["served"] and version["storage"]
    # kubectl scale (and an HPA or KEDA) set the replicas floor; status.replicas is the member list
    assert version["subresources"] == {
        "status": {},
        "scale": {"specReplicasPath": ".spec.replicas.min", "statusReplicasPath": ".status.readyReplicas"},
    }
    columns = [(c["name"], c["jsonPath"]) for c in version["additionalPrinterColumns"]]
    assert columns == [
        ("Phase", ".status.phase"),
        ("Type", ".spec.instanceType"),
        ("Zone", ".spec.zone"),
        ("Replicas", ".status.replicaSummary"),
        ("IP", ".status.instance.publicIP"),
        ("Last-Activity", ".status.lastActivity"),
        ("Est-Cost", ".status.cost.estimatedSpend"),
        ("Age", ".metadata.creationTimestamp"),
    ]


def test_every_field_has_a_description() -> None:
    # the API server forbids anything but name/generateName rules under `metadata`
    missing = [path for path, node in walk(openapi_schema()) if not node.get("description")]
    assert missing == ["metadata"]


def test_schema_is_structural() -> None:
    """Every node has a type, except int-or-string ones: their anyOf lists the bare branch types (the
    only anyOf with `type` a real kube-apiserver accepts) and the bounds sit beside it, each applying
    to its own type. (The real server's verdict: tests/test_cluster.py installs this CRD.)"""
    for path, node in walk(openapi_schema()):
        if node.get("x-kubernetes-int-or-string"):
            assert "type" not in node, path
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
        else:
            assert node.get("type") in {"object", "array", "string", "integer", "number", "boolean"}, path
        opaque = node.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in node
        if node.get("type") == "object" and path != "metadata" and not opaque:
            assert node.get("properties"), f"{path}: objects list their fields"
    preserved = [
        path for path, node in walk(openapi_schema()) if node.get("x-kubernetes-preserve-unknown-fields")
    ]
    # NetworkPolicyPeer objects are Kubernetes' own type, validated by the NetworkPolicy API on apply;
    # status.ollama.models[] is Ollama's own /api/tags entry and status.ollama.show{} its /api/show
    # answer, kept whole whatever the VM's version adds.
    assert preserved == [
        "spec.networkPolicy.allowFrom[]",
        "status.ollama.models[]",
        "status.ollama.show{}",
        "status.kopf",
    ]


def test_enums_and_patterns_mirror_the_spec() -> None:
    props = openapi_schema()["properties"]["spec"]["properties"]
    assert props["zone"]["enum"] == list(fields_row.ZONES)
    assert props["instanceType"]["pattern"] == patterns.INSTANCE_TYPE_PATTERN
    durations = [props["idle"]["properties"][k] for k in ("stopAfter", "destroyAfter")]
    durations += [props["wake"]["properties"]["holdTimeout"], props["activityInterval"]]
    for node in durations:
        assert node["pattern"] == patterns.DURATION_PATTERN
    assert props["diskSize"]["minimum"] == MIN_DISK
    assert props["diskSize"]["maximum"] == MAX_DISK
    status_phase = openapi_schema()["properties"]["status"]["properties"]["phase"]["enum"]
    from remote_ollama.spec.vocabulary import Phase

    assert status_phase == [p.value for p in Phase]


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {
            "zone": "ch-gva-2",
            "instanceType": "gpua30.medium",
            "diskSize": 10,
            "models": ["llama3.2", "qwen2.5:7b"],
        },
        {"diskSize": 51200, "suspend": True, "allowedSourceCIDRs": ["10.0.0.0/8", "2001:db8::/32", "::/0"]},
        {
            "idle": {"stopAfter": "1h30m", "destroyAfter": 0},
            "wake": {"holdTimeout": 90, "maxHeldRequests": 0},
        },
        {"idle": {"stopAfter": 1800}, "activityInterval": "15s", "wake": {"maxHeldRequests": 100000}},
        {"idle": {}, "models": ["hf.co/org/model:Q4_K_M"]},
        {
            "instanceType": "gpu2.extra-large",
            "placements": [{"zone": "de-fra-1", "instanceType": "gpua30.large"}],
        },
        {
            "clientAuth": {"secretRef": {"name": "granite-client-keys"}},
            "modelManagement": True,
            "networkPolicy": {
                "enabled": True,
                "allowFrom": [{"podSelector": {}}, {"ipBlock": {"cidr": "10.0.0.0/8"}}],
            },
            "wake": {"maxHeldBodyBytes": 1024, "progress": True},
            "ollama": {
                "image": "ollama/ollama:0.11.4@sha256:" + "a" * 64,
                "env": {"OLLAMA_NUM_PARALLEL": "4", "OLLAMA_FLASH_ATTENTION": "1"},
            },
        },
        {"networkPolicy": {"enabled": False}, "ollama": {"image": "registry.example:5000/ollama:custom"}},
        {"replicas": {"min": 1, "max": 4, "targetInFlight": 2, "scaleDownAfter": "10m"}},
        {"replicas": {"max": 4, "routing": "prefixAffinity"}},
        {"replicas": {"max": 3}},
    ],
)
def test_valid_specs_pass_and_parse(spec: dict[str, Any]) -> None:
    stored = validate_remoteollama(make(**spec))
    parse_spec(stored["spec"])  # what the server stores, the operator understands


# Every one is rejected by the offline check below and by the real kube-apiserver (naming the field).
INVALID_SPECS: list[tuple[dict[str, Any], str]] = [
    ({"credentialsSecretRef": None}, "spec.credentialsSecretRef"),
    ({"credentialsSecretRef": {}}, "spec.credentialsSecretRef.name"),
    ({"credentialsSecretRef": {"name": ""}}, "spec.credentialsSecretRef.name"),
    ({"zone": "us-east-1"}, "spec.zone"),
    ({"instanceType": "gpua5000"}, "spec.instanceType"),
    ({"instanceType": "GPUA5000.small"}, "spec.instanceType"),
    ({"template": ""}, "spec.template"),
    ({"diskSize": 9}, "spec.diskSize"),
    ({"diskSize": 51201}, "spec.diskSize"),
    ({"diskSize": "100"}, "spec.diskSize"),
    ({"diskSize": 10.5}, "spec.diskSize"),
    ({"models": []}, "spec.models"),
    ({"models": "granite"}, "spec.models"),
    ({"models": ["bad model"]}, "spec.models[0]"),
    ({"idle": {"stopAfter": "30 minutes"}}, "spec.idle.stopAfter"),
    ({"idle": {"stopAfter": "1d"}}, "spec.idle.stopAfter"),
    ({"idle": {"stopAfter": ""}}, "spec.idle.stopAfter"),
    ({"idle": {"stopAfter": 0}}, "spec.idle.stopAfter"),
    ({"idle": {"stopAfter": True}}, "spec.idle.stopAfter"),
    ({"idle": {"stopAfter": "30m", "destroyAfter": "-1"}}, "spec.idle.destroyAfter"),
    ({"idle": {"destroyAfter": "24h"}}, "spec.idle.destroyAfter"),
    ({"idle": {"stopAfter": "30m", "sleepAfter": "1h"}}, "spec.idle.sleepAfter"),
    ({"wake": {"holdTimeout": "soon"}}, "spec.wake.holdTimeout"),
    ({"wake": {"maxHeldRequests": -1}}, "spec.wake.maxHeldRequests"),
    ({"wake": {"maxHeldRequests": 100001}}, "spec.wake.maxHeldRequests"),
    ({"suspend": "yes"}, "spec.suspend"),
    ({"allowedSourceCIDRs": []}, "spec.allowedSourceCIDRs"),
    ({"allowedSourceCIDRs": ["10.0.0.0"]}, "spec.allowedSourceCIDRs[0]"),
    ({"allowedSourceCIDRs": ["10.0.0.256/8"]}, "spec.allowedSourceCIDRs[0]"),
    ({"allowedSourceCIDRs": ["10.0.0.0/33"]}, "spec.allowedSourceCIDRs[0]"),
    ({"allowedSourceCIDRs": ["anywhere"]}, "spec.allowedSourceCIDRs[0]"),
    ({"activityInterval": "fast"}, "spec.activityInterval"),
    ({"gpu": "a5000"}, "spec.gpu"),
    ({"credentialsSecretRef": {"name": "Exoscale_Creds"}}, "spec.credentialsSecretRef.name"),
    ({"credentialsSecretRef": {"name": "../../secrets/x"}}, "spec.credentialsSecretRef.name"),
    ({"clientAuth": {}}, "spec.clientAuth.secretRef"),
    ({"clientAuth": {"secretRef": {"name": "a/b"}}}, "spec.clientAuth.secretRef.name"),
    ({"modelManagement": "yes"}, "spec.modelManagement"),
    ({"networkPolicy": {"enabled": "no"}}, "spec.networkPolicy.enabled"),
    ({"networkPolicy": {"allowFrom": "everyone"}}, "spec.networkPolicy.allowFrom"),
    ({"wake": {"maxHeldBodyBytes": -1}}, "spec.wake.maxHeldBodyBytes"),
    ({"wake": {"progress": "on"}}, "spec.wake.progress"),
    ({"ollama": {"image": "ollama/ollama; rm -rf /"}}, "spec.ollama.image"),
    ({"ollama": {"env": {"OLLAMA_X": "a$(id)"}}}, "spec.ollama.env.OLLAMA_X"),
    ({"ollama": {"env": {"OLLAMA_X": 4}}}, "spec.ollama.env.OLLAMA_X"),
    ({"replicas": {"min": 3, "max": 2}}, "spec.replicas.min"),
    ({"replicas": {"min": 2}}, "spec.replicas.min"),  # above the default max 1
    ({"replicas": {"max": 0}}, "spec.replicas.max"),
    ({"replicas": {"max": 65}}, "spec.replicas.max"),
    ({"replicas": {"min": -1}}, "spec.replicas.min"),
    ({"replicas": {"max": 2, "targetInFlight": 0}}, "spec.replicas.targetInFlight"),
    ({"replicas": {"scaleDownAfter": "soon"}}, "spec.replicas.scaleDownAfter"),
    ({"replicas": {"maximum": 3}}, "spec.replicas.maximum"),
    ({"replicas": {"max": 2, "routing": "roundRobin"}}, "spec.replicas.routing"),
]


@pytest.mark.parametrize(("spec", "field"), INVALID_SPECS)
def test_invalid_specs_fail_naming_the_field(spec: dict[str, Any], field: str) -> None:
    obj = make()
    obj["spec"].update(spec)
    with pytest.raises(InvalidResource) as info:
        validate_remoteollama(obj)
    paths = [path for path, _ in info.value.problems]
    assert field in paths, info.value
    assert field in str(info.value)


def test_missing_spec_and_wrong_kind_fail() -> None:
    obj = make()
    del obj["spec"]
    obj["kind"] = "Ollama"
    with pytest.raises(InvalidResource) as info:
        validate_remoteollama(obj)
    assert {"spec", "kind"} <= {path for path, _ in info.value.problems}


def test_status_is_validated_too() -> None:
    obj = make()
    obj["status"] = {"phase": "Sleeping", "conditions": [{"type": "Ready", "status": "yes"}]}
    with pytest.raises(InvalidResource) as info:
        validate_remoteollama(obj)
    paths = {path for path, _ in info.value.problems}
    assert {"status.phase", "status.conditions[0].status", "status.conditions[0].reason"} <= paths


def test_defaults_agree_with_the_spec() -> None:
    stored = apply_defaults(make())
    spec = stored["spec"]
    assert spec["zone"] == DEFAULT_ZONE
    assert spec["instanceType"] == DEFAULT_INSTANCE_TYPE
    assert spec["template"] == DEFAULT_TEMPLATE
    assert spec["diskSize"] == DEFAULT_DISK_SIZE
    assert spec["models"] == [DEFAULT_MODEL]
    assert spec["suspend"] is False
    assert spec["allowedSourceCIDRs"] == ["0.0.0.0/0"]
    assert parse_spec(spec) == parse_spec({"credentialsSecretRef": {"name": "exoscale-credentials"}})
    parsed = parse_spec(spec)
    assert parsed.idle == IdlePolicy()  # the row's default: stop after 30m, destroy 24h later
    assert parsed.wake.hold_timeout == DEFAULT_HOLD_TIMEOUT
    assert parsed.wake.max_held_requests == DEFAULT_MAX_HELD
    assert "activityInterval" not in spec  # left to the proxy's own default
    assert parsed.activity_interval == DEFAULT_ACTIVITY_INTERVAL


@pytest.mark.parametrize(
    "spec",
    [{"idle": {"stopAfter": "1h"}}, {"idle": {}}, {"wake": {}}, {"wake": {"maxHeldRequests": 5}}],
)
def test_partial_objects_default_like_parse_spec(spec: dict[str, Any]) -> None:
    """Defaults inside a given object match what parse_spec assumes for that object."""
    stored = apply_defaults(make(**copy.deepcopy(spec)))
    assert parse_spec(stored["spec"]) == parse_spec(make(**spec)["spec"])


def test_descriptions_teach_durations() -> None:
    idle = openapi_schema()["properties"]["spec"]["properties"]["idle"]["properties"]
    assert re.search(r"30m", idle["stopAfter"]["description"])


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"credentialsSecretRef": {"name": "Exoscale_Creds"}}, "spec.credentialsSecretRef.name"),
        ({"clientAuth": {}}, "spec.clientAuth.secretRef.name"),
        ({"clientAuth": {"secretRef": {"name": "a/b"}}}, "spec.clientAuth.secretRef.name"),
        ({"instanceType": "gpua9000.small"}, "spec.instanceType"),
        ({"placements": [{"zone": "de-fra-1", "instanceType": "gpu.hugest"}]}, "spec.placements[0]"),
        ({"networkPolicy": {"allowFrom": ["x"]}}, "spec.networkPolicy.allowFrom[0]"),
        ({"wake": {"maxHeldBodyBytes": -1}}, "spec.wake.maxHeldBodyBytes"),
        ({"ollama": {"image": "ollama/ollama; rm -rf /"}}, "spec.ollama.image"),
        ({"ollama": {"env": {"HOME": "/"}}}, "spec.ollama.env.HOME"),
        ({"ollama": {"env": {"OLLAMA_X": "a\nb"}}}, "spec.ollama.env.OLLAMA_X"),
        ({"ollama": {"tag": "x"}}, "spec.ollama.tag"),
    ],
)
def test_parser_rejects_what_the_operator_must_not_use(spec: dict[str, Any], field: str) -> None:
    """The operator's own check (also for what a CRD cannot express, e.g. env names, known families)."""
    raw = make()["spec"] | spec
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    assert field in [path for path, _ in info.value.problems], info.value


def test_new_fields_default_and_parse() -> None:
    stored = apply_defaults(make())
    parsed = parse_spec(stored["spec"])
    assert stored["spec"]["modelManagement"] is False and parsed.model_management is False
    assert stored["spec"]["networkPolicy"] == {"enabled": True} and parsed.network_policy.enabled
    assert stored["spec"]["wake"]["maxHeldBodyBytes"] == DEFAULT_MAX_HELD_BODY == 64 * 1024 * 1024
    assert parsed.wake.progress is False and parsed.ollama.image is None and parsed.client_auth_secret == ""
    full = parse_spec(
        make(clientAuth={"secretRef": {"name": "keys"}}, ollama={"env": {"OLLAMA_NUM_PARALLEL": "4"}})["spec"]
    )
    assert full.client_auth_secret == "keys"
    assert full.ollama.env == (("OLLAMA_NUM_PARALLEL", "4"),)
    assert parse_spec(full.to_dict() | {"credentialsSecretRef": {"name": "c"}}).ollama == full.ollama


def test_replicas_default_to_one_vm_and_target_ollamas_parallelism() -> None:
    """No spec.replicas: one VM, as before; targetInFlight follows OLLAMA_NUM_PARALLEL, else 4."""
    stored = apply_defaults(make())
    assert stored["spec"]["replicas"] == {
        "min": 0,
        "max": 1,
        "scaleDownAfter": "5m",
        "routing": "leastOutstanding",
    }
    parsed = parse_spec(stored["spec"])
    assert (parsed.replicas.min, parsed.replicas.max, parsed.replicas.scale_down_after) == (0, 1, 300.0)
    assert parsed.replicas.routing == "leastOutstanding"
    affine = parse_spec(make(replicas={"max": 3, "routing": "prefixAffinity"})["spec"])
    assert affine.replicas.routing == "prefixAffinity"
    assert parsed.target_in_flight == 4
    parallel = parse_spec(make(ollama={"env": {"OLLAMA_NUM_PARALLEL": "2"}}, replicas={"max": 3})["spec"])
    assert parallel.target_in_flight == 2 and parallel.replicas.max == 3
    both = make(ollama={"env": {"OLLAMA_NUM_PARALLEL": "2"}}, replicas={"max": 3, "targetInFlight": 6})
    assert parse_spec(both["spec"]).target_in_flight == 6
    again = parse_spec(parallel.to_dict() | {"credentialsSecretRef": {"name": "c"}})
    assert again.replicas == parallel.replicas and again.target_in_flight == 2


def test_replicas_min_above_max_is_one_clear_problem() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(make(replicas={"min": 3, "max": 2})["spec"])
    assert info.value.problems == [("spec.replicas.min", "must be <= spec.replicas.max (2): 3")]
