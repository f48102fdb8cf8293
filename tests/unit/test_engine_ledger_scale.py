"""A budget over 20,000 pods: its stored status stays well under etcd's request limit, and an
operator restarted from that stored status continues with the same spend to the nanodollar,
closing the pods that vanished meanwhile with their last figure.

The pods are the heavy case: a Monthly budget three days into the month over pods that started
up to nine days ago, so most carry a baseline. Exact uids and figures cost about 26 bytes a pod
after compression (a uid's 16 random bytes, two figures of 13-14 random digits), 35 in base64:
44 % of the limit here (docs/ledger.md has the figures)."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from costwarden.engine.evaluation import BudgetInput, CoveredPod, evaluate_budget
from costwarden.engine.ledger import PodAccrual, accrue
from costwarden.models import CostBudgetSpec, CostBudgetStatus
from costwarden.records import PodRecord

ETCD_REQUEST_LIMIT = 1_572_864  # bytes: etcd's default --max-request-bytes, 1.5 MiB
PODS = 20_000
VANISHED = 500
NOW = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
RATES = [Decimal(r) for r in ("0.031611", "0.526", "0.95", "3.7", "7.6", "55.04", "98.32")]


def _pods(count: int) -> list[tuple[PodRecord, Decimal]]:
    """Pods with random uids, started over the 9 days before NOW (some before the period began)."""
    rng = random.Random(7)
    pods = []
    for index in range(count):
        started = NOW - timedelta(seconds=rng.randrange(1, 9 * 24 * 3600), microseconds=rng.randrange(10**6))
        uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        record = PodRecord(
            namespace="research", name=f"sweep-{index}", uid=uid, node_name="n", phase="Running",
            gpus=1, created=started, started=started,
        )  # fmt: skip
        pods.append((record, rng.choice(RATES)))
    return pods


def _evaluate(
    status: CostBudgetStatus,
    pods: list[tuple[PodRecord, Decimal]],
    now: datetime,
    accruals: dict[str, PodAccrual],
) -> CostBudgetStatus:
    covered = []
    for record, rate in pods:
        accruals[record.uid] = accrue(record, rate, now, accruals.get(record.uid))
        covered.append(CoveredPod(record, accruals[record.uid]))
    spec = CostBudgetSpec.model_validate({"limit": 10_000_000, "period": "Monthly"})
    return evaluate_budget(BudgetInput("research", "sweep", 1, spec, status), covered, now).status


def _stored(status: CostBudgetStatus) -> str:
    return json.dumps(status.to_k8s(), separators=(",", ":"))


def test_a_budget_over_20000_pods_is_stored_small_and_restarts_exactly() -> None:
    pods = _pods(PODS)
    accruals: dict[str, PodAccrual] = {}
    first = _evaluate(CostBudgetStatus(), pods, NOW, accruals)
    stored = _stored(first)
    assert len(stored.encode()) < 0.5 * ETCD_REQUEST_LIMIT
    assert len(first.ledger.pods) == PODS
    assert any(entry.baseline > 0 for entry in first.ledger.pods.values())

    later = NOW + timedelta(minutes=30, seconds=7)
    vanished, staying = pods[:VANISHED], pods[VANISHED:]
    continuous = _evaluate(first, staying, later, dict(accruals))
    restarted = _evaluate(CostBudgetStatus.model_validate(json.loads(stored)), staying, later, dict(accruals))

    assert restarted.spend == continuous.spend
    assert restarted.ledger == continuous.ledger
    closed = sum(
        (first.ledger.pods[p.uid].spend - first.ledger.pods[p.uid].baseline for p, _ in vanished), Decimal(0)
    )
    assert restarted.ledger.closed_spend == closed > 0
    assert set(restarted.ledger.pods) == {p.uid for p, _ in staying}
