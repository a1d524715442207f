"""One row of the field table (remote_ollama/spec/fields.py) drives every reader of a setting: the
CRD, the CR parser, standalone's variable and the embedded API's keyword (README: Development, "Add a setting")."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from remote_ollama.embedded.config import config_from, keywords
from remote_ollama.kube import crd
from remote_ollama.local.settings import VARIABLES, ConfigError
from remote_ollama.spec.env import cr_shape, env_rows, keyword
from remote_ollama.spec.fields import FIELDS
from remote_ollama.spec.fields_row import Field
from remote_ollama.spec.rows import RowParser

DUMMY = Field(
    "wake.dummyLimit",
    "integer",
    3,
    minimum=0,
    maximum=9,
    env="REMOTE_OLLAMA_DUMMY_LIMIT",
    env_doc="a dummy limit",
    doc="A dummy limit, for the recipe's test.",
)


def test_a_new_row_reaches_the_crd_the_parsers_and_the_embedded_keyword() -> None:
    table = (*FIELDS, DUMMY)
    spec = crd.build(table)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    node = spec["properties"]["wake"]["properties"]["dummyLimit"]
    assert node == {
        "type": "integer",
        "default": 3,
        "minimum": 0,
        "maximum": 9,
        "description": "A dummy limit, for the recipe's test.",
    }
    assert "dummyLimit" in crd.render(table) and "dummyLimit" not in crd.render()
    shaped, problems = cr_shape({"REMOTE_OLLAMA_DUMMY_LIMIT": "7"}, table)
    assert not problems and shaped["wake"]["dummyLimit"] == 7
    assert cr_shape({"REMOTE_OLLAMA_DUMMY_LIMIT": "seven"}, table)[1] == [
        "REMOTE_OLLAMA_DUMMY_LIMIT='seven': must be a whole number"
    ]
    rows = RowParser({}, {}, fields={f.path: f for f in table})
    assert rows.section("wake", {"dummyLimit": 5})["dummy_limit"] == 5
    assert rows.section("wake", {})["dummy_limit"] == 3 and not rows.problems
    rows.section("wake", {"dummyLimit": 10})
    assert rows.problems == [("spec.wake.dummyLimit", "must be between 0 and 9: 10")]
    variables = tuple(str(f.env) for f in env_rows(table))
    assert keywords(variables)["dummy_limit"] == "REMOTE_OLLAMA_DUMMY_LIMIT"


def test_every_variable_has_its_keyword_by_one_rule() -> None:
    names = keywords()
    for variable, _ in VARIABLES:
        if variable != "REMOTE_OLLAMA_HOST":  # the constructor's own `host`
            assert names[keyword(variable)] == variable
    assert names["ollama_image"] == "OLLAMA_IMAGE" and names["ollama_env"] == "OLLAMA_ENV"
    assert (
        names["client_keys"] == "REMOTE_OLLAMA_CLIENT_KEYS"
        and names["idle_timeout"] == "EXOSCALE_IDLE_TIMEOUT"
    )


def test_keywords_set_what_their_variables_set() -> None:
    config = config_from(
        {},
        {
            "api_key": "k",
            "api_secret": "s",
            "ollama_image": "ollama/ollama:0.11.4",
            "ollama_env": {"OLLAMA_NUM_PARALLEL": "4"},
            "client_keys": ["k1", "k2"],
            "model_management": False,
            "max_body": 1024,
            "wake_progress": True,
            "idle_timeout": 0,
        },
    )
    assert config.spec.ollama.image == "ollama/ollama:0.11.4"
    assert config.spec.ollama.env == (("OLLAMA_NUM_PARALLEL", "4"),)
    assert config.client_keys == {"k1", "k2"} and config.spec.model_management is False
    assert config.spec.wake.max_held_body_bytes == 1024 and config.spec.wake.progress is True
    assert config.spec.idle.stop_after is None  # 0 = never, a standalone-only column of the row


def test_a_config_error_names_the_keyword_that_caused_it() -> None:
    with pytest.raises(ConfigError) as info:
        config_from({"EXOSCALE_ZONE": "nowhere"}, {"api_key": "k", "api_secret": "s", "disk_size": 5})
    assert any(p.startswith("disk_size (EXOSCALE_DISK_SIZE)='5'") for p in info.value.problems), info.value
    assert any(p.startswith("EXOSCALE_ZONE='nowhere'") for p in info.value.problems), info.value


def _spelled(value: Any) -> str:
    """A default as the README spells it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return ",".join(value) if isinstance(value, list) else str(value)


def test_the_readme_variable_table_shows_each_rows_default() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    defaults = dict(re.findall(r"^\| `([A-Z_]+)` \|.*\| ([^|]*) \|$", readme, flags=re.M))
    for f in env_rows():
        value = f.default if f.env_default is None else f.env_default
        if value is not None:
            assert f"`{_spelled(value)}`" in defaults[str(f.env)], (f.env, defaults[str(f.env)])
