"""`remote-ollama sandbox`: standalone mode against the embedded Exoscale simulator, short timeouts.

Everything is simulated and says so: the "GPU VM" is a TLS server on a 127.x address that speaks
the Ollama API. The lifecycle, the proxy and the cloud adapter are the real ones.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import tempfile
from pathlib import Path

from remote_ollama.cloud.exoscale.async_cloud import AsyncExoscaleCloud
from remote_ollama.local.controller import LocalController
from remote_ollama.local.replicas import ReplicaGroup
from remote_ollama.local.serve import serve_standalone
from remote_ollama.local.settings import ConfigError, StandaloneConfig
from remote_ollama.sandbox.exoscale.api import ExoscaleSimulator
from remote_ollama.sandbox.exoscale.timings import SimTimings
from remote_ollama.spec.model import Spec
from remote_ollama.spec.sections import (
    format_duration,
    parse_duration,
)

log = logging.getLogger("remote_ollama")

SANDBOX_KEY, SANDBOX_SECRET = "EXOsandbox0000000000000000", "sandbox-secret-not-a-real-one"


def sandbox_timings(boot: float, token_delay: float) -> SimTimings:
    """The seed's step durations scaled so that a first start's setup takes about 2.5 boots (each
    step shown as it happens, in the log and the wake progress lines); a boot takes `boot`."""
    return SimTimings.seed(
        boot / 40 * 0.25, boot=boot, stop=1.0, destroy=1.0, operation=0.2, pull=1.0, token=token_delay
    )


def sandbox_config(args: argparse.Namespace, api: str, state_file: str) -> StandaloneConfig:
    """Built as standalone builds it (its defaults: model management allowed, so `ollama pull` works)."""
    return StandaloneConfig.from_env(
        {
            "EXOSCALE_API_KEY": SANDBOX_KEY,
            "EXOSCALE_API_SECRET": SANDBOX_SECRET,
            "EXOSCALE_API_ENDPOINT": api,
            "EXOSCALE_INSTANCE_TYPE": "gpua5000.small",
            "EXOSCALE_DISK_SIZE": "50",
            "OLLAMA_MODEL": args.model,
            "EXOSCALE_IDLE_TIMEOUT": args.idle,
            "REMOTE_OLLAMA_HOLD_TIMEOUT": "120",
            "REMOTE_OLLAMA_STATE_FILE": state_file,
            "REMOTE_OLLAMA_ON_EXIT": "destroy",
            "REMOTE_OLLAMA_EXIT_TIMEOUT": "5",
            "REMOTE_OLLAMA_MAX_REPLICAS": str(args.max_replicas),
            "REMOTE_OLLAMA_SCALE_DOWN_AFTER": args.idle,  # the extras go as soon as the last would
            # the simulated VMs serve this many streams at once and queue the rest (as Ollama)
            "OLLAMA_ENV": f"OLLAMA_NUM_PARALLEL={args.num_parallel}",
        }
    )


def banner_lines(args: argparse.Namespace, spec: Spec, api: str, state_file: str, idle: float) -> list[str]:
    """What the sandbox prints once it listens: what is simulated, where, and how to reach it."""
    url = f"http://{args.host}:{args.port}"
    replicas = (
        [
            f"  up to {spec.replicas.max} VMs: one more per {spec.target_in_flight} requests in flight,"
            f" one fewer after {format_duration(spec.replicas.scale_down_after)} below that"
        ]
        if spec.replicas.max > 1
        else []
    )
    return [
        "remote-ollama sandbox: the Exoscale cloud here is SIMULATED (no account, no cost).",
        f"  simulated Exoscale API: {api}   simulated GPU VMs: TLS servers on 127.x.y.z:11435",
        f"  Ollama endpoint: {url}   (OLLAMA_HOST={url})",
        f'  try: curl {url}/api/generate -d \'{{"model":"{args.model}","prompt":"hi"}}\'',
        f"  the VM starts on the first request and stops after {format_duration(idle)} without one;",
        f"  watch it here, or: curl {url}/status",
        "  the instance CLI and the embedded API (RemoteOllama.from_env()) reach it with:",
        f"    export EXOSCALE_API_KEY={SANDBOX_KEY} EXOSCALE_API_SECRET={SANDBOX_SECRET} "
        f"EXOSCALE_API_ENDPOINT={shlex.quote(api)} REMOTE_OLLAMA_STATE_FILE={shlex.quote(state_file)}",
        *replicas,
    ]


async def run_sandbox(args: argparse.Namespace) -> int:
    try:
        idle = parse_duration(args.idle)
    except ValueError as exc:
        print(f"remote-ollama sandbox: --idle: {exc}")
        return 2
    tmp = None
    if args.state_file is None:
        tmp = tempfile.TemporaryDirectory(prefix="remote-ollama-sandbox-")
        state_file = str(Path(tmp.name) / "state.json")
    else:
        state_file = args.state_file
    sim = ExoscaleSimulator(
        {SANDBOX_KEY: SANDBOX_SECRET}, timings=sandbox_timings(args.boot, args.token_delay)
    )
    api = await sim.start("127.0.0.1", 0)
    try:
        config = sandbox_config(args, api, state_file)
    except ConfigError as exc:
        await sim.stop()
        print(f"remote-ollama sandbox: {exc}")
        return 2
    cloud = AsyncExoscaleCloud.connect(
        SANDBOX_KEY, SANDBOX_SECRET, config.spec.zone, endpoint=api, poll_interval=0.2
    )

    async def banner(controller: LocalController | ReplicaGroup) -> None:
        for member in controller.members if isinstance(controller, ReplicaGroup) else [controller]:
            member.poll_cap = 1.0
        print("\n".join(banner_lines(args, config.spec, api, state_file, idle)), flush=True)

    try:
        await serve_standalone(
            config, args.host, args.port, cloud=cloud, drain_timeout=5.0, on_listening=banner
        )
    finally:
        await sim.stop()
        if tmp is not None:
            tmp.cleanup()
    return 0
