"""The import rules of README "Development -> Layout", checked on the source as folder rules: a
module is guarded by the folder it sits in, so a new module needs no new line here. The spec and
the pure core import no I/O library; each folder imports only the folders its row allows (the proxy
only the spec and the VM's facts; the Kubernetes and standalone shells never each other); only the
CLI reaches the sandbox; the package root holds only the CLI and folders."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "remote_ollama"
IO_LIBRARIES = (
    "aiohttp",
    "kopf",
    "exoscale",
    "kubernetes",
    "requests",
    "prometheus_client",
    "yaml",
    "uvloop",
)
# folder -> the package's folders it may import (besides itself); every folder has a row.
MAY_IMPORT: dict[str, set[str]] = {
    "spec": set(),
    "core": {"spec"},
    "vm": {"spec"},
    "cloud": {"spec", "core"},
    "proxy": {"spec", "vm"},
    "engine": {"spec", "core", "vm", "cloud"},
    "local": {"spec", "core", "vm", "cloud", "engine", "proxy"},
    "kube": {"spec", "core", "vm", "cloud", "engine", "proxy"},
    "embedded": {"spec", "core", "vm", "cloud", "engine", "proxy", "local"},
    "sandbox": {"spec", "core", "vm", "cloud", "engine", "proxy", "local"},
}
PURE = ("spec", "core")
ROOT_MODULES = {"__init__.py", "cli.py", "__main__.py", "py.typed"}


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


def folder(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0]


def in_folder(name: str) -> list[Path]:
    return sorted((PACKAGE / name).rglob("*.py"))


def offending(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{module_name(p)} imports {target}"
        for p in paths
        for target in set(imports(p))
        if any(target == f or target.startswith(f"{f}.") for f in forbidden)
    )


def test_the_package_root_holds_only_the_cli_and_folders() -> None:
    loose = sorted(p.name for p in PACKAGE.iterdir() if p.is_file() and p.name not in ROOT_MODULES)
    assert loose == []


def test_every_folder_has_a_rule() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(MAY_IMPORT)


@pytest.mark.parametrize("name", PURE)
def test_the_spec_and_the_pure_core_import_no_io(name: str) -> None:
    assert offending(in_folder(name), IO_LIBRARIES) == []


@pytest.mark.parametrize("name", sorted(MAY_IMPORT))
def test_each_folder_imports_only_the_folders_its_rule_allows(name: str) -> None:
    allowed = MAY_IMPORT[name] | {name}
    forbidden = tuple(f"remote_ollama.{other}" for other in [*MAY_IMPORT, "cli"] if other not in allowed)
    assert offending(in_folder(name), forbidden) == []


def test_the_proxy_knows_neither_kubernetes_nor_the_cloud_library() -> None:
    assert offending(in_folder("proxy"), ("kopf", "kubernetes", "exoscale")) == []


def test_the_kubernetes_and_standalone_shells_do_not_import_each_other() -> None:
    assert offending(in_folder("local"), ("remote_ollama.kube", "kopf", "kubernetes")) == []
    assert offending(in_folder("kube"), ("remote_ollama.local", "remote_ollama.embedded")) == []


def test_the_round_knows_the_cloud_only_by_its_port() -> None:
    """engine/ and core/ name no provider: the cloud is `cloud.port.Cloud` (and its errors)."""
    assert (
        offending([*in_folder("engine"), *in_folder("core")], ("remote_ollama.cloud.exoscale", "exoscale"))
        == []
    )


def test_only_the_cli_reaches_the_sandbox() -> None:
    others = [p for p in PACKAGE.rglob("*.py") if folder(p) != "sandbox" and p.name != "cli.py"]
    assert offending(others, ("remote_ollama.sandbox",)) == []
