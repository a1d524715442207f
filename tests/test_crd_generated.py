"""The RemoteOllama CRD is generated from the field table: every copy a cluster installs (crds/, the
chart's crds/, manifests/) is what `python -m remote_ollama.kube.crd` prints, so a row changed in
remote_ollama/spec/fields.py without regenerating fails here, naming the command."""

from __future__ import annotations

from pathlib import Path

import pytest

from remote_ollama.kube import crd

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("target", crd.TARGETS)
def test_every_copy_is_the_generated_crd(target: str) -> None:
    assert (ROOT / target).read_text() == crd.render(), (
        f"{target} is not the CRD the field table generates: run `{crd.COMMAND}` and commit the result"
    )


def test_write_writes_every_copy(tmp_path: Path) -> None:
    for target in crd.TARGETS:
        (tmp_path / target).parent.mkdir(parents=True, exist_ok=True)
    assert crd.main(["--write", "--root", str(tmp_path)]) == 0
    assert {(tmp_path / t).read_text() for t in crd.TARGETS} == {crd.render()}


def test_a_row_is_a_node_of_the_spec_schema() -> None:
    props = crd.build()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    stop_after = props["properties"]["idle"]["properties"]["stopAfter"]
    assert stop_after["minimum"] == 1 and stop_after["x-kubernetes-int-or-string"] is True
    assert props["required"] == ["credentialsSecretRef"]
    assert props["properties"]["schedule"]["items"]["required"] == ["start", "end"]
