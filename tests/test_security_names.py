"""Names are names: a name from a spec can never become another path on the Kubernetes API.

A fake API server records the raw path of every request, so the test sees exactly what the
operator asks for, as the real API server would receive it.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from crd_schema import validate_remoteollama

from remote_ollama.kube.api import KubeAPI, path_for, segment
from remote_ollama.kube.operator.context import OPERATOR, ResourceContext
from remote_ollama.spec.model import Spec, SpecError
from remote_ollama.spec.parse import parse_spec

TRAVERSAL = "../../team-b/secrets/exoscale-credentials"
TEAM_B_SECRET = "/api/v1/namespaces/team-b/secrets/exoscale-credentials"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class FakeAPI:
    """Answers GET of Secrets stored by raw path; remembers every raw path asked for."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.secrets: dict[str, dict[str, object]] = {}

    async def handle(self, request: web.Request) -> web.Response:
        self.paths.append(request.raw_path)
        secret = self.secrets.get(request.raw_path)
        if secret is None:
            return web.json_response(
                {"kind": "Status", "reason": "NotFound", "message": "not found"}, status=404
            )
        return web.json_response(secret)


@pytest.fixture
async def fake_api() -> AsyncIterator[tuple[FakeAPI, KubeAPI]]:
    fake = FakeAPI()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    api = KubeAPI(f"http://127.0.0.1:{runner.addresses[0][1]}", {}, False)
    try:
        yield fake, api
    finally:
        await api.close()
        await runner.cleanup()


def test_every_segment_is_escaped_completely() -> None:
    path = path_for("v1", "secrets", "team-a", TRAVERSAL)
    assert path == "/api/v1/namespaces/team-a/secrets/..%2F..%2Fteam-b%2Fsecrets%2Fexoscale-credentials"
    assert path_for("v1", "secrets", "a/b", "x") == "/api/v1/namespaces/a%2Fb/secrets/x"
    for bad in ("", ".", ".."):
        with pytest.raises(ValueError):
            segment(bad)


async def test_a_traversing_name_reads_nothing_outside_the_namespace(
    fake_api: tuple[FakeAPI, KubeAPI],
) -> None:
    fake, api = fake_api
    fake.secrets[TEAM_B_SECRET] = {"data": {"api-key": _b64("EXO-team-b"), "api-secret": _b64("s")}}
    assert await api.get(path_for("v1", "secrets", "team-a", TRAVERSAL)) is None
    assert fake.paths and all(p.startswith("/api/v1/namespaces/team-a/secrets/") for p in fake.paths)


async def test_credentials_status_does_not_tell_whether_a_secret_exists_elsewhere(
    fake_api: tuple[FakeAPI, KubeAPI],
) -> None:
    fake, api = fake_api
    OPERATOR._api = api
    try:
        ctx = ResourceContext("uid-a", "team-a", "llm", {"metadata": {"name": "llm", "namespace": "team-a"}})
        spec = Spec(credentials_secret=TRAVERSAL)
        absent, cloud = await ctx.cloud_for(spec)
        assert cloud is None
        fake.secrets[TEAM_B_SECRET] = {"data": {"api-key": _b64("EXO-team-b"), "api-secret": _b64("s")}}
        present, cloud = await ctx.cloud_for(spec)
        assert cloud is None, "team-b's credentials were used for a team-a resource"
        assert present == absent
        assert all(p.startswith("/api/v1/namespaces/team-a/secrets/") for p in fake.paths)
        for bad in (".", ".."):
            problem, cloud = await ctx.cloud_for(Spec(credentials_secret=bad))
            assert cloud is None and problem is not None and "not a valid" in problem
    finally:
        OPERATOR._api = None


@pytest.mark.parametrize("field", ["credentialsSecretRef", "clientAuth"])
def test_the_crd_and_the_parser_refuse_a_traversing_name(field: str) -> None:
    ref = {"name": TRAVERSAL}
    spec = {"credentialsSecretRef": {"name": "exoscale"}}
    spec[field] = ref if field == "credentialsSecretRef" else {"secretRef": ref}
    with pytest.raises(SpecError):
        parse_spec(spec)
    body = {"apiVersion": "remoteollama.dev/v1alpha1", "kind": "RemoteOllama", "spec": spec}
    body["metadata"] = {"name": "llm", "namespace": "team-a"}
    with pytest.raises(Exception, match="does not match"):
        validate_remoteollama(body)
