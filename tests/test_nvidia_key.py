"""The VM trusts NVIDIA's repository key only by its pinned fingerprint: the setup script's own
function, run by dash with a stand-in `curl` serving keys made here by the real gpg, keeps the
pinned key and refuses any other (or a file carrying another beside it) as a failed `docker` step."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from remote_ollama.vm import scripts
from remote_ollama.vm.nvidia_key import NVIDIA_KEY_FINGERPRINT, NVIDIA_KEY_FUNCTION, NVIDIA_KEYRING_PATH

pytestmark = pytest.mark.skipif(not shutil.which("gpg"), reason="needs GnuPG (gpg)")


def make_key(home: Path, name: str) -> tuple[str, str]:
    """(fingerprint, armored public key) of a new key, as gpg makes and exports it."""
    env = {**os.environ, "GNUPGHOME": str(home)}
    home.mkdir(mode=0o700, exist_ok=True)
    uid = f"{name} <{name}@example.com>"
    subprocess.run(
        ["gpg", "--batch", "--passphrase", "", "--quick-generate-key", uid, "ed25519", "sign", "never"],
        env=env, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    colons = subprocess.run(
        ["gpg", "--batch", "--with-colons", "--list-keys", uid],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    fingerprint = re.search(r"^fpr:+([0-9A-F]{40}):", colons, re.M)
    assert fingerprint
    armored = subprocess.run(
        ["gpg", "--batch", "--armor", "--export", uid], env=env, check=True, capture_output=True, text=True
    ).stdout
    return fingerprint.group(1), armored


def setup_part(
    served: str, tmp_path: Path, pinned: str | None = None
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The setup script's step machinery and the `docker` step's key line, against `served`."""
    bindir, recorded = tmp_path / "bin", tmp_path / "steps"
    bindir.mkdir(exist_ok=True)
    (tmp_path / "served.asc").write_text(served)
    curl = bindir / "curl"  # `curl -fsSL URL -o FILE`: copies the served file
    curl.write_text(f'#!/bin/sh\n[ "$3" = -o ] && cp {tmp_path / "served.asc"} "$4"\n')
    step = bindir / "step"
    step.write_text(f'#!/bin/sh\necho "$@" >> {recorded}\n')
    for tool in (curl, step):
        tool.chmod(0o755)
    script = scripts.SETUP_SCRIPT
    machinery = script[script.index("trap ") : script.index("IMAGE=")]
    function = NVIDIA_KEY_FUNCTION.replace(NVIDIA_KEY_FINGERPRINT, pinned or NVIDIA_KEY_FINGERPRINT)
    keyring = tmp_path / "keyring.gpg"
    text = f"set -eu\nSTEP={step}\nNOW=nginx\n{machinery}{function}\nrun docker\nnvidia_key {keyring}\nok\n"
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "GNUPGHOME": str(tmp_path / "vm-gnupg")}
    (tmp_path / "vm-gnupg").mkdir(mode=0o700, exist_ok=True)
    out = subprocess.run(["sh", "-c", text], env=env, capture_output=True, text=True, timeout=60)
    out.stdout += recorded.read_text() if recorded.exists() else ""
    return out, keyring


def test_the_pinned_key_is_kept(tmp_path: Path) -> None:
    fingerprint, armored = make_key(tmp_path / "gnupg", "nvidia")
    out, keyring = setup_part(armored, tmp_path, pinned=fingerprint)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "mark docker done" in out.stdout
    listed = subprocess.run(
        ["gpg", "--show-keys", "--with-colons", str(keyring)], capture_output=True, text=True
    )
    assert fingerprint in listed.stdout  # the dearmored keyring apt reads (signed-by=)
    assert not (tmp_path / "keyring.gpg.asc").exists()


@pytest.mark.parametrize("extra", [False, True], ids=["another-key", "another-beside-the-pinned"])
def test_any_other_key_fails_the_docker_step(tmp_path: Path, extra: bool) -> None:
    pinned, pinned_armored = make_key(tmp_path / "gnupg", "nvidia")
    other, other_armored = make_key(tmp_path / "gnupg", "mallory")
    served = pinned_armored + other_armored if extra else other_armored
    out, keyring = setup_part(served, tmp_path, pinned=pinned)
    assert out.returncode != 0
    assert "NVIDIA repository key refused" in out.stdout and other in out.stdout
    assert f"is not the pinned {pinned}" in out.stdout
    assert "fail docker" in out.stdout and "mark docker done" not in out.stdout  # the recorder's failure
    assert not keyring.exists() and not (tmp_path / "keyring.gpg.asc").exists()


def test_the_shipped_pin_refuses_a_key_that_is_not_nvidias(tmp_path: Path) -> None:
    _, armored = make_key(tmp_path / "gnupg", "lookalike")
    out, keyring = setup_part(armored, tmp_path)
    assert out.returncode != 0 and f"not the pinned {NVIDIA_KEY_FINGERPRINT}" in out.stdout
    assert not keyring.exists()


def test_the_docker_step_fetches_the_key_only_through_the_check() -> None:
    script = scripts.SETUP_SCRIPT
    docker = script[script.index("run docker") : script.index("run image")]
    assert docker.index(f"nvidia_key {NVIDIA_KEYRING_PATH}") < docker.index("apt-get update")
    assert "gpgkey" not in docker and "--dearmor" not in docker  # no unchecked fetch left
    assert "nvidia_list" in docker  # the apt source signed-by this keyring (tests/test_vm_downloads.py)
    assert re.fullmatch(r"[0-9A-F]{40}", NVIDIA_KEY_FINGERPRINT)
