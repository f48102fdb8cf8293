"""Billing lines dated in the future are no evidence that billing is fresh (issue 12): a mistyped
year must not keep ``BillingStale`` off for years. They are counted and named by file instead
(engine/reconcile.py ``future_dated`` and ``Freshness``; billing/estimates.py, the store's query;
operator/billingfeed.py, the snapshot and the warning)."""

from __future__ import annotations

import csv
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from costwarden.billing.estimates import EstimateStore, ReconcileQuery
from costwarden.billing.store import BillingStore
from costwarden.engine.evaluation import BudgetInput, evaluate_budget
from costwarden.engine.reconcile import (
    BILLING_STALE,
    FUTURE_END,
    FUTURE_SKEW,
    BudgetBilling,
    BudgetTruth,
    Freshness,
    FutureLines,
    future_dated,
)
from costwarden.models import CostBudgetSpec, CostBudgetStatus
from costwarden.operator.billingfeed import BillingFeed, snapshot_from
from costwarden.operator.metrics import Metrics
from costwarden.operator.settings import OperatorSettings
from costwarden.records import format_time

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
STALE_AFTER = timedelta(hours=72)
HEADER = [
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ChargeCategory",
    "BilledCost",
    "EffectiveCost",
    "ResourceId",
]


def _row(start: datetime, end: datetime | None) -> list[str]:
    return [
        format_time(start),
        format_time(end) if end else "",
        "Usage",
        "1.5",
        "1.25",
        "i-0fea4fd46592d050b",
    ]


def _export(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def _reconcile(tmp_path: Path, files: dict[str, list[list[str]]], now: datetime = NOW):  # type: ignore[no-untyped-def]
    with BillingStore(tmp_path / "b.duckdb") as store:
        for name, rows in files.items():
            store.import_files([_export(tmp_path / name, rows)])
        return EstimateStore(store.connection).reconcile(
            ReconcileQuery(now, timedelta(days=93), Decimal(2), timedelta(days=7))
        )


# ---- the rule


@pytest.mark.parametrize(
    ("start", "end", "future"),
    [
        (NOW - timedelta(hours=2), NOW - timedelta(hours=1), False),
        (NOW + FUTURE_SKEW, NOW + FUTURE_SKEW + timedelta(hours=1), False),  # clock skew allowed
        (NOW + FUTURE_SKEW + timedelta(seconds=1), NOW + timedelta(hours=3), True),
        (NOW.replace(hour=0), NOW.replace(hour=0) + timedelta(days=1), False),  # today's daily line
        (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC), False),  # this month's
        (NOW - timedelta(days=1), NOW + FUTURE_END, False),
        (NOW - timedelta(days=1), NOW + FUTURE_END + timedelta(seconds=1), True),  # ends years ahead
        (datetime(2036, 12, 1, tzinfo=UTC), None, True),  # a mistyped year, no end
        (NOW - timedelta(days=1), None, False),
    ],
)
def test_a_line_is_dated_in_the_future_when_it_starts_or_ends_too_far_ahead(
    start: datetime, end: datetime | None, future: bool
) -> None:
    assert future_dated(start, end, NOW) is future


def test_a_newest_line_dated_too_far_ahead_is_no_evidence_of_fresh_billing() -> None:
    ahead = Freshness(NOW + FUTURE_END + timedelta(days=1), STALE_AFTER)
    assert ahead.stale(NOW)
    # ... and one of this month is (as before: it ends ahead of now, within FUTURE_END)
    assert not Freshness(datetime(2027, 1, 1, tzinfo=UTC), STALE_AFTER).stale(NOW)
    assert Freshness(NOW - STALE_AFTER - timedelta(seconds=1), STALE_AFTER).stale(NOW)


def _stale_condition(freshness: Freshness):  # type: ignore[no-untyped-def]
    spec = CostBudgetSpec.model_validate({"limit": 100, "skypilotCluster": "llama"})
    budget = BudgetInput("research", "llama", 1, spec, CostBudgetStatus())
    decision = evaluate_budget(budget, [], NOW, billing=BudgetTruth(BudgetBilling(), freshness))
    return next(c for c in decision.status.conditions if c.type == BILLING_STALE)


