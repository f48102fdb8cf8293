"""Merging the status another writer stored into the one this replica is about to write (pure).

Status writes carry the budget's ``resourceVersion`` as the writer last knew it, so the API
server refuses one (409) when anything wrote the budget since: a user's spec or annotation
change (the stored status is then the one this replica wrote), or another replica's status write
(an earlier leader's, sent before it was cut off and delivered late; or one this replica's
watch had not shown it yet when it took over). The writer then reads the budget again and
writes ``merge_status(ours, theirs, known)`` instead of its own status as it was.

The action records (``status.actions``) are the exactly-once memory: a record's id is what stops
its threshold or anomaly from firing again, its result what stops its action from being carried
out again, its notification state what stops its message from being sent again. So:

- A record only the stored status holds, which this replica never saw (its id is not in
  ``known``, the ids of the status it last knew stored), is kept: another replica decided it,
  perhaps acted on it; dropping it would let the same crossing fire and act again. One this
  replica knew and no longer holds was dropped on purpose (``bound_actions``) and stays dropped.
- A record both hold keeps, of each part, the version further along: the action part (result,
  message, targets, attempts) of the one that settled it (or, both still Pending, of the one that
  tried more often, so the attempts cap holds); the notification part (state, attempts) of the
  one that settled it (Sent or Failed: a message is not sent again); ``resumedAt`` wherever it is
  set. Where both settled a part, ours stands. A stale record
  (an older leader's Pending) therefore never undoes what this replica recorded, and what another
  replica carried out is never done again.
- Everything else in the status (ledger, figures, phase, conditions) is this replica's: it is the
  one evaluating now.

``settled`` names the records whose action or notification the stored status showed to be
settled where this replica's still had it Pending: a job of this replica that waits to carry
that record out must not run (the shell voids its wait).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from costwarden.models import ActionRecord, ActionResult, CostBudgetStatus, NotificationState

SETTLED_NOTIFICATIONS = frozenset({NotificationState.SENT, NotificationState.FAILED})


@dataclass(frozen=True, slots=True)
class StatusMerge:
    status: CostBudgetStatus  # this replica's status with the stored records merged in
    adopted: tuple[str, ...] = ()  # records only the stored status held, taken in
    advanced: tuple[str, ...] = ()  # records of both whose stored version was further along
    settled: frozenset[str] = frozenset()  # records ours had Pending that the stored one settled

    @property
    def changed(self) -> bool:
        return bool(self.adopted or self.advanced)


def merge_status(ours: CostBudgetStatus, theirs: CostBudgetStatus, known: Collection[str]) -> StatusMerge:
    """``ours`` with the action records of ``theirs`` (the status stored now) merged in;
    ``known`` are the record ids of the status this replica last knew stored."""
    stored = {record.id: record for record in theirs.actions}
    actions: list[ActionRecord] = []
    advanced: list[str] = []
    settled: set[str] = set()
    for record in ours.actions:
        other = stored.get(record.id)
        merged = record if other is None else merge_record(record, other)
        if merged != record:
            advanced.append(record.id)
            if _settles(record, merged):
                settled.add(record.id)
        actions.append(merged)
    held = {record.id for record in ours.actions}
    adopted = [record for record in theirs.actions if record.id not in held and record.id not in known]
    actions.extend(adopted)
    if not adopted and not advanced:
        return StatusMerge(ours)
    return StatusMerge(
        ours.model_copy(update={"actions": actions}),
        tuple(record.id for record in adopted),
        tuple(advanced),
        frozenset(settled),
    )


def merge_record(ours: ActionRecord, theirs: ActionRecord) -> ActionRecord:
    """One record as both replicas know it: each part from the version further along, ties ours."""
    if ours == theirs:
        return ours
    update: dict[str, object] = {}
    if _further(_action_progress(ours), _action_progress(theirs)):
        update.update(
            result=theirs.result, message=theirs.message, targets=theirs.targets, attempts=theirs.attempts
        )
    if _further(_notification_progress(ours), _notification_progress(theirs)):
        update.update(notification=theirs.notification, notify_attempts=theirs.notify_attempts)
    if ours.resumed_at is None and theirs.resumed_at is not None:
        update["resumed_at"] = theirs.resumed_at
    return ours.model_copy(update=update) if update else ours


def _further(ours: tuple[bool, int], theirs: tuple[bool, int]) -> bool:
    """Whether their (settled, attempts) is further along: settled where ours is not, or both
    unsettled and tried more often. Both settled: ours (the replica acting now) stands."""
    (ours_settled, ours_attempts), (theirs_settled, theirs_attempts) = ours, theirs
    if ours_settled:
        return False
    return theirs_settled or theirs_attempts > ours_attempts


def _action_progress(record: ActionRecord) -> tuple[bool, int]:
    return (record.result != ActionResult.PENDING, record.attempts)


def _notification_progress(record: ActionRecord) -> tuple[bool, int]:
    return (record.notification in SETTLED_NOTIFICATIONS, record.notify_attempts)


def _settles(before: ActionRecord, after: ActionRecord) -> bool:
    action = before.result == ActionResult.PENDING and after.result != ActionResult.PENDING
    notification = (
        before.notification == NotificationState.PENDING and after.notification in SETTLED_NOTIFICATIONS
    )
    return action or notification
