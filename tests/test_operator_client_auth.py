"""Operator mode: spec.clientAuth turns client keys on for the proxy started from the operator's
Deployment; keys rotate without a restart; model management is refused by default."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import ollama
import openai
import pytest
import yaml
from cluster.fixtures import KubeNamespace
from operator_world import credentials_secret, operator_world, remote_ollama
from waiting import LIFECYCLE, wait_until

from remote_ollama.kube.access import KEY_REFRESH_SECONDS

OLD, NEW = "team-a-key-0123456789abcdef", "team-a-key-rotated-9876543210"


def keys_secret(**keys: str) -> str:
    """`data`, not `stringData`: `kubectl apply` then removes a key left out (rotation)."""
    meta = {"name": "granite-clients"}  # the test's namespace (kubectl's context)
    data = {k: base64.b64encode(v.encode()).decode() for k, v in keys.items()}
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "data": data})


def status_of(url: str, path: str, key: str | None = None, method: str = "GET", body: object = None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_client_keys_model_management_and_rotation(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    with operator_world(kube, monkeypatch) as world:
        world.apply(credentials_secret())
        world.apply(keys_secret(alice=OLD))
        world.apply(remote_ollama(clientAuth={"secretRef": {"name": "granite-clients"}}))
        world.wait_phase("Ready")
        deployment = world.get("deployment", "granite")
        assert deployment is not None and OLD not in json.dumps(deployment), "a key in the Deployment"
        url = world.start_proxy()

        wait_until(lambda: status_of(url, "/api/tags", OLD) == 200, LIFECYCLE, "the key accepted")
        assert status_of(url, "/api/tags") == 401
        assert status_of(url, "/api/tags", "wrong") == 401
        assert status_of(url, "/healthz") == 200
        assert status_of(url, "/metrics", method="POST", body={}) == 401
        with pytest.raises(ollama.ResponseError) as err:
            ollama.Client(host=url).generate(model="granite3.1-dense:8b", prompt="hi")
        assert err.value.status_code == 401
        monkeypatch.setenv("OLLAMA_API_KEY", OLD)
        reply = ollama.Client(host=url).generate(model="granite3.1-dense:8b", prompt="hi", stream=False)
        assert reply.done and reply.response
        chat = openai.OpenAI(base_url=f"{url}/v1", api_key=OLD).chat.completions.create(
            model="granite3.1-dense:8b", messages=[{"role": "user", "content": "hi"}]
        )
        assert chat.choices[0].message.content

        # spec.modelManagement defaults to false: the store cannot be changed through the proxy
        with pytest.raises(ollama.ResponseError) as err:
            ollama.Client(host=url).pull("qwen3:0.6b", stream=False)
        assert err.value.status_code == 403 and "spec.modelManagement" in str(err.value)
        assert status_of(url, "/api/delete", OLD, "DELETE", {"model": "granite3.1-dense:8b"}) == 403

        # rotation: the new key in, the old one out; the running proxy follows within a minute
        world.apply(keys_secret(bob=NEW))
        wait_until(
            lambda: status_of(url, "/api/tags", NEW) == 200 and status_of(url, "/api/tags", OLD) == 401,
            3 * KEY_REFRESH_SECONDS,
            "rotated key picked up",
        )
        # model management turned on in the spec: applies to the running proxy
        world.apply(
            remote_ollama(clientAuth={"secretRef": {"name": "granite-clients"}}, modelManagement=True)
        )
        wait_until(
            lambda: (
                status_of(
                    url, "/api/copy", NEW, "POST", {"source": "granite3.1-dense:8b", "destination": "x"}
                )
                == 200
            ),
            20,
            "modelManagement: true applied",
        )
