"""Billing benchmarks (issue 9): CUR ingest rate, reconciling a month of 1,000 GPU nodes, and the
accuracy of trued-up estimates on a synthetic month. Prints JSON; ``main()`` returns it.

    .venv/bin/python bench/billing_bench.py [ingest] [reconcile] [accuracy] [parity] [lookback]

Each part runs in a child process of its own, so its RSS is its own (``reconcile`` opens the
store ``ingest`` filled, in a temporary folder both share). The data: ``billing_data.py``.

* **ingest**: 1,000 p5.48xlarge nodes (600 under a Savings Plan, 100 reserved, 300 spot) for the
  720 hours of November 2026 as AWS CUR 2.0 Parquet, four parts (~1.14 M lines). Timed:
  ``BillingStore.import_files`` into a new store (DuckDB, DECIMAL(38, 18)), and pandas reading
  the same files and doing the same mapping (effective cost by line type, charge category, tags
  as JSON) in **float64**, then summing. Both totals are set against the exact one (integer sums
  in the generator).
* **reconcile**: that store, plus the operator's estimates for the same 720,000 node-hours in
  ``node_hours`` (on-demand at 0.7 of list, spot at list) and ``budget_hours`` (200 budgets of 5
  nodes each, 90 % of the node each), filled with ``INSERT … SELECT`` from ``range()`` (the
  ``record`` path is timed on its own, one flush of 1,000 nodes). Timed: ``EstimateStore.reconcile``
  and ``snapshot_from``, and each of its statements.
* **accuracy**: 100 GPU nodes over November: priced by the operator's ``PriceBook`` (bundled
  catalog, plus a spot row at the month's first spot price), charged hour by hour through its
  ``EstimateBuffer``, recorded each day with ``EstimateStore.record``; each day a CUR delivery
  with the lines up to two days earlier is imported and reconciled (``reconcile``,
  ``snapshot_from``); from day 8 the estimates use the learned factors (``factor_lookup``).
  At the end of the month, costwarden's figure is each budget's spend trued up
  (``true_up``) and the list-price estimator's is catalog price x hours; both against the bill.
* **parity**: the generator's lines and the same lines written by ``tests/billing_exports.py``
  (``Cur2Line``) are stored alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

import billing_data as data  # noqa: E402
import numpy as np  # noqa: E402

from costwarden.billing.estimates import (  # noqa: E402
    BudgetHour,
    EstimateStore,
    NodeHour,
    ReconcileQuery,
    ReconcileRows,
    dollars,
)
from costwarden.billing.store import BillingStore  # noqa: E402
from costwarden.engine.reconcile import BudgetBilling, factor_lookup, true_up  # noqa: E402
from costwarden.operator.billingfeed import ANOMALY_LOOKBACK, LOOKBACK, snapshot_from  # noqa: E402
from costwarden.operator.estimatebuffer import EstimateBuffer  # noqa: E402
from costwarden.operator.settings import OperatorSettings  # noqa: E402
from costwarden.pricing import PriceBook  # noqa: E402
from costwarden.pricing.catalog import Catalog, load_bundled_catalog  # noqa: E402
from costwarden.records import NodeRecord  # noqa: E402

PARTS = ("parity", "ingest", "reconcile", "accuracy")
OPT_IN = ("lookback",)  # run only when named
RUNS = int(os.environ.get("COSTWARDEN_BENCH_BILLING_RUNS", "3"))
# The ingest/reconcile month: (instance type, kind, nodes).
BIG_FLEET = (("p5.48xlarge", "sp", 600), ("p5.48xlarge", "ri", 100), ("p5.48xlarge", "spot", 300))
SMALL_FLEET = (
    ("p5.48xlarge", "sp", 50),
    ("p5.48xlarge", "ri", 10),
    ("p4d.24xlarge", "sp", 10),
    ("p5.48xlarge", "spot", 25),
    ("p4d.24xlarge", "spot", 5),
)
BILLING_LAG = timedelta(days=2)  # a delivery holds the lines up to two days before it
FACTORS_FROM_DAY = 7  # estimates use learned factors from the 8th day on (the first week at list)
_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)


def rss_mb() -> dict[str, float]:
    """The process's resident set now and at its peak, in MB."""
    status = dict(
        line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line
    )
    return {key: round(int(status[key].split()[0]) / 1024, 1) for key in ("VmRSS", "VmHWM")}


