"""``costwarden agent [--port 9401] [--host 0.0.0.0] [--interval 5] [--proc /proc]``.

Loaded by name by ``costwarden.cli`` (``OPTIONAL_COMMANDS``), so ``costwarden run`` never imports
NVML. Exit codes: 0 after SIGTERM or SIGINT, 2 when NVML cannot be used on this node (one line on
stderr saying why, no traceback) or the port cannot be bound.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from costwarden.agent import nvml
from costwarden.agent.exporter import registry_for, serve
from costwarden.agent.sampler import Sampler

log = logging.getLogger(__name__)

DEFAULT_PORT = 9401


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 0 to 65535, got {text}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def add_subparser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    agent = subparsers.add_parser(
        "agent", help="the node agent: per-pod GPU utilisation, memory and power from NVML"
    )
    agent.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help="port for /metrics (default 9401; 0: any)"
    )
    agent.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    agent.add_argument(
        "--interval", type=_seconds, default=5.0, help="seconds between passes over the GPUs (default 5)"
    )
    agent.add_argument(
        "--proc",
        type=Path,
        default=Path("/proc"),
        help="the host's proc filesystem, where each GPU process's cgroup is read (default /proc)",
    )
    agent.add_argument("--verbose", "-v", action="store_true")


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda *_: stop.set())
    return stop


def run(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    """Sample every ``args.interval`` seconds and serve the metrics until ``stop`` is set (default:
    SIGTERM or SIGINT)."""
    try:
        nvml.start()
    except nvml.NvmlUnavailable as exc:
        print(f"costwarden agent: {exc}", file=sys.stderr)
        return 2
    try:
        sampler = Sampler(nvml.NvmlReader(), args.proc)
        first = sampler.sample()
        try:
            server, _ = serve(registry_for(sampler.view), args.host, args.port)
        except OSError as exc:
            print(f"costwarden agent: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 2
        log.info(
            "serving /metrics on %s:%d; %d GPU(s), a pass every %gs",
            args.host,
            server.server_port,
            len({gpu.gpu for gpu in first.series.gpus}),
            args.interval,
        )
        stop = stop or _stop_on_signals()
        try:
            while not stop.wait(args.interval):
                sampler.sample()
        finally:
            server.shutdown()
            server.server_close()
    finally:
        nvml.stop()
    return 0