def test_billing_stale_names_the_files_of_lines_dated_in_the_future() -> None:
    future = (
        FutureLines("/exports/cur-2026-11.csv", 2, datetime(2036, 11, 1, tzinfo=UTC)),
        FutureLines("/exports/cur-2026-10.csv", 1, datetime(2126, 10, 1, tzinfo=UTC)),
    )
    stale = _stale_condition(Freshness(NOW - timedelta(days=5), STALE_AFTER, 7, future))
    assert (stale.status, stale.reason) == ("True", "NoRecentBilling")
    assert stale.message == (
        f"newest billing line ends {format_time(NOW - timedelta(days=5))}; expected within 72 h; "
        "7 billing lines dated in the future are not counted as recent billing: "
        "2 in /exports/cur-2026-11.csv (the first from 2036-11-01T00:00:00Z), "
        "1 in /exports/cur-2026-10.csv (the first from 2126-10-01T00:00:00Z), 4 elsewhere"
    )
    current = _stale_condition(Freshness(NOW - timedelta(hours=5), STALE_AFTER, 1, future[1:]))
    assert (current.status, current.reason) == ("False", "BillingCurrent")
    assert current.message == (
        "billing has landed within the expected delay; 1 billing line dated in the future is not "
        "counted as recent billing: 1 in /exports/cur-2026-10.csv (the first from 2126-10-01T00:00:00Z)"
    )
    plain = _stale_condition(Freshness(NOW - timedelta(hours=5), STALE_AFTER))
    assert plain.message == "billing has landed within the expected delay"


# ---- the store's query, the snapshot and the warning


def test_a_line_dated_years_ahead_leaves_billing_stale_and_is_named(tmp_path: Path) -> None:
    old = NOW - timedelta(days=5)
    found = _reconcile(
        tmp_path,
        {
            "october.csv": [_row(old - timedelta(hours=1), old), _row(old - timedelta(hours=2), None)],
            "typo.csv": [
                _row(datetime(2036, 11, 20, tzinfo=UTC), datetime(2036, 11, 20, 1, tzinfo=UTC)),
                _row(datetime(2036, 11, 19, tzinfo=UTC), None),
                _row(NOW - timedelta(hours=1), datetime(2062, 1, 1, tzinfo=UTC)),  # ends years ahead
            ],
        },
    )
    assert found.newest == old  # not 2036, not 2062
    assert found.future_lines == 3
    assert [(Path(o).name, n, first) for o, n, first in found.future] == [
        ("typo.csv", 3, NOW - timedelta(hours=1))
    ]
    snapshot = snapshot_from(found, NOW, OperatorSettings(billing_store=tmp_path / "b.duckdb"))
    freshness = snapshot.freshness
    assert freshness is not None and freshness.stale(NOW)
    assert freshness.future_lines == 3 and freshness.future[0].origin == str(tmp_path / "typo.csv")


def test_without_future_lines_the_newest_line_is_the_evidence(tmp_path: Path) -> None:
    recent = NOW - timedelta(hours=3)
    found = _reconcile(tmp_path, {"november.csv": [_row(recent - timedelta(hours=1), recent)]})
    assert (found.newest, found.future_lines, list(found.future)) == (recent, 0, [])
    # the same line seen from 2036 is no future line either, and is stale by then
    later = _reconcile(tmp_path, {}, now=datetime(2036, 1, 1, tzinfo=UTC))
    assert (later.newest, later.future_lines) == (recent, 0)


async def test_the_feed_warns_with_the_files_of_future_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "b.duckdb"
    with BillingStore(path) as store:
        store.import_files([_export(tmp_path / "typo.csv", [_row(datetime(2036, 11, 20, tzinfo=UTC), None)])])
    settings = OperatorSettings(billing_store=path)
    feed = BillingFeed(settings, [], Metrics(), clock=lambda: NOW)
    try:
        with caplog.at_level(logging.WARNING, logger="costwarden.operator.billingfeed"):
            snapshot = await feed.step(NOW)
    finally:
        await feed.shutdown()
    assert snapshot is not None and snapshot.freshness is not None
    assert snapshot.freshness.stale(NOW) and snapshot.freshness.future_lines == 1
    warning = next(r.getMessage() for r in caplog.records if "dated in the future" in r.getMessage())
    assert "1 billing line(s) dated in the future" in warning
    assert f"{tmp_path / 'typo.csv'}: 1 from 2036-11-20T00:00:00+00:00" in warning
