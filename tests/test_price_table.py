"""The price table lives in one place (remote_ollama/core/cost.py); the chart's values and the plain
manifests carry exactly it, and the instance CLI and both shells read it from there."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from remote_ollama.core import cost

ROOT = Path(__file__).resolve().parents[1]
TABLE = {"currency": cost.DEFAULT_CURRENCY, "perHour": cost.DEFAULT_PER_HOUR}


def test_chart_values_carry_the_table() -> None:
    values = yaml.safe_load((ROOT / "charts" / "remote-ollama" / "values.yaml").read_text())
    assert values["prices"] == TABLE


def test_manifests_carry_the_table() -> None:
    docs = list(yaml.safe_load_all((ROOT / "manifests" / "06-deployment.yaml").read_text()))
    (deployment,) = [d for d in docs if d and d.get("kind") == "Deployment"]
    env = {
        e["name"]: e.get("value")
        for c in deployment["spec"]["template"]["spec"]["containers"]
        for e in c["env"]
    }
    assert json.loads(env[cost.PRICES_ENV]) == TABLE


def test_the_built_in_table_is_what_an_empty_setting_means() -> None:
    assert cost.parse_prices(None) == cost.parse_prices(json.dumps(TABLE))
