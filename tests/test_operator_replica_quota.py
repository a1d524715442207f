"""Operator scale-out (issue 19) and a refusal retrying cannot fix (no GPU quota): as with one VM,
the proxies refuse every request at once with the reason while no replica can come up (not only
the one whose round met the error), and the request whose wake finds the quota raised is held
while a replica comes and served. On the real kube-apiserver with the Exoscale simulator."""

from __future__ import annotations

import asyncio

import pytest
from cluster.fixtures import KubeNamespace
from operator_world import credentials_secret, operator_world, remote_ollama
from test_operator_permanent import ask

from remote_ollama.kube.operator import replica_set
from remote_ollama.kube.wake_answer import ANSWER_WAIT

HOLD = "45s"


def test_replicas_without_quota_refuse_each_request_at_once_and_serve_the_first_after_the_raise(
    kube: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a refused replica's own retries come only after the test (as standalone's max_backoff=HOLD):
    # only the requests' wakes have the cloud asked again
    monkeypatch.setattr(replica_set, "backoff", lambda attempt, *, cap: 600.0)
    with operator_world(kube, monkeypatch) as world:
        world.sim.sim.exceed_quota("gpua5000")
        world.apply(credentials_secret())
        world.apply(remote_ollama(wake={"holdTimeout": HOLD}, replicas={"min": 0, "max": 2}))
        # three proxy pods: each writes one wake request per activityInterval, so each request
        # below is its proxy's first
        urls = [world.start_proxy(pod_name=f"granite-proxy-{n}") for n in range(3)]
        for url in urls[:2]:  # the first meets the error; the second is answered from it, not held
            status, _, body, waited = asyncio.run(ask(url))
            assert status == 503 and body.get("reason") == "QuotaExceeded", body
            assert waited < ANSWER_WAIT + 5, f"held {waited:.1f}s (holdTimeout {HOLD})"
        assert world.instances() == []

        world.sim.sim.set_quota("gpua5000", 4)  # the user raises the quota
        status, _, body, waited = asyncio.run(ask(urls[2]))
        assert status == 200 and body.get("done") is True, body
        assert waited < ANSWER_WAIT + 5, f"held {waited:.1f}s"
        assert [i.state for i in world.instances()] == ["running"]
