"""The two narrow interfaces the proxy depends on, and the settings it is built with.

The proxy knows nothing of Kubernetes or Exoscale: an `UpstreamResolver` says where the VM is and
whether it is ready, an `ActivitySink` records activity and wake requests. Operator mode implements
them with the Kubernetes API, standalone mode in-process (see `local.py`).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from remote_ollama.proxy.cors import parse_origins
from remote_ollama.spec.model import Spec
from remote_ollama.spec.sections import (
    DEFAULT_ACTIVITY_INTERVAL,
    DEFAULT_HOLD_TIMEOUT,
    DEFAULT_MAX_HELD,
    DEFAULT_MAX_HELD_BODY,
)
from remote_ollama.spec.vocabulary import Reason
from remote_ollama.vm.ollama_release import DEFAULT_OLLAMA_VERSION, version_of


@dataclass(frozen=True)
class Upstream:
    """Where to send requests: `url` like `https://127.0.10.5:11435`.

    `ssl` trusts only the resource's CA; `server_hostname` is the name its certificate is issued
    for (`resource.VM_TLS_SERVER_NAME`), since the proxy connects to a bare IP. Resolvers should hand
    out the same `SSLContext` object while the CA is unchanged: the proxy keys its connection pool
    on the context's identity.
    """

    url: str
    ssl: ssl.SSLContext | None = None
    api_key: str | None = None
    server_hostname: str | None = None


@dataclass(frozen=True)
class RouteKey:
    """What a request says about where it is best served (proxy/route_key.py reads it): its model,
    and the first bytes of its prompt or messages (raw JSON text: a conversation sends the same
    bytes each turn). A replicated endpoint's resolver routes by it (proxy/routing.py)."""

    model: str = ""
    prefix: bytes = b""


@dataclass(frozen=True)
class UpstreamState:
    """A snapshot for decisions that must not wait: `phase` is the resource phase (Ready, Stopped...)."""

    phase: str
    ready: bool
    instance: bool = True  # a VM exists (running or not); False before the first is created
    # The upstream when ready: a request on the hot path needs no second question to the resolver.
    upstream: Upstream | None = None
    # What the wake is doing, in words (e.g. the VM's current setup step), for wake progress lines.
    detail: str = ""

    def down_words(self) -> str:
        """How to name the VM's absence: "no instance yet" is not "stopped"."""
        return "no remote instance yet" if not self.instance else f"remote instance is {self.phase.lower()}"


@dataclass(frozen=True)
class Refusal:
    """Why no wake is coming soon (a budget cap, bad credentials, an unreachable cloud API), so
    requests fail at once with `message`; retrying makes sense at `retry_at` when known, or
    `retry_in` seconds after each answer (a time-bounded refusal)."""

    message: str
    reason: Reason | None = None  # the status vocabulary's word, if any
    retry_in: float | None = None
    retry_at: datetime | None = None


class NotReady(Exception):
    """The upstream did not become ready before the deadline.

    `refused`: no wake is under way and none will be until something changes (a budget cap, bad
    credentials): the client is not told "provisioning", and `retry_at` (a budget reset) is when
    retrying makes sense, if anyone knows.
    """

    def __init__(
        self,
        phase: str,
        message: str,
        *,
        refused: bool = False,
        retry_at: datetime | None = None,
        reason: Reason | None = None,
    ) -> None:
        super().__init__(message)
        self.phase = phase
        self.message = message
        self.refused = refused
        self.reason = reason  # the status vocabulary's word (remote_ollama.spec.vocabulary.Reason), if any
        self.retry_at = retry_at


class UpstreamResolver(Protocol):
    async def await_ready(self, deadline: float) -> Upstream:
        """The upstream once ready; returns at once when ready already, even past the deadline.

        `deadline` is on the event loop's clock (`loop.time()`); raise `NotReady` when it passes.
        """
        ...

    def state(self, key: RouteKey | None = None) -> UpstreamState:
        """Now, without waiting; when ready, `upstream` is where this request goes (`key`: what
        it says about where it is best served, when the proxy read it: more than one replica)."""
        ...


