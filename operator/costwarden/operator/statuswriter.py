"""Writes budget statuses in the background, the latest one per budget.

A write still queued is replaced by a newer status, so a slow API server slows the status
display, never the evaluation pass. A failed write (a 429, a 5xx, a cut connection) is retried
after a backoff (a 429's Retry-After honoured); the revision each successful write stored is
reported to the budget's state, which is what lets a worker wait until its Pending record is
stored before it acts.

Every write carries the budget's ``resourceVersion`` as this replica last knew it (from the watch,
and from the answer of its own last write), so the API server refuses it (409) when anything
wrote the budget since. A write an earlier leader sent before it was cut off and the network
delivered late therefore cannot replace what the new leader stored. On a 409 the writer never
sends the same body again: it reads the budget (one GET), drops the write if this replica no
longer leads (or the budget is gone or was created anew), else merges the stored status's action
records into its own (``engine.status_merge``: none lost, none done twice) and writes that, with
the version just read; at most ``CONFLICT_ATTEMPTS`` times in a row, then after the backoff. A
user's spec or annotation change bumps the version too, so a 409 is routine: it is logged at
debug and counted in ``costwarden_api_writes_total{kind="status",result="conflict"}``.

``STATUS_WRITE_CONCURRENCY`` workers each take the next queued budget, one write per budget at
a time (a budget queued again while it is written waits for that write, so writes of one
budget are stored in order). A status holding a Pending record (a destructive action or a
notification about to be carried out once it is stored) goes before every routine one: a Kill
waits for one write, not for the hundreds of spend updates an evaluation pass queues at
10,000 pods (the soak, ``bench/soak.py``, measured Kills 4-5 s behind such batches).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from pydantic import ValidationError

from costwarden.engine.status_merge import merge_status
from costwarden.models import ActionResult, CostBudgetStatus, NotificationState
from costwarden.operator.budgetstate import BudgetKey, BudgetState
from costwarden.operator.kube import KubeError, StatusWrite, WriteResult
from costwarden.operator.metrics import Metrics

log = logging.getLogger(__name__)

STATUS_WRITE_CONCURRENCY = 8
RETRY_BASE = 0.5  # seconds before the first retry of a failed write, doubling
RETRY_CAP = 30.0
STORED = (WriteResult.DONE, WriteResult.DRY_RUN)
CONFLICT_ATTEMPTS = 3  # writes of one status in a row, each after a 409 and a read, before backing off

PatchOf = Callable[[CostBudgetStatus, Mapping[str, Any]], dict[str, Any]]


class StatusApi(Protocol):
    last_retry_after: float | None

    async def patch_budget_status(
        self, namespace: str, name: str, status: Mapping[str, Any], *, resource_version: str | None = None
    ) -> StatusWrite: ...

    async def read_budget(self, namespace: str, name: str) -> dict[str, Any] | None: ...


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
        self._urgent: dict[BudgetKey, BudgetState] = {}  # in submission order
        self._queued: dict[BudgetKey, BudgetState] = {}  # routine: in submission order
        self._writing: set[BudgetKey] = set()
        self._failures: dict[BudgetKey, int] = {}
        self._wake = asyncio.Event()
        self._retries: set[asyncio.TimerHandle] = set()

    def submit(self, state: BudgetState) -> None:
        """Queue the budget's latest status (replacing one still queued, keeping its place):
        before every routine one when it holds a Pending record (``urgent``)."""
        key = state.key
        if key in self._urgent or urgent(state.status):
            self._queued.pop(key, None)
            self._urgent[key] = state
        else:
            self._queued[key] = state
        self._wake.set()

    def waiting(self) -> set[BudgetKey]:
        """The budgets whose statuses wait to be written (urgent or not)."""
        return {*self._urgent, *self._queued}

    def sizes(self) -> dict[str, int]:
        """Statuses waiting (urgent ones apart), being written, budgets with failed writes,
        retries scheduled."""
        return {
            "queued": len(self._queued),
            "urgent": len(self._urgent),
            "writing": len(self._writing),
            "failures": len(self._failures),
            "retries": len(self._retries),
        }

    def forget(self, key: BudgetKey) -> None:
        self._queued.pop(key, None)
        self._urgent.pop(key, None)
        self._failures.pop(key, None)

    def _next(self) -> BudgetState | None:
        """The first queued budget that is not being written, urgent ones first."""
        for table in (self._urgent, self._queued):
            for key in table:
                if key not in self._writing:
                    return table.pop(key)
        return None

    async def run(self) -> None:
        workers = [
            asyncio.create_task(self._work(), name=f"status-writer-{n}")
            for n in range(STATUS_WRITE_CONCURRENCY)
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            for handle in self._retries:
                handle.cancel()

    async def _work(self) -> None:
        while True:
            state = self._next()
            if state is None:
                self._wake.clear()  # no await since _next: nothing was queued in between
                await self._wake.wait()
                continue
            key = state.key
            self._writing.add(key)
            try:
                await self._write(state)
            except Exception:  # a bug must not stop the statuses: the next pass queues it again
                log.exception("CostBudget %s/%s: status write failed unexpectedly", *key)
            finally:
                self._writing.discard(key)
                if key in self._urgent or key in self._queued:
                    self._wake.set()  # queued again meanwhile, skipped while this write ran

    async def _write(self, state: BudgetState) -> None:
        for _ in range(CONFLICT_ATTEMPTS):
            if state.retired or not self._acting():
                return  # a standby writes nothing; the new leader starts from what is stored
            revision, status = state.revision, state.status
            body = status.to_k8s()
            written = await self._api.patch_budget_status(
                state.namespace,
                state.name,
                self._patch_of(status, state.stored),
                resource_version=state.resource_version,
            )
            result = written.result
            self._metrics.api_writes.labels("status", result.value).inc()
            if result in STORED:
                self._failures.pop(state.key, None)
                state.mark_stored(revision, body, self._monotonic(), written.resource_version)
                return
            if result is WriteResult.GONE:
                self._failures.pop(state.key, None)
                return
            if result is not WriteResult.CONFLICT:
                self._retry_later(state, result)
                return
            log.debug(
                "CostBudget %s/%s: status write at resourceVersion %s refused (409): reading it again",
                state.namespace,
                state.name,
                state.resource_version,
            )
            if not await self._read_again(state):
                return
        self._retry_later(state, WriteResult.CONFLICT)

    async def _read_again(self, state: BudgetState) -> bool:
        """After a 409: the budget as stored now, merged into the state (see the module's
        docstring). Whether to write again: not when this replica stopped leading, the budget is
        gone or is another object of the same name, or it could not be read (then later)."""
        if state.retired or not self._acting():
            log.debug("CostBudget %s/%s: no longer leading after a 409; the write is dropped", *state.key)
            self._failures.pop(state.key, None)
            return False
        try:
            found = await self._api.read_budget(state.namespace, state.name)
        except KubeError as exc:
            log.debug("CostBudget %s/%s: could not read it after a 409: %s", *state.key, exc)
            throttled = exc.status == 429
            self._retry_later(state, WriteResult.THROTTLED if throttled else WriteResult.FAILED)
            return False
        if found is None:
            self._failures.pop(state.key, None)
            return False
        meta = found.get("metadata") or {}
        if state.retired or not self._acting() or str(meta.get("uid") or "") != state.uid:
            log.debug("CostBudget %s/%s: no longer ours to write (leader fence, uid); dropped", *state.key)
            self._failures.pop(state.key, None)
            return False
        stored_body = found.get("status") or {}
        try:
            theirs = CostBudgetStatus.model_validate(dict(stored_body))
        except ValidationError:
            theirs = CostBudgetStatus()  # unreadable: nothing in it to keep; ours replaces it
        known = {
            str(record.get("id"))
            for record in state.stored.get("actions") or ()
            if isinstance(record, Mapping)
        }
        merge = merge_status(state.status, theirs, known)
        void = bool(merge.settled & (state.acting | state.notifying))
        state.refreshed(str(meta.get("resourceVersion") or "") or None, stored_body, void)
        if merge.changed:
            log.info(
                "CostBudget %s/%s: merged action records another replica stored (taken in: %s; "
                "further along: %s)%s",
                state.namespace,
                state.name,
                ", ".join(merge.adopted) or "none",
                ", ".join(merge.advanced) or "none",
                "; jobs waiting on them will not run" if void else "",
            )
            state.replace_status(merge.status)
        return True

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
            if state.retired:  # deleted, or leadership changed: nothing more to write
                self._failures.pop(state.key, None)
            elif state.key not in self._queued and state.key not in self._urgent:
                self.submit(state)

        handle = loop.call_later(delay, again)
        self._retries.add(handle)


def urgent(status: CostBudgetStatus) -> bool:
    """Whether a job waits for this status to be stored: it holds a Pending action record (a
    destructive action acts once it is stored) or a Pending notification (sent once stored)."""
    return any(
        record.result == ActionResult.PENDING or record.notification == NotificationState.PENDING
        for record in status.actions
    )
