"""Which replica acts: a ``coordination.k8s.io/v1`` Lease, as Kubernetes' own controllers elect.

The rules are client-go's leader election (``k8s.io/client-go/tools/leaderelection``):

- The holder renews the Lease every ``retry_period``; a standby takes it over only once the
  Lease record has not changed for ``lease_duration`` as measured on the standby's own clock
  (so clock skew between nodes does not matter), with an optimistic-concurrency PUT
  (``resourceVersion``), so two standbys cannot both win.
- Fencing: the holder acts only until ``renew_deadline`` after the start of its last successful
  renewal. ``renew_deadline < lease_duration``, and a standby starts counting only when it sees
  that renewal, so the old holder has stopped acting before anyone else can take over. A
  replica that cannot reach the API server therefore stops acting by itself.
- On a graceful stop the holder releases the Lease (empty holder), and a standby takes over
  at its next try instead of waiting out the duration.

Leadership does not depend on budgets: with none at all the holder still runs the accrual pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Protocol

from costwarden.operator.kube import KubeError, WriteResult

log = logging.getLogger(__name__)


class LeaseApi(Protocol):
    async def read_lease(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    async def create_lease(self, namespace: str, body: Mapping[str, Any]) -> WriteResult: ...
    async def replace_lease(self, namespace: str, name: str, body: Mapping[str, Any]) -> WriteResult: ...


@dataclass(frozen=True, slots=True)
class LeaseSettings:
    name: str
    namespace: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election needs 0 < retry period < renew deadline < lease duration "
                f"(got {self.retry_period}, {self.renew_deadline}, {self.lease_duration})"
            )


class Move(Enum):
    CREATE = "create"  # no Lease yet
    RENEW = "renew"  # we hold it
    TAKE = "take"  # free, released, or expired
    WAIT = "wait"  # someone else holds it


def decide(lease: Mapping[str, Any] | None, identity: str, unchanged_for: float, duration: float) -> Move:
    """What to do with the Lease as read; ``unchanged_for`` is how long (on our clock) we have
    seen the same record, ``duration`` our default when the Lease names none."""
    if lease is None:
        return Move.CREATE
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity") or ""
    if holder == identity:
        return Move.RENEW
    if not holder:
        return Move.TAKE
    held_for = float(spec.get("leaseDurationSeconds") or duration)
    return Move.TAKE if unchanged_for >= held_for else Move.WAIT


def micro_time(moment: datetime) -> str:
    """metav1.MicroTime: RFC 3339 with microseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_body(
    settings: LeaseSettings, now: datetime, previous: Mapping[str, Any] | None, *, holder: str | None = None
) -> dict[str, Any]:
    """The Lease we write: renewing keeps acquireTime; taking over counts a transition."""
    old_meta = (previous or {}).get("metadata") or {}
    old_spec = (previous or {}).get("spec") or {}
    identity = settings.identity if holder is None else holder
    keeps = old_spec.get("holderIdentity") == identity and identity
    transitions = int(old_spec.get("leaseTransitions") or 0)
    if previous is not None and not keeps and identity:
        transitions += 1
    metadata: dict[str, Any] = {"name": settings.name, "namespace": settings.namespace}
    if old_meta.get("resourceVersion"):
        metadata["resourceVersion"] = old_meta["resourceVersion"]
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {
            "holderIdentity": identity,
            "leaseDurationSeconds": max(1, round(settings.lease_duration)),
            "acquireTime": old_spec.get("acquireTime") if keeps else micro_time(now),
            "renewTime": micro_time(now),
            "leaseTransitions": transitions,
        },
    }


def _record_key(lease: Mapping[str, Any] | None) -> tuple[str, str, str]:
    if lease is None:
        return ("", "", "")
    spec = lease.get("spec") or {}
    rv = str((lease.get("metadata") or {}).get("resourceVersion") or "")
    return (str(spec.get("holderIdentity") or ""), str(spec.get("renewTime") or ""), rv)


Transition = Callable[[bool], Awaitable[None] | None]


class LeaderElector:
    """Runs the election loop; ``acting()`` is the fence every side effect checks."""

    def __init__(
        self,
        api: LeaseApi,
        settings: LeaseSettings,
        *,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float],
        on_transition: Transition | None = None,
    ) -> None:
        self._api = api
        self.settings = settings
        self._clock = clock
        self._monotonic = monotonic
        self._on_transition = on_transition
        self._valid_until = float("-inf")
        self._observed: tuple[str, str, str] | None = None
        self._observed_at = 0.0
        self._leading = False
        self._stopped = asyncio.Event()
        self.transitions = 0  # how often this replica became the leader

    def acting(self) -> bool:
        return self._monotonic() < self._valid_until

    @property
    def identity(self) -> str:
        return self.settings.identity

    async def run(self) -> None:
        while not self._stopped.is_set():
            try:
                await self.try_once()
            except Exception:
                log.exception("leader election: unexpected error; retrying")
            await self._notice_change()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self.settings.retry_period)

    async def try_once(self) -> None:
        """One read and, where due, one write of the Lease."""
        started = self._monotonic()
        try:
            lease = await self._api.read_lease(self.settings.namespace, self.settings.name)
        except KubeError as exc:
            log.warning("leader election: cannot read Lease %s: %s", self._where(), exc)
            return
        key = _record_key(lease)
        if key != self._observed:
            self._observed, self._observed_at = key, started
        move = decide(lease, self.identity, started - self._observed_at, self.settings.lease_duration)
        if move is Move.WAIT:
            return
        body = lease_body(self.settings, self._clock(), lease)
        if move is Move.CREATE:
            result = await self._api.create_lease(self.settings.namespace, body)
        else:
            result = await self._api.replace_lease(self.settings.namespace, self.settings.name, body)
        if result in (WriteResult.DONE, WriteResult.DRY_RUN):
            self._valid_until = started + self.settings.renew_deadline
        elif move is not Move.RENEW or result is WriteResult.CONFLICT:
            log.info(
                "leader election: %s of Lease %s lost the race (%s)", move.value, self._where(), result.value
            )

    async def _notice_change(self) -> None:
        leading = self.acting()
        if leading == self._leading:
            return
        self._leading = leading
        if leading:
            self.transitions += 1
            log.info("leader election: %s now leads (Lease %s)", self.identity, self._where())
        else:
            log.warning("leader election: %s stopped leading (Lease %s)", self.identity, self._where())
        if self._on_transition is not None:
            outcome = self._on_transition(leading)
            if outcome is not None:
                await outcome

    async def stop(self) -> None:
        """Stop the loop and release the Lease if we hold it, so a standby need not wait it out."""
        self._stopped.set()
        if not self.acting():
            return
        self._valid_until = float("-inf")
        try:
            lease = await self._api.read_lease(self.settings.namespace, self.settings.name)
            if lease is not None and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                body = lease_body(self.settings, self._clock(), lease, holder="")
                await self._api.replace_lease(self.settings.namespace, self.settings.name, body)
        except KubeError as exc:
            log.warning("leader election: could not release Lease %s: %s", self._where(), exc)

    def _where(self) -> str:
        return f"{self.settings.namespace}/{self.settings.name}"


class AlwaysLeader:
    """Standalone (no ``--lease``): this replica always acts."""

    transitions = 1
    identity = "standalone"

    def acting(self) -> bool:
        return True

    async def run(self) -> None:
        return None

    async def stop(self) -> None:
        return None