def timed(work: Any, *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = work(*args)
    return result, time.perf_counter() - start


def median(values: Sequence[float]) -> float:
    return round(statistics.median(values), 3)


# ---------------------------------------------------------------------------------------------
# ingest


def ingest(workdir: Path) -> dict[str, Any]:
    nodes = data.fleet(BIG_FLEET)
    month, generated = timed(data.month_lines, nodes, 7)
    paths, written = timed(month.write, str(workdir), "cur2-2026-11", 4)
    rows = len(month)
    exact_billed, exact_effective = month.exact("unblended"), month.exact_effective()

    duck: list[float] = []
    totals = None
    for run in range(RUNS):
        store_path = workdir / f"ingest-{run}.duckdb"
        store_path.unlink(missing_ok=True)
        with BillingStore(store_path) as store:
            imported, seconds = timed(store.import_files, paths)
            assert sum(f.rows for f in imported) == rows
            duck.append(seconds)
            totals = store.summary().total
        if run < RUNS - 1:
            store_path.unlink()
    assert totals is not None
    (workdir / f"ingest-{RUNS - 1}.duckdb").rename(workdir / "store.duckdb")

    pandas_runs = [pandas_ingest(paths) for _ in range(RUNS)]
    pandas_seconds = [p["seconds"] for p in pandas_runs]
    last = pandas_runs[-1]
    return {
        "rows": rows,
        "files": len(paths),
        "bytes": sum(Path(p).stat().st_size for p in paths),
        "generate_s": round(generated, 2),
        "write_s": round(written, 2),
        "duckdb": {
            "median_s": median(duck),
            "runs_s": [round(s, 3) for s in duck],
            "rows_per_s": round(rows / statistics.median(duck)),
            "billed": str(totals.billed_cost.normalize()),
            "effective": str(totals.effective_cost.normalize()),
            "billed_minus_exact": str((totals.billed_cost - exact_billed).normalize()),
            "effective_minus_exact": str((totals.effective_cost - exact_effective).normalize()),
        },
        "pandas_float64": {
            "median_s": median(pandas_seconds),
            "runs_s": [round(s, 3) for s in pandas_seconds],
            "rows_per_s": round(rows / statistics.median(pandas_seconds)),
            "median_s_without_tags": median([p["seconds"] - p["tags_s"] for p in pandas_runs]),
            "read_s": median([p["read_s"] for p in pandas_runs]),
            "map_s": median([p["map_s"] for p in pandas_runs]),
            "tags_s": median([p["tags_s"] for p in pandas_runs]),
            "billed": repr(last["billed"]),
            "effective": repr(last["effective"]),
            # The float's exact binary value minus the exact decimal total.
            "billed_minus_exact": str((Decimal(last["billed"]) - exact_billed).normalize()),
            "effective_minus_exact": str((Decimal(last["effective"]) - exact_effective).normalize()),
        },
        "exact": {"billed": str(exact_billed), "effective": str(exact_effective)},
        "rss_mb": rss_mb(),
    }


def pandas_ingest(paths: Sequence[str]) -> dict[str, Any]:
    """Read the files with pandas and map them as the store does, in float64; sum the money."""
    import pandas as pd

    start = time.perf_counter()
    frame = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    read = time.perf_counter()
    kind = frame["line_item_line_item_type"]
    unblended = frame["line_item_unblended_cost"]
    effective = np.select(
        [kind == "SavingsPlanCoveredUsage", kind == "DiscountedUsage", kind == "SavingsPlanNegation"],
        [
            frame["savings_plan_savings_plan_effective_cost"].fillna(0.0),
            frame["reservation_effective_cost"].fillna(0.0),
            0.0,
        ],
        unblended,
    )
    category = kind.map(CUR_CATEGORIES).fillna("Usage")
    resource = frame["line_item_resource_id"].str.strip().replace("", None)
    mapped = pd.DataFrame(
        {
            "ProviderName": "AWS",
            "BillingAccountId": frame["bill_payer_account_id"],
            "SubAccountId": frame["line_item_usage_account_id"],
            "BillingPeriodStart": frame["bill_billing_period_start_date"],
            "ChargePeriodStart": frame["line_item_usage_start_date"],
            "ChargePeriodEnd": frame["line_item_usage_end_date"],
            "ChargeCategory": category,
            "BillingCurrency": frame["line_item_currency_code"].fillna("USD"),
            "BilledCost": unblended,
            "EffectiveCost": effective,
            "ListCost": frame["pricing_public_on_demand_cost"],
            "ResourceId": resource,
            "SkuId": frame["product_sku"],
            "ServiceName": frame["line_item_product_code"],
            "RegionId": frame["product_region_code"],
        }
    )
    mapped_at = time.perf_counter()
    mapped["Tags"] = [json.dumps(dict(t)) if t is not None else None for t in frame["resource_tags"]]
    tagged = time.perf_counter()
    billed, effective_total = float(mapped["BilledCost"].sum()), float(mapped["EffectiveCost"].sum())
    end = time.perf_counter()
    return {
        "seconds": end - start,
        "read_s": read - start,
        "map_s": mapped_at - read + end - tagged,
        "tags_s": tagged - mapped_at,
        "billed": billed,
        "effective": effective_total,
    }


CUR_CATEGORIES = {  # costwarden.billing.formats._CUR_CATEGORY
    "Tax": "Tax",
    "Credit": "Credit",
    "Refund": "Credit",
    "BundledDiscount": "Credit",
    "EdpDiscount": "Credit",
    "PrivateRateDiscount": "Credit",
    "RIFee": "Purchase",
    "Fee": "Purchase",
    "SavingsPlanRecurringFee": "Purchase",
    "SavingsPlanUpfrontFee": "Purchase",
}


# ---------------------------------------------------------------------------------------------
# reconcile


def fill_estimates(
    store: BillingStore, nodes: Sequence[data.Node], hours: int, start: datetime = data.MONTH
) -> None:
    """node_hours and budget_hours for every node-hour, in SQL: the operator's estimate is
    0.7 of list for on-demand nodes and list for spot; a budget holds 90 % of a node."""
    import pyarrow as pa

    db = store.connection
    fleet = pa.table(
        {
            "n": list(range(len(nodes))),
            "resource": [n.resource for n in nodes],
            "itype": [n.instance_type for n in nodes],
            "ctype": ["spot" if n.kind == "spot" else "on-demand" for n in nodes],
            "listed": [n.list_units * 10 for n in nodes],  # nanodollars
            "budget": [f"team-{i // 50:02d}/{n.cluster}" for i, n in enumerate(nodes)],
        }
    )
    db.register("bench_fleet", fleet)
    first = f"TIMESTAMPTZ '{start.isoformat()}'"
    estimated = "CAST(CASE f.ctype WHEN 'spot' THEN f.listed ELSE f.listed * 7 // 10 END AS HUGEINT)"
    db.execute(
        f"""INSERT INTO node_hours SELECT f.resource, {first} + to_hours(h.range), 'aws', f.itype, f.ctype,
                   {estimated}, CAST(f.listed AS HUGEINT), 3600.0 FROM bench_fleet f, range({hours}) h"""
    )
    db.execute(
        f"""INSERT INTO budget_hours SELECT f.budget, f.resource, {first} + to_hours(h.range),
                   {estimated} * 9 // 10 FROM bench_fleet f, range({hours}) h"""
    )
    db.unregister("bench_fleet")


def one_flush(nodes: Sequence[data.Node], hour: datetime) -> tuple[list[NodeHour], list[BudgetHour]]:
    """What one flush of the billing feed holds for ``nodes``: a minute of each, in one hour."""
    node_hours = [
        NodeHour(n.resource, hour, "aws", n.instance_type, "on-demand", Decimal("0.6"), Decimal("0.9"), 60.0)
        for n in nodes
    ]
    budgets = [BudgetHour(f"team/{n.cluster}", n.resource, hour, Decimal("0.55")) for n in nodes]
    return node_hours, budgets


def reconcile(workdir: Path) -> dict[str, Any]:
    nodes = data.fleet(BIG_FLEET)
    store = BillingStore(workdir / "store.duckdb")
    estimates = EstimateStore(store.connection)
    _, filled = timed(fill_estimates, store, nodes, data.MONTH_HOURS)
    counts = {
        table: int(store.connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]
        for table in ("billing_lines", "node_hours", "budget_hours")
    }
    after = data.MONTH + timedelta(days=30)
    flush_nodes, flush_budgets = one_flush(nodes, after)  # after the month: reconciled with nothing
    marks = {f"node-{i}": after for i in range(len(nodes))}
    _, flushed = timed(estimates.record, flush_nodes, flush_budgets, {}, marks)

    settings = OperatorSettings()
    now = after + timedelta(hours=6)
    query = ReconcileQuery(now, LOOKBACK, settings.billing_anomaly_factor, ANOMALY_LOOKBACK)
    runs, snapshots = [], []
    rows: ReconcileRows | None = None
    for _ in range(RUNS):
        rows, seconds = timed(estimates.reconcile, query)
        _, snap_seconds = timed(snapshot_from, rows, now, settings)
        runs.append(seconds)
        snapshots.append(snap_seconds)
    assert rows is not None
    rss = rss_mb()
    statements = statement_times(store, query)
    store.close()
    return {
        "rows": counts,
        "fill_sql_s": round(filled, 2),
        "record_one_flush_s": round(flushed, 3),
        "record_one_flush_rows": len(flush_nodes) + len(flush_budgets) + len(marks),
        "reconcile_median_s": median(runs),
        "reconcile_runs_s": [round(s, 3) for s in runs],
        "snapshot_from_median_s": median(snapshots),
        "reconcile_plus_snapshot_s": round(statistics.median(runs) + statistics.median(snapshots), 3),
        "returned": {
            "factors": len(rows.factors),
            "budget_days": len(rows.budget_days),
            "anomalies": len(rows.anomalies),
            "cluster_days": len(rows.clusters),
        },
        "rss_mb_after_reconcile": rss,
        "statements_s": statements,
    }


class _TimedConnection:
    """A connection whose ``execute`` notes how long each statement took (results fetched)."""

    def __init__(self, db: Any) -> None:
        self._db = db
        self.times: list[tuple[str, float]] = []

    def execute(self, sql: str, *args: Any) -> Any:
        start = time.perf_counter()
        result = self._db.execute(sql, *args)
        fetched = None if sql.lstrip().upper().startswith(("CREATE", "DROP")) else result.fetchall()
        self.times.append((" ".join(sql.split())[:60], time.perf_counter() - start))
        return _Fetched(fetched) if fetched is not None else result


@dataclasses.dataclass
class _Fetched:
    rows: list[Any]

    def fetchall(self) -> list[Any]:
        return self.rows

    def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None


def statement_times(store: BillingStore, query: ReconcileQuery) -> dict[str, float]:
    """One ``reconcile`` with each statement timed."""
    timed_db = _TimedConnection(store.connection)
    EstimateStore(timed_db).reconcile(query)  # type: ignore[arg-type]
    names = {
        "CREATE OR REPLACE TEMP TABLE billed": "billed",
        "CREATE OR REPLACE TEMP TABLE windows": "windows",
        "CREATE OR REPLACE TEMP TABLE used": "used",
        "SELECT cloud, itype": "factors",
        "SELECT bh.budget, CAST": "budget_days",
        "SELECT DISTINCT bh.budget": "anomalies",
        "SELECT cluster, day": "clusters",
    }
    out: dict[str, float] = {}
    for sql, seconds in timed_db.times:
        for prefix, name in names.items():
            if sql.startswith(prefix):
                out[name] = round(seconds, 3)
    return out


def lookback(workdir: Path) -> dict[str, Any]:
    """Not in the default run: how reconcile grows with the hours per resource in the look-back
    (the operator reconciles 93 days). ``COSTWARDEN_BENCH_BILLING_LOOKBACK_NODES`` nodes (300) of
    the ingest fleet's mix, 30 and then 90 days of billing and estimates."""
    count = int(os.environ.get("COSTWARDEN_BENCH_BILLING_LOOKBACK_NODES", "300"))
    nodes = data.fleet([(t, k, n * count // 1000) for t, k, n in BIG_FLEET])
    end = data.MONTH + timedelta(days=30)
    settings = OperatorSettings()
    out: dict[str, Any] = {"nodes": len(nodes)}
    for days in (30, 90):
        start = end - timedelta(days=days)
        path = workdir / f"lookback-{days}.duckdb"
        with BillingStore(path) as store:
            month = data.month_lines(nodes, 5, start=start, hours=days * 24)
            store.import_files(month.write(str(workdir), f"lookback-{days}"))
            estimates = EstimateStore(store.connection)
            fill_estimates(store, nodes, days * 24, start)
            query = ReconcileQuery(end, LOOKBACK, settings.billing_anomaly_factor, ANOMALY_LOOKBACK)
            _, seconds = timed(estimates.reconcile, query)
            out[f"{days}_days"] = {
                "node_hours": len(nodes) * days * 24,
                "reconcile_s": round(seconds, 2),
                "statements_s": statement_times(store, query),
            }
    return out


# ---------------------------------------------------------------------------------------------
# accuracy


def accuracy_catalog() -> Catalog:
    """The bundled catalog plus a spot row per type at the month's first spot price (a catalog's
    spot figure is a snapshot; the bundled one has no AWS spot rows)."""
    bundled = load_bundled_catalog()
    spot = [
        dataclasses.replace(
            row,
            capacity_type="spot",
            hourly_usd=(row.hourly_usd * Decimal(str(data.SPOT_LEVEL))).quantize(Decimal("0.0001")),
            source="bench: spot price of 2026-11-01 00:00",
            as_of=date(2026, 11, 1),
        )
        for row in bundled.rows
        if row.cloud == "aws" and row.instance_type in data.ON_DEMAND and row.capacity_type == "on-demand"
    ]
    return Catalog([*bundled.rows, *spot])


def node_record(node: data.Node) -> NodeRecord:
    return NodeRecord(
        name=f"ip-{node.instance_id[2:]}.ec2.internal",
        labels=(
            ("node.kubernetes.io/instance-type", node.instance_type),
            ("topology.kubernetes.io/region", "us-east-1"),
            ("topology.kubernetes.io/zone", node.zone),
            ("karpenter.sh/capacity-type", "spot" if node.kind == "spot" else "on-demand"),
        ),
        provider_id=f"aws:///{node.zone}/{node.instance_id}",
        gpus=8,
    )


def budget_of(node: data.Node) -> str:
    return f"ml-research/{node.cluster}"


def accuracy(workdir: Path) -> dict[str, Any]:
    nodes = data.fleet(SMALL_FLEET)
    month = data.month_lines(nodes, 11)
    catalog = accuracy_catalog()
    records = {node_record(n).name: node_record(n) for n in nodes}
    by_resource = {n.resource: n for n in nodes}
    settings = OperatorSettings()
    store = BillingStore(workdir / "accuracy.duckdb")
    estimates = EstimateStore(store.connection)
    buffer = EstimateBuffer()
    list_book = PriceBook(catalog)
    list_prices = list_book.price_all(records.values())
    buffer.note_nodes(list_prices, records, data.MONTH)  # first seen at the start of the month
    spend: dict[tuple[str, str], Decimal] = {}  # each budget's ledger: what it accrued
    snapshot = None
    daily: list[dict[str, Any]] = []
    started = time.perf_counter()
    for day in range(30):
        factors = snapshot.factors if snapshot is not None and day >= FACTORS_FROM_DAY else {}
        book = list_book.with_feeds(None, factor_lookup(factors)) if factors else list_book
        prices = book.price_all(records.values())
        day_start = data.MONTH + day * _DAY
        for hour in range(1, 25):
            buffer.note_nodes(prices, records, day_start + hour * _HOUR)
        drained = buffer.drain()
        budgets = [
            BudgetHour(budget_of(by_resource[n.resource]), n.resource, n.hour, n.estimated)
            for n in drained.nodes
        ]
        for b in budgets:
            key = _key(b.budget)
            spend[key] = spend.get(key, Decimal(0)) + b.estimated
        estimates.record(drained.nodes, budgets, drained.aliases, drained.marks)
        now = day_start + _DAY
        delivery = month.before(now - BILLING_LAG)
        if len(delivery):
            store.import_files(delivery.write(str(workdir), f"delivery-{day + 1:02d}"))
        rows = estimates.reconcile(
            ReconcileQuery(now, LOOKBACK, settings.billing_anomaly_factor, ANOMALY_LOOKBACK)
        )
        snapshot = snapshot_from(rows, now, settings)
        daily.append(_day_figures(day + 1, now, snapshot, spend, month, list_prices, nodes, records))
    elapsed = time.perf_counter() - started
    assert snapshot is not None
    final = daily[-1]

    # The bill as the store holds it once the whole month has landed (checks the generator's sum).
    store.import_files(month.write(str(workdir), "final"))
    stored = store.connection.execute(
        "SELECT sum(EffectiveCost) FROM billing_lines "
        "WHERE ChargeCategory = 'Usage' AND ResourceId LIKE 'i-%'"
    ).fetchone()[0]  # type: ignore[index]
    factored = dollars(
        store.connection.execute("SELECT sum(estimated) FROM node_hours").fetchone()[0]  # type: ignore[index]
    )
    billed = Decimal(sum(month.node_effective().values())) * data.UNIT
    assert Decimal(stored) == billed, (stored, billed)
    store.close()

    per_budget = _per_budget_errors(snapshot, spend, month, nodes, list_prices, records)
    true_rates = _true_rates(month, nodes)
    return {
        "nodes": len(nodes),
        "budgets": len(spend),
        "node_hours": len(nodes) * data.MONTH_HOURS,
        "billed": str(billed),
        "costwarden_trued_up": final["costwarden"],
        "costwarden_error_pct": final["costwarden_error_pct"],
        "list_price_estimate": final["list"],
        "list_price_error_pct": final["list_error_pct"],
        "factored_estimate_without_true_up": str(factored.quantize(Decimal("0.01"))),
        "factored_estimate_error_pct": _pct(factored, billed),
        "reconciled_through": final["reconciled_through"],
        "per_budget_max_abs_error_pct": per_budget,
        "learned_factors": {
            " ".join(k): str(v.factor) for k, v in sorted(snapshot.factors.items(), key=lambda kv: kv[0])
        },
        "true_month_rates": true_rates,
        "month_to_date": [
            {k: d[k] for k in ("day", "costwarden_error_pct", "list_error_pct")}
            for d in daily
            if d["day"] in (3, 7, 8, 14, 21, 28, 30)
        ],
        "worst_month_to_date_error_pct_from_day_8": {
            "costwarden": max((abs(Decimal(d["costwarden_error_pct"])) for d in daily[7:]), default=None),
            "list": max((abs(Decimal(d["list_error_pct"])) for d in daily[7:]), default=None),
        },
        "seconds": round(elapsed, 1),
        "rss_mb": rss_mb(),
    }


def _key(budget: str) -> tuple[str, str]:
    namespace, _, name = budget.partition("/")
    return namespace, name


def _pct(value: Decimal, truth: Decimal) -> str:
    return str(((value - truth) / truth * 100).quantize(Decimal("0.001")))


def _trued(snapshot: Any, spend: dict[tuple[str, str], Decimal]) -> dict[tuple[str, str], Decimal]:
    """Each budget's spend trued up over the month's reconciled hours (compute only: the
    budgets' non-compute lines are left out on both sides)."""
    out = {}
    for key, amount in spend.items():
        trued = true_up(snapshot.budgets.get(key, BudgetBilling()), data.MONTH)
        out[key] = amount - trued.estimated + trued.billed
    return out


def _day_figures(
    day: int,
    now: datetime,
    snapshot: Any,
    spend: dict[tuple[str, str], Decimal],
    month: data.Month,
    list_prices: Any,
    nodes: Sequence[data.Node],
    records: dict[str, NodeRecord],
) -> dict[str, Any]:
    hours = int((now - data.MONTH) / _HOUR)
    billed = Decimal(sum(month.node_effective(now).values())) * data.UNIT
    costwarden = sum(_trued(snapshot, spend).values(), Decimal(0))
    listed = sum((p.hourly * hours for p in list_prices.values()), Decimal(0))
    through = [b.reconciled_through for b in snapshot.budgets.values() if b.reconciled_through]
    return {
        "day": day,
        "billed": str(billed),
        "costwarden": str(costwarden.quantize(Decimal("0.01"))),
        "costwarden_error_pct": _pct(costwarden, billed),
        "list": str(listed.quantize(Decimal("0.01"))),
        "list_error_pct": _pct(listed, billed),
        "reconciled_through": max(through).isoformat() if through else None,
    }


def _per_budget_errors(
    snapshot: Any,
    spend: dict[tuple[str, str], Decimal],
    month: data.Month,
    nodes: Sequence[data.Node],
    list_prices: Any,
    records: dict[str, NodeRecord],
) -> dict[str, str]:
    effective = month.node_effective()
    billed: dict[tuple[str, str], Decimal] = {}
    listed: dict[tuple[str, str], Decimal] = {}
    for node in nodes:
        key = _key(budget_of(node))
        billed[key] = billed.get(key, Decimal(0)) + Decimal(effective[node.instance_id]) * data.UNIT
        price = list_prices[node_record(node).name].hourly * data.MONTH_HOURS
        listed[key] = listed.get(key, Decimal(0)) + price
    trued = _trued(snapshot, spend)
    return {
        "costwarden": str(max(abs(Decimal(_pct(trued[k], billed[k]))) for k in billed)),
        "list": str(max(abs(Decimal(_pct(listed[k], billed[k]))) for k in billed)),
    }


def _true_rates(month: data.Month, nodes: Sequence[data.Node]) -> dict[str, str]:
    """Billed / list per (type, capacity) over the whole month, against the catalog's prices."""
    effective = month.node_effective()
    catalog = accuracy_catalog()
    sums: dict[str, tuple[Decimal, Decimal]] = {}
    for node in nodes:
        record = node_record(node)
        key = f"{node.instance_type} {'spot' if node.kind == 'spot' else 'on-demand'}"
        price = PriceBook(catalog).price(record).hourly * data.MONTH_HOURS
        b, lst = sums.get(key, (Decimal(0), Decimal(0)))
        sums[key] = (b + Decimal(effective[node.instance_id]) * data.UNIT, lst + price)
    return {k: str((b / lst).quantize(Decimal("0.0001"))) for k, (b, lst) in sorted(sums.items())}


# ---------------------------------------------------------------------------------------------
# parity with tests/billing_exports.py


def parity(workdir: Path) -> dict[str, Any]:
    """Two nodes of each kind for a day, hourly lines only: written by this generator and by
    ``tests.billing_exports`` (a ``Cur2Line`` each), stored alike (all but SkuId, which
    ``Cur2Line`` has no field for); totals as ``cur2_totals`` says."""
    from tests.billing_exports import Cur2Line, cur2_totals, write_cur2_parquet

    nodes = data.fleet((("p5.48xlarge", "sp", 2), ("p5.48xlarge", "ri", 2), ("p4d.24xlarge", "spot", 2)))
    month = data.month_lines(nodes, 3, hours=24, credits_per_day=0)
    month = month.where(month.columns["hours"] == 1)
    c = month.columns

    def money(name: str, i: int) -> Decimal | None:
        null = c.get(name + "_null")
        return None if null is not None and null[i] else Decimal(int(c[name][i])) * data.UNIT

    lines = [
        Cur2Line(
            line_type=str(c["line_type"][i]),
            resource_id=str(c["resource_id"][i]),
            start=data.MONTH + timedelta(microseconds=int(c["start_us"][i]) - data._micros(data.MONTH)),
            unblended_cost=Decimal(int(c["unblended"][i])) * data.UNIT,
            usage_type=str(c["usage_type"][i]),
            savings_plan_effective_cost=money("sp_effective", i),
            reservation_effective_cost=money("ri_effective", i),
            public_on_demand_cost=money("public", i),
            tags={"user:skypilot-cluster-name": str(c["cluster"][i]), "user:team": "ml-research"},
        )
        for i in range(len(month))
    ]
    ours = month.write(str(workdir), "parity-ours")
    theirs = [str(write_cur2_parquet(workdir / "parity-tests.parquet", lines))]
    stored = []
    for name, paths in (("ours", ours), ("tests", theirs)):
        with BillingStore(workdir / f"parity-{name}.duckdb") as store:
            store.import_files(paths)
            stored.append(
                (
                    store.summary().total,
                    store.connection.execute(
                        "SELECT * EXCLUDE (SkuId, file_sha256) FROM billing_lines ORDER BY ALL"
                    ).fetchall(),
                )
            )
    expected = cur2_totals(lines)
    (ours_total, ours_rows), (tests_total, tests_rows) = stored
    return {
        "rows": len(lines),
        "same_lines": ours_rows == tests_rows,
        "totals_as_cur2_totals": (ours_total.rows, ours_total.billed_cost, ours_total.effective_cost)
        == expected
        == (tests_total.rows, tests_total.billed_cost, tests_total.effective_cost),
    }


# ---------------------------------------------------------------------------------------------


def _child(part: str, workdir: Path) -> dict[str, Any]:
    run = {
        "parity": parity,
        "ingest": ingest,
        "reconcile": reconcile,
        "accuracy": accuracy,
        "lookback": lookback,
    }[part]
    return run(workdir)


def main(parts: Sequence[str] = PARTS) -> dict[str, Any]:
    """Each part in a child process (its own RSS), in one temporary folder; their JSON."""
    if "reconcile" in parts and "ingest" not in parts:
        parts = ["ingest", *parts]  # reconcile reads the store ingest leaves
    results: dict[str, Any] = {}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "operator")])}
    with tempfile.TemporaryDirectory(prefix="costwarden-billing-bench-") as workdir:
        for part in [p for p in (*PARTS, *OPT_IN) if p in parts]:
            done = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--child", part, "--workdir", workdir],
                check=False,
                capture_output=True,
                text=True,
                env=env,
            )
            if done.returncode != 0:
                sys.stderr.write(done.stderr)
                raise RuntimeError(f"billing bench part {part} failed (exit {done.returncode})")
            results[part] = json.loads(done.stdout)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", help=f"any of {', '.join(PARTS)} (default: all)")
    parser.add_argument("--child", choices=(*PARTS, *OPT_IN))
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    unknown = [p for p in args.parts if p not in (*PARTS, *OPT_IN)]
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {', '.join((*PARTS, *OPT_IN))}")
    if args.child:
        print(json.dumps(_child(args.child, args.workdir), default=str))
    else:
        print(json.dumps(main(args.parts or PARTS), indent=2, default=str))