class ActivitySink(Protocol):
    async def touch(self, at: datetime, in_flight: int = 0) -> None:
        """Record real use at `at` (UTC) and how many requests are in flight then; called debounced
        by `ActivityReporter`, and at once when the first request begins (in flight 0 -> 1)."""
        ...

    async def request_wake(self, at: datetime) -> None:
        """Ask the lifecycle to start the VM now; called at once when a request finds it down."""
        ...


WAKE_PROGRESS_ENV = "REMOTE_OLLAMA_WAKE_PROGRESS"


def wake_progress_from_env(env: Mapping[str, str]) -> bool:
    """`ProxySettings.wake_progress` from $REMOTE_OLLAMA_WAKE_PROGRESS (1/true/yes/on)."""
    return env.get(WAKE_PROGRESS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _no_extra() -> Mapping[str, Any]:
    return {}


@dataclass(frozen=True)
class ProxySettings:
    """How the proxy behaves; defaults are the resource's defaults and Ollama's own behaviour."""

    hold_timeout: float = DEFAULT_HOLD_TIMEOUT
    max_held_requests: int = DEFAULT_MAX_HELD
    activity_interval: float = DEFAULT_ACTIVITY_INTERVAL
    # Extra allowed CORS origins, as OLLAMA_ORIGINS (comma-separated there, `*` wildcards).
    allowed_origins: tuple[str, ...] = ()
    # Bearer keys clients must present; empty means no auth, as Ollama (see also `client_auth_required`).
    client_api_keys: frozenset[str] = frozenset()
    # Client auth is on even with no key yet (operator mode: the key Secret is named but unread).
    client_auth_required: bool = False
    # pull/push/create/copy/delete/blobs allowed (spec.modelManagement; standalone default true).
    model_management: bool = True
    # The most body bytes held in memory for one request while the VM wakes (larger: 413).
    max_body: int = DEFAULT_MAX_HELD_BODY
    # A connection must send its request headers within this (and idle keep-alives close after it).
    header_timeout: float = 30.0
    # REMOTE_OLLAMA_FIRST_REQUEST=503: answer 503 at once (after requesting a wake) instead of holding.
    immediate_503: bool = False
    status_extra: Callable[[], Mapping[str, Any]] = field(default=_no_extra)
    retry_after: int = 10
    connect_timeout: float = 10.0
    pull_progress_interval: float = 5.0  # seconds between wake progress lines (pull, generate, chat)
    # Streaming /api/generate and /api/chat get wake progress chunks while held, as /api/pull always
    # does; per request with the header `X-Remote-Ollama-Progress: true` when this is off.
    wake_progress: bool = False
    # What polling routes answer before any VM has (see polling.py): the spec's models and the
    # version of the Ollama image the VM runs.
    models: tuple[str, ...] = ()
    ollama_version: str = DEFAULT_OLLAMA_VERSION


def proxy_settings(
    spec: Spec, env: Mapping[str, str], *, base: ProxySettings | None = None, **shell: Any
) -> ProxySettings:
    """The one way to build `ProxySettings` (operator-mode proxy, standalone, embedded): what the
    parsed spec says (wake, model management, models, image), what the proxy's environment says
    (OLLAMA_ORIGINS, REMOTE_OLLAMA_WAKE_PROGRESS), then what only the shell knows (`shell`: client
    keys, status_extra, ...). `base`: settings to update when the spec changes (their shell fields kept)."""
    from_spec: dict[str, Any] = {
        "hold_timeout": spec.wake.hold_timeout,
        "max_held_requests": spec.wake.max_held_requests,
        "activity_interval": spec.activity_interval,
        "allowed_origins": parse_origins(env.get("OLLAMA_ORIGINS", "")),
        "model_management": spec.model_management,
        "max_body": spec.wake.max_held_body_bytes,
        "wake_progress": spec.wake.progress or wake_progress_from_env(env),
        "models": spec.models,
        "ollama_version": version_of(spec.ollama.image),
    }
    return replace(base or ProxySettings(), **{**from_spec, **shell})
