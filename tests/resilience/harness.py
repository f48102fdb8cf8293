"""Running the real ``costwarden run`` as a process that a test can kill, pause and cut off.

- ``SharedClock``: the time of the scenario. The stand-in reads it in-process (creation times,
  Events) and the operator reads it from a file (``costwarden run --clock-file``); the test moves
  it by hand, so spend figures are exact and do not depend on how long a restart took.
- ``OperatorProcess``: one ``costwarden run`` subprocess (the console script of this venv, the
  same entry point as the image's), with its log in a file; SIGKILL, SIGSTOP/SIGCONT by its pid.
- ``ApiProxy``: an HTTP proxy between one operator and the stand-in. Hooks see every request
  before it is forwarded and every answer before it is returned, so a test can kill the operator
  at an exact point (a status write that stores a Pending record, the first pod delete) and choose
  whether that request reaches the server; ``partition()`` black-holes the operator (requests and
  watch streams are held, as unacknowledged TCP data is), ``heal()`` delivers what was held.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.web
import yaml

from costwarden.records import format_time
from costwarden.sim.cluster import kubeconfig_document

COSTWARDEN = Path(sys.executable).with_name("costwarden")


class SharedClock:
    """A manual clock for the stand-in (call it) mirrored into a file for the operator."""

    def __init__(self, start: datetime, path: Path) -> None:
        self.path = path
        self._now = start
        self._lock = threading.Lock()
        self._write(start)

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            self._write(self._now)
            return self._now

    def _write(self, moment: datetime) -> None:
        fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=".clock-")
        with os.fdopen(fd, "w") as handle:
            handle.write(format_time(moment) + "\n")
        os.replace(temp, self.path)  # a reader sees the old time or the new one, never half of one


@dataclass
class OperatorProcess:
    """``costwarden run`` against ``kubeconfig`` on the shared clock; ``args`` are more flags."""

    kubeconfig: Path
    clock_file: Path
    log: Path
    args: Sequence[str] = ()
    interval: float = 0.2
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: list[float] = field(default_factory=list)  # monotonic times of the SIGKILLs

    def command(self) -> list[str]:
        return [
            str(COSTWARDEN),
            "run",
            f"--kubeconfig={self.kubeconfig}",
            f"--clock-file={self.clock_file}",
            "--metrics-port=0",
            f"--interval={self.interval}",
            f"--accrual-interval={self.interval}",
            f"--status-interval={self.interval}",
            *self.args,
        ]

    def start(self) -> OperatorProcess:
        assert not self.alive(), "already running"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as out:
            out.write(f"---- start {self.starts + 1} at {time.monotonic():.3f}\n".encode())
            self.process = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT, env=env)
        self.starts += 1
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, at once; waits until the process is gone."""
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.kills.append(time.monotonic())
            self.process.wait(10)

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM (the Lease is released), SIGKILL after 20 s."""
        if not self.alive():
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Verdict(Enum):
    FORWARD = "forward"  # pass the request on / return the answer
    DROP = "drop"  # the request never reaches the server / the answer never reaches the operator


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str  # with the query string
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    @property
    def is_watch(self) -> bool:
        return "watch=true" in self.path or "watch=1" in self.path

    @property
    def mutating(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH", "DELETE")


RequestHook = Callable[[Exchange], Verdict]
ResponseHook = Callable[[Exchange, int, bytes], Verdict]
HOP_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade"}
)


@dataclass
class Passed:
    """One request the proxy saw: when the server answered it (or it was dropped), what it was,
    the status the server answered (None: not forwarded), and when it reached the proxy."""

    at: float
    method: str
    path: str
    status: int | None
    body: bytes
    received: float = 0.0


class ApiProxy:
    """An HTTP proxy to ``upstream`` on its own thread and event loop."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.on_request: RequestHook | None = None
        self.on_response: ResponseHook | None = None
        self.passed: list[Passed] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="api-proxy", daemon=True)
        self._open: asyncio.Event | None = None
        self._cut = 0  # heals that dropped what was held
        self._runner: aiohttp.web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    # ---- life

    def __enter__(self) -> ApiProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._session = aiohttp.ClientSession(
            auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None)
        )
        app = aiohttp.web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = aiohttp.web.AppRunner(
            app, access_log=None, handler_cancellation=False, shutdown_timeout=2.0
        )
        await self._runner.setup()
        site = aiohttp.web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def _stop(self) -> None:
        assert self._open is not None
        self._open.set()
        if self._session is not None:
            await self._session.close()  # ends the watch streams
        if self._runner is not None:
            await self._runner.cleanup()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_kubeconfig(self, path: Path) -> Path:
        path.write_text(yaml.safe_dump(kubeconfig_document(self.url), sort_keys=False))
        return path

    # ---- the network

    def partition(self) -> None:
        """From now on nothing passes either way: requests wait, watch streams stall. (Called
        from a hook, on the proxy's own thread, it holds the request or answer at hand too.)"""
        if threading.current_thread() is self._thread:
            self._close_gate()
        else:
            self._loop.call_soon_threadsafe(self._close_gate)

    def heal(self, *, deliver: bool = True) -> None:
        """Let traffic through again; ``deliver``: what was held goes on (TCP retransmitted it),
        else it is dropped (the connections were reset)."""

        def open_gate() -> None:
            assert self._open is not None
            if not deliver:
                self._cut += 1
            self._open.set()

        self._loop.call_soon_threadsafe(open_gate)

    def _close_gate(self) -> None:
        assert self._open is not None
        self._open.clear()

    async def _through(self) -> bool:
        """Wait while partitioned; False if the partition ended by dropping what was held."""
        assert self._open is not None
        cut = self._cut
        await self._open.wait()
        return cut == self._cut

    # ---- one request

    async def _handle(self, request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        received = time.monotonic()
        exchange = Exchange(request.method, request.path_qs, body)
        if not await self._through():
            return self._refuse(request)
        if self.on_request is not None and self.on_request(exchange) is Verdict.DROP:
            self.passed.append(Passed(time.monotonic(), exchange.method, exchange.path, None, body, received))
            return self._refuse(request)
        if not await self._through():  # the hook may have cut the network
            return self._refuse(request)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        upstream = await self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=body or None
        )
        try:
            out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS}
            if exchange.is_watch:
                self.passed.append(
                    Passed(time.monotonic(), exchange.method, exchange.path, upstream.status, body, received)
                )
                return await self._stream(request, upstream, out_headers)
            answer = await upstream.read()
        finally:
            if not exchange.is_watch:
                upstream.release()
        self.passed.append(
            Passed(time.monotonic(), exchange.method, exchange.path, upstream.status, body, received)
        )
        if (
            self.on_response is not None
            and self.on_response(exchange, upstream.status, answer) is Verdict.DROP
        ):
            return self._refuse(request)
        if not await self._through():
            return self._refuse(request)
        return aiohttp.web.Response(status=upstream.status, body=answer, headers=out_headers)

    async def _stream(
        self, request: aiohttp.web.Request, upstream: aiohttp.ClientResponse, headers: dict[str, str]
    ) -> aiohttp.web.StreamResponse:
        response = aiohttp.web.StreamResponse(status=upstream.status, headers=headers)
        try:
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                if not await self._through():
                    break
                await response.write(chunk)
        except (ConnectionError, aiohttp.ClientError, asyncio.CancelledError):
            pass
        finally:
            upstream.close()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write_eof()
        return response

    @staticmethod
    def _refuse(request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        if request.transport is not None:
            request.transport.close()  # as a reset connection: the client sees no answer
        return aiohttp.web.Response(status=503)

    # ---- reading what passed

    def requests(self, method: str, fragment: str) -> list[Passed]:
        return [p for p in list(self.passed) if p.method == method and fragment in p.path]


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g}s")
        time.sleep(interval)


@contextlib.contextmanager
def processes(*operators: OperatorProcess) -> Iterator[None]:
    """Stop every operator process at the end, whatever happened (SIGCONT first, then SIGTERM)."""
    try:
        yield
    finally:
        for operator in operators:
            operator.stop()
