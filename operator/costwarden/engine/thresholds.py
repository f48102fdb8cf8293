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


def enforced(
    actions: Sequence[ActionRecord], key: str, period_start: datetime | None, percent_used: Decimal
) -> bool:
    """A threshold's destructive action was carried out in this period, and spend still stands at
    or above that threshold. Raising the limit lifts Enforced (and so the admission guard); an
    anomaly's action (an idle pod killed) never makes the whole budget Enforced."""
    for record in actions:
        if record.action not in DESTRUCTIVE_ACTIONS or record.result != "Done":
            continue
        percent = threshold_percent(record.id)
        if percent is not None and percent_used >= percent and in_period(record, key, period_start):
            return True
    return False


def threshold_percent(record_id: str) -> Decimal | None:
    """The percent of a ``threshold/<percent>/<period>`` record id; None for other records."""
    parts = record_id.split("/")
    if len(parts) < 3 or parts[0] != "threshold":
        return None
    try:
        return Decimal(parts[1])
    except ArithmeticError:
        return None


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
