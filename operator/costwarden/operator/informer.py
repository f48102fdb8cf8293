"""Pods and nodes kept current in a ``ClusterIndex`` by a plain list + watch per resource.

Why not kopf's indexes: kopf runs per-object machinery for each of 10,000 pods, and its workers
all wake on every change (quadratic in objects); costwarden needs only the latest compact record
of each pod and node. So, as client-go's reflector does: list page by page (``limit`` +
``continue``), then watch from the list's resourceVersion with bookmarks, so a reconnect resumes
where the last event (or bookmark) left off and loses nothing; when the server no longer has that
resourceVersion (``410 Gone``) list again, which also drops whatever was deleted meanwhile.

Each body becomes a frozen record at once (``PodRecord.from_body``/``NodeRecord.from_body``);
whole bodies are never kept. Work on the event loop is cut into chunks of ``chunk`` objects with
a yield between chunks, so a 10,000-pod list never stalls the admission webhook or enforcement.
A stream never ends on an error: it logs, backs off (capped, jittered, at least Retry-After on a
429) and tries again; only ``stop()`` ends it. A watch that broke after it had been open a while
(``healthy_watch_s``) was cut, not refused: its back-off starts over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from costwarden.models import PLURAL as BUDGETS
from costwarden.operator.clusterindex import ClusterIndex, pod_key
from costwarden.operator.kube import PAGE_SIZE, KubeError
from costwarden.records import NodeRecord, PodRecord

log = logging.getLogger(__name__)


class WatchApi(Protocol):
    """What the informer needs of ``KubeClient``."""

    async def list_raw(
        self,
        resource: str,
        *,
        namespace: str | None = None,
        limit: int = ...,
        continue_token: str | None = None,
    ) -> dict[str, Any]: ...

    def watch_raw(
        self, resource: str, resource_version: str, timeout_seconds: int, *, namespace: str | None = None
    ) -> AsyncGenerator[dict[str, Any], None]: ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between failed attempts: ``initial`` doubling up to ``cap``, each drawn uniformly
    from its upper half so that replicas (and streams) do not retry in lockstep."""

    initial: float = 0.5
    cap: float = 30.0

    def delay(self, failures: int, rng: random.Random) -> float:
        ceiling = min(self.cap, self.initial * 2 ** max(0, failures - 1))
        return rng.uniform(ceiling / 2, ceiling)


@dataclass(slots=True)
class InformerStats:
    """Counters for metrics and tests; read them, never write them."""

    lists: int = 0  # complete lists, the first of each stream included
    relists: int = 0  # lists after a stream's first: 410 Gone, or a list that failed midway
    reconnects: int = 0  # watches opened again from a kept resourceVersion
    events: int = 0  # watch events applied (bookmarks included)
    bookmarks: int = 0
    errors: int = 0
    last_error: str | None = None


@dataclass(slots=True)
class _Stream:
    resource: str  # "pods", "nodes" or "costbudgets"
    namespace: str | None  # pods of one namespace, or all
    resource_version: str | None = None  # where the next watch starts; None: list first
    listed: bool = False
    watching_since_list: bool = False
    failures: int = 0

    @property
    def name(self) -> str:
        return self.resource if self.namespace is None else f"{self.resource} in namespace {self.namespace}"


class BudgetSink(Protocol):
    """Where CostBudget bodies go (the budgets are few: kept as small records by key)."""

    def upsert_budget(self, body: Mapping[str, Any]) -> str: ...
    def delete_budget(self, body: Mapping[str, Any]) -> None: ...
    def budget_keys(self, namespace: str | None) -> set[str]: ...
    def forget_budget(self, key: str) -> None: ...


HEALTHY_WATCH_S = 1.0  # a watch that broke after this long was cut, not refused: no failure streak


class _Expired(Exception):
    """The watch's resourceVersion is older than the server keeps: list again."""


