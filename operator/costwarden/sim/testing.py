"""``ThreadedSimCluster``: the stand-in on its own event loop in a background thread.

kopf's ``KopfRunner`` blocks the calling thread and kubectl runs as a subprocess, so tests need the
server elsewhere; the synchronous wrappers here hop onto its loop with ``run_coroutine_threadsafe``.
``ThreadedSimCluster(faults=Faults(...))`` (or ``set_faults`` later) puts the fault layer
(costwarden.sim.faults) in front of its HTTP API; the wrappers here are in-process, never faulted.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from costwarden.sim.cluster import SimCluster
from costwarden.sim.faults import Faults

T = TypeVar("T")


class ThreadedSimCluster:
    def __init__(self, kubeconfig: str | Path | None = None, port: int = 0, **cluster_options: Any) -> None:
        self._kubeconfig_path = Path(kubeconfig) if kubeconfig is not None else None
        self._port = port
        self._options = cluster_options
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._cluster: SimCluster | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def cluster(self) -> SimCluster:
        if self._cluster is None:
            raise RuntimeError("ThreadedSimCluster is not running")
        return self._cluster

    @property
    def url(self) -> str:
        return self.cluster.url

    @property
    def kubeconfig(self) -> Path:
        if self._kubeconfig_path is None:
            raise RuntimeError("ThreadedSimCluster is not running")
        return self._kubeconfig_path

    def __enter__(self) -> ThreadedSimCluster:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="sim-cluster", daemon=True)
        self._thread.start()

        async def start() -> SimCluster:
            cluster = SimCluster(**self._options)
            await cluster.start(self._port)
            return cluster

        try:
            self._cluster = self.call(start())
        except BaseException:
            self._shutdown_loop()
            raise
        if self._kubeconfig_path is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="sim-kubeconfig-")
            self._kubeconfig_path = Path(self._tmpdir.name) / "kubeconfig"
        self.cluster.write_kubeconfig(self._kubeconfig_path)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._cluster is not None:
                self.call(self._cluster.stop())
        finally:
            self._cluster = None
            self._shutdown_loop()
            if self._tmpdir is not None:
                self._tmpdir.cleanup()
                self._tmpdir = None
                self._kubeconfig_path = None

    def _shutdown_loop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._loop is not None and not self._loop.is_running():
            self._loop.close()
        self._loop = None
        self._thread = None

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run a coroutine on the cluster's loop and wait for its result."""
        if self._loop is None:
            coro.close()
            raise RuntimeError("ThreadedSimCluster is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def set_faults(self, faults: Faults | None) -> None:
        """Inject ``faults`` into HTTP requests from now on (None: none); see costwarden.sim.faults."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("ThreadedSimCluster is not running")
        done = threading.Event()

        def apply() -> None:
            self.cluster.set_faults(faults)
            done.set()

        loop.call_soon_threadsafe(apply)
        done.wait(10)

    def fault_counts(self) -> dict[str, int]:
        return self.cluster.fault_counts()

    def faults_injected(self) -> builtins.list[tuple[str, str, str]]:
        return self.cluster.faults_injected()

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.call(self.cluster.create(obj))

    def get(
        self, api_version: str, kind_plural: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        return self.call(self.cluster.get(api_version, kind_plural, name, namespace))

    def list(self, api_version: str, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.call(self.cluster.list(api_version, plural, namespace))

    def patch(  # noqa: PLR0917 -- mirrors SimCluster.patch
        self,
        api_version: str,
        plural: str,
        name: str,
        patch: Mapping[str, Any],
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        return self.call(self.cluster.patch(api_version, plural, name, patch, namespace, subresource))

    def delete(self, api_version: str, plural: str, name: str, namespace: str | None = None) -> None:
        self.call(self.cluster.delete(api_version, plural, name, namespace))

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.call(self.cluster.apply(obj))

    def apply_manifests(self, *paths: str | Path) -> builtins.list[dict[str, Any]]:
        return self.call(self.cluster.apply_manifests(paths))

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05) -> None:
        """Poll ``predicate`` (from this thread) until it is true; TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return
            if time.monotonic() >= deadline:
                name = getattr(predicate, "__name__", repr(predicate))
                raise TimeoutError(f"condition {name} still false after {timeout:g}s")
            time.sleep(interval)


@contextlib.contextmanager
def running_cluster(tmp_path: str | Path, **cluster_options: Any) -> Iterator[ThreadedSimCluster]:
    """A ThreadedSimCluster with its kubeconfig written to ``tmp_path/kubeconfig``."""
    with ThreadedSimCluster(Path(tmp_path) / "kubeconfig", **cluster_options) as sim:
        yield sim
