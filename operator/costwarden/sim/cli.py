"""``costwarden sim serve``: run the API stand-in until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from pathlib import Path

from costwarden.sim.cluster import SimCluster
from costwarden.sim.faults import Faults, FaultSpecError

logger = logging.getLogger(__name__)


def add_subparser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sim = subparsers.add_parser("sim", help="the Kubernetes API stand-in used by tests and demos")
    commands = sim.add_subparsers(dest="sim_command", required=True)
    serve = commands.add_parser("serve", help="serve the stand-in on 127.0.0.1 until Ctrl-C")
    serve.add_argument("--port", type=int, default=8765, help="TCP port (0 picks a free one)")
    serve.add_argument(
        "--kubeconfig", type=Path, default=Path("out/sim.kubeconfig"), help="where to write a kubeconfig"
    )
    serve.add_argument(
        "--crds", type=Path, default=None, help="a directory (or file) of manifests to apply at start"
    )
    serve.add_argument(
        "--faults",
        type=_faults,
        default=None,
        metavar="SPEC",
        help="inject faults into resource requests, e.g. 'error=0.05,throttle=0.05:1,delay=0.05:0.5,"
        "conflict=0.05,gone=0.02,lost=0.02,cut-watch=20:10,seed=7' (shares of requests; "
        "throttle=SHARE:RETRY_AFTER, delay=SHARE:SECONDS, cut-watch=EVENTS:SECONDS; "
        "see costwarden.sim.faults)",
    )
    serve.set_defaults(func=run)


def _faults(text: str) -> Faults:
    try:
        return Faults.parse(text)
    except FaultSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


async def serve(  # noqa: PLR0917 -- tests call it with stop and ready by position
    port: int,
    kubeconfig: Path,
    crds: Path | None,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
    faults: Faults | None = None,
) -> None:
    """Serve until ``stop`` is set (or forever); ``ready`` is set once the kubeconfig is written."""
    cluster = SimCluster(access_log=True, faults=faults)
    await cluster.start(port)
    try:
        if crds is not None:
            applied = await cluster.apply_manifests([crds])
            logger.info("applied %d manifests from %s", len(applied), crds)
        cluster.write_kubeconfig(kubeconfig)
        print(f"Kubernetes API stand-in at {cluster.url}; kubeconfig: {kubeconfig}", flush=True)
        if faults is not None and faults.any:
            print(f"injecting faults: {faults.spec()}", flush=True)
        if ready is not None:
            ready.set()
        await (stop or asyncio.Event()).wait()
    finally:
        await cluster.stop()


def run(args: argparse.Namespace) -> int:
    if args.crds is not None and not args.crds.exists():
        print(f"costwarden sim serve: error: {args.crds} does not exist", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.kubeconfig, args.crds, faults=args.faults))
    return 0
