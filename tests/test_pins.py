"""Supply chain: the image's base is pinned by digest, and every Python dependency is locked in one
constraints file that both the image build and CI install from."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_base_image_is_pinned_by_digest_with_its_source_named() -> None:
    text = (ROOT / "Dockerfile").read_text()
    (image,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", image)
    assert "docker-library/repo-info" in text


def test_image_and_ci_install_from_the_same_constraints() -> None:
    pins = [
        line
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[^\s=]+", p) for p in pins), pins
    names = {p.split("==")[0].lower().replace("_", "-") for p in pins}
    for dependency in ("aiohttp", "kopf", "exoscale", "cryptography", "uvloop", "pytest", "ollama"):
        assert dependency in names
    assert "-c constraints.txt" in (ROOT / "Dockerfile").read_text()
    assert "COPY pyproject.toml README.md constraints.txt" in (ROOT / "Dockerfile").read_text()
    assert "pip install -c constraints.txt -e '.[test]'" in (ROOT / ".ci" / "run").read_text()
    assert "!constraints.txt" in (ROOT / ".dockerignore").read_text()
