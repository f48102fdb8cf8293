"""A pod's lifetime spend, accrued pass after pass and resumed after a restart.

The operator keeps the last ``PodAccrual`` of every pod in memory and writes it, now and then,
to the pod's own annotations (``costwarden.dev/spend``, ``rate``, ``spend-at``). After a restart
the annotations are the memory: the pod was running at the mark's rate while the operator was
down, so the gap is charged at that rate; the newly priced rate applies from now on.

Charges go through ``money.cost_between``, which telescopes exactly, so accruing in many small
steps, or stopping, writing a mark and resuming, gives the same figure to the last digit as one
long step. ``spend_mark`` renders a mark that keeps that promise even though ``spend-at`` is
written with whole-second precision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from costwarden.engine.money import MONEY_CONTEXT, ZERO, cost_between, plain
from costwarden.models import PodLedgerEntry
from costwarden.records import (
    ANNOTATION_RATE,
    ANNOTATION_SPEND,
    ANNOTATION_SPEND_AT,
    PodRecord,
    PodSpendMark,
    format_time,
)


@dataclass(frozen=True, slots=True)
class PodAccrual:
    """The pod's lifetime spend (USD) up to ``at``, and the rate (USD/hour) it accrues at from then."""

    spend: Decimal
    rate: Decimal
    at: datetime


@dataclass(frozen=True, slots=True)
class CoveredPod:
    """A pod a budget covers, with its accrual of this pass.

    Build one per pod per pass and hand the same object to every budget that covers the pod:
    budgets that agree on the pod's figure then share one ledger entry (``ledger_entries``, a
    memo private to this object) instead of allocating one each.
    """

    pod: PodRecord
    accrual: PodAccrual
    ledger_entries: dict[Decimal, PodLedgerEntry] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )


def accrue(pod: PodRecord, rate: Decimal, now: datetime, previous: PodAccrual | None) -> PodAccrual:
    """The pod's spend at ``now``, continuing from ``previous``, else from its mark, else from its start.

    - ``previous`` (the in-memory figure): its spend plus its rate over ``previous.at → now``.
    - no ``previous`` but a mark in the pod's annotations: the mark's spend plus the mark's rate
      over ``mark.at → now`` (what it was running at while we were not looking).
    - neither: the pod was never seen, so it accrued ``rate`` since it started (or was created).

    A terminal pod stops accruing at its finish time and its returned rate is zero. If the clock
    went backwards (``now`` before the figure's time) nothing accrues and the later time is kept,
    so that interval is never charged twice. The returned spend never decreases.
    """
    end, next_rate = now, rate if rate > ZERO else ZERO
    if pod.is_terminal:
        next_rate = ZERO
        if pod.finished is not None and pod.finished < now:
            end = pod.finished
    if previous is not None:
        spend = MONEY_CONTEXT.add(previous.spend, cost_between(previous.rate, previous.at, end))
        return PodAccrual(spend, next_rate, now if now > previous.at else previous.at)
    mark = pod.spend_mark
    if mark is not None:
        spend = MONEY_CONTEXT.add(mark.spend, cost_between(mark.rate, mark.at, end))
        return PodAccrual(spend=spend, rate=next_rate, at=max(now, mark.at))
    start = pod.started or pod.created
    spend = ZERO if start is None else cost_between(rate, start, end)
    return PodAccrual(spend=spend, rate=next_rate, at=now)


def spend_mark(accrual: PodAccrual) -> PodSpendMark:
    """The mark to write to the pod's annotations for ``accrual``.

    ``spend-at`` carries whole seconds only, so the figure is wound back to the start of its
    second; resuming from the mark then charges that fraction of a second again, exactly once.
    """
    at = accrual.at.replace(microsecond=0)
    rewind = cost_between(accrual.rate, at, accrual.at)
    spend = max(MONEY_CONTEXT.subtract(accrual.spend, rewind), ZERO)
    return PodSpendMark(spend=spend, rate=accrual.rate, at=at)


def mark_annotations(accrual: PodAccrual) -> dict[str, str]:
    """The pod annotations (``costwarden.dev/spend``, ``rate``, ``spend-at``) that record ``accrual``."""
    mark = spend_mark(accrual)
    return {
        ANNOTATION_SPEND: plain(mark.spend),
        ANNOTATION_RATE: plain(mark.rate),
        ANNOTATION_SPEND_AT: format_time(mark.at),
    }
