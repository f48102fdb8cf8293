"""The operator's two passes, each run every interval while this replica leads.

- The accrual pass prices and accrues every pod and writes the spend annotations that are due.
- The evaluation pass evaluates every CostBudget (spend, thresholds, anomalies) and only
  decides: statuses, actions, notifications and Events go to background queues, so a pass's
  duration depends on CPU alone, never on a slow API server or receiver.

Both read one ``ClusterView`` snapshot: the watches' compact records of pods, nodes and budgets.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Protocol

from costwarden.operator.accrual import accrual_pass
from costwarden.operator.budgets import BudgetObject, PodSource, evaluate
from costwarden.operator.metrics import BudgetRow
from costwarden.operator.runtime import Runtime
from costwarden.records import NodeRecord, PodRecord

log = logging.getLogger(__name__)

CHUNK = 50  # budgets between yields to the event loop


class ClusterView(PodSource, Protocol):
    """What the passes read: compact records kept current by the watches."""

    def synced(self) -> bool: ...
    def budgets(self) -> Sequence[BudgetObject]: ...
    def pods(self) -> Iterable[PodRecord]: ...
    def nodes(self) -> Mapping[str, NodeRecord]: ...


async def run_every(
    runtime: Runtime, interval: float, name: str, one_pass: Callable[[], Awaitable[None]]
) -> None:
    """Run ``one_pass`` every ``interval`` seconds while this replica acts; never give up."""
    while True:
        started = runtime.monotonic()
        if runtime.acting():
            try:
                await one_pass()
            except Exception:
                log.exception("%s pass failed; retrying next interval", name)
            runtime.metrics.reconcile_seconds.labels(name).observe(runtime.monotonic() - started)
        await asyncio.sleep(max(0.0, interval - (runtime.monotonic() - started)))


async def accrue_all(runtime: Runtime, view: ClusterView) -> Counter[str]:
    if not view.synced():
        return Counter()
    counts = await accrual_pass(runtime, view.pods(), view.nodes(), runtime.clock())
    for key, value in counts.items():
        if key.startswith("write_"):
            runtime.metrics.api_writes.labels("pod_annotation", key.removeprefix("write_")).inc(value)
    return counts


async def evaluate_all(runtime: Runtime, view: ClusterView) -> Counter[str]:
    """Evaluate every budget against one snapshot (a pod killed for one budget is still seen by
    the others); yields to the event loop every ``CHUNK`` budgets."""
    counts: Counter[str] = Counter()
    if not view.synced():
        return counts
    budgets = view.budgets()
    nodes = view.nodes()
    now = runtime.clock()
    runtime.budgets.retain({budget.key for budget in budgets})
    for index, budget in enumerate(budgets):
        if index and index % CHUNK == 0:
            await asyncio.sleep(0)
        try:
            counts.update(evaluate(runtime, budget, view, nodes, now))
        except Exception:
            log.exception("CostBudget %s/%s: evaluation failed; retrying next pass", *budget.key)
            counts["failed"] += 1
            continue
        counts["budgets"] += 1
        runtime.metrics.evaluations.inc()
    runtime.evaluated = True
    _publish_budget_rows(runtime)
    runtime.metrics.queued.labels("actions").set(runtime.work.actions.queued)
    runtime.metrics.queued.labels("notifications").set(runtime.work.notifications.queued)
    runtime.metrics.queued.labels("events").set(runtime.work.events.queued)
    return counts


def _publish_budget_rows(runtime: Runtime) -> None:
    rows = []
    for state in runtime.budgets:
        fig = state.figures
        if fig is None:
            continue
        rows.append(
            BudgetRow(
                state.namespace,
                state.name,
                float(fig.spend),
                float(fig.limit),
                float(fig.hourly_rate),
                float(fig.percent_used),
            )
        )
    runtime.metrics.budget_rows = tuple(sorted(rows, key=lambda row: (row.namespace, row.name)))
