"""The operator's two passes, each run every interval while this replica leads.

- The accrual pass prices and accrues every pod and writes the spend annotations that are due.
- The evaluation pass evaluates every CostBudget (spend, thresholds, anomalies) and only
  decides: statuses, actions, notifications and Events go to background queues, so a pass's
  duration depends on CPU alone, never on a slow API server or receiver.

Both read one ``ClusterView`` snapshot: the watches' compact records of pods, nodes and budgets.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Generator, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Generic, Protocol, TypeVar, cast

from costwarden.models import CostBudgetStatus
from costwarden.operator.accrual import SLICE_S, accrual_pass
from costwarden.operator.budgets import BudgetObject, PodSource, evaluate
from costwarden.operator.metrics import BudgetRow
from costwarden.operator.runtime import Runtime
from costwarden.records import NodeRecord, PodRecord

log = logging.getLogger(__name__)

T = TypeVar("T")


class ClusterView(PodSource, Protocol):
    """What the passes read: compact records kept current by the watches."""

    def synced(self) -> bool: ...
    async def wait_synced(self) -> None: ...
    def budgets(self) -> Sequence[BudgetObject]: ...
    def pods(self) -> Iterable[PodRecord]: ...
    def nodes(self) -> Mapping[str, NodeRecord]: ...
    def sizes(self) -> Mapping[str, int]: ...


class StepTimed(Generic[T]):
    """Awaits a coroutine step by step (as ``await`` would), adding up the thread CPU time of
    its own steps, not of the other tasks that run while it awaits, and noting the longest
    step: how long it held the event loop between two awaits."""

    __slots__ = ("_coro", "cpu", "longest")

    def __init__(self, coro: Coroutine[Any, Any, T]) -> None:
        self._coro = coro
        self.cpu = 0.0
        self.longest = 0.0

    def __await__(self) -> Generator[Any, Any, T]:
        coro = self._coro
        value: Any = None
        error: BaseException | None = None
        while True:
            cpu, wall = time.thread_time(), time.perf_counter()
            try:
                yielded = coro.send(value) if error is None else coro.throw(error)
            except StopIteration as done:
                self._note(cpu, wall)
                return cast(T, done.value)
            except BaseException:
                self._note(cpu, wall)
                raise
            self._note(cpu, wall)
            try:
                value, error = (yield yielded), None
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation, thrown in by the task: pass it on
                value, error = None, exc

    def _note(self, cpu: float, wall: float) -> None:
        self.cpu += time.thread_time() - cpu
        self.longest = max(self.longest, time.perf_counter() - wall)


async def run_every(
    runtime: Runtime, interval: float, name: str, one_pass: Callable[[], Coroutine[Any, Any, None]]
) -> None:
    """Run ``one_pass`` every ``interval`` seconds while this replica acts; never give up."""
    metrics = runtime.metrics
    while True:
        started = runtime.monotonic()
        if runtime.acting():
            timed = StepTimed(one_pass())
            try:
                await timed
            except Exception:
                log.exception("%s pass failed; retrying next interval", name)
            metrics.reconcile_seconds.labels(name).observe(runtime.monotonic() - started)
            metrics.pass_cpu_seconds.labels(name).observe(timed.cpu)
            metrics.pass_longest_step_seconds.labels(name).observe(timed.longest)
        await asyncio.sleep(max(0.0, interval - (runtime.monotonic() - started)))


async def _synced(runtime: Runtime, view: ClusterView) -> bool:
    """Wait for the first complete list, so that the first pass starts as soon as it is there
    (not an interval later); False if this replica stopped acting meanwhile."""
    if not view.synced():
        await view.wait_synced()
    return runtime.acting()


async def accrue_all(runtime: Runtime, view: ClusterView) -> Counter[str]:
    if not await _synced(runtime, view):
        return Counter()
    counts = await accrual_pass(runtime, view.pods(), view.nodes(), runtime.clock())
    for key, value in counts.items():
        if key.startswith("write_"):
            runtime.metrics.api_writes.labels("pod_annotation", key.removeprefix("write_")).inc(value)
    runtime.metrics.tracked = tracked_objects(runtime, view)
    return counts


def tracked_objects(runtime: Runtime, view: ClusterView) -> dict[str, int]:
    """Entries of each table the operator holds, by name (``costwarden_tracked_objects``): the
    watches' records, the spend book's per-pod tables, the budgets' states, the queued work.
    Under pod churn each follows the live pods and budgets, never the ones that came and went."""
    out = {f"informer_{key}": value for key, value in view.sizes().items()}
    out.update({f"spend_{key}": value for key, value in runtime.pods.sizes().items()})
    out.update({f"budget_{key}": value for key, value in runtime.budgets.sizes().items()})
    work = runtime.work
    out.update({f"status_{key}": value for key, value in work.writer.sizes().items()})
    for queue in (work.actions, work.notifications, work.events):
        out[f"{queue.name}_queued"] = queue.queued
        out[f"{queue.name}_running"] = queue.running
    out["gpu_readings"] = len(runtime.gpu.snapshot.readings)
    return out


async def evaluate_all(runtime: Runtime, view: ClusterView) -> Counter[str]:
    """Evaluate every budget against one snapshot (a pod killed for one budget is still seen by
    the others); yields to the event loop every ``SLICE_S`` seconds of work."""
    counts: Counter[str] = Counter()
    if not await _synced(runtime, view):
        return counts
    budgets = view.budgets()
    nodes = view.nodes()
    now = runtime.clock()
    runtime.budgets.retain({budget.key for budget in budgets})
    if runtime.billing is not None:  # a deleted budget's estimate notes: the last ones, then forgotten
        runtime.billing.buffer.retain({f"{b.namespace}/{b.name}" for b in budgets}, nodes)
    clock = time.perf_counter
    deadline = clock() + SLICE_S
    for budget in budgets:
        if clock() >= deadline:
            await asyncio.sleep(0)
            deadline = clock() + SLICE_S
        try:
            counts.update(evaluate(runtime, budget, view, nodes, now))
        except Exception:
            log.exception("CostBudget %s/%s: evaluation failed; retrying next pass", *budget.key)
            counts["failed"] += 1
            continue
        counts["budgets"] += 1
        runtime.metrics.evaluations.inc()
    if not runtime.evaluated and runtime.settings.freeze_heap_when_synced:
        gc.freeze()  # the long-lived records are all in now (see OperatorSettings)
    runtime.evaluated = True
    if runtime.heap.due(runtime.monotonic()):
        await asyncio.to_thread(runtime.heap.trim, runtime.monotonic())
    _publish_budget_rows(runtime)
    runtime.metrics.queued.labels("actions").set(runtime.work.actions.queued)
    runtime.metrics.queued.labels("notifications").set(runtime.work.notifications.queued)
    runtime.metrics.queued.labels("events").set(runtime.work.events.queued)
    return counts


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _unit_cost(status: CostBudgetStatus) -> tuple[str, float] | None:
    units = status.unit_economics
    if units is None or units.cost_per_million is None:
        return None
    return (units.unit, float(units.cost_per_million))


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
                gpu_utilization=_float(state.status.gpu_utilization),
                wasted_spend=float(state.status.wasted_spend or 0),
                cost_per_million=_unit_cost(state.status),
            )
        )
    runtime.metrics.budget_rows = tuple(sorted(rows, key=lambda row: (row.namespace, row.name)))
