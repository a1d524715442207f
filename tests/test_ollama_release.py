"""The Ollama the VM runs: the pin is current, cloud-init runs the chosen image with the chosen
settings, and the simulated VM behaves as that version (what it lacks is absent)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shlex
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import anthropic
import openai
import pytest
import yaml
from simulated_ollama import Sim, serve

from remote_ollama.sandbox.ollama.server import make_ollama_app
from remote_ollama.sandbox.user_data import parse_user_data
from remote_ollama.spec.parse import parse_spec
from remote_ollama.vm.cloudinit import OLLAMA_IMAGE, UserDataError, encode_user_data, render_user_data
from remote_ollama.vm.ollama_release import (
    DEFAULT_OLLAMA_IMAGE,
    DEFAULT_OLLAMA_VERSION,
    FIRST_VERSION,
    PROMISED_ROUTES,
    at_least,
    serves,
    version_of,
)
from remote_ollama.vm.paths import OLLAMA_UNIT_PATH
from remote_ollama.vm.pki import generate_vm_credentials

CHAT, EMBED = "llama3.2:1b", "nomic-embed-text"
OLD = "0.11.4"  # what the VM ran before this pin (mid-2025)


def _exec_start(text: str) -> list[str]:
    doc = yaml.safe_load(text.removeprefix("#cloud-config\n"))
    unit = next(f["content"] for f in doc["write_files"] if f["path"] == OLLAMA_UNIT_PATH)
    line = next(ln for ln in unit.replace("\\\n", "").splitlines() if ln.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))  # systemd's quoting, for these characters


def test_default_pin_is_current_and_keeps_every_promised_route() -> None:
    assert OLLAMA_IMAGE == DEFAULT_OLLAMA_IMAGE
    assert DEFAULT_OLLAMA_IMAGE.startswith(f"ollama/ollama:{DEFAULT_OLLAMA_VERSION}@sha256:")
    assert version_of(DEFAULT_OLLAMA_IMAGE) == DEFAULT_OLLAMA_VERSION
    assert at_least(DEFAULT_OLLAMA_VERSION, "0.35.0")
    missing = [r for r in PROMISED_ROUTES if not serves(DEFAULT_OLLAMA_VERSION, *r)]
    assert missing == []
    assert not serves(OLD, "POST", "/v1/messages")  # why the old pin broke the README's promise
    assert version_of("ollama/ollama:0.12.3-rocm") == "0.12.3"
    assert version_of("registry:5000/ollama/ollama:v0.11.4") == OLD


def test_cloud_init_runs_the_chosen_image_with_the_chosen_settings() -> None:
    creds = generate_vm_credentials()
    default = _exec_start(render_user_data(creds, [CHAT]))
    assert default[-1] == DEFAULT_OLLAMA_IMAGE
    env = {"OLLAMA_NUM_PARALLEL": "4", "OLLAMA_CONTEXT_LENGTH": "8192", "OLLAMA_ORIGINS": "app://x, http://y"}
    text = render_user_data(creds, [CHAT], ollama_image=f"ollama/ollama:{OLD}", ollama_env=env)
    args = _exec_start(text)
    assert args[-1] == f"ollama/ollama:{OLD}"
    passed = {args[i + 1] for i, a in enumerate(args) if a == "-e"}
    assert {f"{k}={v}" for k, v in env.items()} <= passed
    assert parse_user_data(encode_user_data(text)).ollama_version == OLD
    # the simulated VM serves as many generations at once as the unit's OLLAMA_NUM_PARALLEL says
    assert parse_user_data(encode_user_data(text)).num_parallel == 4
    assert parse_user_data(encode_user_data(render_user_data(creds, [CHAT]))).num_parallel is None


@pytest.mark.parametrize(
    ("env", "why"),
    [
        ({"PATH": "/x"}, "OLLAMA_"),
        ({"OLLAMA_X": 'a" "-v" "/:/host'}, "quotes"),
        ({"OLLAMA_X": "a\nExecStartPre=/bin/sh"}, "newlines"),
        ({"OLLAMA_X": "%h"}, "%"),
        ({"OLLAMA_X": "$HOME"}, "$"),
        ({"OLLAMA_X": "a\\"}, "backslashes"),
    ],
)
def test_cloud_init_refuses_env_that_could_break_the_unit(env: dict[str, str], why: str) -> None:
    with pytest.raises(UserDataError, match=r"spec\.ollama\.env") as err:
        render_user_data(generate_vm_credentials(), [CHAT], ollama_env=env)
    assert why in str(err.value)


@pytest.fixture(params=[DEFAULT_OLLAMA_VERSION, OLD])
async def versioned(request: pytest.FixtureRequest) -> AsyncIterator[Sim]:
    async with serve(make_ollama_app([CHAT, EMBED], token_delay=0.001, version=request.param)) as sim:
        yield sim


async def test_simulated_ollama_is_the_pinned_version(versioned: Sim) -> None:
    version = versioned.state.version
    new = version == DEFAULT_OLLAMA_VERSION
    async with aiohttp.ClientSession() as http:
        async with http.get(versioned.url + "/api/version") as resp:
            assert (await resp.json()) == {"version": version}
        async with http.post(
            versioned.url + "/v1/embeddings", json={"model": EMBED, "input": "q", "encoding_format": "base64"}
        ) as resp:
            packed = (await resp.json())["data"][0]["embedding"]
        async with http.post(versioned.url + "/api/embed", json={"model": EMBED, "input": "q"}) as resp:
            native = (await resp.json())["embeddings"][0]
    if new:
        raw = base64.b64decode(packed)
        assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == pytest.approx(native, abs=1e-6)
    else:
        assert packed == pytest.approx(native)  # before 0.12.7 encoding_format was ignored

    claude = anthropic.AsyncAnthropic(base_url=versioned.url, api_key="x", max_retries=0)
    try:
        if new:
            msg = await claude.messages.create(
                model=CHAT, max_tokens=8, messages=[{"role": "user", "content": "hi"}]
            )
            assert msg.content
        else:
            with pytest.raises(anthropic.NotFoundError):
                await claude.messages.create(
                    model=CHAT, max_tokens=8, messages=[{"role": "user", "content": "hi"}]
                )
    finally:
        await claude.close()
    gpt = openai.AsyncOpenAI(base_url=versioned.url + "/v1", api_key="x", max_retries=0)
    try:
        done = await gpt.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "hi"}])
        assert done.choices[0].message.content  # served by both
    finally:
        await gpt.close()


def test_choosing_the_image_or_settings_replaces_the_vm_but_a_new_default_does_not() -> None:
    base = {"credentialsSecretRef": {"name": "c"}, "models": [CHAT]}
    default = parse_spec(base)
    image = parse_spec({**base, "ollama": {"image": f"ollama/ollama:{OLD}"}})
    env = parse_spec({**base, "ollama": {"env": {"OLLAMA_NUM_PARALLEL": "4"}}})
    env2 = parse_spec({**base, "ollama": {"env": {"OLLAMA_NUM_PARALLEL": "8"}}})
    hashes = {s.instance_hash() for s in (default, image, env, env2)}
    assert len(hashes) == 4  # each choice is a different VM (its user-data differs)
    # VMs made before the pin moved carry the hash of the cloud fields only: they are kept
    legacy = hashlib.sha256(
        json.dumps([default.zone, default.instance_type.name, default.template, default.disk_size]).encode()
    ).hexdigest()[:16]
    assert default.instance_hash() == legacy


def test_every_route_the_readme_names_exists_in_the_pinned_version() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    named = set(re.findall(r"(/(?:api|v1)/[a-z_/]+[a-z])", readme))
    assert {"/v1/messages", "/api/tags", "/api/generate"} <= named
    known = {path: method for method, path in FIRST_VERSION}
    lacking = [p for p in named if p in known and not serves(DEFAULT_OLLAMA_VERSION, known[p], p)]
    assert lacking == []
    assert DEFAULT_OLLAMA_VERSION in readme and DEFAULT_OLLAMA_IMAGE.split("@")[1][:15] in readme
