"""A Kill interrupted between its targets keeps them all in its record (issue 12, crash runs).

Killed after deleting the worker and before the head, the operator re-plans the Pending Kill on
the pods still there (the head): the record used to end with targets [head] only, so the audit
trail no longer said the worker was killed by it.
"""

from __future__ import annotations

from costwarden.engine.enforcement import ActionPlan, Target
from costwarden.engine.outcomes import acted_before, first_outcomes, fold
from costwarden.models import Action, ActionRecord, ActionResult, CostBudgetStatus

WORKER, HEAD = "Pod/sweep-worker1", "Pod/sweep-head"


def kill(**fields: object) -> ActionRecord:
    base: dict[str, object] = {
        "id": "threshold/100/lifetime",
        "time": "2026-12-07T12:10:00Z",
        "trigger": "spend reached 100%",
        "action": Action.KILL,
        "result": ActionResult.PENDING,
    }
    return ActionRecord.model_validate({**base, **fields})


def plan(*names: str) -> ActionPlan:
    targets = tuple(Target("Pod", "research", name.removeprefix("Pod/")) for name in names)
    return ActionPlan("threshold/100/lifetime", Action.KILL, "spend reached 100%", targets, False, 30, None)


def test_a_replanned_kill_keeps_the_targets_its_first_attempt_acted_on():
    stored = kill(targets=[WORKER, HEAD], attempts=1)  # Pending, stored before the crash
    (outcome,) = first_outcomes([plan(HEAD)], [stored], has_channels=False)
    assert outcome.targets == (WORKER, HEAD)
    status = fold(CostBudgetStatus(actions=[stored]), [outcome], now_text="t", generation=1)
    assert status.actions[0].targets == (WORKER, HEAD)
    assert status.actions[0].attempts == 2
    assert acted_before(status.actions[0], [HEAD]) == (WORKER,)


def test_a_first_attempt_or_an_unchanged_plan_names_no_earlier_target():
    fresh = kill()  # decided this pass: no attempt yet
    (outcome,) = first_outcomes([plan(WORKER, HEAD)], [fresh], has_channels=False)
    assert outcome.targets == (WORKER, HEAD)
    assert acted_before(kill(targets=[WORKER, HEAD], attempts=1), [WORKER, HEAD]) == ()
    assert acted_before(kill(targets=[WORKER, HEAD], attempts=0), [HEAD]) == ()
