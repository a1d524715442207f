"""The import rules of README "Development -> Layout", checked on the source: the pure core imports
no I/O library, the proxy knows neither the operator nor the cloud, the cloud adapter knows no
shell, the two shells do not import each other, and only the CLI reaches the sandbox."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "remote_ollama"
IO_LIBRARIES = ("aiohttp", "kopf", "exoscale", "kubernetes", "requests", "prometheus_client", "yaml")
PURE = (
    "resource", "spec_fields", "spec_sections", "spec_model", "spec_parse", "lifecycle", "lifecycle_types",
    "observed", "vocabulary", "cost", "schedule", "backoff", "placement",
)  # fmt: skip
STANDALONE_SHELL = ("standalone", "state_file", "serve", "embedded", "settings", "instance_cli")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> Iterator[str]:
    """Every module `path` imports, absolute (`from . import x` gives the package and its `x`)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            yield target
            yield from (f"{target}.{alias.name}" for alias in node.names)


def ours(prefix: str) -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if module_name(p).startswith(f"remote_ollama.{prefix}")]


def offending(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{module_name(p)} imports {target}"
        for p in paths
        for target in set(imports(p))
        if any(target == f or target.startswith(f"{f}.") for f in forbidden)
    )


@pytest.mark.parametrize("module", PURE)
def test_the_pure_core_imports_no_io_and_no_shell(module: str) -> None:
    shells = tuple(
        f"remote_ollama.{m}"
        for m in ("cloud", "operator", "proxy", "sandbox", "standalone", "reconciler", "embedded", "serve")
    )
    assert offending(ours(module), IO_LIBRARIES + shells) == []


def test_the_proxy_knows_neither_operator_nor_cloud() -> None:
    forbidden = ("operator", "cloud", "sandbox", "standalone", "reconciler", "lifecycle")
    assert offending(ours("proxy"), (*(f"remote_ollama.{m}" for m in forbidden), "kopf", "exoscale")) == []


def test_the_cloud_adapter_knows_no_shell() -> None:
    forbidden = ("operator", "proxy", "sandbox", "standalone", "reconciler", "lifecycle", "embedded")
    assert offending(ours("cloud"), (*(f"remote_ollama.{m}" for m in forbidden), "kopf")) == []


def test_the_shells_do_not_import_each_other() -> None:
    standalone = [p for m in STANDALONE_SHELL for p in ours(m)]
    assert offending(standalone, ("remote_ollama.operator", "kopf")) == []
    shell = tuple(f"remote_ollama.{m}" for m in STANDALONE_SHELL)
    assert offending(ours("operator"), shell) == []


def test_only_the_cli_reaches_the_sandbox() -> None:
    others = [
        p
        for p in PACKAGE.rglob("*.py")
        if not module_name(p).startswith(("remote_ollama.sandbox", "remote_ollama.cli"))
    ]
    assert offending(others, ("remote_ollama.sandbox",)) == []
