"""Fault injection in front of the stand-in: what a busy, flaky or restarting apiserver does.

``Faults`` says how often each fault happens; ``FaultInjector`` decides, request by request,
which one a request gets. Only requests for resources (``/api/v1/...pods``, ``/apis/g/v/...``)
are faulted: discovery, ``/version``, ``/openapi`` and the health checks are always answered, and
the in-process calls of ``SimCluster`` (a test's own setup and reads) never pass through here.

The faults, each a share of the requests it can apply to:

``error``     500 InternalError; nothing is done.
``throttle``  429 TooManyRequests with ``Retry-After: retry_after`` (and ``details.retryAfterSeconds``).
``delay``     the request is served ``delay_s`` seconds late (a slow apiserver).
``conflict``  409 Conflict on a PATCH or PUT; nothing is written.
``gone``      410 Expired: a watch from a resourceVersion gets one ERROR event (code 410) in a
              200 stream, as the watch cache answers, and a list continuing a page (``continue``)
              or asking for an exact ``resourceVersion`` gets a 410 answer: the client must list again.
``lost``      a write (POST, PUT, PATCH, DELETE) is carried out, but its answer is a 504 Timeout,
              so the client cannot tell it happened (the apiserver's answer when etcd is slow).
``cut_watch`` / ``cut_watch_s``
              every watch stream is cut after that many events or seconds, whichever comes
              first: half of the next event is written, then the connection is dropped.

Decisions are reproducible: the n-th request with the same method and path gets the same faults
under the same ``seed``, whatever other requests came in between (one hash per request, fault and
counter; no shared random stream whose order would depend on timing). Which requests a client
makes, and when, still depends on its timing: the same seed gives the same faults to the same
request sequence, not the same run.

``Faults.parse`` reads the ``costwarden sim serve --faults`` text, e.g.
``error=0.05,throttle=0.05:1,delay=0.05:0.5,cut-watch=20:10,gone=0.02,conflict=0.05,lost=0.02,seed=7``.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from costwarden.sim import errors, routing
from costwarden.sim.errors import ApiError

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
UPDATES = frozenset({"PUT", "PATCH"})
KINDS = ("error", "throttle", "delay", "conflict", "gone", "lost", "cut_watch")
_SHARES = ("error", "throttle", "delay", "conflict", "gone", "lost")
INJECTED_KEPT = 10_000

CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can start "
    "a new list without the continue parameter."
)
TIMEOUT = "Timeout: request did not complete within requested timeout - context deadline exceeded"


class FaultSpecError(ValueError):
    """A ``--faults`` text that cannot be read; the message names the part."""


@dataclass(frozen=True)
class Faults:
    """How often each fault happens (shares from 0 to 1; see the module's docstring)."""

    error: float = 0.0
    throttle: float = 0.0
    retry_after: int = 1  # seconds, in the 429's Retry-After
    delay: float = 0.0
    delay_s: float = 0.5
    conflict: float = 0.0
    gone: float = 0.0
    lost: float = 0.0
    cut_watch: int = 0  # events a watch stream carries before it is cut; 0: no limit
    cut_watch_s: float = 0.0  # seconds a watch stream lasts before it is cut; 0: no limit
    seed: int = 0

    def __post_init__(self) -> None:
        for name in _SHARES:
            share = getattr(self, name)
            if not 0.0 <= share <= 1.0:
                raise FaultSpecError(f"{name}={share}: a share must be between 0 and 1")
        if self.retry_after < 0 or self.delay_s < 0 or self.cut_watch < 0 or self.cut_watch_s < 0:
            raise FaultSpecError("retry-after, delay seconds and cut-watch limits must not be negative")

    @property
    def any(self) -> bool:
        return any(getattr(self, name) for name in _SHARES) or bool(self.cut_watch or self.cut_watch_s)

    @classmethod
    def parse(cls, text: str) -> Faults:
        """``error=0.05,throttle=0.05:2,delay=0.1:0.5,conflict=0.05,gone=0.02,lost=0.02,
        cut-watch=20:10,seed=7``: ``throttle=SHARE[:RETRY_AFTER]``, ``delay=SHARE[:SECONDS]``,
        ``cut-watch=EVENTS[:SECONDS]`` (0 for no limit); the rest one number each."""
        values: dict[str, Any] = {}
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            name, sep, value = part.partition("=")
            name = name.strip().replace("-", "_")
            if not sep or not value.strip():
                raise FaultSpecError(f"{part!r}: expected NAME=VALUE")
            first, _, second = value.strip().partition(":")
            try:
                if name in ("error", "conflict", "gone", "lost"):
                    values[name] = float(first)
                elif name == "throttle":
                    values["throttle"] = float(first)
                    if second:
                        values["retry_after"] = int(second)
                elif name == "delay":
                    values["delay"] = float(first)
                    if second:
                        values["delay_s"] = float(second)
                elif name == "cut_watch":
                    values["cut_watch"] = int(first)
                    if second:
                        values["cut_watch_s"] = float(second)
                elif name == "seed":
                    values["seed"] = int(first)
                else:
                    known = "error, throttle, delay, conflict, gone, lost, cut-watch, seed"
                    raise FaultSpecError(f"{name!r}: no such fault (known: {known})")
            except ValueError as exc:
                if isinstance(exc, FaultSpecError):
                    raise
                raise FaultSpecError(f"{part!r}: not a number") from exc
        return cls(**values)

    def spec(self) -> str:
        """The ``--faults`` text of these faults (``Faults.parse(f.spec()) == f``)."""
        parts = [f"{name}={getattr(self, name):g}" for name in ("error", "conflict", "gone", "lost")]
        parts.insert(1, f"throttle={self.throttle:g}:{self.retry_after}")
        parts.insert(2, f"delay={self.delay:g}:{self.delay_s:g}")
        parts.append(f"cut-watch={self.cut_watch}:{self.cut_watch_s:g}")
        parts.append(f"seed={self.seed}")
        return ",".join(parts)

    def only(self, *names: str) -> Faults:
        """These faults with every share and limit outside ``names`` set to 0."""
        unknown = set(names) - set(KINDS)
        if unknown:
            raise FaultSpecError(f"no such fault: {', '.join(sorted(unknown))}")
        cleared: dict[str, Any] = {n: 0.0 for n in _SHARES if n not in names}
        if "cut_watch" not in names:
            cleared.update(cut_watch=0, cut_watch_s=0.0)
        return replace(self, **cleared)


@dataclass(frozen=True)
class FaultPlan:
    """What one request gets: answered at once (``answer``), late, lost, a 410 watch, a cut."""

    delay_s: float = 0.0
    answer: tuple[ApiError, Mapping[str, str]] | None = None  # an error answered instead
    gone_watch: bool = False  # a watch answered with one ERROR 410 event
    lost: bool = False  # served, then answered 504
    cut_events: int = 0  # 0: no limit
    cut_seconds: float = 0.0  # 0: no limit

    @property
    def cuts(self) -> bool:
        return bool(self.cut_events or self.cut_seconds)


NO_FAULT = FaultPlan()


class FaultInjector:
    """Decides the faults of each request from ``faults``; ``counts`` says what was injected."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()  # counts are read from other threads (tests, benches)
        self._counts: Counter[str] = Counter()
        self._injected: deque[tuple[str, str, str]] = deque(maxlen=INJECTED_KEPT)

    @property
    def counts(self) -> dict[str, int]:
        """Requests considered (``requests``) and faults injected, by kind (``cut_watch``: streams cut)."""
        with self._lock:
            return dict(self._counts)

    @property
    def injected(self) -> list[tuple[str, str, str]]:
        """The latest faults injected (at most ``INJECTED_KEPT``): kind, method, path."""
        with self._lock:
            return list(self._injected)

    def count(self, kind: str, method: str = "", path: str = "") -> None:
        with self._lock:
            self._counts[kind] += 1
            self._injected.append((kind, method, path))

    def _draw(self, kind: str, key: str, n: int) -> float:
        digest = hashlib.blake2b(f"{self.faults.seed}|{kind}|{key}|{n}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    def plan(self, method: str, path: str, query: Mapping[str, str]) -> FaultPlan:
        """The faults of one request (``NO_FAULT`` for one that is not about a resource)."""
        faults = self.faults
        try:
            api_path = routing.parse_api_path(path.rstrip("/") or "/")
        except ApiError:
            return NO_FAULT
        if api_path is None or api_path.plural is None or not faults.any:
            return NO_FAULT
        key = f"{method} {path}"
        with self._lock:
            n = self._seen[key]
            self._seen[key] += 1
            self._counts["requests"] += 1

        def hit(kind: str) -> bool:
            share: float = getattr(faults, kind)
            return share > 0 and self._draw(kind, key, n) < share

        watch = method == "GET" and routing.flag(query, "watch")
        since = query.get("resourceVersion", "")
        delay = faults.delay_s if hit("delay") else 0.0
        if delay:
            self.count("delay", method, path)
        answer: tuple[ApiError, Mapping[str, str]] | None = None
        gone_watch = False
        if hit("error"):
            answer = (ApiError(500, "InternalError", "Internal error occurred: injected fault"), {})
            self.count("error", method, path)
        elif hit("throttle"):
            seconds = faults.retry_after
            error = ApiError(
                429,
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later",
                {"retryAfterSeconds": seconds},
            )
            answer = (error, {"Retry-After": str(seconds)})
            self.count("throttle", method, path)
        elif method in UPDATES and api_path.name is not None and hit("conflict"):
            resource = f"{api_path.plural}.{api_path.group}" if api_path.group else api_path.plural
            answer = (errors.conflict(resource, api_path.name), {})
            self.count("conflict", method, path)
        elif watch and since not in ("", "0") and hit("gone"):
            gone_watch = True
            self.count("gone", method, path)
        elif (
            method == "GET"
            and not watch
            and api_path.name is None
            and (query.get("continue") or query.get("resourceVersionMatch") == "Exact")
            and hit("gone")
        ):
            answer = (errors.gone(CONTINUE_EXPIRED), {})
            self.count("gone", method, path)
        lost = answer is None and not gone_watch and method in WRITES and hit("lost")
        cuts = watch and answer is None and not gone_watch
        return FaultPlan(
            delay_s=delay,
            answer=answer,
            gone_watch=gone_watch,
            lost=lost,
            cut_events=faults.cut_watch if cuts else 0,
            cut_seconds=faults.cut_watch_s if cuts else 0.0,
        )

    async def wait(self, plan: FaultPlan) -> None:
        if plan.delay_s:
            await asyncio.sleep(plan.delay_s)


def lost_answer() -> ApiError:
    """The 504 a lost write is answered with (the write itself was carried out)."""
    return ApiError(504, "Timeout", TIMEOUT, {})
