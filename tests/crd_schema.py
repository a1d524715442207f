"""Check RemoteOllama objects against the CRD's own openAPIV3Schema, as an API server would.

Tests, examples and chart values call `validate_remoteollama()` so a custom resource that a real
cluster would reject never passes here; `apply_defaults()` shows what the server would store.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import structural
import yaml

CRD_PATH = Path(__file__).resolve().parent.parent / "crds" / "remoteollama.yaml"


class InvalidResource(ValueError):
    """Every problem found, each naming its field (e.g. `spec.diskSize: Invalid value: ...`)."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{path}: {msg}" for path, msg in problems))


@functools.cache
def load_crd() -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
    return crd


def openapi_schema() -> dict[str, Any]:
    """The served version's openAPIV3Schema."""
    (version,) = [v for v in load_crd()["spec"]["versions"] if v.get("storage")]
    result: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return result


def apply_defaults(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of `obj` with the CRD's defaults filled in."""
    result: dict[str, Any] = structural.apply_defaults(openapi_schema(), obj)
    return result


def validate_remoteollama(obj: dict[str, Any]) -> dict[str, Any]:
    """Validate a RemoteOllama (after defaulting); returns the defaulted object or raises InvalidResource.

    Unknown fields are errors here (a server would silently prune them, hiding the typo).
    """
    problems: list[tuple[str, str]] = []
    if obj.get("apiVersion") != "remoteollama.dev/v1alpha1":
        problems.append(
            ("apiVersion", f"Invalid value: {obj.get('apiVersion')!r}: want remoteollama.dev/v1alpha1")
        )
    if obj.get("kind") != "RemoteOllama":
        problems.append(("kind", f"Invalid value: {obj.get('kind')!r}: want RemoteOllama"))
    defaulted = apply_defaults(obj)
    problems += structural.validate(openapi_schema(), defaulted)
    if problems:
        raise InvalidResource(problems)
    return defaulted
