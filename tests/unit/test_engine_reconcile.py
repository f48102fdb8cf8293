"""Reconciliation rules (engine/reconcile.py) and the budget evaluation that applies them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costwarden.billing.resources import billing_key, billing_key_sql, node_keys
from costwarden.engine.evaluation import BudgetInput, evaluate_budget
from costwarden.engine.reconcile import (
    BILLING_ANOMALY,
    BILLING_STALE,
    BudgetBilling,
    BudgetTruth,
    DayFigures,
    FactorRow,
    Freshness,
    WindowAnomaly,
    billing_findings,
    cluster_lines,
    factor_lookup,
    learned_factors,
    split_hours,
    true_up,
)
from costwarden.models import ActionResult, CostBudgetSpec, CostBudgetStatus
from costwarden.pricing import NodeFacts
from costwarden.records import NodeRecord

NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
D = Decimal


def test_split_hours_spreads_evenly_and_adds_up_exactly() -> None:
    start = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)
    parts = split_hours(start, start + timedelta(hours=2), D("3"))
    assert [h.hour for h, _ in parts] == [10, 11, 12]
    assert [a for _, a in parts] == [D("0.75"), D("1.5"), D("0.75")]
    assert split_hours(start, start, D("1")) == [(start.replace(minute=0), D("1"))]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=1, max_value=10**6),
    st.decimals(min_value=D("0"), max_value=D("100000"), places=9, allow_nan=False),
)
def test_split_hours_parts_always_sum_to_the_amount(offset: int, length: int, amount: Decimal) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=offset)
    parts = split_hours(start, start + timedelta(seconds=length), amount)
    assert sum((a for _, a in parts), D(0)) == amount
    assert all(a >= 0 for _, a in parts)
    assert all(h.minute == 0 and h.second == 0 for h, _ in parts)


def test_learned_factors_need_enough_hours_and_say_where_they_come_from() -> None:
    through = datetime(2026, 11, 19, tzinfo=UTC)
    rows = [
        FactorRow(("aws", "p5.48xlarge", "on-demand"), D("700"), D("1000"), D("48"), through),
        FactorRow(("aws", "g5.xlarge", "spot"), D("7"), D("10"), D("3"), through),  # too few hours
        FactorRow(("gcp", "a3-highgpu-8g", "on-demand"), D("5"), D("0"), D("100"), through),  # no list
    ]
    factors = learned_factors(rows, D(24))
    assert list(factors) == [("aws", "p5.48xlarge", "on-demand")]
    factor = factors[("aws", "p5.48xlarge", "on-demand")]
    assert factor.factor == D("0.7000")
    assert "48 reconciled aws p5.48xlarge on-demand node-hours through 2026-11-19T00:00:00Z" in factor.source
    lookup = factor_lookup(factors)
    facts = NodeFacts("aws", "us-east-1", "us-east-1a", "p5.48xlarge", "on-demand", 8, "H100")
    assert lookup(facts) == factor
    assert lookup(NodeFacts("aws", None, None, None, "on-demand", 0, None)) is None


def test_true_up_counts_only_the_period() -> None:
    billing = BudgetBilling(
        days=(
            DayFigures(date(2026, 10, 31), D("100"), D("70")),
            DayFigures(date(2026, 11, 1), D("200"), D("150")),
            DayFigures(date(2026, 11, 2), D("100"), D("60")),
        ),
        reconciled_through=datetime(2026, 11, 3, tzinfo=UTC),
        non_compute=((date(2026, 10, 30), D("5")), (date(2026, 11, 2), D("12.5"))),
    )
    monthly = true_up(billing, datetime(2026, 11, 1, tzinfo=UTC))
    assert (monthly.estimated, monthly.billed, monthly.non_compute) == (D("300"), D("210"), D("12.5"))
    assert monthly.adjustment == D("-77.5")
    assert monthly.factor == D("0.7000")
    lifetime = true_up(billing, None)
    assert (lifetime.estimated, lifetime.billed, lifetime.non_compute) == (D("400"), D("280"), D("17.5"))


def test_cluster_lines_sum_the_covered_clusters_by_day() -> None:
    by_cluster = {
        "llama-2ea4": ((date(2026, 11, 1), D("1")), (date(2026, 11, 2), D("2"))),
        "other-9f9f": ((date(2026, 11, 1), D("100")),),
        "llama-aaaa": ((date(2026, 11, 1), D("0.5")),),
    }
    assert cluster_lines(by_cluster, ["llama-2ea4", "llama-aaaa"]) == (
        (date(2026, 11, 1), D("1.5")),
        (date(2026, 11, 2), D("2")),
    )


def _anomaly(resource: str, hour: int, estimated: str = "10", billed: str = "30") -> WindowAnomaly:
    start = datetime(2026, 11, 20, hour, tzinfo=UTC)
    return WindowAnomaly(resource, start, start + timedelta(hours=1), D(estimated), D(billed))


def test_billing_findings_one_per_resource_and_day_not_fired_before() -> None:
    truth = BudgetTruth(
        BudgetBilling(anomalies=(_anomaly("aws:i-1", 3), _anomaly("aws:i-1", 5), _anomaly("aws:i-2", 4))),
        anomaly_factor=D(2),
    )
    found = billing_findings(truth, datetime(2026, 11, 1, tzinfo=UTC), set())
    assert [f.record_id for f in found] == [
        "anomaly/billing/aws:i-1/2026-11-20",
        "anomaly/billing/aws:i-2/2026-11-20",
    ]
    assert "3.0 times the estimate $10.00 (billing anomaly limit 2 times)" in found[0].message
    again = billing_findings(truth, None, {"anomaly/billing/aws:i-1/2026-11-20"})
    assert [f.record_id for f in again] == ["anomaly/billing/aws:i-2/2026-11-20"]
    # an anomaly before the period started is not this period's
    assert billing_findings(truth, datetime(2026, 11, 21, tzinfo=UTC), set()) == ()


def _budget(period: str = "Monthly", limit: int = 1000) -> BudgetInput:
    spec = CostBudgetSpec.model_validate({"limit": limit, "period": period, "skypilotCluster": "llama"})
    return BudgetInput("research", "llama", 1, spec, CostBudgetStatus())


def test_evaluation_trues_up_spend_and_shows_billing() -> None:
    truth = BudgetTruth(
        BudgetBilling(
            days=(DayFigures(date(2026, 11, 19), D("400"), D("280")),),
            reconciled_through=datetime(2026, 11, 20, tzinfo=UTC),
            non_compute=((date(2026, 11, 19), D("15")),),
        ),
        Freshness(datetime(2026, 11, 20, tzinfo=UTC), timedelta(hours=72)),
    )
    plain = evaluate_budget(_budget(), [], NOW)
    decision = evaluate_budget(_budget(), [], NOW, billing=truth)
    assert plain.status.billing is None
    # no pods here: the ledger's estimate is 0, so the trued-up spend never goes below zero
    assert decision.status.spend == D(0)
    billing = decision.status.billing
    assert billing is not None
    assert (billing.estimated_spend, billing.billed_spend, billing.non_compute_spend) == (
        D(400),
        D(280),
        D(15),
    )
    assert billing.effective_rate_factor == D("0.7000")
    assert billing.reconciled_through == "2026-11-20T00:00:00Z"
    body = decision.status.to_k8s()["billing"]
    assert body == {
        "estimatedSpend": 400.0,
        "billedSpend": 280.0,
        "nonComputeSpend": 15.0,
        "anomalies": 0,
        "reconciledThrough": "2026-11-20T00:00:00Z",
        "effectiveRateFactor": 0.7,
    }
    conditions = {c.type: c for c in decision.status.conditions}
    assert conditions[BILLING_STALE].status == "False"
    assert conditions[BILLING_ANOMALY].status == "False"


def test_evaluation_with_stale_billing_and_an_anomaly_notifies_once() -> None:
    truth = BudgetTruth(
        BudgetBilling(anomalies=(_anomaly("aws:i-1", 3),)),
        Freshness(datetime(2026, 11, 16, tzinfo=UTC), timedelta(hours=72)),
    )
    first = evaluate_budget(_budget(), [], NOW, billing=truth)
    conditions = {c.type: c for c in first.status.conditions}
    assert conditions[BILLING_STALE].status == "True"
    assert "2026-11-16T00:00:00Z" in conditions[BILLING_STALE].message
    assert conditions[BILLING_ANOMALY].status == "True"
    records = [r for r in first.status.actions if r.id.startswith("anomaly/billing/")]
    assert [(r.action.value, r.result) for r in records] == [("Notify", ActionResult.PENDING)]
    assert [e.reason for e in first.events] == ["BillingAnomaly"]
    assert first.status.billing is not None and first.status.billing.anomalies == 1
    second = evaluate_budget(
        BudgetInput("research", "llama", 1, _budget().spec, first.status),
        [],
        NOW + timedelta(minutes=1),
        billing=truth,
    )
    assert second.anomalies == ()
    assert [r.id for r in second.status.actions] == [r.id for r in first.status.actions]


def test_no_billing_at_all_is_stale() -> None:
    truth = BudgetTruth(BudgetBilling(), Freshness(None, timedelta(hours=72)))
    decision = evaluate_budget(_budget(), [], NOW, billing=truth)
    stale = next(c for c in decision.status.conditions if c.type == BILLING_STALE)
    assert (stale.status, stale.reason) == ("True", "NoRecentBilling")


@pytest.mark.parametrize(
    ("provider_id", "instance_id", "keys"),
    [
        ("aws:///us-east-2a/i-0fea4fd46592d050b", None, ("aws:i-0fea4fd46592d050b",)),
        (
            "gce://proj/us-central1-a/gke-ml-pool-1-abcd",
            "4312897123",
            ("gce:gke-ml-pool-1-abcd", "gce:4312897123"),
        ),
        (
            "azure:///subscriptions/S/resourceGroups/MC_rg/providers/Microsoft.Compute/"
            "virtualMachineScaleSets/aks-gpu-123-vmss/virtualMachines/3",
            None,
            (
                "azure:/subscriptions/s/resourcegroups/mc_rg/providers/microsoft.compute/"
                "virtualmachinescalesets/aks-gpu-123-vmss",
            ),
        ),
        ("kind://docker/kind/kind-control-plane", None, ()),
        ("", None, ()),
    ],
)
def test_node_keys(provider_id: str, instance_id: str | None, keys: tuple[str, ...]) -> None:
    assert node_keys(NodeRecord(name="n", provider_id=provider_id, instance_id=instance_id)) == keys


BILLED_IDS = [
    "i-0fea4fd46592d050b",
    "arn:aws:ec2:us-east-1:123456789012:instance/i-0fea4fd46592d050b",
    "//compute.googleapis.com/projects/proj/zones/us-central1-a/instances/4312897123",
    "gke-ml-pool-1-abcd",
    "/subscriptions/S/resourceGroups/MC_rg/providers/Microsoft.Compute/virtualMachineScaleSets/aks-gpu-123-vmss",
    "/subscriptions/S/resourceGroups/MC_rg/providers/Microsoft.Compute/virtualMachineScaleSets/aks-gpu-123-vmss"
    "/virtualMachines/3",
    "/subscriptions/S/resourceGroups/rg/providers/Microsoft.Compute/disks/data-1",
    "vol-0123456789abcdef0",
    "arn:aws:s3:::bucket",
    "",
    None,
]


def test_billing_keys_match_node_keys_and_the_sql_agrees() -> None:
    nodes = [
        NodeRecord(name="a", provider_id="aws:///us-east-1a/i-0fea4fd46592d050b"),
        NodeRecord(
            name="g", provider_id="gce://proj/us-central1-a/gke-ml-pool-1-abcd", instance_id="4312897123"
        ),
        NodeRecord(
            name="z",
            provider_id="azure:///subscriptions/S/resourceGroups/MC_rg/providers/Microsoft.Compute/"
            "virtualMachineScaleSets/aks-gpu-123-vmss/virtualMachines/7",
        ),
    ]
    known = {key for node in nodes for key in node_keys(node)}
    python = [billing_key(resource) for resource in BILLED_IDS]
    assert [key in known for key in python] == [True] * 6 + [False] * 5
    db = duckdb.connect()
    rows = db.execute(
        f"SELECT {billing_key_sql('r')} FROM "
        "(SELECT unnest(?) AS r, generate_subscripts(?, 1) AS i) ORDER BY i",
        [BILLED_IDS, BILLED_IDS],
    ).fetchall()
    assert [row[0] for row in rows] == python
