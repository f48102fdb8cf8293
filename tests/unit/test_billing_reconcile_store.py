"""Estimates into the billing store, a FOCUS export beside them, and the reconciliation's aggregates
(billing/estimates.py, operator/estimatebuffer.py, operator/billingfeed.snapshot_from)."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from costwarden.billing.estimates import EstimateStore, ReconcileQuery
from costwarden.billing.store import BillingStore
from costwarden.engine.ledger import CoveredPod, PodAccrual
from costwarden.engine.reconcile import true_up
from costwarden.models import BudgetLedger, PodLedgerEntry
from costwarden.operator.billingfeed import covered_clusters, snapshot_from
from costwarden.operator.estimatebuffer import EstimateBuffer
from costwarden.operator.settings import OperatorSettings
from costwarden.pricing import PriceBook, load_bundled_catalog
from costwarden.records import NodeRecord, PodRecord, format_time
from tests import shapes

D = Decimal
T0 = datetime(2026, 11, 20, tzinfo=UTC)
P5 = D("55.04")  # catalog list price, us-east-1 on-demand
REAL = D("0.7") * P5  # what the savings plan makes an hour cost
I1, I2 = "i-0fea4fd46592d050b", "i-0aaaaaaaaaaaaaaa2"
HEADER = [
    "BillingAccountId",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ChargeCategory",
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "ResourceId",
    "ProviderName",
    "ServiceName",
    "BillingCurrency",
    "Tags",
]


def _node(name: str, instance: str) -> NodeRecord:
    body = shapes.eks_p5_node(name)
    body["spec"]["providerID"] = f"aws:///us-east-1a/{instance}"
    return NodeRecord.from_body(body)


def _line(instance: str, hour: int, effective: Decimal, tags: dict[str, str] | None = None) -> list[str]:
    start = T0 + timedelta(hours=hour)
    return [
        "123456789012",
        "2026-11-01T00:00:00Z",
        "2026-12-01T00:00:00Z",
        format_time(start),
        format_time(start + timedelta(hours=1)),
        "Usage",
        str(P5),
        str(effective),
        str(P5),
        instance,
        "AWS",
        "Amazon Elastic Compute Cloud",
        "USD",
        json.dumps(tags or {}),
    ]


def _export(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def _ledger(entries: dict[str, tuple[Decimal, datetime]]) -> BudgetLedger:
    return BudgetLedger(
        pods={uid: PodLedgerEntry(spend=s, at=format_time(t)) for uid, (s, t) in entries.items()}
    )


def _fill(buffer: EstimateBuffer, nodes: dict[str, NodeRecord], hours: int) -> None:
    """Both nodes priced every 30 minutes for ``hours``; budget A owns all of node 1, budget B
    half of node 2 (its pod's spend is half the node's)."""
    prices = PriceBook(load_bundled_catalog()).price_all(nodes.values())
    pod1 = PodRecord("research", "a", "uid-a", node_name="n1", phase="Running", started=T0)
    pod2 = PodRecord("research", "b", "uid-b", node_name="n2", phase="Running", started=T0)
    step = timedelta(minutes=30)
    before_a, before_b = _ledger({}), _ledger({})
    for index in range(2 * hours + 1):
        now = T0 + index * step
        buffer.note_nodes(prices, nodes, now)
        spent = P5 * index / 2
        after_a = _ledger({"uid-a": (spent, now)})
        after_b = _ledger({"uid-b": (spent / 2, now)})
        if index:
            covered_a = [CoveredPod(pod1, PodAccrual(spent, P5, now))]
            covered_b = [CoveredPod(pod2, PodAccrual(spent / 2, P5 / 2, now))]
            buffer.note_budget("research/a", covered_a, (before_a, after_a), nodes, now)
            buffer.note_budget("research/b", covered_b, (before_b, after_b), nodes, now)
        before_a, before_b = after_a, after_b


def test_reconciliation_from_estimates_and_a_focus_export(tmp_path: Path) -> None:
    nodes = {"n1": _node("n1", I1), "n2": _node("n2", I2)}
    buffer = EstimateBuffer()
    _fill(buffer, nodes, hours=4)
    drained = buffer.drain()
    assert sum((n.estimated for n in drained.nodes), D(0)) == 8 * P5
    assert {n.seconds for n in drained.nodes} == {3600.0}
    with BillingStore(tmp_path / "b.duckdb") as store:
        estimates = EstimateStore(store.connection)
        estimates.record(drained.nodes, drained.budgets, drained.aliases, drained.marks)
        rows = [_line(I1, h, REAL) for h in range(4)]
        rows += [_line(I2, h, REAL) for h in range(3)] + [_line(I2, 3, 3 * P5)]  # hour 3: billed 3x
        rows.append(_line("vol-0123456789abcdef0", 1, D("5"), {"user:skypilot-cluster-name": "llama-2ea4"}))
        rows.append(_line("vol-0fffffffffffffff0", 1, D("7"), {"skypilot-cluster-name": "other-0b0b"}))
        store.import_files([_export(tmp_path / "focus.csv", rows)])
        now = T0 + timedelta(days=2)
        query = ReconcileQuery(now, timedelta(days=93), D(2), timedelta(days=7))
        found = estimates.reconcile(query)

    # the learned factor leaves out the anomalous window: 7 reconciled hours at 0.7
    assert [(f[0], f[1], f[2], f[3], f[4], f[5]) for f in found.factors] == [
        ("aws", "p5.48xlarge", "on-demand", 7 * REAL, 7 * P5, D(7))
    ]
    days = {(b, d): (est, billed) for b, d, est, billed, _ in found.budget_days}
    assert days[("research/a", date(2026, 11, 20))] == (4 * P5, 4 * REAL)
    # budget B has half of node 2: half of each hour's bill, the 3x hour included (fully seen)
    assert days[("research/b", date(2026, 11, 20))] == (2 * P5, (3 * REAL + 3 * P5) / 2)
    assert [(b, r, s.hour, est, billed) for b, r, s, _, est, billed in found.anomalies] == [
        ("research/b", f"aws:{I2}", 3, P5, 3 * P5)
    ]
    assert sorted(found.clusters) == [
        ("llama-2ea4", date(2026, 11, 20), D(5)),
        ("other-0b0b", date(2026, 11, 20), D(7)),
    ]
    assert found.newest == T0 + timedelta(hours=4)

    settings = OperatorSettings(billing_store=tmp_path / "b.duckdb")
    snapshot = snapshot_from(found, now, settings)
    a = snapshot.budgets[("research", "a")]
    trued = true_up(a, datetime(2026, 11, 1, tzinfo=UTC))
    assert (trued.estimated, trued.billed, trued.factor) == (4 * P5, 4 * REAL, D("0.7000"))
    assert a.reconciled_through == T0 + timedelta(hours=4)
    assert snapshot.factors == {}  # 7 hours: fewer than the 24 a factor needs
    assert len(snapshot.budgets[("research", "b")].anomalies) == 1
    assert snapshot.freshness is not None and not snapshot.freshness.stale(now)

    from costwarden.models import CostBudgetSpec

    spec = CostBudgetSpec.model_validate({"limit": 10, "skypilotCluster": "llama"})
    assert covered_clusters(spec, snapshot.by_cluster) == ["llama-2ea4"]


def test_a_partly_seen_window_billed_high_is_left_at_the_estimate(tmp_path: Path) -> None:
    """The operator first saw the node at 00:30: billing for the whole hour is no anomaly, and
    not the budget's either (it may have run before the operator looked)."""
    nodes = {"n1": _node("n1", I1)}
    prices = PriceBook(load_bundled_catalog()).price_all(nodes.values())
    buffer = EstimateBuffer()
    for minutes in (30, 60, 120):
        buffer.note_nodes(prices, nodes, T0 + timedelta(minutes=minutes))
    drained = buffer.drain()
    assert [(n.hour.hour, n.seconds) for n in drained.nodes] == [(0, 1800.0), (1, 3600.0)]
    with BillingStore(tmp_path / "b.duckdb") as store:
        estimates = EstimateStore(store.connection)
        estimates.record(drained.nodes, drained.budgets, drained.aliases, drained.marks)
        store.import_files([_export(tmp_path / "f.csv", [_line(I1, 0, REAL), _line(I1, 1, REAL)])])
        found = estimates.reconcile(
            ReconcileQuery(T0 + timedelta(days=1), timedelta(days=93), D(2), timedelta(days=7))
        )
    assert found.anomalies == []
    # only the fully seen hour teaches the factor
    assert [(f[3], f[4], f[5]) for f in found.factors] == [(REAL, P5, D(1))]


