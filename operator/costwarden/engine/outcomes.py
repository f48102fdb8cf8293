"""What the shell did about a budget's action records, folded into a new status (pure).

The evaluation pass decides; workers act later, and their outcomes come back as data. Nothing
edits a status or a record in place: ``fold`` returns a new status with the records replaced.

A record's life (``status.actions``):

1. The engine adds it as Pending (a crossing or an anomaly).
2. ``first_outcomes`` says what the pass can settle without the API: a Notify is Done (its Event
   is queued), a skipped or dry-run plan is final, and a destructive plan that will run gets
   its targets and one more attempt recorded, still Pending. Where the budget has channels, the
   record's notification becomes Pending. This status is stored, confirmed, before anything
   is destroyed or sent.
3. The action worker reports the destructive call's result (``ActionOutcome``), the
   notification worker the deliveries (``NotificationOutcome``), ``resume`` a restore.

A Pending destructive record that was attempted (``attempts > 0``) and whose targets are all gone
was carried out before a restart: it is Done, not "Skipped: nothing running".

``attempts`` counts every try. A try that failed for good (refused, invalid) leaves the record
Pending while ``attempts < MAX_ATTEMPTS`` and makes it Failed after (``destructive_result``). A
try that was only held up (throttled, or a transient API error: ``held_up_result``) leaves it
Pending however many tries it took, and every ``RETRY_WARNING_EVERY`` such tries the shell says
so in a Warning Event (``retry_warning``): the action waits on the API server, visibly, and is
carried out once the API server serves it again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from costwarden.engine.conditions import set_condition
from costwarden.engine.enforcement import ActionPlan
from costwarden.engine.thresholds import DESTRUCTIVE_ACTIONS
from costwarden.models import (
    Action,
    ActionRecord,
    ActionResult,
    Condition,
    CostBudgetStatus,
    NotificationState,
)

NOTIFICATIONS = "NotificationsDelivered"
MAX_ATTEMPTS = 3  # tries of one destructive action before it is recorded as Failed
RETRY_WARNING_EVERY = 10  # tries of an action held up (throttled, transient) between two Warnings
MAX_NOTIFY_ATTEMPTS = 5  # passes that may retry a notification whose Secret could not be read
VERBS = {Action.KILL: "kill", Action.SCALE: "scale to 0", Action.SUSPEND: "suspend"}


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """The action itself: ``result`` Pending means "still to do (again)"."""

    record_id: str
    result: ActionResult
    message: str
    targets: tuple[str, ...] | None = None  # None keeps the record's targets
    attempted: bool = False  # counts one more attempt
    notify: bool = False  # the budget has channels: the notification becomes Pending


@dataclass(frozen=True, slots=True)
class NotificationOutcome:
    record_id: str
    state: NotificationState  # Pending: a transient error, to retry on a later pass
    delivered: tuple[str, ...] = ()  # channels that accepted it
    failures: tuple[str, ...] = ()  # "channel: why", credentials scrubbed
    secret_error: str | None = None  # a Secret that could not be read (permanently or not)


@dataclass(frozen=True, slots=True)
class ResumeOutcome:
    record_id: str
    message: str
    resumed_at: str | None  # None: refused (spend still above the threshold that acted)


Outcome = ActionOutcome | NotificationOutcome | ResumeOutcome


def first_outcomes(
    plans: Sequence[ActionPlan], records: Iterable[ActionRecord], *, has_channels: bool
) -> list[ActionOutcome]:
    """What the evaluation pass records for each plan before any worker runs (see module doc)."""
    by_id = {record.id: record for record in records}
    outcomes = []
    for plan in plans:
        record = by_id.get(plan.record_id)
        if record is None:
            continue
        notify = has_channels and record.notification is None
        names = tuple(str(target) for target in plan.targets)
        if plan.skipped and _acted_before_restart(record):
            message = f"its targets are gone: {', '.join(record.targets)} (acted on before a restart)"
            outcomes.append(ActionOutcome(plan.record_id, ActionResult.DONE, message, notify=notify))
        elif plan.skipped:
            outcomes.append(ActionOutcome(plan.record_id, ActionResult.SKIPPED, plan.skipped, notify=notify))
        elif plan.action is Action.NOTIFY:
            message = "Kubernetes Event posted on the budget"
            outcomes.append(ActionOutcome(plan.record_id, ActionResult.DONE, message, notify=notify))
        elif plan.dry_run:
            why = plan.dry_run_reason or "dry run"
            message = f"would {VERBS[plan.action]} {', '.join(names)} ({why})"
            outcomes.append(
                ActionOutcome(plan.record_id, ActionResult.DRY_RUN, message, targets=names, notify=notify)
            )
        else:
            outcomes.append(
                ActionOutcome(
                    plan.record_id,
                    ActionResult.PENDING,
                    f"acting on {', '.join(names)}",
                    targets=(*acted_before(record, names), *names),
                    attempted=True,
                    notify=notify,
                )
            )
    return outcomes


def _acted_before_restart(record: ActionRecord) -> bool:
    return record.action in DESTRUCTIVE_ACTIONS and record.attempts > 0 and bool(record.targets)


def acted_before(record: ActionRecord, names: Sequence[str]) -> tuple[str, ...]:
    """Targets an earlier attempt of ``record`` named that a new plan (``names``) no longer finds:
    acted on by that attempt (before a restart, or before one of its targets failed). They stay in
    the record, so that its targets say what the action did, however many attempts it took."""
    if not _acted_before_restart(record):
        return ()
    planned = set(names)
    return tuple(target for target in record.targets if target not in planned)


def destructive_result(record: ActionRecord, failed: bool, summary: str) -> ActionOutcome:
    """The outcome of one destructive attempt: retried up to ``MAX_ATTEMPTS``, then Failed."""
    if failed and record.attempts < MAX_ATTEMPTS:
        message = f"attempt {record.attempts} failed, will retry: {summary}"
        return ActionOutcome(record.id, ActionResult.PENDING, message)
    return ActionOutcome(record.id, ActionResult.FAILED if failed else ActionResult.DONE, summary)


def held_up_result(record: ActionRecord, reason: str, summary: str) -> ActionOutcome:
    """A try that was only held up (``reason``: "throttled" or "transient"): Pending, tried
    again on the next pass, never Failed for it (its try still shows in ``attempts``)."""
    return ActionOutcome(record.id, ActionResult.PENDING, f"{reason}, will retry: {summary}")


def retry_warning(record: ActionRecord, outcome: ActionOutcome) -> str | None:
    """The Warning Event's message when ``outcome`` holds ``record`` up for another
    ``RETRY_WARNING_EVERY`` tries (10, 20, ...), else None."""
    if outcome.result is not ActionResult.PENDING or record.attempts <= 0:
        return None
    if record.attempts % RETRY_WARNING_EVERY:
        return None
    return (
        f"{record.action.value} {record.id} not carried out after {record.attempts} tries; "
        f"still retrying on every pass: {outcome.message}"
    )


def fold(
    status: CostBudgetStatus, outcomes: Sequence[Outcome], *, now_text: str, generation: int | None
) -> CostBudgetStatus:
    """``status`` with every outcome applied to its record (records no longer held are ignored)."""
    if not outcomes:
        return status
    records = {record.id: record for record in status.actions}
    conditions = status.conditions
    for outcome in outcomes:
        record = records.get(outcome.record_id)
        if record is None:
            continue
        if isinstance(outcome, ActionOutcome):
            records[record.id] = _apply_action(record, outcome)
        elif isinstance(outcome, NotificationOutcome):
            records[record.id] = _apply_notification(record, outcome)
            conditions = _delivery_condition(conditions, outcome, now_text, generation)
        else:
            records[record.id] = _apply_resume(record, outcome)
    actions = [records[record.id] for record in status.actions]
    return status.model_copy(update={"actions": actions, "conditions": conditions})


def _apply_action(record: ActionRecord, outcome: ActionOutcome) -> ActionRecord:
    update: dict[str, object] = {"result": outcome.result, "message": outcome.message}
    if outcome.targets is not None:
        update["targets"] = outcome.targets
    if outcome.attempted:
        update["attempts"] = record.attempts + 1
    if outcome.notify and record.notification is None:
        update["notification"] = NotificationState.PENDING
    return record.model_copy(update=update)


def _apply_notification(record: ActionRecord, outcome: NotificationOutcome) -> ActionRecord:
    attempts = record.notify_attempts + 1
    state = outcome.state
    notes = list(outcome.failures)
    if outcome.secret_error:
        notes.append(outcome.secret_error)
    if state is NotificationState.PENDING and attempts >= MAX_NOTIFY_ATTEMPTS:
        state = NotificationState.FAILED
    update: dict[str, object] = {"notification": state, "notify_attempts": attempts}
    if state is NotificationState.SENT and outcome.delivered:
        update["message"] = _join(record.message, f"notified {', '.join(outcome.delivered)}")
    elif state is NotificationState.FAILED:
        update["message"] = _join(record.message, f"notification failed: {'; '.join(notes)}")
        if record.action is Action.NOTIFY:
            update["result"] = ActionResult.FAILED
    return record.model_copy(update=update)


RESUME_RETRY_NOTE = "resume will retry: "
"""How a resume that the API server could not serve now starts its note: the next try replaces
it rather than adding another (a resume is retried every pass while it lasts)."""


def _apply_resume(record: ActionRecord, outcome: ResumeOutcome) -> ActionRecord:
    before = record.message
    earlier_retry = before.find(RESUME_RETRY_NOTE)
    if earlier_retry >= 0:
        before = before[:earlier_retry].rstrip("; ")
    update: dict[str, object] = {"message": _join(before, outcome.message)}
    if outcome.resumed_at is not None:
        update["resumed_at"] = outcome.resumed_at
    return record.model_copy(update=update)


def _join(before: str, note: str) -> str:
    return f"{before}; {note}" if before else note


def _delivery_condition(
    conditions: Sequence[Condition], outcome: NotificationOutcome, now_text: str, generation: int | None
) -> list[Condition]:
    """``NotificationsDelivered``: False with the reason when a Secret or a receiver failed."""
    if outcome.secret_error:
        state, reason, message = "False", "SecretUnavailable", outcome.secret_error
    elif outcome.failures:
        state, reason, message = "False", "DeliveryFailed", "; ".join(outcome.failures)
    elif outcome.delivered:
        state, reason, message = "True", "Delivered", ", ".join(sorted(set(outcome.delivered)))
    else:
        return list(conditions)
    return set_condition(
        conditions,
        NOTIFICATIONS,
        status=state,
        reason=reason,
        message=message,
        now_text=now_text,
        generation=generation,
    )


def pending_notifications(status: CostBudgetStatus) -> list[ActionRecord]:
    """Records whose action is settled and whose notification is still to be sent, oldest first."""
    return [
        record
        for record in status.actions
        if record.notification == NotificationState.PENDING and record.result != ActionResult.PENDING
    ]


def resumable(status: CostBudgetStatus) -> list[ActionRecord]:
    """Scale and Suspend records carried out and not yet resumed."""
    return [
        record
        for record in status.actions
        if record.action in (Action.SCALE, Action.SUSPEND)
        and record.result == ActionResult.DONE
        and record.resumed_at is None
    ]
