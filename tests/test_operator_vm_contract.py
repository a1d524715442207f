"""Operator mode, the VM contract of docs/design.md section 5 as the cloud sees it: user-data with no
bearer secret and no private key at any time (the VM makes its own key; the operator pins its
certificate at first contact and the proxy trusts only that one)."""

from __future__ import annotations

import base64

import ollama
import pytest
import yaml
from cluster.fixtures import KubeNamespace
from operator_world import credentials_secret, operator_world, remote_ollama


def files(user_data: str) -> dict[str, str]:
    doc = yaml.safe_load(base64.b64decode(user_data).decode())
    return {f["path"]: f["content"] for f in doc["write_files"]}


def test_user_data_never_holds_a_bearer_secret_or_a_private_key(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    with operator_world(kube, monkeypatch) as world:
        world.apply(credentials_secret())
        world.apply(remote_ollama())
        world.wait_phase("Ready")
        (inst,) = world.instances()
        assert inst.replaced_user_data == [], "nothing to scrub: the user-data at create is the one kept"
        created = base64.b64decode(inst.user_data or "").decode()
        assert "PRIVATE KEY" not in created and "/etc/remote-ollama/tls.key" not in files(
            inst.user_data or ""
        )
        assert "/etc/remote-ollama/api-key" not in created and "x_ollama_key" not in created
        secret = world.get("secret", "granite-remote-ollama")
        own = world.get("secret", "granite-remote-ollama-vm")
        assert secret is not None and own is not None and "api-key" not in secret["data"]
        assert "tls.key" not in secret["data"] and "tls.key" not in own["data"], (
            "nobody but the VM has its key"
        )
        client_key = base64.b64decode(secret["data"]["client.key"]).decode()
        assert client_key.splitlines()[1] not in created
        # the pinned certificate is the one the VM made at its first boot
        vm = world.sim.sim.vm(inst.id)
        assert vm is not None and vm.disk is not None
        pinned = base64.b64decode(secret["data"]["tls.crt"])
        assert pinned == vm.disk.cert_pem == base64.b64decode(own["data"]["tls.crt"])

        # the proxy from the Deployment reaches the VM with its client certificate
        url = world.start_proxy()
        reply = ollama.Client(host=url).generate(model="granite3.1-dense:8b", prompt="hi", stream=False)
        assert reply.done and reply.response
