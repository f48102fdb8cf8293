"""The billing feed: estimates into the store, billing sources synced, reconciled, published.

Only the leader holds the store open: DuckDB lets one process write a file, and a standby has
nothing to write. Every store call runs on one worker thread (a DuckDB connection is used by one
thread at a time, and a sync or a reconciliation must not hold the event loop). The loop:

* every ``billing_flush_interval`` seconds (a minute): open the store if it is not (loading each
  node's mark, so the hours the operator was down are charged), then write what was gathered;
* every ``billing_interval`` seconds (and once soon after the store opens): sync each billing
  source, then reconcile; the result is one immutable ``BillingSnapshot`` (evaluations read it,
  and the price book takes its effective-rate factors).

Failures are logged and counted, never raised: a source that cannot be read leaves the others
and the last snapshot as they were; estimates that could not be written are kept and retried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from costwarden.billing.estimates import EstimateStore, ReconcileQuery, ReconcileRows
from costwarden.billing.sources import BillingSource, BillingSourceError
from costwarden.billing.store import BillingStore
from costwarden.engine.reconcile import (
    FUTURE_END,
    FUTURE_SKEW,
    BillingSnapshot,
    BudgetBilling,
    BudgetTruth,
    DayFigures,
    FactorRow,
    Freshness,
    FutureLines,
    WindowAnomaly,
    cluster_lines,
    learned_factors,
)
from costwarden.engine.selection import skypilot_label_matches
from costwarden.models import CostBudgetSpec
from costwarden.operator.estimatebuffer import Drained, EstimateBuffer
from costwarden.operator.metrics import Metrics
from costwarden.operator.settings import OperatorSettings
from costwarden.records import SKYPILOT_CLUSTER_LABEL

log = logging.getLogger(__name__)

T = TypeVar("T")
LOOKBACK = timedelta(days=93)  # billing windows reconciled: three months (restatements included)
ANOMALY_LOOKBACK = timedelta(days=7)
MIN_FACTOR_HOURS = Decimal(24)  # reconciled node-hours before a factor is learned
MAX_PENDING = 100  # drained batches kept while the store cannot be written


class BillingFeed:
    def __init__(
        self,
        settings: OperatorSettings,
        sources: Sequence[BillingSource],
        metrics: Metrics,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if settings.billing_store is None:
            raise ValueError("the billing feed needs --billing-store")
        self._path = Path(settings.billing_store)
        self._settings = settings
        self.sources = tuple(sources)
        self._metrics = metrics
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="billing-store")
        self._store: BillingStore | None = None
        self._estimates: EstimateStore | None = None
        self._pending: list[Drained] = []
        self._next_reconcile: float | None = None  # monotonic seconds
        self._monotonic = monotonic
        self.buffer = EstimateBuffer()
        self.snapshot: BillingSnapshot | None = None
        # each budget's truth in one snapshot, by what it depends on (``truth``)
        self._truths_of: BillingSnapshot | None = None
        self._truths: dict[tuple[str, str, str | None, str | None], BudgetTruth] = {}

    @property
    def is_open(self) -> bool:
        return self._store is not None

    async def _call(self, work: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)

    async def run(self, acting: Callable[[], bool], on_snapshot: Callable[[BillingSnapshot], None]) -> None:
        """Flush, sync and reconcile while this replica acts; close the store when it does not."""
        while True:
            if acting():
                try:
                    snapshot = await self.step(self._clock())
                except Exception:
                    log.exception("billing feed step failed; retrying next turn")
                    snapshot = None
                if snapshot is not None and acting():
                    on_snapshot(snapshot)
            elif self.is_open:
                await self.close()
            await asyncio.sleep(self._settings.billing_flush_interval if acting() else 1.0)

    async def step(self, now: datetime) -> BillingSnapshot | None:
        """One turn: open, flush, and when due sync and reconcile (the new snapshot, else None)."""
        if not await self._open():
            return None
        await self.flush()
        started = self._monotonic()
        if self._next_reconcile is not None and started < self._next_reconcile:
            return None
        self._next_reconcile = started + self._settings.billing_interval
        await self.sync_all()
        return await self.reconcile(now)

    async def _open(self) -> bool:
        if self._store is not None:
            return True
        try:
            store, estimates, marks = await self._call(_open_store, self._path)
        except Exception as exc:  # a lock the old leader still holds, a file that is no store
            log.warning("billing store %s cannot be opened yet: %s", self._path, exc)
            return False
        self._store, self._estimates = store, estimates
        self.buffer.resume_from(marks)
        log.info("billing store %s open; %d nodes continue from their marks", self._path, len(marks))
        return True

    async def flush(self) -> int:
        """Write the gathered estimates (and any a failed write left); rows written."""
        drained = self.buffer.drain()
        if drained:
            self._pending.append(drained)
        estimates = self._estimates
        written = 0
        while self._pending and estimates is not None:
            batch = self._pending[0]
            try:
                written += await self._call(
                    estimates.record, batch.nodes, batch.budgets, batch.aliases, batch.marks
                )
            except Exception as exc:
                log.warning(
                    "billing store %s: estimates not written, kept for the next try: %s", self._path, exc
                )
                del self._pending[:-MAX_PENDING]
                break
            self._pending.pop(0)
        return written

    async def sync_all(self) -> None:
        store = self._store
        if store is None:
            return
        for source in self.sources:
            try:
                report = await self._call(source.sync, store)
            except BillingSourceError as exc:
                log.warning("billing source %s: %s", source.uri, exc)
                self._metrics.billing_syncs.labels(source.uri, "error").inc()
                continue
            except Exception:
                log.exception("billing source %s: sync failed", source.uri)
                self._metrics.billing_syncs.labels(source.uri, "error").inc()
                continue
            for error in report.errors:
                log.warning("billing source %s: %s", source.uri, error)
            stored = len(report.stored)
            self._metrics.billing_syncs.labels(source.uri, "ok" if report.ok else "partial").inc()
            if stored:
                log.info("billing source %s: %d deliveries stored", source.uri, stored)

    async def reconcile(self, now: datetime) -> BillingSnapshot | None:
        estimates = self._estimates
        if estimates is None:
            return None
        query = ReconcileQuery(
            now=now,
            lookback=LOOKBACK,
            anomaly_factor=self._settings.billing_anomaly_factor,
            anomaly_lookback=ANOMALY_LOOKBACK,
        )
        rows = await self._call(estimates.reconcile, query)
        snapshot = snapshot_from(rows, now, self._settings)
        self.snapshot = snapshot
        self._publish(snapshot)
        if rows.future_lines:
            files = "; ".join(
                f"{origin}: {lines} from {first.isoformat()}" for origin, lines, first in rows.future
            )
            log.warning(
                "billing store %s: %d billing line(s) dated in the future (starting after %s or "
                "ending after %s), not counted as recent billing; fix or remove them: %s",
                self._path,
                rows.future_lines,
                (now + FUTURE_SKEW).isoformat(),
                (now + FUTURE_END).isoformat(),
                files,
            )
        return snapshot

    def _publish(self, snapshot: BillingSnapshot) -> None:
        metrics = self._metrics
        metrics.effective_rate_factor.clear()
        for (cloud, kind, capacity), factor in snapshot.factors.items():
            metrics.effective_rate_factor.labels(cloud, kind, capacity).set(float(factor.factor))
        newest = snapshot.freshness.newest if snapshot.freshness else None
        if newest is not None:
            metrics.billing_newest.set(newest.timestamp())

    async def close(self) -> None:
        """Write what is gathered (with what the budgets accrued since their last estimate notes),
        then close the store (leadership lost, or the operator stops)."""
        if self._store is None:
            return
        self.buffer.note_pending()
        await self.flush()
        store, self._store, self._estimates = self._store, None, None
        self._next_reconcile = None
        await self._call(store.close)

    async def shutdown(self) -> None:
        await self.close()
        self._executor.shutdown(wait=False)

    def truth(self, namespace: str, name: str, spec: CostBudgetSpec) -> BudgetTruth | None:
        """What the last reconciliation knows about one budget; None before the first one.

        Worked out once per snapshot and budget (every pass asks; a snapshot changes every
        ``billing_interval``): the same object until the snapshot or the clusters the budget
        names change."""
        snapshot = self.snapshot
        if snapshot is None:
            return None
        if snapshot is not self._truths_of:
            self._truths_of, self._truths = snapshot, {}
        key = (namespace, name, spec.skypilot_cluster, spec.selector.match_labels.get(SKYPILOT_CLUSTER_LABEL))
        found = self._truths.get(key)
        if found is None:
            found = self._truths[key] = budget_truth(snapshot, namespace, name, spec)
        return found


def budget_truth(snapshot: BillingSnapshot, namespace: str, name: str, spec: CostBudgetSpec) -> BudgetTruth:
    """One budget's figures in ``snapshot``, with the non-compute lines of the clusters it covers."""
    billing = snapshot.budgets.get((namespace, name), BudgetBilling())
    lines = cluster_lines(snapshot.by_cluster, covered_clusters(spec, snapshot.by_cluster))
    if lines:
        billing = BudgetBilling(billing.days, billing.reconciled_through, lines, billing.anomalies)
    return BudgetTruth(billing, snapshot.freshness, snapshot.anomaly_factor)


