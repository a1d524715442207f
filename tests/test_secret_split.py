"""The proxy's Secret holds only what the proxy uses (issue 18): the record of its instance (and, for
a VM made before enrolment, its server key) live in the operator's own Secret, which the proxy's
Role does not name. Since enrolment nobody but the VM holds its server key."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

from remote_ollama.engine.credentials import CredentialStore, InstanceRecord
from remote_ollama.kube.operator import children
from remote_ollama.kube.operator.context import SecretStore
from remote_ollama.vm.pki import VMCredentials, generate_vm_credentials, make_vm_identity

BODY = {
    "apiVersion": "remoteollama.dev/v1alpha1",
    "kind": "RemoteOllama",
    "metadata": {"name": "granite", "namespace": "ai", "uid": "u-1"},
    "spec": {},
}
PROXY, OWN = (
    "/api/v1/namespaces/ai/secrets/granite-remote-ollama",
    "/api/v1/namespaces/ai/secrets/granite-remote-ollama-vm",
)


class FakeAPI:
    """Secrets by path; merge patches as the API server applies them (null removes a key)."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}

    async def get(self, path: str) -> dict[str, Any] | None:
        return self.objects.get(path)

    async def create(self, collection: str, body: dict[str, Any]) -> dict[str, Any]:
        self.objects[f"{collection}/{body['metadata']['name']}"] = body
        return body

    async def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        obj = self.objects[path]
        data = {**obj.get("data", {}), **patch.get("data", {})}
        obj["data"] = {k: v for k, v in data.items() if v is not None}
        return obj


def decoded(obj: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in obj["data"].items()}


async def test_the_proxys_secret_has_no_server_key() -> None:
    api = FakeAPI()
    creds = generate_vm_credentials()
    store = CredentialStore(SecretStore(api, BODY))  # type: ignore[arg-type]
    await store.save(creds, InstanceRecord(creation_token="t"))
    await store.keep(InstanceRecord("i-1", "t"))
    assert set(decoded(api.objects[PROXY])) == {"ca.crt", "client.crt", "client.key"}
    creds = creds.pinned_to(make_vm_identity()[0])  # what the first contact does
    await store.save(creds, InstanceRecord("i-1", "t"))
    proxy, own = decoded(api.objects[PROXY]), decoded(api.objects[OWN])
    assert set(proxy) == {"ca.crt", "tls.crt", "client.crt", "client.key"}  # the pinned certificate
    assert "tls.key" not in own and own["instance-id"] == "i-1"
    assert [k for k, v in {**own, **proxy}.items() if "PRIVATE KEY" in v] == ["client.key"]
    assert VMCredentials.from_secret_data(proxy, proxy=True).client_context() is not None
    role = children.proxy_role(BODY)
    assert [r["resourceNames"] for r in role["rules"] if r["resources"] == ["secrets"]] == [
        ["granite-remote-ollama"]
    ]
    fresh = CredentialStore(SecretStore(api, BODY))  # type: ignore[arg-type]
    assert await fresh.load() == creds and (await fresh.record()) == InstanceRecord("i-1", "t")


async def test_a_secret_from_before_the_split_is_read_then_split() -> None:
    api = FakeAPI()
    cert, key = make_vm_identity()  # a VM made before enrolment: the operator made its key
    creds = replace(generate_vm_credentials(), cert_pem=cert, key_pem=key)
    legacy = children.vm_secret(BODY, creds.to_secret_data(), "granite-remote-ollama")
    api.objects[PROXY] = legacy
    store = CredentialStore(SecretStore(api, BODY))  # type: ignore[arg-type]
    assert await store.load() == creds and await store.record() == InstanceRecord()
    await store.keep(InstanceRecord("i-9"))
    assert "tls.key" not in decoded(api.objects[PROXY]) and decoded(api.objects[PROXY])["tls.crt"] == cert
    assert decoded(api.objects[OWN])["tls.key"] == creds.key_pem
