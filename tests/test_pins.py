"""Supply chain: the image's base is pinned by digest, and every Python dependency is locked by
hash, once, in the lock files that the image build, CI and the README install from."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_base_image_is_pinned_by_digest_with_its_source_named() -> None:
    text = (ROOT / "Dockerfile").read_text()
    (image,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", image)
    assert "docker-library/repo-info" in text


def locked(name: str) -> dict[str, list[str]]:
    """Package (normalised name) -> its sha256 hashes, from one lock file."""
    pins: dict[str, list[str]] = {}
    current = ""
    for line in (ROOT / name).read_text().splitlines():
        if line.startswith(("#", "-r ")) or not line.strip():
            continue
        if not line[0].isspace():
            m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s=;]+)( ; [^\\]+)? \\", line)  # marker
            assert m, f"{name}: not `name==version \\`: {line!r}"
            current = re.sub(r"[-_.]+", "-", m.group(1)).lower()
            assert current not in pins, f"{name}: {current} twice"
            pins[current] = []
        else:
            m = re.fullmatch(r"\s+--hash=sha256:([0-9a-f]{64})( \\)?", line)
            assert m and current, f"{name}: not a sha256 hash line: {line!r}"
            pins[current].append(m.group(1))
    return pins


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.sub(r"[-_.]+", "-", re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0]).lower() for r in requirements}


def test_every_dependency_is_locked_once_with_hashes() -> None:
    image, tests = locked("requirements.lock"), locked("requirements-test.lock")
    assert all(image.values()) and all(tests.values()), "a package without a hash"
    assert not set(image) & set(tests), "a package pinned twice"
    assert (ROOT / "requirements-test.lock").read_text().count("\n-r requirements.lock\n") == 1
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert requirement_names(project["project"]["dependencies"]) <= set(image)
    assert requirement_names(project["build-system"]["requires"]) <= set(image)  # built by locked tools
    assert requirement_names(project["project"]["optional-dependencies"]["test"]) <= set(image) | set(tests)
    # every platform's file, not only this machine's: numpy publishes a wheel per platform and Python
    assert len(tests["numpy"]) > 10 and len(image["aiohttp"]) > 10


def test_image_ci_and_readme_install_only_hashed_files() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY pyproject.toml README.md requirements.lock ./" in dockerfile
    assert "pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock" in dockerfile
    assert "pip install --no-cache-dir --no-deps --no-build-isolation ." in dockerfile
    assert "pip check" in dockerfile
    assert "!requirements.lock" in (ROOT / ".dockerignore").read_text()
    test_setup = (
        "pip install --require-hashes --no-deps -r requirements-test.lock"
        " && pip install --no-deps --no-build-isolation -e ."
    )
    assert test_setup in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert test_setup in readme
    for text in (dockerfile, readme, (ROOT / ".ci" / "run").read_text()):
        assert "-c constraints.txt" not in text


def test_every_workflow_action_is_pinned_to_a_commit_with_its_tag_named() -> None:
    """A tag can be moved to other code by whoever controls the action's repository; a commit cannot."""
    uses = [
        (path.name, m.group(1), m.group(2))
        for path in sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
        for m in re.finditer(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", path.read_text(), re.M)
    ]
    assert uses, "no `uses:` found: the workflows moved?"
    for name, action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", action), (
            f"{name}: {action} not pinned to a commit"
        )
        assert re.fullmatch(r"\s+# v\d+(\.\d+)*", comment), f"{name}: {action} without its tag in a comment"
