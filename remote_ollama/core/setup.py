"""The VM's setup report (pure): what the setup script says it is doing, read for display only.

The VM writes a small JSON document (see vm/cloudinit.py, "the setup status document") and nginx
serves it over the mutual-TLS link before Ollama is up. The VM is not trusted: the document is read
through a size cap, every field is checked for type and length, control characters are dropped,
secret-looking text is redacted, and nothing in it decides anything but what status says (and that
a step failed, which only ends a wait). A document of another run (a template's stale copy, an
earlier instance) is ignored: its `run` must match the one the operator gave this VM.

Shape (version 1):
    {"version": 1, "run": "<16 hex>", "state": "running|done|failed", "step": "<name>",
     "steps": [{"name": "driver", "state": "pending|running|done|present|failed",
                "done": <bytes>, "total": <bytes>}, ...],
     "log": ["last log lines, only when failed", ...]}
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

MAX_DOCUMENT = 64 * 1024  # bytes read from the VM, at most
MAX_STEPS = 64
MAX_LOG_LINES = 12
MAX_TEXT = 200
STATES = ("pending", "running", "done", "present", "failed")
OVERALL = ("running", "done", "failed")

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SECRETS = (
    re.compile(r"-----BEGIN [A-Z ]*-----.*", re.S),
    re.compile(
        r"(?i)((?:key|secret|token|password|passwd|authorization|bearer)[\"']?\s*[:=]?\s*)(?:(?:bearer|basic)\s+)?\S+"
    ),
    re.compile(r"[A-Za-z0-9+/_\-]{32,}={0,2}"),  # long opaque strings: keys, tokens, base64 blobs
)


def run_id(cert_pem: str) -> str:
    """The run a document must name: the first 16 hex of the SHA-256 of the VM's own certificate's
    base64 body (no armour lines, no whitespace, so any PEM writer agrees): new for every instance,
    made before its setup starts, and pinned by the operator at first contact."""
    body = "".join(line.strip() for line in cert_pem.splitlines() if not line.startswith("-----"))
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def redact(line: str) -> str:
    """One log line fit for status: no control characters, no secret-looking text, bounded."""
    text = _CONTROL.sub(" ", line)
    for pattern in _SECRETS:
        text = pattern.sub(lambda m: (m.group(1) if m.re.groups else "") + "[redacted]", text)
    return text.strip()[:MAX_TEXT]


@dataclass(frozen=True)
class SetupStep:
    name: str
    state: str
    done: int | None = None
    total: int | None = None

    def describe(self) -> str:
        text = f"{self.name} ({self.state})"
        if self.total:
            text += f" {_size(self.done or 0)}/{_size(self.total)}"
        return text


@dataclass(frozen=True)
class SetupReport:
    state: str
    step: str
    steps: tuple[SetupStep, ...]
    log: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return self.state == "failed"

    @property
    def current(self) -> SetupStep | None:
        return next((s for s in self.steps if s.name == self.step), None)

    def describe(self) -> str:
        """The words status, /status, the CLI and the wake progress stream show."""
        if self.state == "done":
            return "setup done"
        step = self.current
        what = step.describe() if step else self.step
        position = next((i for i, s in enumerate(self.steps, 1) if s.name == self.step), 0)
        where = f" (step {position}/{len(self.steps)})" if position else ""
        return f"setup step {what}{where}" if self.state == "running" else f"setup step {what} failed"

    def failure(self) -> str:
        """The condition message of a failed setup: the step, then the last log lines."""
        lines = "; ".join(self.log) if self.log else "no log lines"
        return f"VM setup step '{self.step}' failed: {lines}"

    def to_status(self) -> dict[str, object]:
        """status.setup / the /status document's `setup`."""
        out: dict[str, object] = {
            "state": self.state,
            "step": self.step,
            "message": self.describe(),
            "steps": [
                {
                    "name": s.name,
                    "state": s.state,
                    **({"done": s.done, "total": s.total} if s.total is not None else {}),
                }
                for s in self.steps
            ],
        }
        if self.log:
            out["log"] = list(self.log)
        return out


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB"):
        if value < 1000:
            return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def _text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    text = _CONTROL.sub(" ", value).strip()[:MAX_TEXT]
    return text or None


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53 else None


def parse_setup_report(raw: bytes, run: str) -> SetupReport | None:
    """The report in `raw` (at most MAX_DOCUMENT bytes) for run `run`; None when it is not one."""
    if len(raw) > MAX_DOCUMENT:
        return None
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get("version") != 1 or doc.get("run") != run:
        return None
    state, step = doc.get("state"), _text(doc.get("step"))
    if state not in OVERALL or step is None:
        return None
    steps: list[SetupStep] = []
    for entry in doc.get("steps") or []:
        if len(steps) >= MAX_STEPS or not isinstance(entry, dict):
            break
        name, st = _text(entry.get("name")), entry.get("state")
        if name is None or st not in STATES:
            continue
        steps.append(SetupStep(name, str(st), _count(entry.get("done")), _count(entry.get("total"))))
    raw_log = doc.get("log")
    if not isinstance(raw_log, list):
        raw_log = []
    log = tuple(redact(line) for line in raw_log[-MAX_LOG_LINES:] if isinstance(line, str))
    return SetupReport(str(state), step, tuple(steps), tuple(line for line in log if line))
