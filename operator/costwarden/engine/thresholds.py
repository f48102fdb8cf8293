"""Thresholds and the action records that remember them (``status.actions``).

Each threshold fires once per period. Its record id, ``threshold/<percent>/<period start>`` (or
``…/lifetime``), is the exactly-once memory: a threshold whose id is already in
``status.actions`` is not crossed again, and a new period means new ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from costwarden.engine.money import plain
from costwarden.models import Action, ActionRecord, Threshold
from costwarden.records import parse_time

DESTRUCTIVE_ACTIONS = frozenset({Action.SCALE, Action.SUSPEND, Action.KILL})
MAX_ACTION_RECORDS = 50
LIFETIME_KEY = "lifetime"


def threshold_id(percent: Decimal, key: str) -> str:
    return f"threshold/{plain(percent)}/{key}"


def new_crossings(
    thresholds: Sequence[Threshold], percent_used: Decimal, key: str, actions: Sequence[ActionRecord]
) -> list[tuple[Threshold, str]]:
    """Thresholds reached by ``percent_used`` that have not fired in this period, with their ids."""
    reached = [threshold for threshold in thresholds if percent_used >= threshold.percent]
    if not reached:
        return []
    fired = {record.id for record in actions}
    ids = [(threshold, threshold_id(threshold.percent, key)) for threshold in reached]
    return [(threshold, record_id) for threshold, record_id in ids if record_id not in fired]


def _started_in(record: ActionRecord, period_start: datetime) -> bool:
    moment = parse_time(record.time)
    return moment is not None and moment >= period_start


def in_period(record: ActionRecord, key: str, period_start: datetime | None) -> bool:
    """Whether a record belongs to the current period (every record does, for Lifetime budgets)."""
    if period_start is None or record.id.endswith(f"/{key}"):
        return True
    return _started_in(record, period_start)


def enforced(actions: Sequence[ActionRecord], key: str, period_start: datetime | None) -> bool:
    """A destructive action was carried out in this period."""
    return any(
        record.action in DESTRUCTIVE_ACTIONS
        and record.result == "Done"
        and in_period(record, key, period_start)
        for record in actions
    )


def bound_actions(
    actions: list[ActionRecord], key: str, period_start: datetime | None, limit: int = MAX_ACTION_RECORDS
) -> list[ActionRecord]:
    """The newest ``limit`` records, never dropping one of the current period (they are the
    exactly-once memory: dropping one would let its threshold fire again)."""
    if len(actions) <= limit:
        return actions

    def protected(record: ActionRecord) -> bool:
        if record.id.endswith(f"/{key}"):
            return True
        return period_start is not None and _started_in(record, period_start)

    keep = [protected(record) for record in actions]
    room = limit - sum(keep)
    for index in range(len(actions) - 1, -1, -1):
        if room <= 0:
            break
        if not keep[index]:
            keep[index] = True
            room -= 1
    return [record for record, kept in zip(actions, keep, strict=True) if kept]
