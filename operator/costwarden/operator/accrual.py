"""One pass over every pod: accrue spend, and write the spend annotations that are due."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal

from costwarden.engine.gpu import DEFAULT_IDLE_PERCENT
from costwarden.engine.idle import idle_node_costs
from costwarden.engine.ledger import PodAccrual, mark_annotations
from costwarden.engine.rates import PodRate
from costwarden.operator.kube import WriteResult
from costwarden.operator.runtime import Runtime
from costwarden.operator.spendbook import SpendBook
from costwarden.operator.throttle import WritePolicy, priority, write_reason
from costwarden.records import (
    ANNOTATION_BUDGETS,
    ANNOTATION_GPU_UTIL,
    ANNOTATION_GPU_UTIL_AT,
    NodeRecord,
    PodRecord,
    format_time,
)

log = logging.getLogger(__name__)

WRITE_CONCURRENCY = 8
# About the longest a pass holds the event loop between two yields: both passes check the clock
# between items (a pod, a budget), so one item is never cut; a budget over 20,000 pods is
# evaluated in one go, a few hundred ms (bench/RESULTS.md).
SLICE_S = 0.005

GpuNote = tuple[Decimal, datetime] | None  # a fresh utilisation reading and its time
Pending = tuple[tuple[int, float], str, PodRecord, PodAccrual, str, GpuNote]
UTILIZATION_CHANGE = Decimal(5)  # percentage points that make a new reading worth a write


def spend_annotations(accrual: PodAccrual, budgets: str, gpu: GpuNote = None) -> dict[str, str | None]:
    """The annotations of one write; the GPU ones are for people to read (``costwarden top``,
    kubectl), never read back for a decision."""
    notes: dict[str, str | None] = dict(mark_annotations(accrual))
    notes[ANNOTATION_BUDGETS] = budgets or None
    if gpu is not None:
        notes[ANNOTATION_GPU_UTIL] = str(gpu[0].quantize(Decimal("0.1")))
        notes[ANNOTATION_GPU_UTIL_AT] = format_time(gpu[1])
    return notes


def gpu_note(runtime: Runtime, pod: PodRecord, now: datetime) -> GpuNote:
    if pod.gpus <= 0:
        return None
    telemetry = runtime.gpu.snapshot
    utilization = telemetry.utilization(pod.uid, now)
    if utilization is None:
        return None
    return (utilization, telemetry.readings[pod.uid].at)


def _count_waste(
    book: SpendBook, uid: str, gpu: GpuNote, figures: tuple[PodAccrual | None, PodAccrual]
) -> None:
    """Add what the pod spent since its last figure if its GPUs read idle now (a per-pod metric)."""
    before, after = figures
    if (
        gpu is not None
        and gpu[0] < DEFAULT_IDLE_PERCENT
        and before is not None
        and after.spend > before.spend
    ):
        book.wasted[uid] = book.wasted.get(uid, Decimal(0)) + (after.spend - before.spend)


def _due_write(
    book: SpendBook, policy: WritePolicy, what: tuple[PodRecord, PodAccrual, str, GpuNote], now: datetime
) -> Pending | None:
    """The pod's annotation write if one is due now, with its priority."""
    pod, accrual, names, gpu = what
    written = book.written(pod)
    mark = written.mark if written else None
    reason = write_reason(policy, mark, accrual, written.budgets if written else None, names)
    if reason is None and _utilization_moved(pod, gpu):
        reason = "rate"  # as urgent as a rate change: what people read is out of date
    if reason is None:
        return None
    return (priority(reason, mark, now), pod.uid, pod, accrual, names, gpu)


def _utilization_moved(pod: PodRecord, gpu: GpuNote) -> bool:
    if gpu is None:
        return False
    shown = pod.gpu_utilization
    return shown is None or abs(shown - gpu[0]) >= UTILIZATION_CHANGE


async def accrual_pass(
    runtime: Runtime, pods: Iterable[PodRecord], nodes: Mapping[str, NodeRecord], now: datetime
) -> Counter[str]:
    """Accrue every pod, then write due annotations, most urgent first, within the token bucket.
    Linear in pods; yields to the event loop every ``SLICE_S`` seconds of work."""
    counts: Counter[str] = Counter()
    book = runtime.pods
    # Before every budget has been evaluated once, a write would lack costwarden.dev/budgets;
    # the pass yields, so what it knew of budgets at its start decides, not what it knows at the end.
    known = runtime.evaluated
    budgets_by_pod = runtime.budgets.budgets_by_pod()
    pending: list[Pending] = []
    live: set[str] = set()
    prices = book.price_nodes(nodes, runtime.prices)
    if runtime.billing is not None:
        runtime.billing.buffer.note_nodes(prices, nodes, now)
    on_nodes: list[tuple[str, PodRate]] = []
    rated: list[tuple[PodRecord, PodRate]] = []
    policy = runtime.limits.policy
    clock = time.perf_counter
    deadline = clock() + SLICE_S
    for pod in pods:
        if clock() >= deadline:
            await asyncio.sleep(0)
            deadline = clock() + SLICE_S
        uid = pod.uid
        live.add(uid)
        price = prices.get(pod.node_name) if pod.node_name else None
        before = book.last(uid)
        accrual = book.figure(pod, price, now)
        if not book.is_priced(uid):
            counts["held"] += 1
            continue
        rate = book.rate(uid)
        if rate is not None:
            if pod.node_name:
                on_nodes.append((pod.node_name, rate))
            rated.append((pod, rate))
        counts["pods"] += 1
        names = budgets_by_pod.get(uid, "")
        if (not names and not pod.is_skypilot) or pod.deleting:
            continue
        gpu = gpu_note(runtime, pod, now)
        _count_waste(book, uid, gpu, (before, accrual))
        due = _due_write(book, policy, (pod, accrual, names, gpu), now)
        if due is not None:
            pending.append(due)
    await asyncio.sleep(0)
    counts["forgotten"] += book.retain(live)
    await asyncio.sleep(0)
    book.idle_costs = idle_node_costs(prices, on_nodes)
    runtime.metrics.publish_pods(tuple(rated), prices, book.idle_costs)
    runtime.metrics.wasted_rows = tuple(
        (pod.namespace, pod.name, float(book.wasted[pod.uid])) for pod, _ in rated if pod.uid in book.wasted
    )
    await asyncio.sleep(0)
    pending.sort(key=lambda item: (item[0], item[1]))
    if known:
        await _write_due(runtime, pending, counts)
    return counts


async def _write_due(runtime: Runtime, pending: list[Pending], counts: Counter[str]) -> None:
    """Write what the bucket allows, most urgent first, ``WRITE_CONCURRENCY`` at a time."""
    allowed = 0
    for _ in pending:
        if not runtime.limits.annotations.take(runtime.monotonic()):
            counts["write_deferred"] += len(pending) - allowed
            break
        allowed += 1
    jobs = iter(pending[:allowed])

    async def writer() -> None:
        for _, _, pod, accrual, names, gpu in jobs:  # one iterator shared by the writers
            if not runtime.acting():
                continue
            result = await runtime.kube.patch_pod_annotations(
                pod.namespace, pod.name, spend_annotations(accrual, names, gpu), uid=pod.uid or None
            )
            counts[f"write_{result.value}"] += 1
            if result in (WriteResult.DONE, WriteResult.DRY_RUN):
                runtime.pods.record_write(pod.uid, accrual, names)

    if allowed:
        await asyncio.gather(*(writer() for _ in range(min(WRITE_CONCURRENCY, allowed))))
