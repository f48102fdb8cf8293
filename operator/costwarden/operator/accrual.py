"""One pass over every pod: accrue spend, and write the spend annotations that are due."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime

from costwarden.engine.idle import idle_node_costs
from costwarden.engine.ledger import PodAccrual, mark_annotations
from costwarden.engine.rates import PodRate
from costwarden.operator.kube import WriteResult
from costwarden.operator.metrics import NodeRow, PodRow
from costwarden.operator.runtime import Runtime
from costwarden.operator.throttle import priority, write_reason
from costwarden.records import ANNOTATION_BUDGETS, NodeRecord, PodRecord

log = logging.getLogger(__name__)

WRITE_CONCURRENCY = 8
CHUNK = 500  # pods between yields to the event loop

Pending = tuple[tuple[int, float], str, PodRecord, PodAccrual, str]


def spend_annotations(accrual: PodAccrual, budgets: str) -> dict[str, str | None]:
    notes: dict[str, str | None] = dict(mark_annotations(accrual))
    notes[ANNOTATION_BUDGETS] = budgets or None
    return notes


async def accrual_pass(
    runtime: Runtime, pods: Iterable[PodRecord], nodes: Mapping[str, NodeRecord], now: datetime
) -> Counter[str]:
    """Accrue every pod, then write due annotations, most urgent first, within the token bucket.
    Linear in pods; yields to the event loop every ``CHUNK`` pods."""
    counts: Counter[str] = Counter()
    book = runtime.pods
    budgets_by_pod = runtime.budgets.budgets_by_pod()
    pending: list[Pending] = []
    live: set[str] = set()
    prices = {name: runtime.prices.price(node) for name, node in nodes.items()}
    book.node_prices = prices
    on_nodes: list[tuple[str, PodRate]] = []
    pod_rows: list[PodRow] = []
    for index, pod in enumerate(pods):
        if index and index % CHUNK == 0:
            await asyncio.sleep(0)
        live.add(pod.uid)
        price = prices.get(pod.node_name) if pod.node_name else None
        accrual = book.figure(pod, price, now)
        if not book.is_priced(pod.uid):
            counts["held"] += 1
            continue
        rate = book.rate(pod.uid)
        if rate is not None:
            if pod.node_name:
                on_nodes.append((pod.node_name, rate))
            pod_rows.append(PodRow(pod.namespace, pod.name, pod.node_name or "", float(rate.total)))
        counts["pods"] += 1
        names = budgets_by_pod.get(pod.uid, "")
        if (not names and not pod.is_skypilot) or pod.deleting:
            continue
        written = book.written(pod)
        mark = written.mark if written else None
        reason = write_reason(
            runtime.limits.policy, mark, accrual, written.budgets if written else None, names
        )
        if reason is not None:
            pending.append((priority(reason, mark, now), pod.uid, pod, accrual, names))
    counts["forgotten"] += book.retain(live)
    book.idle_costs = idle_node_costs(prices, on_nodes)
    runtime.metrics.pod_rows = tuple(sorted(pod_rows, key=lambda row: (row.namespace, row.name)))
    runtime.metrics.node_rows = tuple(
        NodeRow(
            name,
            price.facts.instance_type or "",
            price.facts.capacity_type,
            price.source,
            float(price.hourly),
            float(book.idle_costs.get(name, 0)),
        )
        for name, price in sorted(prices.items())
    )
    pending.sort(key=lambda item: (item[0], item[1]))
    # Before every budget has been evaluated once, a write would lack costwarden.dev/budgets.
    if runtime.evaluated:
        await _write_due(runtime, pending, counts)
    return counts


async def _write_due(runtime: Runtime, pending: list[Pending], counts: Counter[str]) -> None:
    semaphore = asyncio.Semaphore(WRITE_CONCURRENCY)

    async def write(pod: PodRecord, accrual: PodAccrual, names: str) -> None:
        async with semaphore:
            if not runtime.acting():
                return
            result = await runtime.kube.patch_pod_annotations(
                pod.namespace, pod.name, spend_annotations(accrual, names)
            )
        counts[f"write_{result.value}"] += 1
        if result in (WriteResult.DONE, WriteResult.DRY_RUN):
            runtime.pods.record_write(pod.uid, accrual, names)

    jobs = []
    for index, (_, _, pod, accrual, names) in enumerate(pending):
        if not runtime.limits.annotations.take(runtime.monotonic()):
            counts["write_deferred"] += len(pending) - index
            break
        jobs.append(write(pod, accrual, names))
    if jobs:
        await asyncio.gather(*jobs)
