"""Outcomes are folded into a new status; records are never edited in place."""

from __future__ import annotations

from costwarden.engine.enforcement import ActionPlan, Target
from costwarden.engine.outcomes import (
    MAX_ATTEMPTS,
    MAX_NOTIFY_ATTEMPTS,
    NOTIFICATIONS,
    RESUME_RETRY_NOTE,
    RETRY_WARNING_EVERY,
    ActionOutcome,
    NotificationOutcome,
    ResumeOutcome,
    destructive_result,
    first_outcomes,
    fold,
    held_up_result,
    pending_notifications,
    resumable,
    retry_warning,
)
from costwarden.models import Action, ActionRecord, ActionResult, CostBudgetStatus, NotificationState

NOW = "2026-12-01T00:00:00Z"


def record(action: Action = Action.KILL, **extra: object) -> ActionRecord:
    return ActionRecord(
        id="threshold/100/lifetime", time=NOW, trigger="spend reached 100%", action=action, **extra
    )


def plan(action: Action = Action.KILL, *, skipped: str | None = None, dry_run: bool = False) -> ActionPlan:
    targets = () if skipped else (Target("Pod", "ns", "worker-1"), Target("Pod", "ns", "head"))
    return ActionPlan(
        record_id="threshold/100/lifetime",
        action=action,
        trigger="spend reached 100%",
        targets=targets,
        dry_run=dry_run,
        grace_period_seconds=30,
        skipped=skipped,
        dry_run_reason="spec.enforcement.dryRun" if dry_run else None,
    )


def test_a_destructive_plan_records_targets_and_an_attempt_before_acting():
    status = CostBudgetStatus(actions=[record()])
    [outcome] = first_outcomes([plan()], status.actions, has_channels=True)
    folded = fold(status, [outcome], now_text=NOW, generation=1)
    [after] = folded.actions
    assert after.result is ActionResult.PENDING
    assert after.targets == ("Pod/worker-1", "Pod/head")
    assert after.attempts == 1
    assert after.notification is NotificationState.PENDING
    assert status.actions[0].attempts == 0  # the input is untouched


def test_a_pending_kill_whose_targets_are_gone_after_a_restart_is_done_not_skipped():
    attempted = record(targets=("Pod/worker-1",), attempts=1)
    [outcome] = first_outcomes(
        [plan(skipped="no pod of this budget is running")], [attempted], has_channels=False
    )
    assert outcome.result is ActionResult.DONE
    assert "before a restart" in outcome.message


def test_a_never_attempted_kill_with_nothing_running_is_skipped():
    [outcome] = first_outcomes(
        [plan(skipped="no pod of this budget is running")], [record()], has_channels=False
    )
    assert outcome.result is ActionResult.SKIPPED


def test_dry_run_and_notify_are_final_at_once():
    [dry] = first_outcomes([plan(dry_run=True)], [record()], has_channels=False)
    assert dry.result is ActionResult.DRY_RUN and "would kill Pod/worker-1, Pod/head" in dry.message
    [notify] = first_outcomes([plan(Action.NOTIFY)], [record(Action.NOTIFY)], has_channels=False)
    assert notify.result is ActionResult.DONE


def test_destructive_failures_retry_then_fail():
    early = destructive_result(record(attempts=1), failed=True, summary="Pod/x: HTTP 500")
    assert early.result is ActionResult.PENDING
    last = destructive_result(record(attempts=MAX_ATTEMPTS), failed=True, summary="Pod/x: HTTP 500")
    assert last.result is ActionResult.FAILED
    assert destructive_result(record(attempts=1), failed=False, summary="ok").result is ActionResult.DONE


def test_a_notification_waits_for_its_action_then_is_marked_sent():
    status = CostBudgetStatus(actions=[record(notification=NotificationState.PENDING)])
    assert pending_notifications(status) == []  # the kill is still Pending
    done = fold(
        status, [ActionOutcome(status.actions[0].id, ActionResult.DONE, "killed")], now_text=NOW, generation=1
    )
    assert [r.id for r in pending_notifications(done)] == [done.actions[0].id]
    sent = fold(
        done,
        [NotificationOutcome(done.actions[0].id, NotificationState.SENT, delivered=("webhook",))],
        now_text=NOW,
        generation=1,
    )
    assert sent.actions[0].notification is NotificationState.SENT
    assert sent.actions[0].message == "killed; notified webhook"
    assert next(c for c in sent.conditions if c.type == NOTIFICATIONS).status == "True"
    assert pending_notifications(sent) == []


