"""Fault suite plumbing: the summary table at the end of the run (see `summary.py`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # proxy_world, subprocess_world

from summary import LEDGER


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not LEDGER.rows:
        return
    terminalreporter.section("fault suite summary")
    for line in LEDGER.table():
        terminalreporter.write_line(line)
    total = LEDGER.totals()
    terminalreporter.write_line(
        f"instances leaked: {total.leaked} (must be 0); duplicate instances: {total.duplicates} (must be 0)"
    )
