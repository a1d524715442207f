"""The Ollama the VM runs: the pinned image, its version, and what each Ollama version can do.

One constant pins the default `ollama/ollama` image (tag and digest); `spec.ollama.image` (standalone
`OLLAMA_IMAGE`) overrides it. The proxy answers `GET /api/version` with the version of that image
before any VM exists, and the simulated VM serves only what that version serves, so a test cannot
pass on a route the deployed VM lacks.

`FIRST_VERSION` is taken from Ollama's own history: for each route, the first stable tag whose
`server/routes.go` registers it (`git show vX.Y.Z:server/routes.go` over every tag of
github.com/ollama/ollama); `encoding_format` is the first tag whose `openai/` package reads it
("embeddings: base64 encoding fix", #12715). Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

# The newest stable release (2026-10-02). Digest: the multi-arch index Docker Hub serves for the tag.
DEFAULT_OLLAMA_VERSION = "0.35.1"
DEFAULT_OLLAMA_IMAGE = (
    f"ollama/ollama:{DEFAULT_OLLAMA_VERSION}"
    "@sha256:292ee7945dfc3d5840a181f3ab86fedb1e66703e02c8af98b50f4da56b7e278c"
)

# (method, path as the simulator routes it) -> the first Ollama release that serves it.
FIRST_VERSION: Mapping[tuple[str, str], str] = {
    ("GET", "/api/version"): "0.1.14",
    ("GET", "/api/ps"): "0.1.38",
    ("POST", "/api/embed"): "0.2.6",
    ("POST", "/v1/chat/completions"): "0.1.24",
    ("POST", "/v1/completions"): "0.2.0",
    ("POST", "/v1/embeddings"): "0.2.6",
    ("GET", "/v1/models"): "0.2.0",
    ("GET", "/v1/models/{model:.+}"): "0.2.0",
    ("POST", "/api/me"): "0.12.0",
    ("POST", "/api/signout"): "0.12.1",
    ("POST", "/v1/responses"): "0.13.3",
    ("POST", "/v1/messages"): "0.14.0",
    ("GET", "/api/status"): "0.16.2",
    ("POST", "/v1/audio/transcriptions"): "0.20.0",
}
# Behaviours inside a route.
EMBEDDINGS_BASE64 = "0.12.7"  # /v1/embeddings honours encoding_format (before: always float arrays)

# Routes the README promises; every one must exist in the pinned version (a test checks).
PROMISED_ROUTES = (
    ("POST", "/api/generate"),
    ("POST", "/api/chat"),
    ("POST", "/api/embed"),
    ("GET", "/api/tags"),
    ("GET", "/api/ps"),
    ("GET", "/api/version"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/embeddings"),
    ("GET", "/v1/models"),
    ("POST", "/v1/messages"),
)

_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")
ENV_NAME_RE = re.compile(r"^OLLAMA_[A-Z0-9_]+$")
# Written into a systemd unit's ExecStart as `"-e" "NAME=VALUE"`: nothing that ends the quotes,
# escapes, expands (`%` is a systemd specifier, `$` an environment reference) or ends the line.
ENV_VALUE_RE = re.compile("^[^\\x00-\\x1f\\x7f\"'\\\\%$`]{0,1024}$")
MAX_ENV = 64


def version_key(version: str) -> tuple[int, int, int] | None:
    m = _VERSION_RE.match(version.strip())
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def at_least(version: str, first: str) -> bool:
    """True when `version` is `first` or newer; an unparseable version counts as the newest."""
    have, need = version_key(version), version_key(first)
    return have is None or need is None or have >= need


def version_of(image: str | None) -> str:
    """The Ollama version an image reference names: `ollama/ollama:0.35.1-rocm@sha256:…` -> 0.35.1.

    No image (spec.ollama.image unset: the VM runs the pinned one), or a tag that is no version
    (`latest`, a digest only), gives the default pin's version: the best guess until the VM answers.
    """
    if not image:
        return DEFAULT_OLLAMA_VERSION
    name = image.split("@", 1)[0]
    tail = name.rsplit("/", 1)[-1]
    tag = tail.split(":", 1)[1] if ":" in tail else ""
    key = version_key(tag)
    return "{}.{}.{}".format(*key) if key else DEFAULT_OLLAMA_VERSION


def serves(version: str, method: str, path: str) -> bool:
    first = FIRST_VERSION.get((method, path))
    return first is None or at_least(version, first)


def env_problems(env: Mapping[str, str] | Iterable[tuple[str, str]]) -> list[str]:
    """Why `env` cannot be passed to the VM's Ollama container (empty when it can)."""
    items = list(env.items()) if isinstance(env, Mapping) else list(env)
    problems = []
    if len(items) > MAX_ENV:
        problems.append(f"at most {MAX_ENV} settings")
    for name, value in items:
        if not isinstance(name, str) or not ENV_NAME_RE.fullmatch(name):
            problems.append(f"{name!r}: names must match OLLAMA_[A-Z0-9_]+")
        if not isinstance(value, str) or not ENV_VALUE_RE.fullmatch(value):
            problems.append(
                f"{name}: value must be at most 1024 characters without quotes, backslashes, %, $ or newlines"
            )
    return problems
