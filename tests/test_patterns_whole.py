"""A pattern accepts a whole value or nothing: `re.match(r"^...$")` also accepts the value followed
by a newline, which would then be written into the VM's cloud-init (issue 18)."""

from __future__ import annotations

from typing import Any

import pytest

from remote_ollama.spec.model import SpecError
from remote_ollama.spec.parse import parse_spec
from remote_ollama.vm.cloudinit import render_user_data
from remote_ollama.vm.pki import generate_vm_credentials

BASE: dict[str, Any] = {"credentialsSecretRef": {"name": "exoscale"}}


@pytest.mark.parametrize(
    "field",
    [
        {"models": ["granite3.1-dense:8b\n"]},
        {"ollama": {"image": "ollama/ollama:0.9.0\n"}},
        {"ollama": {"env": {"OLLAMA_NUM_PARALLEL": "4\n"}}},
        {"ollama": {"env": {"OLLAMA_NUM_PARALLEL\n": "4"}}},
        {"credentialsSecretRef": {"name": "exoscale\n"}},
        {"schedule": [{"days": ["mon"], "from": "08:00\n", "to": "18:00"}]},
    ],
)
def test_a_trailing_newline_is_refused_by_the_spec(field: dict[str, Any]) -> None:
    with pytest.raises(SpecError):
        parse_spec({**BASE, **field})


@pytest.mark.parametrize(
    "kw", [{"models": ["granite\n"]}, {"models": ["granite"], "ollama_image": "ollama/ollama:0.9.0\n"}]
)
def test_a_trailing_newline_never_reaches_user_data(kw: dict[str, Any]) -> None:
    creds = generate_vm_credentials("k" * 32 + "\n")
    with pytest.raises(ValueError):
        render_user_data(creds, **kw)


def test_values_that_are_trimmed_are_used_trimmed() -> None:
    """Fields read with surrounding blanks removed accept the newline and never carry it on."""
    spec = parse_spec({**BASE, "keepAlive": "30m\n", "instanceType": "gpua5000.small\n"})
    assert (spec.keep_alive, spec.instance_type.name) == ("30m", "gpua5000.small")
