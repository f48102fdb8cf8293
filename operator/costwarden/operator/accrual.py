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
from costwarden.operator.runtime import Runtime
from costwarden.operator.throttle import priority, write_reason
from costwarden.records import ANNOTATION_BUDGETS, NodeRecord, PodRecord

log = logging.getLogger(__name__)

WRITE_CONCURRENCY = 8


def spend_annotations(accrual: PodAccrual, budgets: str) -> dict[str, str | None]:
    notes: dict[str, str | None] = dict(mark_annotations(accrual))
    notes[ANNOTATION_BUDGETS] = budgets or None
    return notes


async def accrual_pass(
    runtime: Runtime, pods: Iterable[PodRecord], nodes: Mapping[str, NodeRecord], now: datetime
) -> Counter[str]:
    """Accrue every pod, then write due annotations, most urgent first, within the token bucket."""
    counts: Counter[str] = Counter()
    budgets_by_pod = runtime.coverage.budgets_by_pod()
    pending: list[tuple[tuple[int, float], str, PodRecord, PodAccrual, str]] = []
    live: list[str] = []
    runtime.retain_nodes(nodes)
    on_nodes: list[tuple[str, PodRate]] = []
    for pod in pods:
        live.append(pod.uid)
        node = nodes.get(pod.node_name) if pod.node_name else None
        accrual = runtime.book.figure(pod, runtime.price_of(node), now)
        if not runtime.book.is_priced(pod.uid):
            counts["held"] += 1
            continue
        rate = runtime.book.rate(pod.uid)
        if pod.node_name and rate is not None:
            on_nodes.append((pod.node_name, rate))
        runtime.pod_names[pod.uid] = (pod.namespace, pod.name, pod.node_name or "")
        counts["pods"] += 1
        names = budgets_by_pod.get(pod.uid, "")
        if (not names and not pod.is_skypilot) or pod.deleting:
            continue
        written = runtime.book.written(pod)
        reason = write_reason(
            runtime.policy,
            written.mark if written else None,
            accrual,
            written.budgets if written else None,
            names,
        )
        if reason is not None:
            pending.append(
                (priority(reason, written.mark if written else None, now), pod.uid, pod, accrual, names)
            )
    for uid in [u for u in runtime.pod_names if u not in set(live)]:
        runtime.pod_names.pop(uid, None)
    counts["forgotten"] += runtime.book.retain(live)
    runtime.idle_costs = idle_node_costs(
        {name: price for name, price in runtime.node_prices.items() if name in nodes},
        on_nodes,
    )
    pending.sort(key=lambda item: (item[0], item[1]))
    if runtime.coverage.ready:  # else the first writes would lack costwarden.dev/budgets
        await _write_due(runtime, pending, counts)
    return counts


async def _write_due(
    runtime: Runtime,
    pending: list[tuple[tuple[int, float], str, PodRecord, PodAccrual, str]],
    counts: Counter[str],
) -> None:
    semaphore = asyncio.Semaphore(WRITE_CONCURRENCY)

    async def write(pod: PodRecord, accrual: PodAccrual, names: str) -> None:
        async with semaphore:
            result = await runtime.kube.patch_pod_annotations(
                pod.namespace, pod.name, spend_annotations(accrual, names)
            )
        counts[f"write_{result.value}"] += 1
        if result in (WriteResult.DONE, WriteResult.DRY_RUN):
            runtime.book.record_write(pod.uid, accrual, names)

    jobs = []
    for index, (_, _, pod, accrual, names) in enumerate(pending):
        if not runtime.bucket.take(runtime.monotonic()):
            counts["write_deferred"] += len(pending) - index
            break
        jobs.append(write(pod, accrual, names))
    if jobs:
        await asyncio.gather(*jobs)
