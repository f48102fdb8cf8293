"""Properties of the spend ledger, checked over generated histories (hypothesis).

- a pod's accrual never decreases, whatever the clock does;
- stopping, writing the pod's mark to annotations and resuming gives exactly the spend of
  accruing straight through (Decimal arithmetic, no tolerance);
- a budget's spend is exactly the sum of its pods' spend in the period, across random pod
  arrivals, departures and evaluation times, with period rollovers and operator restarts;
- within a period the spend never decreases; each threshold fires once per period;
- an invalid budget never yields a crossing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from costwarden.engine.evaluation import BudgetInput, CoveredPod, evaluate_budget, invalid_decision
from costwarden.engine.ledger import PodAccrual, accrue, mark_annotations
from costwarden.engine.money import cost_between
from costwarden.engine.periods import period_bounds
from costwarden.models import ActionRecord, CostBudgetSpec, CostBudgetStatus, Period
from costwarden.records import PodRecord, format_time

T0 = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)  # two hours before a new day and a new month

rates = st.decimals(
    min_value=Decimal(0), max_value=Decimal(500), places=6, allow_nan=False, allow_infinity=False
)
seconds = st.integers(min_value=0, max_value=14 * 24 * 3600)
micros = st.integers(min_value=0, max_value=999_999)


def pod_at(start: datetime, uid: str = "u") -> PodRecord:
    return PodRecord(
        namespace="ns", name=uid, uid=uid, node_name="n", phase="Running", created=start, started=start
    )


@given(
    rate=rates, steps=st.lists(st.tuples(st.integers(-3600, 36_000), micros, rates), min_size=1, max_size=20)
)
def test_accrual_never_decreases(rate: Decimal, steps: list[tuple[int, int, Decimal]]) -> None:
    pod = pod_at(T0)
    now = T0
    previous: PodAccrual | None = None
    for step, extra, next_rate in steps:
        now += timedelta(seconds=step, microseconds=extra)
        current = accrue(pod, rate, now, previous)
        if previous is not None:
            assert current.spend >= previous.spend
            assert current.at >= previous.at
        previous, rate = current, next_rate


@given(
    rate=rates,
    first=st.tuples(st.integers(1, 10 * 24 * 3600), micros),
    second=st.tuples(seconds, micros),
    start_micros=micros,
)
def test_resuming_from_the_mark_neither_double_counts_nor_loses(
    rate: Decimal, first: tuple[int, int], second: tuple[int, int], start_micros: int
) -> None:
    start = T0 + timedelta(microseconds=start_micros)
    t1 = start + timedelta(seconds=first[0], microseconds=first[1])
    t2 = t1 + timedelta(seconds=second[0], microseconds=second[1])
    pod = pod_at(start)
    straight = accrue(pod, rate, t2, None)
    stepped = accrue(pod, rate, t2, accrue(pod, rate, t1, None))
    body = {
        "metadata": {
            "namespace": "ns",
            "name": "u",
            "uid": "u",
            "annotations": mark_annotations(accrue(pod, rate, t1, None)),
        },
        "spec": {"nodeName": "n"},
        "status": {"phase": "Running", "startTime": format_time(start)},
    }
    resumed = accrue(PodRecord.from_body(body), rate, t2, None)
    assert straight.spend == stepped.spend == resumed.spend


@dataclass
class History:
    """The operator's side of a budget: live pods, in-memory accruals, the stored status."""

    spec: CostBudgetSpec
    live: dict[str, tuple[PodRecord, Decimal]] = field(default_factory=dict)
    accruals: dict[str, PodAccrual] = field(default_factory=dict)
    status: CostBudgetStatus = field(default_factory=CostBudgetStatus)
    last_seen: dict[str, datetime] = field(default_factory=dict)  # uid -> last evaluation that covered it
    pods: dict[str, tuple[PodRecord, Decimal]] = field(default_factory=dict)  # every pod ever added

    def evaluate(self, now: datetime, restart: bool) -> tuple[Decimal, list[str]]:
        if restart:
            self.status = CostBudgetStatus.model_validate(self.status.to_k8s())
            self.accruals.clear()  # memory gone: the pods have no marks here, they accrue from start
        covered = []
        for uid, (record, rate) in self.live.items():
            self.accruals[uid] = accrue(record, rate, now, self.accruals.get(uid))
            covered.append(CoveredPod(record, self.accruals[uid]))
            self.last_seen[uid] = now
        decision = evaluate_budget(BudgetInput("ns", "b", 1, self.spec, self.status), covered, now)
        self.status = decision.status
        return decision.status.spend or Decimal(0), [c.record_id for c in decision.crossings]

    def expected_spend(self, now: datetime) -> Decimal:
        """Sum over pods covered in this period of spend(last seen) - spend(period start or pod start)."""
        period_start = period_bounds(self.spec.period, now)[0]
        total = Decimal(0)
        for uid, (record, rate) in self.pods.items():
            seen = self.last_seen.get(uid)
            start = record.started or T0
            if seen is None or (period_start is not None and seen < period_start):
                continue
            from_time = max(start, period_start) if period_start is not None else start
            total += cost_between(rate, start, seen) - cost_between(rate, start, from_time)
        return total


operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), rates, st.integers(0, 3 * 24 * 3600)),
        st.tuples(st.just("remove"), st.integers(0, 50), st.just(0)),
        st.tuples(st.just("evaluate"), st.integers(1, 3600) | st.integers(3600, 30 * 3600), st.booleans()),
        st.tuples(st.just("evaluate"), st.integers(1, 3600) | st.integers(3600, 30 * 3600), st.just(False)),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(period=st.sampled_from(list(Period)), ops=operations, limit=st.integers(1, 5000))
def test_budget_spend_is_the_sum_of_its_pods_spend_in_the_period(
    period: Period, ops: list[tuple[str, object, object]], limit: int
) -> None:
    spec = CostBudgetSpec.model_validate(
        {
            "limit": limit,
            "period": period.value,
            "thresholds": [{"percent": 10, "action": "Notify"}, {"percent": 100, "action": "Kill"}],
        }
    )
    history = History(spec)
    now = T0
    fired: set[str] = set()
    previous: tuple[datetime | None, Decimal] | None = None
    for index, (kind, first, second) in enumerate(ops):
        if kind == "add":
            assert isinstance(first, Decimal) and isinstance(second, int)
            record = pod_at(now - timedelta(seconds=second), uid=f"pod-{index}")
            history.live[record.uid] = history.pods[record.uid] = (record, first)
        elif kind == "remove" and history.live:
            assert isinstance(first, int)
            del history.live[sorted(history.live)[first % len(history.live)]]
        elif kind == "evaluate":
            assert isinstance(first, int) and isinstance(second, bool)
            now += timedelta(seconds=first)
            spend, crossed = history.evaluate(now, restart=second)
            assert spend == history.expected_spend(now)
            period_start = period_bounds(period, now)[0]
            if previous is not None and previous[0] == period_start:
                assert spend >= previous[1]
            previous = (period_start, spend)
            key = format_time(period_start) if period_start is not None else "lifetime"
            assert all(record_id.endswith(f"/{key}") for record_id in crossed)
            assert not fired & set(crossed)
            fired |= set(crossed)
            reached = {t.percent for t in spec.thresholds if spend * 100 >= t.percent * limit}
            recorded = {r.id for r in history.status.actions}
            assert {f"threshold/{p}/{key}" for p in reached} <= recorded


problems = st.lists(
    st.text(min_size=1, max_size=40).map(lambda text: f"spec.limit: {text}"), min_size=1, max_size=4
)


@given(
    problems=problems, phase=st.sampled_from([None, "Ok", "Invalid", "Exceeded"]), spend=st.integers(0, 10**6)
)
def test_invalid_budget_never_yields_crossings(problems: list[str], phase: str | None, spend: int) -> None:
    status = CostBudgetStatus.model_validate(
        {
            "phase": phase,
            "spend": spend,
            "actions": [
                ActionRecord(id="threshold/50/lifetime", time="t", trigger="t", action="Kill").model_dump()
            ],
        }
    )
    decision = invalid_decision(BudgetInput("ns", "b", 1, None, status), problems, T0)
    assert decision.crossings == ()
    assert decision.status.phase == "Invalid"
    assert decision.status.actions == status.actions
    assert decision.status.ledger == status.ledger
