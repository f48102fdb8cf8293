"""One pass over every pod: accrue spend, and write the spend annotations that are due."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal

from costwarden.engine.idle import idle_node_costs
from costwarden.engine.ledger import PodAccrual
from costwarden.engine.rates import PodRate
from costwarden.operator.kube import WriteResult
from costwarden.operator.runtime import Runtime
from costwarden.operator.throttle import priority, write_reason
from costwarden.records import (
    ANNOTATION_BUDGETS,
    ANNOTATION_RATE,
    ANNOTATION_SPEND,
    ANNOTATION_SPEND_AT,
    NodeRecord,
    PodRecord,
)

log = logging.getLogger(__name__)

WRITE_CONCURRENCY = 8
_MICRO = Decimal("0.000001")


def money_text(value: Decimal) -> str:
    """USD as a plain decimal string with micro-dollar precision (rounded here, at the edge)."""
    return format(value.quantize(_MICRO), "f")


def precise_time(value: datetime) -> str:
    """RFC 3339 with the microseconds kept, so a restart continues from exactly this instant."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def spend_annotations(accrual: PodAccrual, budgets: str) -> dict[str, str | None]:
    return {
        ANNOTATION_SPEND: money_text(accrual.spend),
        ANNOTATION_RATE: money_text(accrual.rate),
        ANNOTATION_SPEND_AT: precise_time(accrual.at),
        ANNOTATION_BUDGETS: budgets or None,
    }


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
