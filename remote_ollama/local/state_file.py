"""Standalone mode's memory: a JSON file written atomically, so a restart adopts its VM.

Holds the stable owner id (the instance label), the VM credentials and the lifecycle memory.
Written with temp file + fsync + rename: a crash leaves the old file or the new one, never half.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from remote_ollama.core.types import Memory, memory_from_json, memory_to_json
from remote_ollama.vm.pki import VMCredentials


@dataclass
class StandaloneState:
    owner_id: str = field(default_factory=lambda: "standalone-" + secrets.token_hex(6))
    credentials: dict[str, str] | None = None
    memory: Memory = field(default_factory=Memory)
    last_activity: datetime | None = None
    cost: dict[str, Any] | None = None  # the cost meter, as cost.to_status() writes it
    # What the VM last answered to /api/version and /api/tags ({"version", "models"}): a restarted
    # process answers those routes as the VM did while it sleeps.
    ollama: dict[str, Any] | None = None

    def worth_keeping(self) -> bool:
        """Anything a restart needs: VM credentials, an instance, what the VM answered, its cost."""
        metered = bool(self.cost and (self.cost.get("secondsByType") or self.cost.get("runningType")))
        return bool(self.credentials or self.memory.instance_id or self.ollama or metered)


class StateFile:
    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def load(self) -> StandaloneState:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return StandaloneState()
        state = StandaloneState(owner_id=str(data.get("owner_id") or StandaloneState().owner_id))
        state.credentials = data.get("credentials") or None
        state.memory = memory_from_json(data.get("memory") or {})
        raw = data.get("last_activity")
        state.last_activity = datetime.fromisoformat(raw) if isinstance(raw, str) and raw else None
        state.cost = data.get("cost") if isinstance(data.get("cost"), dict) else None
        state.ollama = data.get("ollama") if isinstance(data.get("ollama"), dict) else None
        return state

    def save(self, state: StandaloneState) -> None:
        data = {
            "owner_id": state.owner_id,
            "credentials": state.credentials,
            "memory": memory_to_json(state.memory),
            "last_activity": state.last_activity.isoformat() if state.last_activity else None,
            "cost": state.cost,
            "ollama": state.ollama,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".state-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh, indent=2)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)  # it holds the VM's key
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @property
    def sleep_request_path(self) -> Path:
        return self.path.with_name(self.path.name + ".sleep-requested")

    def request_sleep(self, at: datetime) -> None:
        """Ask a server running on this state file to scale to zero (as the operator's sleep
        annotation): `remote-ollama instance stop` leaves this beside the state file, and the
        server takes it at its next round instead of starting the stopped VM again."""
        self.sleep_request_path.write_text(at.isoformat())
        self.sleep_request_path.chmod(0o600)

    def take_sleep_request(self) -> datetime | None:
        """The pending sleep request, removed as it is read (None: none)."""
        try:
            with self.sleep_request_path.open() as fh:
                raw = fh.read(64)
            self.sleep_request_path.unlink()
        except FileNotFoundError:
            return None
        try:
            return datetime.fromisoformat(raw.strip())
        except ValueError:
            return None

    def credentials(self, state: StandaloneState) -> VMCredentials | None:
        return VMCredentials.from_secret_data(state.credentials) if state.credentials else None

    @staticmethod
    def with_memory(state: StandaloneState, memory: Memory) -> StandaloneState:
        return replace(state, memory=memory)
