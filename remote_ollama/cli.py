"""`remote-ollama` subcommands and the `kubectl remoteollama` plugin entry point."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from remote_ollama.local.settings import HOST_ENV, standalone_variables
from remote_ollama.proxy.runloop import run

from . import __version__


def _serving(p: argparse.ArgumentParser, host: str = "0.0.0.0", port: int = 11434) -> None:
    p.add_argument("--host", default=host, help=f"address to listen on (default {host})")
    p.add_argument("--port", type=int, default=port, help=f"port to listen on (default {port})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="remote-ollama",
        description="An Ollama endpoint backed by an Exoscale GPU VM that exists only while it is used.",
    )
    parser.add_argument("--version", action="version", version=f"remote-ollama {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("operator", help="run the Kubernetes operator (kopf)")
    p.add_argument("--namespace", "-n", action="append", help="watch only these namespaces (default: all)")
    p.add_argument("--liveness", default="http://0.0.0.0:8080/healthz", help="kopf liveness endpoint")
    p.add_argument("--standalone", action="store_true", help="no peering (single replica, tests)")

    p = sub.add_parser("proxy", help="run the per-resource proxy (started by the operator's Deployment)")
    p.add_argument("--resource", required=True, metavar="NS/NAME", help="the RemoteOllama this proxy serves")
    _serving(p)

    p = sub.add_parser(
        "standalone",
        help="proxy + lifecycle in one process, configured by EXOSCALE_* env vars",
        description="Proxy + lifecycle in one process, configured by environment variables.",
        epilog=standalone_variables(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # loopback outside a container, as Ollama listens; the image sets REMOTE_OLLAMA_HOST=0.0.0.0
    _serving(p, host=os.environ.get(HOST_ENV) or "127.0.0.1")

    _sandbox_command(sub)
    _instance_command(sub)
    _control_commands(sub, " (a RemoteOllama, through your kubeconfig)")
    return parser


def _sandbox_command(sub: Any) -> None:
    p = sub.add_parser("sandbox", help="the whole lifecycle on this machine against a simulated Exoscale")
    _serving(p, host="127.0.0.1")
    p.add_argument(
        "--idle", default="30s", help="scale to zero after this long without requests (default 30s)"
    )
    p.add_argument("--boot", type=float, default=3.0, help="simulated VM boot seconds (default 3)")
    p.add_argument(
        "--token-delay", type=float, default=0.05, help="simulated seconds per token (default 0.05)"
    )
    p.add_argument("--model", default="granite3.1-dense:8b", help="model the simulated VM pre-pulls")
    p.add_argument("--state-file", default=None, help="state file (default: a temporary directory)")
    p.add_argument(
        "--max-replicas", type=int, default=1, help="scale out to this many simulated VMs by load (default 1)"
    )
    p.add_argument(
        "--num-parallel",
        type=int,
        default=4,
        help="streams each simulated VM serves at once, the rest queue (OLLAMA_NUM_PARALLEL, default 4)",
    )


def _instance_command(sub: Any) -> None:
    p = sub.add_parser(
        "instance",
        help="inspect or control the standalone VM directly on Exoscale (EXOSCALE_* env vars)",
        description="Acts on Exoscale with the standalone variables and state file. "
        "Exit codes: 0 ok, 1 no such instance, 2 bad configuration, 3 cloud error, 4 not confirmed.",
    )
    p.add_argument("action", choices=("status", "start", "stop", "destroy", "describe"))
    p.add_argument("--id", dest="instance_id", default=None, help="act on this instance id")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    p.add_argument("-y", "--yes", action="store_true", help="destroy without asking")
    p.add_argument("--no-wait", action="store_true", help="start/stop/destroy: return once requested")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for start/stop/destroy")


def _control_commands(sub: Any, suffix: str = "") -> None:
    for name, text in (
        ("status", "show phase, endpoint, idle countdown and last wake"),
        ("wake", "start the VM now"),
        ("sleep", "scale the VM to zero now"),
    ):
        p = sub.add_parser(name, help=f"{text}{suffix}")
        p.add_argument("name", help="RemoteOllama name")
        p.add_argument("-n", "--namespace", default=None, help="namespace (default: kubeconfig's)")
        p.add_argument("-o", "--output", choices=("text", "json"), default="text")


def build_plugin_parser() -> argparse.ArgumentParser:
    """`kubectl remoteollama`: only the commands on a RemoteOllama, with kubectl's name for itself."""
    parser = argparse.ArgumentParser(
        prog="kubectl remoteollama",
        description="Look at, wake or put to sleep a RemoteOllama through your kubeconfig "
        "($KUBECONFIG, else ~/.kube/config).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    _control_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return parser


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("aiohttp.access", "urllib3", "kopf.objects", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    args = (parser or build_parser()).parse_args(argv)
    _logging(args.verbose)
    from remote_ollama.kube.api import NoCluster

    try:
        return _command(args)
    except NoCluster as exc:
        print(f"remote-ollama {args.command}: {exc}", file=sys.stderr)
        return 2


def _command(args: argparse.Namespace) -> int:
    if args.command == "standalone":
        from remote_ollama.local.settings import ConfigError, StandaloneConfig

        try:
            config = StandaloneConfig.from_env(os.environ)
        except ConfigError as exc:
            for line in exc.problems:
                print(f"remote-ollama: {line}", file=sys.stderr)
            return 2
        from remote_ollama.local.serve import PortInUse, check_port_free, serve_standalone

        try:
            check_port_free(args.host, args.port)
            run(serve_standalone(config, args.host, args.port))
        except PortInUse as exc:
            print(f"remote-ollama: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.command == "sandbox":
        from remote_ollama.local.serve import PortInUse, check_port_free

        from .sandbox.demo import run_sandbox

        try:
            check_port_free(args.host, args.port)
            return run(run_sandbox(args))
        except PortInUse as exc:
            print(f"remote-ollama sandbox: {exc}", file=sys.stderr)
            return 2
    if args.command == "instance":
        from remote_ollama.local.instance_cli import run_instance

        return run_instance(args)
    if args.command == "operator":
        from remote_ollama.kube.operator.main import run_operator

        return int(run_operator(args))
    if args.command == "proxy":
        from remote_ollama.kube.proxy_main import run_resource_proxy

        return int(run(run_resource_proxy(args.resource, args.host, args.port)))
    if args.command in ("status", "wake", "sleep"):
        from remote_ollama.kube.control import control

        return int(control(args.command, args.name, args.namespace, args.output))
    return 2


def kubectl_plugin() -> int:
    """`kubectl remoteollama status|wake|sleep NAME`: kubectl runs this binary with the rest of the line."""
    return main(sys.argv[1:], build_plugin_parser())


if __name__ == "__main__":
    raise SystemExit(main())
