"""The operator's two passes, each run every interval on the acting replica.

- The accrual pass prices and accrues every pod and writes the spend annotations that are due.
- The evaluation pass evaluates every CostBudget (spend, thresholds, anomalies, enforcement)
  and writes the statuses that are due.

One pass over all budgets costs a fraction of a kopf timer per budget (kopf's per-invocation
machinery dominated at 1,000 budgets and a 1 s interval; see bench/RESULTS.md), and it evaluates
every budget against the same snapshot of pods and nodes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from costwarden.operator.accrual import accrual_pass
from costwarden.operator.budgets import BudgetObject, evaluate
from costwarden.operator.kube import WriteResult
from costwarden.operator.resume import RESUME_ANNOTATION
from costwarden.operator.runtime import Runtime
from costwarden.operator.throttle import status_due
from costwarden.records import NodeRecord, PodRecord

log = logging.getLogger(__name__)

STATUS_WRITE_CONCURRENCY = 8
EVALUATION_CONCURRENCY = 32
Index = Mapping[Any, Iterable[Any]]


async def run_every(
    runtime: Runtime, interval: float, name: str, one_pass: Callable[[], Awaitable[None]]
) -> None:
    """Run ``one_pass`` every ``interval`` seconds while this replica acts; never give up."""
    while True:
        started = runtime.monotonic()
        if runtime.acting_peer(started):
            try:
                await one_pass()
            except Exception:
                log.exception("%s pass failed; retrying next interval", name)
            runtime.metrics.reconcile_seconds.labels(name).observe(runtime.monotonic() - started)
        await asyncio.sleep(max(0.0, interval - (runtime.monotonic() - started)))


async def accrue_all(runtime: Runtime, pod_index: Index, node_index: Index) -> None:
    nodes = runtime.node_map(node_index, max_age=0)
    pods = [record for store in pod_index.values() for record in store]
    counts = await accrual_pass(runtime, pods, nodes, runtime.clock())
    for key, value in counts.items():
        if key.startswith("write_"):
            runtime.metrics.api_writes.labels("pod_annotation", key.removeprefix("write_")).inc(value)


async def evaluate_all(
    runtime: Runtime, writer: StatusWriter, budget_index: Index, pod_index: Index, node_index: Index
) -> None:
    if not runtime.indexed:
        return
    budgets = [budget for store in budget_index.values() for budget in store]
    nodes = runtime.node_map(node_index)
    # One snapshot for the whole pass: a pod killed for one budget is still seen by the others.
    pods = {namespace: list(store) for namespace, store in pod_index.items()}
    counts = await evaluation_pass(runtime, writer, budgets, pods, nodes, runtime.clock())
    runtime.coverage.ready = True
    for key, value in counts.items():
        if key.startswith("action_"):
            runtime.metrics.actions.labels(key.removeprefix("action_")).inc(value)
        elif key.startswith("event_"):
            runtime.metrics.api_writes.labels("event", key.removeprefix("event_")).inc(value)


async def evaluation_pass(  # noqa: PLR0917 -- the pass's inputs, each needed
    runtime: Runtime,
    writer: StatusWriter,
    budgets: Sequence[BudgetObject],
    pods_by_namespace: Mapping[str, Sequence[PodRecord]],
    nodes: Mapping[str, NodeRecord],
    now: datetime,
) -> Counter[str]:
    """Evaluate every budget at ``now`` and queue the statuses that are due.

    Budgets are evaluated concurrently (up to ``EVALUATION_CONCURRENCY`` at a time): the
    evaluation itself is pure and quick, but a budget that acts waits on the API server
    (persisting its Pending record, deletes, Events), and one budget's kill must not hold up the
    crossing of the next.
    """
    counts: Counter[str] = Counter()
    semaphore = asyncio.Semaphore(EVALUATION_CONCURRENCY)

    async def one(budget: BudgetObject) -> None:
        async with semaphore:
            try:
                pods = pods_by_namespace.get(budget.namespace, ())
                status, done = await evaluate(runtime, budget, pods, nodes, now)
            except Exception:
                log.exception("CostBudget %s/%s: evaluation failed; retrying next pass", *budget.key)
                counts["failed"] += 1
                return
        counts.update(done)
        counts["budgets"] += 1
        runtime.metrics.evaluations.inc()
        since = runtime.monotonic() - runtime.status_written.get(budget.key, float("-inf"))
        interval = runtime.settings.status_interval
        if runtime.kube.dry_run:  # nothing is stored, so every difference would stay "new"
            due = since >= interval
        else:
            due = budget.resume_requested or status_due(budget.status, status, since, interval)
        if due:
            writer.submit(budget, status)
            counts["status_due"] += 1

    await asyncio.gather(*(one(budget) for budget in budgets))
    return counts


class StatusWriter:
    """Writes budget statuses in the background, the latest one per budget (a write still queued
    is replaced by a newer status), so a slow API server slows the status display, never the
    evaluation pass that detects crossings and acts."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._queued: dict[tuple[str, str], tuple[BudgetObject, dict[str, Any]]] = {}
        self._wake = asyncio.Event()

    def submit(self, budget: BudgetObject, status: dict[str, Any]) -> None:
        self._queued[budget.key] = (budget, status)
        self._wake.set()

    async def run(self) -> None:
        semaphore = asyncio.Semaphore(STATUS_WRITE_CONCURRENCY)
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._queued = list(self._queued.values()), {}
            await asyncio.gather(*(self._write(semaphore, budget, status) for budget, status in batch))

    async def _write(
        self, semaphore: asyncio.Semaphore, budget: BudgetObject, status: dict[str, Any]
    ) -> None:
        kube, metrics = self._runtime.kube, self._runtime.metrics
        async with semaphore:
            result = await kube.patch_budget_status(budget.namespace, budget.name, status)
            if budget.resume_requested and result in (WriteResult.DONE, WriteResult.DRY_RUN):
                await kube.annotate_budget(budget.namespace, budget.name, {RESUME_ANNOTATION: None})
        metrics.api_writes.labels("status", result.value).inc()
        if result in (WriteResult.DONE, WriteResult.DRY_RUN):
            self._runtime.status_written[budget.key] = self._runtime.monotonic()