def test_a_restart_charges_the_hours_it_was_down_from_the_marks(tmp_path: Path) -> None:
    nodes = {"n1": _node("n1", I1)}
    prices = PriceBook(load_bundled_catalog()).price_all(nodes.values())
    first = EstimateBuffer()
    first.note_nodes(prices, nodes, T0)
    first.note_nodes(prices, nodes, T0 + timedelta(hours=1))
    path = tmp_path / "b.duckdb"
    with BillingStore(path) as store:
        drained = first.drain()
        EstimateStore(store.connection).record(drained.nodes, drained.budgets, drained.aliases, drained.marks)
    # the operator is down from 01:00 to 03:00, then starts again
    with BillingStore(path) as store:
        estimates = EstimateStore(store.connection)
        second = EstimateBuffer()
        second.resume_from(estimates.marks())
        second.note_nodes(prices, nodes, T0 + timedelta(hours=3))
        drained = second.drain()
        estimates.record(drained.nodes, drained.budgets, drained.aliases, drained.marks)
        hours = store.connection.execute(
            "SELECT hour, estimated, seconds FROM node_hours ORDER BY hour"
        ).fetchall()
    assert [(h.astimezone(UTC).hour, s) for h, _, s in hours] == [(0, 3600.0), (1, 3600.0), (2, 3600.0)]
    assert sum(int(e) for _, e, _ in hours) == int(3 * P5 * 10**9)


def test_estimates_add_up_across_flushes(tmp_path: Path) -> None:
    nodes = {"n1": _node("n1", I1)}
    prices = PriceBook(load_bundled_catalog()).price_all(nodes.values())
    buffer = EstimateBuffer()
    with BillingStore(tmp_path / "b.duckdb") as store:
        estimates = EstimateStore(store.connection)
        for minutes in (0, 20, 40, 60):
            buffer.note_nodes(prices, nodes, T0 + timedelta(minutes=minutes))
            drained = buffer.drain()
            estimates.record(drained.nodes, drained.budgets, drained.aliases, drained.marks)
        row = store.connection.execute(
            "SELECT count(*), sum(estimated), sum(seconds) FROM node_hours"
        ).fetchone()
    assert row == (1, int(P5 * 10**9), 3600.0)