def test_a_transient_secret_error_stays_pending_until_the_attempts_run_out():
    status = CostBudgetStatus(
        actions=[record(Action.NOTIFY, result=ActionResult.DONE, notification=NotificationState.PENDING)]
    )
    transient = NotificationOutcome(
        status.actions[0].id, NotificationState.PENDING, secret_error="Secret ns/hook: HTTP 500"
    )
    once = fold(status, [transient], now_text=NOW, generation=1)
    assert once.actions[0].notification is NotificationState.PENDING
    assert once.actions[0].result is ActionResult.DONE
    condition = next(c for c in once.conditions if c.type == NOTIFICATIONS)
    assert (condition.status, condition.reason) == ("False", "SecretUnavailable")
    for _ in range(MAX_NOTIFY_ATTEMPTS - 1):
        once = fold(once, [transient], now_text=NOW, generation=1)
    assert once.actions[0].notification is NotificationState.FAILED
    assert once.actions[0].result is ActionResult.FAILED  # a Notify whose message never arrived


def test_resume_marks_the_record_once():
    status = CostBudgetStatus(
        actions=[record(Action.SCALE, result=ActionResult.DONE, targets=("Deployment/web",))]
    )
    assert resumable(status)
    resumed = fold(
        status,
        [ResumeOutcome(status.actions[0].id, "resumed: Deployment/web: 3 replicas", NOW)],
        now_text=NOW,
        generation=1,
    )
    assert resumed.actions[0].resumed_at == NOW
    assert resumable(resumed) == []


def test_a_resume_retried_every_pass_keeps_one_retry_note():
    status = CostBudgetStatus(
        actions=[record(Action.SCALE, result=ActionResult.DONE, targets=("Deployment/web",))]
    )
    scaled = status.actions[0].message
    rid = status.actions[0].id
    for _ in range(3):
        retry = ResumeOutcome(rid, f"{RESUME_RETRY_NOTE}Deployment/web: HTTP 500", None)
        status = fold(status, [retry], now_text=NOW, generation=1)
    assert status.actions[0].message == _joined(scaled, f"{RESUME_RETRY_NOTE}Deployment/web: HTTP 500")
    assert resumable(status)  # not resumed yet
    done = ResumeOutcome(rid, "resumed: Deployment/web: 3 replicas", NOW)
    status = fold(status, [done], now_text=NOW, generation=1)
    assert status.actions[0].message == _joined(scaled, "resumed: Deployment/web: 3 replicas")
    assert resumable(status) == []


def _joined(before: str, note: str) -> str:
    return f"{before}; {note}" if before else note


def test_outcomes_for_records_no_longer_held_are_ignored():
    status = CostBudgetStatus(actions=[record()])
    assert (
        fold(status, [ActionOutcome("gone", ActionResult.DONE, "x")], now_text=NOW, generation=1).actions
        == status.actions
    )


def test_a_held_up_try_stays_pending_however_many_tries_it_took():
    beyond = record(attempts=MAX_ATTEMPTS + 5, targets=("Pod/head",))
    outcome = held_up_result(beyond, "transient", "Pod ns/head: HTTP 503")
    assert (outcome.result, outcome.message) == (
        ActionResult.PENDING,
        "transient, will retry: Pod ns/head: HTTP 503",
    )
    [after] = fold(CostBudgetStatus(actions=[beyond]), [outcome], now_text=NOW, generation=1).actions
    assert (after.result, after.attempts, after.targets) == (
        ActionResult.PENDING,
        MAX_ATTEMPTS + 5,
        ("Pod/head",),
    )


def test_a_held_up_action_is_warned_about_every_so_many_tries():
    def warning(attempts: int) -> str | None:
        held = record(attempts=attempts)
        return retry_warning(held, held_up_result(held, "throttled", "Pod ns/head: retry after 1s"))

    assert [n for n in range(0, 3 * RETRY_WARNING_EVERY + 1) if warning(n)] == [
        RETRY_WARNING_EVERY,
        2 * RETRY_WARNING_EVERY,
        3 * RETRY_WARNING_EVERY,
    ]
    assert warning(RETRY_WARNING_EVERY) == (
        f"Kill threshold/100/lifetime not carried out after {RETRY_WARNING_EVERY} tries; "
        "still retrying on every pass: throttled, will retry: Pod ns/head: retry after 1s"
    )
    done = record(attempts=RETRY_WARNING_EVERY)
    assert retry_warning(done, destructive_result(done, failed=False, summary="deleted")) is None
