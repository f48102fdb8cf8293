"""Merging the status another replica stored into this replica's (engine.status_merge): no
action record lost, none carried out twice, a stale record never undoes a newer one."""

from __future__ import annotations

from typing import Any

from costwarden.engine.status_merge import merge_record, merge_status
from costwarden.models import Action, ActionRecord, ActionResult, CostBudgetStatus, NotificationState, Phase
from tests import shapes

KILL = "threshold/100/2026-12-01T00:00:00Z"
NOTIFY = "threshold/80/2026-12-01T00:00:00Z"
IDLE = "anomaly/idleGpu/pod-uid-1"
OLD = "threshold/50/2026-11-01T00:00:00Z"


def record(
    record_id: str,
    result: ActionResult = ActionResult.PENDING,
    *,
    action: Action = Action.KILL,
    **fields: Any,
) -> ActionRecord:
    return shapes.action_record(record_id, action, result, **fields)


def status(*records: ActionRecord, spend: int = 5) -> CostBudgetStatus:
    return CostBudgetStatus(phase=Phase.EXCEEDED, spend=spend, actions=list(records))


def test_the_same_records_merge_to_ours_unchanged() -> None:
    ours = status(record(KILL, attempts=1), spend=9)
    merged = merge_status(ours, status(record(KILL, attempts=1), spend=3), known={KILL})
    assert merged.status is ours and not merged.changed and merged.settled == frozenset()


def test_a_record_only_another_replica_stored_is_taken_in_one_dropped_here_is_not() -> None:
    ours = status(record(KILL, attempts=1))
    theirs = status(record(OLD, ActionResult.DONE), record(KILL, attempts=1), record(IDLE, ActionResult.DONE))
    merged = merge_status(ours, theirs, known={OLD, KILL})  # OLD was known here, and dropped
    assert [r.id for r in merged.status.actions] == [KILL, IDLE]
    assert merged.adopted == (IDLE,) and merged.advanced == ()


def test_a_record_settled_by_another_replica_is_not_carried_out_again() -> None:
    ours = status(record(KILL, attempts=1, targets=("Pod ns/head",)))
    theirs = status(record(KILL, ActionResult.DONE, attempts=1, targets=("Pod ns/head",), message="deleted"))
    merged = merge_status(ours, theirs, known=set())
    (kill,) = merged.status.actions
    assert (kill.result, kill.message) == (ActionResult.DONE, "deleted")
    assert merged.advanced == (KILL,) and merged.settled == {KILL}


def test_a_stale_pending_record_never_undoes_a_settled_one() -> None:
    done = record(KILL, ActionResult.DONE, attempts=1, notification=NotificationState.SENT, notify_attempts=1)
    stale = record(KILL, attempts=2, notification=NotificationState.PENDING)
    merged = merge_status(status(done), status(stale), known={KILL})
    assert merged.status.actions == [done] and not merged.changed


def test_both_pending_the_more_tried_counts_so_the_attempts_cap_holds() -> None:
    ours = record(KILL, attempts=1, targets=("Pod ns/head",))
    theirs = record(KILL, attempts=2, targets=("Pod ns/worker", "Pod ns/head"))
    assert merge_record(ours, theirs) == theirs
    assert merge_record(theirs, ours) == theirs
    merged = merge_status(status(ours), status(theirs), known={KILL})
    assert merged.advanced == (KILL,) and merged.settled == frozenset()  # still to do: jobs may run


def test_a_notification_sent_elsewhere_is_not_sent_again_and_each_part_keeps_its_progress() -> None:
    ours = record(NOTIFY, ActionResult.DONE, action=Action.NOTIFY, notification=NotificationState.PENDING)
    theirs = record(
        NOTIFY,
        ActionResult.PENDING,
        action=Action.NOTIFY,
        notification=NotificationState.SENT,
        notify_attempts=1,
    )
    merged = merge_record(ours, theirs)
    assert merged.result == ActionResult.DONE  # the action part: ours was further along
    assert (merged.notification, merged.notify_attempts) == (NotificationState.SENT, 1)
    assert merge_status(status(ours), status(theirs), known=set()).settled == {NOTIFY}


def test_both_settled_ours_stands_and_a_resume_is_kept_wherever_it_was_recorded() -> None:
    ours = record(KILL, ActionResult.FAILED, attempts=3, notification=NotificationState.SENT)
    theirs = record(
        KILL, ActionResult.DONE, attempts=1, notification=NotificationState.FAILED, notify_attempts=5
    )
    assert merge_record(ours, theirs) == ours
    scaled = record(KILL, ActionResult.DONE, action=Action.SCALE, attempts=1)
    resumed = scaled.model_copy(update={"resumed_at": "2026-12-01T09:00:00Z"})
    assert merge_record(scaled, resumed).resumed_at == "2026-12-01T09:00:00Z"
    assert merge_record(resumed, scaled) == resumed


def test_the_figures_stay_ours() -> None:
    merged = merge_status(status(spend=9), status(record(IDLE, ActionResult.DONE), spend=2), known=set())
    assert merged.status.spend == 9 and [r.id for r in merged.status.actions] == [IDLE]
