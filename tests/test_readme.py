"""README's test command is exactly what CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text().splitlines()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    test_cmd = next(line for line in readme if "pytest" in line and not line.startswith("#"))
    assert test_cmd in ci
    assert any("remote-ollama sandbox" in line for line in readme[:10])
