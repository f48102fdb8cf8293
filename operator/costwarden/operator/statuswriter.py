"""Writes budget statuses in the background, the latest one per budget.

A write still queued is replaced by a newer status, so a slow API server slows the status
display, never the evaluation pass. A failed write (a 409, a 429, a 5xx, a cut connection) is
retried after a backoff (a 429's Retry-After honoured); the revision each successful write
stored is reported to the budget's state, which is what lets a worker wait until its Pending
record is stored before it acts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from costwarden.models import CostBudgetStatus
from costwarden.operator.budgetstate import BudgetKey, BudgetState
from costwarden.operator.kube import WriteResult
from costwarden.operator.metrics import Metrics

log = logging.getLogger(__name__)

STATUS_WRITE_CONCURRENCY = 8
RETRY_BASE = 0.5  # seconds before the first retry of a failed write, doubling
RETRY_CAP = 30.0
STORED = (WriteResult.DONE, WriteResult.DRY_RUN)

PatchOf = Callable[[CostBudgetStatus, Mapping[str, Any]], dict[str, Any]]


class StatusApi(Protocol):
    last_retry_after: float | None

    async def patch_budget_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> WriteResult: ...


class StatusWriter:
    def __init__(
        self,
        api: StatusApi,
        metrics: Metrics,
        *,
        monotonic: Callable[[], float],
        acting: Callable[[], bool],
        patch_of: PatchOf,
    ) -> None:
        self._api = api
        self._metrics = metrics
        self._monotonic = monotonic
        self._acting = acting
        self._patch_of = patch_of
        self._queued: dict[BudgetKey, BudgetState] = {}
        self._failures: dict[BudgetKey, int] = {}
        self._wake = asyncio.Event()
        self._retries: set[asyncio.TimerHandle] = set()

    def submit(self, state: BudgetState) -> None:
        self._queued[state.key] = state
        self._wake.set()

    def forget(self, key: BudgetKey) -> None:
        self._queued.pop(key, None)
        self._failures.pop(key, None)

    async def run(self) -> None:
        semaphore = asyncio.Semaphore(STATUS_WRITE_CONCURRENCY)
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                batch, self._queued = list(self._queued.values()), {}
                await asyncio.gather(*(self._write(semaphore, state) for state in batch))
        finally:
            for handle in self._retries:
                handle.cancel()

    async def _write(self, semaphore: asyncio.Semaphore, state: BudgetState) -> None:
        if state.retired or not self._acting():
            return  # a standby writes nothing; the new leader starts from what is stored
        async with semaphore:
            revision, status = state.revision, state.status
            body = status.to_k8s()
            result = await self._api.patch_budget_status(
                state.namespace, state.name, self._patch_of(status, state.stored)
            )
        self._metrics.api_writes.labels("status", result.value).inc()
        if result in STORED:
            self._failures.pop(state.key, None)
            state.mark_stored(revision, body, self._monotonic())
        elif result is not WriteResult.GONE:
            self._retry_later(state, result)

    def _retry_later(self, state: BudgetState, result: WriteResult) -> None:
        failures = self._failures.get(state.key, 0) + 1
        self._failures[state.key] = failures
        delay = min(RETRY_CAP, RETRY_BASE * 2 ** (failures - 1))
        if result is WriteResult.THROTTLED and self._api.last_retry_after is not None:
            delay = max(delay, self._api.last_retry_after)
        log.warning(
            "CostBudget %s/%s: status write %s (attempt %d); retrying in %.1fs",
            state.namespace,
            state.name,
            result.value,
            failures,
            delay,
        )
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def again() -> None:
            if handle is not None:
                self._retries.discard(handle)
            if state.key not in self._queued and not state.retired:
                self.submit(state)

        handle = loop.call_later(delay, again)
        self._retries.add(handle)
