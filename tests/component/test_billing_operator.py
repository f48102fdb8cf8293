"""The real operator with a billing store: its node-hour estimates, a billing export landing in a
``file://`` source, and the budget's spend trued up to what was billed (status.billing)."""

from __future__ import annotations

import csv
import json
import urllib.request
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from costwarden.records import format_time
from costwarden.sim.testing import ThreadedSimCluster
from tests.component.conftest import T0
from tests.component.test_operator_spend import budget, seed_skypilot_cluster, status_of

P5 = Decimal("55.04")
REAL = Decimal("0.7") * P5  # a savings plan: 30 % under list
INSTANCE = "i-0fea4fd46592d050b"  # the providerID of tests/shapes.py's p5 node
HEADER = ["BillingPeriodStart", "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "BilledCost"]
HEADER += ["EffectiveCost", "ResourceId", "ProviderName", "BillingCurrency", "Tags"]


def _line(resource: str, hour: int, effective: Decimal, tags: dict[str, str] | None = None) -> list[str]:
    start = T0 + timedelta(hours=hour)
    end = format_time(start + timedelta(hours=1))
    return ["2026-11-01T00:00:00Z", format_time(start), end, "Usage", str(P5), str(effective), resource]
    # ProviderName, BillingCurrency and Tags follow in _export


def _export(path: Path, lines: list[tuple[list[str], dict[str, str]]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for row, tags in lines:
            writer.writerow([*row, "AWS", "USD", json.dumps(tags)])


def billing_of(cluster: ThreadedSimCluster) -> dict[str, Any]:
    return dict(status_of(cluster).get("billing") or {})


def test_spend_is_trued_up_when_billing_lands(cluster, clock, start_operator, tmp_path: Path) -> None:
    seed_skypilot_cluster(cluster, workers=0)  # one p5.48xlarge node, one pod on all of it
    cluster.create(budget(limit=10_000))
    exports = tmp_path / "exports"
    exports.mkdir()
    operator = start_operator(
        billing_store=tmp_path / "billing.duckdb",
        billing_sources=(exports.as_uri(),),
        billing_interval=0.2,
        billing_flush_interval=0.2,
    )
    # the pod ran an hour before the operator's first look; the node is charged from then on
    cluster.wait_for(lambda: status_of(cluster).get("spend") == 55.04, timeout=20)
    # no billing in the store yet: BillingStale, and status.billing with nothing reconciled
    cluster.wait_for(lambda: billing_of(cluster).get("billedSpend") == 0.0, timeout=20)
    conditions = {c["type"]: c for c in status_of(cluster)["conditions"]}
    assert conditions["BillingStale"]["status"] == "True"

    clock.advance(timedelta(hours=2))
    cluster.wait_for(lambda: status_of(cluster).get("spend") == 165.12, timeout=20)

    # billing lands for 12:00-14:00 at the discounted rate, with a volume of the SkyPilot cluster
    volume = (_line("vol-0123456789abcdef0", 1, Decimal(5)), {"skypilot-cluster-name": "llama-sweep-2ea4"})
    decoy = (_line("vol-0fffffffffffffff0", 1, Decimal(7)), {"skypilot-cluster-name": "someone-else-1a1a"})
    hours = [(_line(INSTANCE, h, REAL), {}) for h in (0, 1)]
    _export(exports / "focus-2026-11.csv", [*hours, volume, decoy])

    # estimate 165.12 - 110.08 reconciled + 77.056 billed + 5 volume
    cluster.wait_for(lambda: status_of(cluster).get("spend") == 137.1, timeout=30)
    billing = billing_of(cluster)
    assert billing["estimatedSpend"] == 110.08
    assert billing["billedSpend"] == 77.06
    assert billing["nonComputeSpend"] == 5.0
    assert billing["effectiveRateFactor"] == 0.7
    assert billing["reconciledThrough"] == format_time(T0 + timedelta(hours=2))
    status = status_of(cluster)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["BillingStale"]["status"] == "False"
    assert conditions["BillingAnomaly"]["status"] == "False"
    assert status["percentUsed"] == 1.4
    # the price each covered node got, and where it came from
    [price] = status["nodePrices"]
    assert price["name"] == "ip-10-0-1-10.ec2.internal" and price["hourlyRate"] == 55.04
    assert price["source"].startswith("catalog: aws p5.48xlarge us-east-1 on-demand (karpenter-provider-aws")

    port = operator.settings.metrics_port
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert f'costwarden_billing_syncs_total{{result="ok",source="{exports.as_uri()}"}}' in metrics
    assert "costwarden_billing_newest_line_timestamp_seconds" in metrics


def test_a_window_billed_far_above_its_estimate_notifies(
    cluster, clock, start_operator, tmp_path: Path
) -> None:
    seed_skypilot_cluster(cluster, workers=0)
    cluster.create(budget(limit=10_000))
    exports = tmp_path / "exports"
    exports.mkdir()
    start_operator(
        billing_store=tmp_path / "billing.duckdb",
        billing_sources=(exports.as_uri(),),
        billing_interval=0.2,
        billing_flush_interval=0.2,
    )
    cluster.wait_for(lambda: status_of(cluster).get("spend") == 55.04, timeout=20)
    clock.advance(timedelta(hours=1))
    cluster.wait_for(lambda: status_of(cluster).get("spend") == 110.08, timeout=20)
    _export(exports / "cur.csv", [(_line(INSTANCE, 0, 3 * P5), {})])  # 3 times the estimate

    def notified() -> bool:
        actions = status_of(cluster).get("actions") or []
        return any(a["id"] == f"anomaly/billing/aws:{INSTANCE}/2026-11-26" for a in actions)

    cluster.wait_for(notified, timeout=30)
    status = status_of(cluster)
    record = next(a for a in status["actions"] if a["id"].startswith("anomaly/billing/"))
    assert record["action"] == "Notify" and "3.0 times the estimate $55.04" in record["trigger"]
    conditions = {c["type"]: c for c in status["conditions"]}
    cluster.wait_for(lambda: billing_of(cluster).get("anomalies") == 1, timeout=20)
    assert conditions["BillingAnomaly"]["status"] == "True"
    events = [
        e for e in cluster.list("v1", "events", namespace="research") if e.get("reason") == "BillingAnomaly"
    ]
    assert len(events) == 1
