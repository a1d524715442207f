"""The emulated Kubernetes API behaves as kopf and the real kubectl need (tests/kube)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import kopf.testing
import pytest
import requests
from kube.harness import KubeHarness
from waiting import wait_until as wait_for

ROL = "/apis/remoteollama.dev/v1alpha1/namespaces/default/remoteollamas"
TOY_OPERATOR = Path(__file__).parent / "kube" / "toy_operator.py"
MERGE = {"Content-Type": "application/merge-patch+json"}
JSONPATCH = {"Content-Type": "application/json-patch+json"}

SECRET_AND_ROL = """
apiVersion: v1
kind: Secret
metadata: {name: exoscale-credentials}
stringData: {api-key: EXOabc, api-secret: s3cr3t}
---
apiVersion: remoteollama.dev/v1alpha1
kind: RemoteOllama
metadata: {name: granite}
spec:
  credentialsSecretRef: {name: exoscale-credentials}
  instanceType: gpua30.medium
"""


def rol(name: str = "granite", **spec: Any) -> dict[str, Any]:
    spec.setdefault("credentialsSecretRef", {"name": "exoscale-credentials"})
    return {
        "apiVersion": "remoteollama.dev/v1alpha1",
        "kind": "RemoteOllama",
        "metadata": {"name": name},
        "spec": spec,
    }


def call(kmock: KubeHarness, method: str, path: str, body: Any = None, **kw: Any) -> requests.Response:
    return requests.request(method, kmock.url + path, json=body, timeout=10, **kw)


# ---- kubectl ------------------------------------------------------------------------------------


def test_kubectl_apply_get_annotate_delete(kmock: KubeHarness, tmp_path: Path) -> None:
    kmock.kubectl("apply", "-f", "crds/remoteollama.yaml", check=True)
    manifest = tmp_path / "rol.yaml"
    manifest.write_text(SECRET_AND_ROL)
    out = kmock.kubectl("apply", "-f", str(manifest), check=True).stdout
    assert "secret/exoscale-credentials created" in out
    assert "remoteollama.remoteollama.dev/granite created" in out
    assert "unchanged" in kmock.kubectl("apply", "-f", str(manifest), check=True).stdout

    kmock.emulator.patch_object("rol", "granite", {"status": {"phase": "Ready", "instance": {"publicIP": "192.0.2.7"}}},
                        "default", status=True)  # fmt: skip
    table = kmock.kubectl("get", "rol", check=True).stdout.splitlines()
    assert table[0].split() == ["NAME", "PHASE", "TYPE", "ZONE", "IP", "LAST-ACTIVITY", "EST-COST", "AGE"]
    assert table[1].split()[:5] == ["granite", "Ready", "gpua30.medium", "at-vie-2", "192.0.2.7"]
    assert "granite" in kmock.kubectl("get", "remoteollamas", check=True).stdout
    assert "granite" in kmock.kubectl("get", "ai", check=True).stdout  # the category

    stored = json.loads(kmock.kubectl("get", "rol", "granite", "-o", "json", check=True).stdout)
    assert stored["spec"]["diskSize"] == 100  # defaulted by the server
    assert "diskSize: 100" in kmock.kubectl("get", "rol", "granite", "-o", "yaml", check=True).stdout

    kmock.kubectl(
        "annotate", "rol", "granite", "remoteollama.dev/wake-requested=2025-01-01T00:00:00Z", check=True
    )
    annotations = (kmock.emulator.read("rol", "granite", "default") or {})["metadata"]["annotations"]
    assert annotations["remoteollama.dev/wake-requested"] == "2025-01-01T00:00:00Z"

    kmock.emulator.create_object("deployments.apps", {"metadata": {"name": "granite", "namespace": "default"},
                                              "spec": {"replicas": 1}})  # fmt: skip
    kmock.emulator.create_object("services", {"metadata": {"name": "granite", "namespace": "default"},
                                      "spec": {"ports": [{"port": 11434}]}})  # fmt: skip
    listing = kmock.kubectl("get", "deploy,svc,secret", check=True).stdout
    for line in ("deployment.apps/granite", "service/granite", "secret/exoscale-credentials"):
        assert line in listing

    out = kmock.kubectl("delete", "rol", "granite", "--wait=false", check=True).stdout
    assert "deleted" in out
    assert kmock.emulator.read("rol", "granite", "default") is None
    assert "No resources found" in kmock.kubectl("get", "rol").stderr


def test_kubectl_explain_teaches_the_schema(kmock_crd: KubeHarness) -> None:
    out = kmock_crd.kubectl("explain", "rol.spec.idle", check=True).stdout
    assert "stopAfter" in out and "destroyAfter" in out and "Scale to zero" in out
    assert "Exoscale zone" in kmock_crd.kubectl("explain", "remoteollamas.spec.zone", check=True).stdout


def test_kubectl_apply_of_an_invalid_resource_names_the_field(kmock_crd: KubeHarness, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps(rol(diskSize=5, zone="mars-1")))
    result = kmock_crd.kubectl("apply", "-f", str(bad))
    assert result.returncode != 0
    assert "spec.diskSize" in result.stderr and "spec.zone" in result.stderr
    bad.write_text(json.dumps(rol(idle={"destroyAfter": "1h"})))
    result = kmock_crd.kubectl("apply", "-f", str(bad))
    assert "destroyAfter requires stopAfter" in result.stderr
    bad.write_text(json.dumps(rol(gpus=2)))
    result = kmock_crd.kubectl("apply", "-f", str(bad))  # kubectl asks for strict field validation
    assert result.returncode != 0 and 'unknown field "spec.gpus"' in result.stderr
    assert kmock_crd.emulator.read_all("rol") == []


# ---- the API as kopf sees it --------------------------------------------------------------------


def test_discovery_and_lists(kmock_crd: KubeHarness) -> None:
    assert call(kmock_crd, "GET", "/api/v1").json()["groupVersion"] == "v1"
    gv = call(kmock_crd, "GET", "/apis/remoteollama.dev/v1alpha1").json()
    assert gv["groupVersion"] == "remoteollama.dev/v1alpha1"
    names = {r["name"]: r for r in gv["resources"]}
    assert names["remoteollamas"]["shortNames"] == ["rol"] and "remoteollamas/status" in names
    namespaces = call(kmock_crd, "GET", "/api/v1/namespaces").json()
    assert namespaces["kind"] == "NamespaceList" and namespaces["apiVersion"] == "v1"
    assert {"default", "kube-system"} <= {ns["metadata"]["name"] for ns in namespaces["items"]}
    listing = call(kmock_crd, "GET", ROL).json()
    assert (listing["kind"], listing["apiVersion"]) == ("RemoteOllamaList", "remoteollama.dev/v1alpha1")
    assert listing["metadata"]["resourceVersion"]


def test_stamping_and_generation(kmock_crd: KubeHarness) -> None:
    created = call(kmock_crd, "POST", ROL, rol())
    assert created.status_code == 201
    meta = created.json()["metadata"]
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z") and meta["generation"] == 1
    rv = int(meta["resourceVersion"])
    annotated = call(
        kmock_crd, "PATCH", f"{ROL}/granite", {"metadata": {"annotations": {"a": "b"}}}, headers=MERGE
    ).json()
    assert annotated["metadata"]["generation"] == 1 and int(annotated["metadata"]["resourceVersion"]) > rv
    changed = call(kmock_crd, "PATCH", f"{ROL}/granite", {"spec": {"diskSize": 300}}, headers=MERGE).json()
    assert changed["metadata"]["generation"] == 2
    same = call(kmock_crd, "PATCH", f"{ROL}/granite", {"spec": {"diskSize": 300}}, headers=MERGE).json()
    assert (
        same["metadata"]["resourceVersion"] == changed["metadata"]["resourceVersion"]
    )  # no-op: no new version


def test_standard_errors(kmock_crd: KubeHarness) -> None:
    missing = call(kmock_crd, "GET", f"{ROL}/nope")
    assert (missing.status_code, missing.json()["reason"]) == (404, "NotFound")
    assert call(kmock_crd, "POST", ROL, rol()).status_code == 201
    again = call(kmock_crd, "POST", ROL, rol())
    assert (again.status_code, again.json()["reason"]) == (409, "AlreadyExists")
    current = call(kmock_crd, "GET", f"{ROL}/granite").json()
    stale = dict(current, metadata={**current["metadata"], "resourceVersion": "1"})
    conflict = call(kmock_crd, "PUT", f"{ROL}/granite", stale)
    assert (conflict.status_code, conflict.json()["reason"]) == (409, "Conflict")
    ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
           {"op": "add", "path": "/metadata/finalizers", "value": ["x/y"]}]  # fmt: skip
    failed = call(kmock_crd, "PATCH", f"{ROL}/granite", ops, headers=JSONPATCH)
    assert (failed.status_code, failed.json()["reason"]) == (422, "Invalid")
    ops[0]["value"] = current["metadata"]["resourceVersion"]
    assert call(kmock_crd, "PATCH", f"{ROL}/granite", ops, headers=JSONPATCH).json()["metadata"][
        "finalizers"
    ] == ["x/y"]
    invalid = call(kmock_crd, "POST", ROL, rol("other", diskSize=1))
    assert invalid.status_code == 422 and "spec.diskSize" in invalid.json()["message"]
    no_ns = call(kmock_crd, "POST", ROL.replace("default", "elsewhere"), rol("x"))
    assert (no_ns.status_code, no_ns.json()["reason"]) == (404, "NotFound")


def test_finalizers_hold_deletion(kmock_crd: KubeHarness) -> None:
    body = rol()
    body["metadata"]["finalizers"] = ["remoteollama.dev/cleanup"]
    call(kmock_crd, "POST", ROL, body)
    deleting = call(kmock_crd, "DELETE", f"{ROL}/granite").json()
    assert deleting["metadata"]["deletionTimestamp"]
    assert kmock_crd.emulator.read("rol", "granite", "default") is not None
    added = call(kmock_crd, "PATCH", f"{ROL}/granite", {"metadata": {"finalizers": ["a", "remoteollama.dev/cleanup"]}},
                 headers=MERGE)  # fmt: skip
    assert added.status_code == 422
    call(kmock_crd, "PATCH", f"{ROL}/granite", {"metadata": {"finalizers": None}}, headers=MERGE)
    assert kmock_crd.emulator.read("rol", "granite", "default") is None


def test_status_subresource_is_isolated(kmock_crd: KubeHarness) -> None:
    call(kmock_crd, "POST", ROL, {**rol(), "status": {"phase": "Ready"}})
    assert "status" not in (kmock_crd.emulator.read("rol", "granite", "default") or {})  # ignored on create
    via_status = call(kmock_crd, "PATCH", f"{ROL}/granite/status",
                      {"spec": {"diskSize": 999}, "status": {"phase": "Ready", "bogus": 1}}, headers=MERGE).json()  # fmt: skip
    assert via_status["spec"]["diskSize"] == 100 and via_status["status"] == {"phase": "Ready"}  # pruned
    via_main = call(kmock_crd, "PATCH", f"{ROL}/granite", {"spec": {"diskSize": 200}, "status": {"phase": "Failed"}},
                    headers=MERGE).json()  # fmt: skip
    assert via_main["spec"]["diskSize"] == 200 and via_main["status"]["phase"] == "Ready"
    bad = call(kmock_crd, "PATCH", f"{ROL}/granite/status", {"status": {"phase": "Sleeping"}}, headers=MERGE)
    assert bad.status_code == 422 and "status.phase" in bad.json()["message"]


def test_label_and_field_selectors(kmock: KubeHarness) -> None:
    for name, labels in (
        ("a", {"managed-by": "remote-ollama", "tier": "x"}),
        ("b", {"managed-by": "other"}),
        ("c", {}),
    ):
        kmock.emulator.create_object(
            "configmaps", {"metadata": {"name": name, "namespace": "default", "labels": labels}}
        )

    def names(query: str) -> list[str]:
        items = call(kmock, "GET", f"/api/v1/namespaces/default/configmaps?{query}").json()["items"]
        return [i["metadata"]["name"] for i in items]

    assert names("labelSelector=managed-by%3Dremote-ollama") == ["a"]
    assert names("labelSelector=managed-by") == ["a", "b"]
    assert names("labelSelector=managed-by+in+(other,x)") == ["b"]
    assert names("labelSelector=!managed-by") == ["c"]
    assert names("labelSelector=managed-by!%3Dother") == ["a", "c"]
    assert names("fieldSelector=metadata.name%3Db") == ["b"]


def test_owner_references_are_garbage_collected(kmock_crd: KubeHarness) -> None:
    owner = call(kmock_crd, "POST", ROL, rol()).json()
    ref = {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": "granite",
        "uid": owner["metadata"]["uid"],
    }
    kmock_crd.emulator.create_object("secrets", {"metadata": {"name": "granite-remote-ollama", "namespace": "default",
                                                      "ownerReferences": [ref]}})  # fmt: skip
    call(kmock_crd, "DELETE", f"{ROL}/granite")
    assert kmock_crd.emulator.read("secrets", "granite-remote-ollama", "default") is None


def test_watch_streams_json_and_resumes(kmock_crd: KubeHarness) -> None:
    call(kmock_crd, "POST", ROL, rol("first"))
    listing = call(kmock_crd, "GET", ROL).json()
    call(kmock_crd, "POST", ROL, rol("second"))  # between the list and the watch: must not be lost
    events: list[dict[str, Any]] = []
    url = f"{kmock_crd.url}{ROL}?watch=true&timeoutSeconds=5&resourceVersion={listing['metadata']['resourceVersion']}"

    def consume() -> None:
        with requests.get(url, stream=True, timeout=10) as response:
            assert response.headers["Content-Type"].startswith("application/json")
            for line in response.iter_lines():
                events.append(json.loads(line))
                if len(events) == 3:
                    return

    reader = threading.Thread(target=consume)
    reader.start()
    wait_for(lambda: events, timeout=5, what="the event created before the watch")
    call(kmock_crd, "PATCH", f"{ROL}/first", {"metadata": {"labels": {"x": "y"}}}, headers=MERGE)
    call(kmock_crd, "DELETE", f"{ROL}/second")
    reader.join(10)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "second"), ("MODIFIED", "first"), ("DELETED", "second")
    ]  # fmt: skip
    fresh = requests.get(f"{kmock_crd.url}{ROL}?watch=1&timeoutSeconds=1", stream=True, timeout=10)
    initial = [json.loads(line) for line in fresh.iter_lines()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in initial] == [("ADDED", "first")]


def test_crd_deletion_unregisters_the_resource(kmock_crd: KubeHarness) -> None:
    call(kmock_crd, "POST", ROL, rol())
    kmock_crd.kubectl("delete", "crd", "remoteollamas.remoteollama.dev", "--wait=false", check=True)
    assert call(kmock_crd, "GET", ROL).status_code == 404
    assert "rol" not in kmock_crd.kubectl("api-resources").stdout.split()


# ---- kopf ---------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_kopf_runs_a_whole_lifecycle(kmock_crd: KubeHarness) -> None:
    emulator = kmock_crd.emulator

    def status() -> dict[str, Any]:
        return (emulator.read("rol", "granite", "default") or {}).get("status", {})

    args = ["run", "--all-namespaces", "--standalone", str(TOY_OPERATOR)]
    with kopf.testing.KopfRunner(args, timeout=30) as runner:
        kmock_crd.kubectl("apply", "-f", "-", input=json.dumps(rol()), check=True)
        wait_for(lambda: status().get("phase") == "Pending", timeout=20, what="the create handler's status")
        stored = emulator.read("rol", "granite", "default") or {}
        assert "remoteollama.dev/cleanup" in stored["metadata"]["finalizers"]

        kmock_crd.kubectl("annotate", "rol", "granite", "remoteollama.dev/wake-requested=2025-01-01T00:00:00Z",
                         check=True)  # fmt: skip
        wait_for(lambda: status().get("phase") == "Starting", timeout=20, what="the annotation handler")
        assert status()["message"] == "wake 2025-01-01T00:00:00Z"

        kmock_crd.kubectl("delete", "rol", "granite", "--wait=false", check=True)
        wait_for(
            lambda: emulator.read("rol", "granite", "default") is None, timeout=20, what="finalizer removal"
        )
    assert runner.exception is None, runner.exception
    assert runner.exit_code == 0
