"""Events on a RemoteOllama: the type (Warning or Normal) is the reason's, never its spelling."""

from __future__ import annotations

from typing import Any

import kopf

from remote_ollama.spec.vocabulary import Reason


def event(body: Any, reason: Reason, message: str) -> None:
    """Post an Event on `body`; a `reason.warning` member makes it a Warning."""
    (kopf.warn if reason.warning else kopf.info)(body, reason=str(reason), message=message)