def _open_store(path: Path) -> tuple[BillingStore, EstimateStore, dict[str, datetime]]:
    store = BillingStore(path)
    try:
        estimates = EstimateStore(store.connection)
        return store, estimates, estimates.marks()
    except BaseException:
        store.close()
        raise


def covered_clusters(spec: CostBudgetSpec, tags: Iterable[str]) -> list[str]:
    """The SkyPilot cluster tag values (names on cloud) a budget covers."""
    typed = spec.skypilot_cluster
    labelled = spec.selector.match_labels.get(SKYPILOT_CLUSTER_LABEL)
    return [
        tag
        for tag in tags
        if tag == labelled or (typed is not None and (tag == typed or skypilot_label_matches(typed, tag)))
    ]


def snapshot_from(rows: ReconcileRows, now: datetime, settings: OperatorSettings) -> BillingSnapshot:
    """The store's aggregates as the engine's snapshot (the pure rules: engine.reconcile)."""
    days: dict[tuple[str, str], list[DayFigures]] = {}
    through: dict[tuple[str, str], datetime] = {}
    for budget, day, estimated, billed, end in rows.budget_days:
        key = _budget_key(budget)
        days.setdefault(key, []).append(DayFigures(day, estimated, billed))
        through[key] = max(through.get(key, end), end)
    anomalies: dict[tuple[str, str], list[WindowAnomaly]] = {}
    for budget, resource, start, end, estimated, billed in rows.anomalies:
        anomalies.setdefault(_budget_key(budget), []).append(
            WindowAnomaly(resource, start, end, estimated, billed)
        )
    budgets = {
        key: BudgetBilling(
            days=tuple(sorted(days.get(key, ()), key=lambda d: d.day)),
            reconciled_through=through.get(key),
            anomalies=tuple(anomalies.get(key, ())),
        )
        for key in {*days, *anomalies}
    }
    by_cluster: dict[str, list[tuple[date, Decimal]]] = {}
    for cluster, day, amount in rows.clusters:
        by_cluster.setdefault(cluster, []).append((day, amount))
    factors = learned_factors(
        (
            FactorRow((c, t, k), billed, listed, hours, end)
            for c, t, k, billed, listed, hours, end in rows.factors
        ),
        MIN_FACTOR_HOURS,
    )
    return BillingSnapshot(
        at=now,
        budgets=budgets,
        by_cluster={k: tuple(sorted(v)) for k, v in by_cluster.items()},
        factors=factors,
        freshness=Freshness(
            rows.newest,
            timedelta(seconds=settings.billing_stale_after),
            rows.future_lines,
            tuple(FutureLines(origin, lines, first) for origin, lines, first in rows.future),
        ),
        anomaly_factor=settings.billing_anomaly_factor,
    )


def _budget_key(text: str) -> tuple[str, str]:
    namespace, _, name = text.partition("/")
    return namespace, name
