"""Operator mode, the VM contract of docs/design.md section 5 as the cloud sees it: user-data with no
bearer secret at all, and, once the VM is Ready, without its private key either."""

from __future__ import annotations

import base64

import ollama
import pytest
import yaml
from cluster.fixtures import KubeNamespace
from operator_world import credentials_secret, operator_world, remote_ollama
from waiting import wait_until


def files(user_data: str) -> dict[str, str]:
    doc = yaml.safe_load(base64.b64decode(user_data).decode())
    return {f["path"]: f["content"] for f in doc["write_files"]}


def test_user_data_holds_no_bearer_secret_and_no_private_key_after_ready(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    with operator_world(kube, monkeypatch) as world:
        world.apply(credentials_secret())
        world.apply(remote_ollama())
        world.wait_phase("Ready", timeout=40)
        (inst,) = world.instances()
        wait_until(lambda: inst.replaced_user_data, 20, "user-data replaced after Ready")
        (first,) = inst.replaced_user_data
        created, now = files(first), files(inst.user_data or "")
        assert "/etc/remote-ollama/tls.key" in created, "the VM needed its key at first boot"
        assert "PRIVATE KEY" not in base64.b64decode(inst.user_data or "").decode()
        assert now == {p: c for p, c in created.items() if p != "/etc/remote-ollama/tls.key"}
        for text in (first, inst.user_data or ""):
            decoded = base64.b64decode(text).decode()
            assert "/etc/remote-ollama/api-key" not in decoded and "x_ollama_key" not in decoded
        secret = world.get("secret", "granite-remote-ollama")
        assert secret is not None and "api-key" not in secret["data"]
        client_key = base64.b64decode(secret["data"]["client.key"]).decode()
        assert client_key.splitlines()[1] not in base64.b64decode(first).decode()

        # the proxy from the Deployment reaches the VM with its client certificate
        url = world.start_proxy()
        reply = ollama.Client(host=url).generate(model="granite3.1-dense:8b", prompt="hi", stream=False)
        assert reply.done and reply.response
