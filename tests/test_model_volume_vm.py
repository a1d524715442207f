"""The VM's side of spec.coldStart.modelVolume (what the user-data asks of a real VM) and the pure
decision of which VM gets the volume."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest
import yaml

from remote_ollama.core.model_volume import Volume, condition, wanted
from remote_ollama.spec.parse import parse_spec
from remote_ollama.spec.vocabulary import Reason
from remote_ollama.vm.cloudinit import SETUP_SCRIPT, STEP_TOOL, UserDataError, render_user_data, setup_hash
from remote_ollama.vm.pki import generate_vm_credentials
from remote_ollama.vm.volume import MODEL_DIR, VOLUME_PATH, VOLUME_SCRIPT, VOLUME_SCRIPT_PATH

MODEL = "granite3.1-dense:8b"


def files(user_data: str) -> dict[str, str]:
    doc = yaml.safe_load(user_data)
    return {f["path"]: f["content"] for f in doc["write_files"]}


def test_the_user_data_names_the_volume_only_when_there_is_one() -> None:
    creds, volume_id = generate_vm_credentials(), str(uuid.uuid4())
    with_volume = files(render_user_data(creds, [MODEL], volume_id=volume_id))
    without = files(render_user_data(creds, [MODEL]))
    assert with_volume[VOLUME_PATH] == volume_id + "\n" and VOLUME_PATH not in without
    # the mount script is there either way (without a volume it undoes a baked disk's copy)
    assert with_volume[VOLUME_SCRIPT_PATH] == without[VOLUME_SCRIPT_PATH] == VOLUME_SCRIPT
    assert f"-v {MODEL_DIR}:/root/.ollama" in with_volume["/etc/systemd/system/remote-ollama-ollama.service"]
    setup = SETUP_SCRIPT
    assert setup.index("run image") < setup.index("run volume") < setup.index("systemctl daemon-reload")
    with pytest.raises(UserDataError, match="volume id"):
        render_user_data(creds, [MODEL], volume_id="x; rm -rf /")


def test_the_scripts_parse() -> None:
    """sh -n on the setup and mount scripts (no block device here to run them on), and the
    recorder compiles (its pulls ask Ollama first: a model on the volume is `present`)."""
    sh = shutil.which("sh")
    assert sh is not None
    for script in (SETUP_SCRIPT, VOLUME_SCRIPT):
        subprocess.run([sh, "-n"], input=script.encode(), check=True)
    compile(STEP_TOOL, "remote-ollama-step", "exec")
    assert "/api/show" in STEP_TOOL and '"present"' in STEP_TOOL
    assert len(setup_hash()) == 12


def test_only_replica_0_gets_the_volume_and_status_says_what_it_is() -> None:
    spec = parse_spec(
        {"models": [MODEL], "coldStart": {"modelVolume": {"enabled": True, "size": 40}}},
        require_credentials=False,
    )
    assert wanted(spec, None) and wanted(spec, 0) and not wanted(spec, 1)
    volume = Volume.from_api(
        {"id": "v-1", "name": "remote-ollama-x-models", "size": 40 * 1024**3, "instance": {"id": "i-1"}}
    )
    assert volume.size_gib == 40 and volume.instance_id == "i-1"
    shown = condition(spec, 0, volume, None)
    assert shown is not None and shown.status and shown.reason is Reason.VOLUME_READY
    assert "40 GiB" in shown.message and "i-1" in shown.message
    assert condition(spec, 1, volume, None) is None
    refused = condition(spec, 0, None, "Block Storage is not available in zone at-vie-2")
    assert refused is not None and not refused.status and refused.reason is Reason.VOLUME_UNSUPPORTED
    off = parse_spec({"models": [MODEL]}, require_credentials=False)
    assert condition(off, 0, None, None) is None
