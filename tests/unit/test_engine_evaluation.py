"""evaluate_budget and invalid_decision: spend, ledger, periods, thresholds, phase, conditions, events."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from costwarden.engine.evaluation import (
    BudgetInput,
    EventIntent,
    evaluate_budget,
    invalid_decision,
)
from costwarden.models import (
    Action,
    ActionRecord,
    Condition,
    CostBudgetSpec,
    CostBudgetStatus,
    Phase,
)
from costwarden.records import PodRecord
from tests.unit.budget_harness import Budget

HOUR = timedelta(hours=1)
NOV_3 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


def spec(**raw: Any) -> CostBudgetSpec:
    return CostBudgetSpec.model_validate({"limit": 100, "period": "Monthly", **raw})


def make_pod(name: str, started: datetime, gpus: int = 1, **overrides: Any) -> PodRecord:
    record = PodRecord(
        namespace="research",
        name=name,
        uid=f"uid-{name}",
        node_name="node-a",
        phase="Running",
        gpus=gpus,
        created=started,
        started=started,
    )
    return replace(record, **overrides)


def test_first_evaluation_of_a_fresh_budget() -> None:
    budget = Budget(spec(limit=500))
    budget.add(make_pod("head", NOV_3, gpus=8), "40")
    budget.add(replace(make_pod("queued", NOV_3, gpus=8, node_name=None, phase="Pending"), started=None), "0")
    decision = budget.evaluate(NOV_3 + 2 * HOUR)
    status = decision.status
    assert (status.spend, status.hourly_rate, status.percent_used) == (Decimal(80), Decimal(40), Decimal(16))
    assert (status.pods, status.gpus, status.phase) == (2, 16, Phase.OK)
    assert status.exhausts_at == "2026-11-03T22:30:00Z"
    assert status.last_evaluated == "2026-11-03T12:00:00Z"
    assert status.observed_generation == 1
    assert status.ledger.period_start == "2026-11-01T00:00:00Z"
    assert status.ledger.pods["uid-head"].spend == Decimal(80)
    assert status.ledger.pods["uid-head"].baseline == Decimal(0)
    assert [(c.type, c.status, c.reason) for c in status.conditions] == [
        ("Ready", "True", "Evaluated"),
        ("BudgetExceeded", "False", "WithinLimit"),
    ]
    assert decision.crossings == ()
    assert decision.events == ()


def test_pod_that_started_before_the_period_counts_from_the_period_start() -> None:
    budget = Budget(spec(limit=1000))
    budget.add(make_pod("old", datetime(2026, 10, 20, tzinfo=UTC)), "2")
    status = budget.evaluate(datetime(2026, 11, 2, tzinfo=UTC)).status
    assert status.spend == Decimal(48)
    assert status.ledger.pods["uid-old"].baseline == Decimal(2 * 24 * 12)


def test_lifetime_budget_counts_the_whole_lifetime() -> None:
    budget = Budget(spec(period="Lifetime", limit=1000))
    budget.add(make_pod("old", datetime(2026, 10, 20, tzinfo=UTC)), "2")
    status = budget.evaluate(datetime(2026, 11, 2, tzinfo=UTC)).status
    assert status.spend == Decimal(2 * 24 * 13)
    assert status.ledger.period_start is None


def test_vanished_pod_is_closed_with_its_last_figure() -> None:
    budget = Budget(spec(limit=1000))
    budget.add(make_pod("a", NOV_3), "10")
    budget.add(make_pod("b", NOV_3), "1")
    budget.evaluate(NOV_3 + HOUR)
    budget.remove("a")
    status = budget.evaluate(NOV_3 + 3 * HOUR).status
    assert status.ledger.closed_spend == Decimal(10)
    assert set(status.ledger.pods) == {"uid-b"}
    assert status.spend == Decimal(13)
    assert status.hourly_rate == Decimal(1)


def test_terminal_pod_stays_frozen_and_is_not_counted_as_live() -> None:
    budget = Budget(spec(limit=1000))
    budget.add(make_pod("job", NOV_3, gpus=4), "10")
    budget.evaluate(NOV_3 + HOUR)
    budget.add(make_pod("job", NOV_3, gpus=4, phase="Succeeded", finished=NOV_3 + 2 * HOUR), "0")
    status = budget.evaluate(NOV_3 + 5 * HOUR).status
    assert (status.spend, status.pods, status.gpus, status.hourly_rate) == (Decimal(20), 0, 0, Decimal(0))
    assert "uid-job" in status.ledger.pods
    assert status.exhausts_at is None


def test_spend_never_decreases_when_an_accrual_looks_lower() -> None:
    budget = Budget(spec(limit=1000))
    budget.add(make_pod("a", NOV_3), "10")
    budget.evaluate(NOV_3 + 2 * HOUR)
    budget.accruals.clear()  # in-memory figure lost; the pod has no mark yet and now looks younger
    budget.add(make_pod("a", NOV_3 + HOUR), "10")
    status = budget.evaluate(NOV_3 + 2 * HOUR).status
    assert status.spend == Decimal(20)
    assert status.ledger.pods["uid-a"].spend == Decimal(20)


def test_period_rollover_resets_closed_spend_and_moves_baselines() -> None:
    budget = Budget(spec(period="Daily", limit=1000))
    budget.add(make_pod("a", datetime(2026, 11, 3, 20, tzinfo=UTC)), "10")
    budget.add(make_pod("gone", datetime(2026, 11, 3, 20, tzinfo=UTC)), "1")
    budget.add(make_pod("closed", datetime(2026, 11, 3, 20, tzinfo=UTC)), "5")
    budget.evaluate(datetime(2026, 11, 3, 22, tzinfo=UTC))
    budget.remove("closed")
    before = budget.evaluate(datetime(2026, 11, 3, 23, tzinfo=UTC)).status
    assert before.ledger.closed_spend == Decimal(10)
    assert before.spend == Decimal(30 + 3 + 10)
    budget.remove("gone")
    after = budget.evaluate(datetime(2026, 11, 4, 1, 30, tzinfo=UTC)).status
    assert after.ledger.period_start == "2026-11-04T00:00:00Z"
    assert after.ledger.closed_spend == Decimal(0)
    assert set(after.ledger.pods) == {"uid-a"}
    assert after.ledger.pods["uid-a"].baseline == Decimal(40)
    assert after.spend == Decimal(15)


def test_thresholds_fire_once_per_period_and_again_in_the_next() -> None:
    budget = Budget(
        spec(
            period="Daily",
            limit=100,
            thresholds=[{"percent": 50, "action": "Notify"}, {"percent": 100, "action": "Kill"}],
        )
    )
    budget.add(make_pod("a", datetime(2026, 11, 3, 0, tzinfo=UTC)), "10")
    assert budget.evaluate(datetime(2026, 11, 3, 4, tzinfo=UTC)).crossings == ()

    first = budget.evaluate(datetime(2026, 11, 3, 6, tzinfo=UTC))
    assert [(c.percent, c.action, c.record_id) for c in first.crossings] == [
        (Decimal(50), Action.NOTIFY, "threshold/50/2026-11-03T00:00:00Z")
    ]
    record = first.status.actions[-1]
    assert (record.id, record.result, record.time, record.action, record.targets) == (
        "threshold/50/2026-11-03T00:00:00Z",
        "Pending",
        "2026-11-03T06:00:00Z",
        Action.NOTIFY,
        (),
    )
    assert record.trigger == "spend 60.00 reached 50% of 100"
    assert first.status.phase == Phase.WARNING
    assert [(e.reason, e.type) for e in first.events] == [
        ("ThresholdCrossed", "Normal"),
        ("PhaseChanged", "Warning"),
    ]
    assert "research/llama" in first.events[0].message and "50%" in first.events[0].message

    assert budget.evaluate(datetime(2026, 11, 3, 8, tzinfo=UTC)).crossings == ()

    over = budget.evaluate(datetime(2026, 11, 3, 11, tzinfo=UTC))
    assert [c.record_id for c in over.crossings] == ["threshold/100/2026-11-03T00:00:00Z"]
    assert over.status.phase == Phase.EXCEEDED
    assert [(e.reason, e.type) for e in over.events] == [
        ("ThresholdCrossed", "Warning"),
        ("PhaseChanged", "Warning"),
    ]
    assert budget.evaluate(datetime(2026, 11, 3, 23, tzinfo=UTC)).crossings == ()

    next_day = budget.evaluate(datetime(2026, 11, 4, 6, tzinfo=UTC))
    assert [c.record_id for c in next_day.crossings] == ["threshold/50/2026-11-04T00:00:00Z"]
    assert next_day.status.phase == Phase.WARNING
    assert len(next_day.status.actions) == 3


def test_all_thresholds_reached_at_once_fire_together() -> None:
    budget = Budget(
        spec(thresholds=[{"percent": 12.5, "action": "Notify"}, {"percent": 90, "action": "Scale"}])
    )
    budget.add(make_pod("a", NOV_3), "100")
    decision = budget.evaluate(NOV_3 + HOUR)
    assert [c.record_id for c in decision.crossings] == [
        "threshold/12.5/2026-11-01T00:00:00Z",
        "threshold/90/2026-11-01T00:00:00Z",
    ]
    assert [e.type for e in decision.events if e.reason == "ThresholdCrossed"] == ["Normal", "Warning"]


def test_lifetime_threshold_ids() -> None:
    budget = Budget(spec(period="Lifetime", thresholds=[{"percent": 80, "action": "Notify"}]))
    budget.add(make_pod("a", NOV_3), "100")
    assert [c.record_id for c in budget.evaluate(NOV_3 + HOUR).crossings] == ["threshold/80/lifetime"]


@pytest.mark.parametrize(
    ("percent_spent", "thresholds", "phase"),
    [
        pytest.param(79, [], Phase.OK, id="below-default-warning"),
        pytest.param(80, [], Phase.WARNING, id="default-warning-at-80"),
        pytest.param(30, [{"percent": 25, "action": "Notify"}], Phase.WARNING, id="a-threshold-reached"),
        pytest.param(
            90, [{"percent": 95, "action": "Notify"}], Phase.OK, id="thresholds-replace-the-default"
        ),
        pytest.param(100, [], Phase.EXCEEDED, id="exceeded-at-100"),
    ],
)
def test_phase(percent_spent: int, thresholds: list[dict[str, Any]], phase: Phase) -> None:
    budget = Budget(spec(limit=100, thresholds=thresholds))
    budget.add(make_pod("a", NOV_3), str(percent_spent))
    assert budget.evaluate(NOV_3 + HOUR).status.phase == phase


def done(action: Action, record_id: str, time: str) -> ActionRecord:
    return ActionRecord(id=record_id, time=time, trigger="t", action=action, result="Done")


@pytest.mark.parametrize(
    ("record", "phase"),
    [
        pytest.param(
            done(Action.KILL, "threshold/100/2026-11-01T00:00:00Z", "2026-11-03T10:30:00Z"),
            Phase.ENFORCED,
            id="kill-done-this-period",
        ),
        pytest.param(
            done(Action.KILL, "threshold/100/2026-10-01T00:00:00Z", "2026-10-20T00:00:00Z"),
            Phase.EXCEEDED,
            id="kill-done-last-period",
        ),
        pytest.param(
            done(Action.NOTIFY, "threshold/100/2026-11-01T00:00:00Z", "2026-11-03T10:30:00Z"),
            Phase.EXCEEDED,
            id="notify-is-not-enforcement",
        ),
        pytest.param(
            ActionRecord(
                id="idle/x", time="2026-11-03T10:30:00Z", trigger="t", action=Action.SUSPEND, result="Failed"
            ),
            Phase.EXCEEDED,
            id="failed-is-not-enforcement",
        ),
        pytest.param(
            done(Action.SUSPEND, "anomaly/idleGpu/uid-a", "2026-11-02T00:00:00Z"),
            Phase.EXCEEDED,
            id="an-anomaly-action-is-not-budget-enforcement",
        ),
        pytest.param(
            done(Action.KILL, "threshold/200/2026-11-01T00:00:00Z", "2026-11-03T10:30:00Z"),
            Phase.EXCEEDED,
            id="limit-raised-above-the-kill-threshold-lifts-enforced",
        ),
    ],
)
def test_enforced_takes_precedence(record: ActionRecord, phase: Phase) -> None:
    budget = Budget(spec(limit=100), status=CostBudgetStatus(actions=[record]))
    budget.add(make_pod("a", NOV_3), "150")
    assert budget.evaluate(NOV_3 + HOUR).status.phase == phase


def test_conditions_keep_their_transition_time_until_their_status_changes() -> None:
    budget = Budget(spec(limit=100))
    budget.add(make_pod("a", NOV_3), "30")
    first = budget.evaluate(NOV_3 + HOUR).status
    ready_since = first.conditions[0].last_transition_time
    budget.evaluate(NOV_3 + 2 * HOUR)
    third = budget.evaluate(NOV_3 + 4 * HOUR).status
    ready, exceeded = third.conditions
    assert ready.last_transition_time == ready_since == "2026-11-03T11:00:00Z"
    assert (exceeded.status, exceeded.reason, exceeded.last_transition_time) == (
        "True",
        "LimitReached",
        "2026-11-03T14:00:00Z",
    )


def test_other_conditions_are_left_alone() -> None:
    mine = Condition(
        type="Enforcing", status="True", reason="Kill", last_transition_time="2026-11-01T00:00:00Z"
    )
    budget = Budget(spec(), status=CostBudgetStatus(conditions=[mine]))
    conditions = budget.evaluate(NOV_3).status.conditions
    assert [c.type for c in conditions] == ["Enforcing", "Ready", "BudgetExceeded"]
    assert conditions[0] == mine


def test_actions_are_bounded_but_this_periods_records_stay() -> None:
    old = [
        ActionRecord(
            id=f"threshold/{i}/2026-10-01T00:00:00Z",
            time="2026-10-02T00:00:00Z",
            trigger="t",
            action="Notify",
        )
        for i in range(1, 60)
    ]
    current = ActionRecord(
        id="threshold/1/2026-11-01T00:00:00Z", time="2026-11-01T01:00:00Z", trigger="t", action="Notify"
    )
    budget = Budget(
        spec(thresholds=[{"percent": 1, "action": "Notify"}, {"percent": 2, "action": "Notify"}]),
        status=CostBudgetStatus(actions=[current, *old]),
    )
    budget.add(make_pod("a", NOV_3), "50")
    decision = budget.evaluate(NOV_3 + HOUR)
    ids = [record.id for record in decision.status.actions]
    assert len(ids) == 50
    assert ids[0] == current.id
    assert ids[-1] == "threshold/2/2026-11-01T00:00:00Z"
    assert ids[1:-1] == [record.id for record in old[-48:]]
    assert [c.record_id for c in decision.crossings] == ["threshold/2/2026-11-01T00:00:00Z"]


def test_restart_through_the_stored_status_loses_nothing() -> None:
    continuous, restarted = Budget(spec(limit=1000)), Budget(spec(limit=1000))
    for budget in (continuous, restarted):
        budget.add(make_pod("a", NOV_3), "3.7")
        budget.add(make_pod("b", NOV_3), "0.031611")
    for hours in (1, 2, 3):
        continuous.evaluate(NOV_3 + hours * HOUR)
        restarted.evaluate(NOV_3 + hours * HOUR, restart=True)
        if hours == 2:
            continuous.remove("a")
            restarted.remove("a")
    assert restarted.status.spend == continuous.status.spend
    assert restarted.status.ledger == continuous.status.ledger


def test_evaluation_after_invalid_reports_readiness_again() -> None:
    budget = Budget(spec())
    invalid = invalid_decision(
        BudgetInput("research", "llama", 1, None, budget.status), ["spec.limit: bad"], NOV_3
    )
    budget.status = invalid.status
    budget.generation = 2
    decision = budget.evaluate(NOV_3 + HOUR)
    ready = decision.status.conditions[0]
    assert (ready.status, ready.reason, ready.last_transition_time, ready.observed_generation) == (
        "True",
        "Evaluated",
        "2026-11-03T11:00:00Z",
        2,
    )
    assert decision.events == (
        EventIntent(
            reason="PhaseChanged",
            message="CostBudget research/llama phase changed from Invalid to Ok",
            type="Normal",
        ),
    )


def test_invalid_decision() -> None:
    status = CostBudgetStatus.model_validate(
        {
            "phase": "Warning",
            "spend": 12,
            "actions": [{"id": "threshold/50/lifetime", "time": "t", "trigger": "t", "action": "Notify"}],
            "ledger": {"closedSpend": "12", "pods": {"u": {"spend": "1", "at": "2026-11-03T10:00:00Z"}}},
        }
    )
    problems = ["spec.limit: Input should be greater than 0", "spec.period: Input should be 'Lifetime'"]
    first = invalid_decision(BudgetInput("research", "llama", 3, None, status), problems, NOV_3)
    assert first.status.phase == Phase.INVALID
    assert first.crossings == ()
    ready = first.status.conditions[0]
    assert (ready.type, ready.status, ready.reason, ready.observed_generation) == (
        "Ready",
        "False",
        "InvalidSpec",
        3,
    )
    assert ready.message == "; ".join(problems)
    assert first.status.ledger == status.ledger
    assert first.status.actions == status.actions
    assert first.status.observed_generation == 3
    assert [(e.reason, e.type) for e in first.events] == [("InvalidSpec", "Warning")]
    assert "spec.limit" in first.events[0].message

    again = invalid_decision(BudgetInput("research", "llama", 3, None, first.status), problems, NOV_3 + HOUR)
    assert again.events == ()
    assert again.status.conditions[0].last_transition_time == "2026-11-03T10:00:00Z"
    changed = invalid_decision(
        BudgetInput("research", "llama", 4, None, again.status), problems[:1], NOV_3 + HOUR
    )
    assert [e.reason for e in changed.events] == ["InvalidSpec"]


def test_evaluate_needs_a_spec() -> None:
    with pytest.raises(ValueError, match="invalid_decision"):
        evaluate_budget(BudgetInput("research", "llama", 1, None, CostBudgetStatus()), [], NOV_3)


def test_idle_cost_is_reported() -> None:
    status = evaluate_budget(
        BudgetInput("research", "llama", 1, spec(), CostBudgetStatus()), [], NOV_3, idle_hourly=Decimal("3.5")
    ).status
    assert status.idle_node_hourly_cost == Decimal("3.5")
    assert status.to_k8s()["idleNodeHourlyCost"] == 3.5
