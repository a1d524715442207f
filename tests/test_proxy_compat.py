"""Black box: the official ollama (sync and async), openai and anthropic clients through the proxy,
in front of the simulated Ollama over TLS with its API key, see what they would see from Ollama.

The proxy requires a client key, given as each client's users give it: `OLLAMA_API_KEY` for
ollama, `api_key` for openai, `api_key` (X-Api-Key) or `auth_token` for anthropic."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import ollama
import openai
import pytest
from proxy_world import MODELS, ThreadedWorld, World, threaded_world

from remote_ollama.proxy.interfaces import ProxySettings

MODEL, EMBED = MODELS
CLIENT_KEY = "compat-client-key-0123456789"


@pytest.fixture(scope="module")
def tw() -> Iterator[tuple[ThreadedWorld, World]]:
    with threaded_world(ProxySettings(client_api_keys=frozenset({CLIENT_KEY})), token_delay=0.001) as pair:
        yield pair


@pytest.fixture
def w(tw: tuple[ThreadedWorld, World], monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setenv("OLLAMA_API_KEY", CLIENT_KEY)  # what the ollama clients send as Bearer
    return tw[1]


@pytest.fixture
def client(w: World) -> ollama.Client:
    return ollama.Client(host=w.url)


def test_without_the_key_every_client_gets_401(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_API_KEY")
    with pytest.raises(ollama.ResponseError) as err:
        ollama.Client(host=w.url).list()
    assert err.value.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{w.url}/v1", api_key="ollama").models.list()
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=w.url, api_key="ollama").messages.create(
            model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )


def test_list_show_ps(client: ollama.Client) -> None:
    assert {m.model for m in client.list().models} >= set(MODELS)
    assert client.show(MODEL).details is not None
    client.generate(MODEL, "load it", stream=False)
    assert MODEL in {m.model for m in client.ps().models}


def test_generate_and_chat_streaming_and_not(client: ollama.Client) -> None:
    whole = client.generate(MODEL, "why is the sky blue?", stream=False)
    assert whole.done and whole.response
    parts = list(client.generate(MODEL, "why is the sky blue?", stream=True))
    assert parts[-1].done and "".join(p.response for p in parts) == whole.response
    messages = [{"role": "user", "content": "hello"}]
    reply = client.chat(MODEL, messages=messages, stream=False)
    assert reply.message.role == "assistant" and reply.message.content
    chunks = list(client.chat(MODEL, messages=messages, stream=True))
    assert chunks[-1].done and "".join(c.message.content or "" for c in chunks) == reply.message.content


def test_embed(client: ollama.Client) -> None:
    result = client.embed(EMBED, ["one", "two"])
    assert len(result.embeddings) == 2 and len(result.embeddings[0]) > 0


def test_pull_push_create_copy_delete(client: ollama.Client) -> None:
    statuses = [p.status for p in client.pull("qwen3:0.6b", stream=True)]
    assert statuses[-1] == "success"
    assert client.pull("qwen3:0.6b", stream=False).status == "success"
    assert client.create("mine/custom:1", from_=MODEL, system="be brief").status == "success"
    assert client.copy("mine/custom:1", "mine/copy:1").status == "success"
    assert client.push("mine/copy:1", stream=False).status == "success"
    assert client.delete("mine/copy:1").status == "success"
    with pytest.raises(ollama.ResponseError) as err:
        client.delete("mine/copy:1")
    assert err.value.status_code == 404


def test_blob_upload_through_the_client(client: ollama.Client, tmp_path: Path, w: World) -> None:
    blob = tmp_path / "adapter.bin"
    blob.write_bytes(b"\x00weights" * 100_000)
    digest = client.create_blob(blob)
    assert digest == "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest()
    assert w.state.blob_present(digest)
    # the same blob with a Content-Length body, as curl sends it
    other = b"other blob" * 1000
    other_digest = "sha256:" + hashlib.sha256(other).hexdigest()
    auth = {"Authorization": f"Bearer {CLIENT_KEY}"}
    r = httpx.post(f"{w.url}/api/blobs/{other_digest}", content=other, headers=auth)
    assert r.status_code == 201


def test_errors_reach_the_client(client: ollama.Client, w: World) -> None:
    with pytest.raises(ollama.ResponseError) as err:
        client.generate("no-such-model:1b", "x")
    assert err.value.status_code == 404
    w.state.error_mid_stream_after(1, "model runner crashed")
    with pytest.raises(ollama.ResponseError) as err:
        list(client.generate(MODEL, "x", stream=True))
    assert "model runner crashed" in str(err.value)


async def test_async_client(w: World) -> None:
    client = ollama.AsyncClient(host=w.url)
    assert {m.model for m in (await client.list()).models} >= set(MODELS)
    parts = [
        p async for p in await client.chat(MODEL, messages=[{"role": "user", "content": "hi"}], stream=True)
    ]
    assert parts[-1].done
    whole = await client.generate(MODEL, "hi", stream=False)
    assert whole.done


def test_openai(w: World) -> None:
    client = openai.OpenAI(base_url=f"{w.url}/v1", api_key=CLIENT_KEY)
    assert {m.id for m in client.models.list().data} >= set(MODELS)
    assert client.models.retrieve(MODEL).id == MODEL
    messages = [{"role": "user", "content": "hello"}]
    done = client.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
    assert done.choices[0].message.content
    stream = client.chat.completions.create(model=MODEL, messages=messages, stream=True)  # type: ignore[arg-type]
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == done.choices[0].message.content
    completion = client.completions.create(model=MODEL, prompt="say hi")
    assert completion.choices[0].text
    streamed = "".join(
        c.choices[0].text for c in client.completions.create(model=MODEL, prompt="say hi", stream=True)
    )
    assert streamed == completion.choices[0].text
    vectors = client.embeddings.create(model=EMBED, input=["a", "b"])  # base64 by default
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) > 0
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope:1b", messages=messages)  # type: ignore[arg-type]


async def test_async_openai_streaming(w: World) -> None:
    client = openai.AsyncOpenAI(base_url=f"{w.url}/v1", api_key=CLIENT_KEY)
    stream = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = [c async for c in stream]
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize("how", ["api_key", "auth_token"])
def test_anthropic_messages(w: World, how: str) -> None:
    client = anthropic.Anthropic(base_url=w.url, **{how: CLIENT_KEY})
    message = client.messages.create(
        model=MODEL, max_tokens=256, messages=[{"role": "user", "content": "hello"}]
    )
    text = message.content[0].text  # type: ignore[union-attr]
    assert text and message.stop_reason == "end_turn"
    with client.messages.stream(
        model=MODEL, max_tokens=256, messages=[{"role": "user", "content": "hello"}]
    ) as s:
        streamed = "".join(s.text_stream)
        final = s.get_final_message()
    assert streamed == text and final.stop_reason == "end_turn"
