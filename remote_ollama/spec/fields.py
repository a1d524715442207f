"""The field table: one row per node of a RemoteOllama spec. Every reader follows it: the CRD
(`python -m remote_ollama.kube.crd --write`), the CR parser (rows.py, parse.py), standalone's
variables and the embedded keywords (env.py), the dataclass defaults (sections.py, model.py). Pure data.
"""

from __future__ import annotations

from typing import Any

from .fields_access import ACCESS
from .fields_lifecycle import LIFECYCLE
from .fields_machine import MACHINE
from .fields_row import Field

# the rows in the CRD's order (the groups are the spec's parts, one module each)
FIELDS: tuple[Field, ...] = (*MACHINE, *LIFECYCLE, *ACCESS)

FIELD = {f.path: f for f in FIELDS}


def default(path: str) -> Any:
    """The CR default of `path` (as the CRD stores it)."""
    return FIELD[path].default
