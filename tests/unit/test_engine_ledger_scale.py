"""A budget over 20,000 pods: its stored status stays well under etcd's request limit, and an
operator restarted from that stored status continues with the same spend to the nanodollar,
closing the pods that vanished meanwhile with their last figure, and with the same idle-since
times when every pod is idle.

The pods are the heavy case: a Monthly budget three days into the month over pods that started
up to nine days ago, so most carry a baseline. Exact uids and figures cost about 26 bytes a pod
after compression (a uid's 16 random bytes, two figures of 13-14 random digits), 35 in base64:
44 % of the limit here. Idle-since times name their pods by their place in the per-pod table,
so 20,000 pods all idle since one pass add a few bytes; since times spread over a weekend of
10-second passes they add about 110 KB (7 % of the limit), each since a time of its own 150 KB
(docs/ledger.md has the figures)."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from costwarden.engine.evaluation import BudgetInput, CoveredPod, evaluate_budget
from costwarden.engine.ledger import PodAccrual, accrue
from costwarden.models import CostBudgetSpec, CostBudgetStatus
from costwarden.records import PodRecord, format_time

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


FirstPass = tuple[list[tuple[PodRecord, Decimal]], dict[str, PodAccrual], CostBudgetStatus]


@pytest.fixture(scope="module")
def first_pass() -> FirstPass:
    pods = _pods(PODS)
    accruals: dict[str, PodAccrual] = {}
    return pods, accruals, _evaluate(CostBudgetStatus(), pods, NOW, accruals)


def test_a_budget_over_20000_pods_is_stored_small_and_restarts_exactly(first_pass: FirstPass) -> None:
    pods, accruals, first = first_pass
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


def _one_pass(uids: list[str]) -> dict[str, str]:
    """Every pod idle since the same pass: a sweep whose replicas all hung at once."""
    return dict.fromkeys(uids, format_time(NOW - timedelta(hours=2)))


def _weekend(uids: list[str]) -> dict[str, str]:
    """Each pod idle since a random pass of the 48 hours before NOW, one every 10 seconds (the
    default --interval): about 11,800 distinct times."""
    rng = random.Random(11)
    return {uid: format_time(NOW - timedelta(seconds=10 * rng.randrange(1, 17_280))) for uid in uids}


def _each_its_own(uids: list[str]) -> dict[str, str]:
    """Each pod idle since a time of its own: 20,000 distinct times, the most the table can hold."""
    return {uid: format_time(NOW - timedelta(seconds=10 * (index + 1))) for index, uid in enumerate(uids)}


@pytest.mark.parametrize(
    ("idle_since", "bound"),
    [(_one_pass, 0.5), (_weekend, 0.55), (_each_its_own, 0.6)],
    ids=["since one pass", "over a weekend", "each its own time"],
)
def test_a_budget_over_20000_idle_pods_is_stored_small_and_restarts_with_their_idle_times(
    first_pass: FirstPass, idle_since: Callable[[list[str]], dict[str, str]], bound: float
) -> None:
    _, _, first = first_pass
    idle = idle_since(list(first.ledger.pods))
    # As evaluation leaves it: the ledger's idle_since replaced by the idle-GPU rule's scan.
    idling = first.model_copy(update={"ledger": first.ledger.model_copy(update={"idle_since": idle})})
    stored = _stored(idling)
    assert len(stored.encode()) < bound * ETCD_REQUEST_LIMIT
    restarted = CostBudgetStatus.model_validate(json.loads(stored))
    assert restarted.ledger.idle_since == idle
    assert restarted.ledger == idling.ledger