class Informer:
    """One list + watch stream for nodes and one for pods (or one per namespace in ``namespaces``).

    ``synced`` is set once every stream has stored its first complete list: from then on the
    index holds the whole cluster (within the namespaces), never a partial picture.
    """

    def __init__(
        self,
        kube: WatchApi,
        index: ClusterIndex,
        *,
        namespaces: Sequence[str] = (),
        page_size: int = PAGE_SIZE,
        watch_timeout_s: int = 300,
        chunk: int = 100,
        backoff: Backoff = Backoff(),
        rng: random.Random | None = None,
        budgets: BudgetSink | None = None,
        healthy_watch_s: float = HEALTHY_WATCH_S,
    ) -> None:
        self.kube = kube
        self.index = index
        self.page_size = page_size
        self.watch_timeout_s = watch_timeout_s
        self.chunk = max(1, chunk)
        self.backoff = backoff
        self.healthy_watch_s = healthy_watch_s
        self.stats = InformerStats()
        self.synced = asyncio.Event()
        self._rng = rng or random.Random()
        scopes: list[str | None] = list(dict.fromkeys(namespaces)) or [None]
        self.budgets = budgets
        self._streams = [_Stream("nodes", None), *(_Stream("pods", ns) for ns in scopes)]
        if budgets is not None:
            self._streams += [_Stream(BUDGETS, ns) for ns in scopes]
        self._tasks: list[asyncio.Task[None]] = []

    # ---- lifecycle

    def start(self) -> Informer:
        """Start the streams on the running loop (once; later calls do nothing)."""
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._run(stream), name=f"informer {stream.name}")
                for stream in self._streams
            ]
        return self

    async def stop(self) -> None:
        """Stop every stream and close its watch; the index keeps what it holds."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> Informer:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return any(not task.done() for task in self._tasks)

    def resource_versions(self) -> Mapping[str, str | None]:
        """Where each stream's next watch starts (by stream name), for diagnostics and tests."""
        return {stream.name: stream.resource_version for stream in self._streams}

    # ---- one stream

    async def _run(self, stream: _Stream) -> None:
        while True:
            try:
                if stream.resource_version is None:
                    await self._list(stream)
                await self._watch(stream)
            except _Expired as exc:
                log.info("informer: %s; listing %s again", exc, stream.name)
                stream.resource_version = None
            except KubeError as exc:
                if exc.status == 410:  # a list's continue token expired
                    log.info("informer: %s; listing %s again", exc, stream.name)
                    stream.resource_version = None
                    continue
                await self._pause(stream, str(exc), exc.retry_after)
            except Exception as exc:  # a bug must not end the stream (and so the operator's view)
                log.exception("informer: %s failed unexpectedly", stream.name)
                await self._pause(stream, f"{stream.name}: {exc!r}", None)

    async def _pause(self, stream: _Stream, error: str, retry_after: float | None) -> None:
        stream.failures += 1
        self.stats.errors += 1
        self.stats.last_error = error
        delay = max(self.backoff.delay(stream.failures, self._rng), retry_after or 0.0)
        log.warning("informer: %s; retrying in %.1fs", error, delay)
        await asyncio.sleep(delay)

    async def _list(self, stream: _Stream) -> None:
        """Store a complete list (page by page), then forget what it no longer has."""
        if stream.listed:
            self.stats.relists += 1
        seen: set[str] = set()
        token: str | None = None
        list_version: str | None = None
        while True:
            page = await self.kube.list_raw(
                stream.resource, namespace=stream.namespace, limit=self.page_size, continue_token=token
            )
            metadata = page.get("metadata") or {}
            if list_version is None:  # all pages are one snapshot, at the first page's version
                list_version = str(metadata.get("resourceVersion") or "")
            await self._store(stream, page.get("items") or [], seen)
            token = metadata.get("continue") or None
            if token is None:
                break
        await self._forget_unseen(stream, seen)
        stream.resource_version = list_version
        stream.listed = True
        stream.watching_since_list = False
        stream.failures = 0
        self.stats.lists += 1
        if all(s.listed for s in self._streams) and not self.synced.is_set():
            log.info("informer: synced %d pods and %d nodes", self.index.pod_count, self.index.node_count)
            self.synced.set()

    async def _store(self, stream: _Stream, items: Sequence[Mapping[str, Any]], seen: set[str]) -> None:
        for start in range(0, len(items), self.chunk):
            for body in items[start : start + self.chunk]:
                if stream.resource == "pods":
                    pod = PodRecord.from_body(body)
                    seen.add(pod_key(pod))
                    self.index.upsert_pod(pod)
                elif stream.resource == BUDGETS and self.budgets is not None:
                    seen.add(self.budgets.upsert_budget(body))
                else:
                    node = NodeRecord.from_body(body)
                    seen.add(node.name)
                    self.index.upsert_node(node)
            await asyncio.sleep(0)

    async def _forget_unseen(self, stream: _Stream, seen: set[str]) -> None:
        if stream.resource == "pods":
            gone = sorted(self.index.pod_keys(stream.namespace) - seen)
        elif stream.resource == BUDGETS and self.budgets is not None:
            gone = sorted(self.budgets.budget_keys(stream.namespace) - seen)
        else:
            gone = sorted(set(self.index.nodes()) - seen)
        for start in range(0, len(gone), self.chunk):
            for key in gone[start : start + self.chunk]:
                if stream.resource == "pods":
                    self.index.delete_pod(key)
                elif stream.resource == BUDGETS and self.budgets is not None:
                    self.budgets.forget_budget(key)
                else:
                    self.index.delete_node(key)
            await asyncio.sleep(0)

    async def _watch(self, stream: _Stream) -> None:
        """Apply events until the server ends the stream (a clean end: the caller watches again)."""
        if stream.watching_since_list:
            self.stats.reconnects += 1
        stream.watching_since_list = True
        loop = asyncio.get_running_loop()
        opened = loop.time()
        applied = 0
        events = self.kube.watch_raw(
            stream.resource, stream.resource_version or "", self.watch_timeout_s, namespace=stream.namespace
        )
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    self._apply(stream, event)
                    applied += 1
                    stream.failures = 0
                    if applied % self.chunk == 0:
                        await asyncio.sleep(0)
        except KubeError as exc:
            if exc.status is None and loop.time() - opened >= self.healthy_watch_s:
                # The stream broke after a while, not refused (a proxy's cut, a restart): the
                # server answered, so the back-off starts over. Otherwise a quiet resource, whose
                # streams carry no event to reset it, would wait ever longer (up to the cap) to
                # watch again after each cut, and see a new node that much later.
                stream.failures = 0
            raise
        if applied == 0 and loop.time() - opened < 1.0:
            # closed at once with nothing to say: do not spin on a server that keeps doing that
            await self._pause(stream, f"watch of {stream.name} closed at once", None)

    def _apply(self, stream: _Stream, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            code, reason, message = obj.get("code"), obj.get("reason"), obj.get("message")
            if code == 410:
                raise _Expired(f"watch of {stream.name}: {message or reason or '410 Gone'}")
            raise KubeError(
                f"watch of {stream.name}: ERROR event {code} {reason}: {message}",
                status=code if isinstance(code, int) else None,
            )
        metadata = obj.get("metadata") or {}
        if kind == "BOOKMARK":
            self.stats.bookmarks += 1
        elif kind in ("ADDED", "MODIFIED"):
            if stream.resource == "pods":
                self.index.upsert_pod(PodRecord.from_body(obj))
            elif stream.resource == BUDGETS and self.budgets is not None:
                self.budgets.upsert_budget(obj)
            else:
                self.index.upsert_node(NodeRecord.from_body(obj))
        elif kind == "DELETED":
            if stream.resource == BUDGETS and self.budgets is not None:
                self.budgets.delete_budget(obj)
            elif stream.resource == "pods":
                uid = metadata.get("uid") or f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"
                self.index.delete_pod(str(uid))
            else:
                self.index.delete_node(str(metadata.get("name", "")))
        else:
            log.debug("informer: %s: ignoring a %r event", stream.name, kind)
        version = metadata.get("resourceVersion")
        if version:
            stream.resource_version = str(version)
        self.stats.events += 1
