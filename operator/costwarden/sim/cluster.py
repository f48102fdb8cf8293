"""``SimCluster``: the API stand-in as one object — state, HTTP server, kubeconfig, in-process calls."""

from __future__ import annotations

import builtins
import copy
import functools
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp.web
import yaml

from costwarden.sim import errors
from costwarden.sim.addressing import Target, WriteOptions
from costwarden.sim.faults import FaultInjector, Faults
from costwarden.sim.objects import ObjectApi
from costwarden.sim.patching import MERGE
from costwarden.sim.registry import Registry
from costwarden.sim.server import SimEmulator
from costwarden.sim.store import Store

SEEDED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
CONTEXT = "costwarden-sim"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def kubeconfig_document(url: str, namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": url}}],
        "users": [{"name": CONTEXT, "user": {"token": "costwarden-sim-token"}}],
        "contexts": [
            {"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace}}
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }


def load_manifests(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """YAML/JSON documents with a ``kind`` from files (directories are expanded, sorted)."""
    documents: list[dict[str, Any]] = []
    for path in paths:
        files = (
            sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
            if path.is_dir()
            else [path]
        )
        for file in files:
            documents.extend(
                d for d in yaml.safe_load_all(file.read_text()) if isinstance(d, dict) and d.get("kind")
            )
    return documents


class SimCluster:
    """A Kubernetes API stand-in on ``http://127.0.0.1:PORT``; in-process calls share the HTTP code path."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] = _utc_now,
        history_limit: int = 20_000,
        bookmark_interval: float = 30.0,
        host: str = "127.0.0.1",
        access_log: bool = False,
        faults: Faults | None = None,
    ) -> None:
        self.store = Store(history_limit)
        self.registry = Registry()
        self.api = ObjectApi(self.store, self.registry, clock)
        self.emulator = SimEmulator(api=self.api, clock=clock, bookmark_interval=bookmark_interval)
        self.set_faults(faults)
        self._host = host
        self._access_log = access_log
        self._port: int | None = None
        self._runner: aiohttp.web.ServerRunner | None = None
        for name in SEEDED_NAMESPACES:
            self.api.create(self._target("v1", "namespaces"), {"metadata": {"name": name}}, WriteOptions())

    # ---- faults (costwarden.sim.faults): HTTP requests only, never the in-process calls below

    def set_faults(self, faults: Faults | None) -> None:
        """Inject ``faults`` from the next request on (None, or no fault at all: serve as asked);
        the counts start again from zero."""
        self.emulator.faults = FaultInjector(faults) if faults is not None and faults.any else None

    def fault_counts(self) -> dict[str, int]:
        """Requests considered and faults injected so far, by kind (empty without faults)."""
        injector = self.emulator.faults
        return injector.counts if injector is not None else {}

    def faults_injected(self) -> list[tuple[str, str, str]]:
        """The latest faults injected: (kind, method, path), oldest first."""
        injector = self.emulator.faults
        return injector.injected if injector is not None else []

    # ---- lifecycle

    async def start(self, port: int = 0) -> None:
        if self._runner is not None:
            raise RuntimeError("SimCluster is already started")
        await self.emulator.__aenter__()
        options: dict[str, Any] = {} if self._access_log else {"access_log": None}
        server = aiohttp.web.Server(self.emulator, handler_cancellation=True, **options)
        runner = aiohttp.web.ServerRunner(server, shutdown_timeout=1.0)
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, self._host, port)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        self.emulator.address = f"{self._host}:{self._port}"

    async def stop(self) -> None:
        if self._runner is None:
            return
        self.store.close_all()
        await self._runner.cleanup()
        self._runner = None
        await self.emulator.__aexit__(None, None, None)

    async def __aenter__(self) -> SimCluster:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("SimCluster is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def write_kubeconfig(self, path: str | Path, namespace: str = "default") -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(kubeconfig_document(self.url, namespace), sort_keys=False))
        return path

    # ---- in-process access (same code path as HTTP; errors raise costwarden.sim.errors.ApiError)

    def _target(
        self,
        api_version: str,
        plural: str,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
    ) -> Target:
        info = self.registry.resolve(api_version, plural)
        if info is None:
            raise errors.no_such_resource()
        version = api_version.rpartition("/")[2]
        return Target(info, version, (namespace or "default") if info.namespaced else None, name, subresource)

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        namespace = (obj.get("metadata") or {}).get("namespace")
        target = self._target(str(obj.get("apiVersion", "")), str(obj.get("kind", "")), namespace)
        return (await self.emulator.webhooks.create(target, obj, WriteOptions())).obj

    async def get(
        self, api_version: str, kind_plural: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        try:
            return self.api.read(self._target(api_version, kind_plural, namespace, name))
        except errors.ApiError as exc:
            if exc.code == 404:
                return None
            raise

    async def list(self, api_version: str, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        target = self._target(api_version, plural)
        target = Target(target.info, target.version, namespace if target.info.namespaced else None)
        return [
            self.api.present(target, o)
            for o in self.store.items((target.info.group, target.info.plural), target.namespace)
        ]

    async def patch(  # noqa: PLR0917 -- the signature other modules code against
        self,
        api_version: str,
        plural: str,
        name: str,
        patch: Mapping[str, Any],
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """JSON merge patch; ``subresource="status"`` writes the status of status-subresource kinds."""
        target = self._target(api_version, plural, namespace, name, subresource)
        write = functools.partial(self.api.patch, target, MERGE, copy.deepcopy(dict(patch)))
        return (await self.emulator.webhooks.update(target, write, WriteOptions())).obj

    async def replace(self, obj: dict[str, Any], subresource: str | None = None) -> dict[str, Any]:
        meta = obj.get("metadata") or {}
        target = self._target(
            str(obj.get("apiVersion", "")),
            str(obj.get("kind", "")),
            meta.get("namespace"),
            meta.get("name"),
            subresource,
        )
        write = functools.partial(self.api.replace, target, obj)
        return (await self.emulator.webhooks.update(target, write, WriteOptions())).obj

    async def delete(self, api_version: str, plural: str, name: str, namespace: str | None = None) -> None:
        self.api.delete(self._target(api_version, plural, namespace, name), {}, WriteOptions())

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create, or replace the existing object's content (keeping its status), like a simple apply."""
        meta = obj.get("metadata") or {}
        existing = await self.get(
            str(obj.get("apiVersion", "")),
            str(obj.get("kind", "")),
            str(meta.get("name")),
            meta.get("namespace"),
        )
        if existing is None:
            return await self.create(obj)
        replacement = copy.deepcopy(obj)
        replacement.setdefault("metadata", {})["resourceVersion"] = existing["metadata"]["resourceVersion"]
        return await self.replace(replacement)

    async def apply_manifests(self, paths: Iterable[str | Path]) -> builtins.list[dict[str, Any]]:
        return [await self.apply(doc) for doc in load_manifests(Path(p) for p in paths)]
