"""``costwarden sim serve``: run the API stand-in until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from pathlib import Path

from costwarden.sim.cluster import SimCluster

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
    serve.set_defaults(func=run)


async def serve(
    port: int,
    kubeconfig: Path,
    crds: Path | None,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set (or forever); ``ready`` is set once the kubeconfig is written."""
    cluster = SimCluster(access_log=True)
    await cluster.start(port)
    try:
        if crds is not None:
            applied = await cluster.apply_manifests([crds])
            logger.info("applied %d manifests from %s", len(applied), crds)
        cluster.write_kubeconfig(kubeconfig)
        print(f"Kubernetes API stand-in at {cluster.url}; kubeconfig: {kubeconfig}", flush=True)
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
        asyncio.run(serve(args.port, args.kubeconfig, args.crds))
    return 0
