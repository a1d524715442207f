"""remote-ollama: an Ollama endpoint backed by an Exoscale GPU VM that exists only while it is used.

`from remote_ollama import RemoteOllama` (or `AsyncRemoteOllama`) embeds it in a program; see
`help(RemoteOllama)`. Those names load lazily, so importing the package stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .embedded import AsyncRemoteOllama, InstanceNotReady, RemoteOllama

__all__ = ["AsyncRemoteOllama", "InstanceNotReady", "RemoteOllama", "__version__"]

_LAZY = {"RemoteOllama", "AsyncRemoteOllama", "InstanceNotReady"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import embedded

        return getattr(embedded, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
