"""A budget's accounting memory (``status.ledger``) brought up to date for one evaluation.

The ledger holds the start of the period it counts, ``closedSpend`` (spend in this period of
pods that are no longer covered) and, per covered pod uid, the pod's last lifetime figure and its
``baseline``: the pod's lifetime spend when the period began (or when it was first covered), so
that the pod's spend in the period is ``figure - baseline``.

- A pod in the ledger but no longer covered (deleted, vanished while the operator was down, or
  no longer matched) is closed with its last figure: ``closedSpend += figure - baseline``.
- A pod seen for the first time gets baseline 0 when it started inside the period (and always
  for Lifetime budgets); a pod that started earlier gets an estimate of its spend at the period
  start: ``spend - rate * (now - periodStart)`` for a running pod, or an even split of its spend
  over its run for a pod that has already ended.
- On period rollover (the ledger's ``periodStart`` is not the current one) ``closedSpend``
  restarts at 0, pods that vanished meanwhile are dropped (their spend belonged to the old
  period), and each pod's baseline becomes its estimated figure at the boundary, never below
  its last figure from the old period.
- A pod's figure never decreases: it is the larger of the ledger's and this pass's accrual.

All figures are exact decimals (see ``money``); with constant rates these estimates are exact too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Protocol

from costwarden.engine.ledger import CoveredPod, PodAccrual
from costwarden.engine.money import MONEY_CONTEXT, ZERO, cost_between, share_before
from costwarden.engine.outside import CLOSED_FIELDS, CoveredOutside, OutsideGroup
from costwarden.models import BudgetLedger, PodLedgerEntry
from costwarden.records import format_time, parse_time


class Lifetime(Protocol):
    """What the ledger reads of a pod or a VM: when it started and whether (and when) it ended."""

    @property
    def started(self) -> datetime | None: ...

    @property
    def created(self) -> datetime | None: ...

    @property
    def finished(self) -> datetime | None: ...

    @property
    def is_terminal(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class KindFigures:
    live: int  # covered VMs not terminated / jobs not ended
    spend: Decimal  # USD in the current period (open and closed)


@dataclass(frozen=True, slots=True)
class Settlement:
    ledger: BudgetLedger
    spend: Decimal  # USD in the current period
    hourly_rate: Decimal  # USD/hour of the covered pods now
    live_pods: int  # covered pods that have not ended
    live_gpus: int  # of the live pods, VMs and jobs
    outside: Mapping[str, KindFigures] = field(default_factory=dict)  # by kind (VM, SLURM) settled

    def kind(self, prefix: str) -> KindFigures:
        return self.outside.get(prefix) or KindFigures(live=0, spend=ZERO)


def _first_baseline(pod: Lifetime, accrual: PodAccrual, period_start: datetime | None) -> Decimal:
    if period_start is None:
        return ZERO
    start = pod.started or pod.created
    if start is not None and start >= period_start:
        return ZERO
    if pod.is_terminal:
        end = pod.finished or accrual.at
        if start is None:
            return accrual.spend if end <= period_start else ZERO
        return share_before(accrual.spend, start, end, period_start)
    return max(accrual.spend - cost_between(accrual.rate, period_start, accrual.at), ZERO)


def _rolled_baseline(
    pod: Lifetime, accrual: PodAccrual, entry: PodLedgerEntry, figure: Decimal, period_start: datetime | None
) -> Decimal:
    if period_start is None:
        return ZERO
    entry_at = parse_time(entry.at)
    floor = entry.spend if entry_at is not None and entry_at <= period_start else ZERO
    if not pod.is_terminal:
        estimate = figure - cost_between(accrual.rate, period_start, accrual.at)
    elif entry_at is None:
        estimate = figure if (pod.finished or accrual.at) <= period_start else floor
    else:
        end = pod.finished or accrual.at
        estimate = entry.spend + share_before(figure - entry.spend, entry_at, end, period_start)
    return min(max(estimate, floor), figure)


def _is_fresh(ledger: BudgetLedger) -> bool:
    return ledger.period_start is None and not ledger.pods and ledger.closed_spend == 0


@dataclass(slots=True)
class _Part:
    spend: Decimal = ZERO
    rate: Decimal = ZERO
    live: int = 0
    gpus: int = 0


def _settle_outside(
    items: Sequence[CoveredOutside],
    known: Mapping[str, PodLedgerEntry],
    entries: dict[str, PodLedgerEntry],
    period: tuple[datetime | None, bool],
) -> _Part:
    """The VMs' or jobs' entries added to ``entries``; their spend in the period, rate, count
    and GPUs."""
    period_start, rolled = period
    part = _Part()
    for covered in items:
        record, accrual = covered.record, covered.accrual
        uid = record.key
        if uid in entries:
            continue
        previous = known.get(uid)
        if previous is None:
            figure, baseline = accrual.spend, _first_baseline(record, accrual, period_start)
        else:
            figure = max(previous.spend, accrual.spend)
            baseline = (
                _rolled_baseline(record, accrual, previous, figure, period_start)
                if rolled
                else previous.baseline
            )
        if figure > baseline:
            part.spend += figure - baseline
        part.rate += accrual.rate
        if not record.is_terminal:
            part.live += 1
            part.gpus += covered.gpus
        entries[uid] = PodLedgerEntry(spend=figure, at=format_time(accrual.at), baseline=baseline)
    return part


def _carry_unread(
    prefix: str, known: Mapping[str, PodLedgerEntry], entries: dict[str, PodLedgerEntry], rolled: bool
) -> Decimal:
    """Keep the ledger's entries of one kind that are not covered now (their source may be
    unread yet) as they are (on a new period: counted from their figure on); their spend in the
    period."""
    carried = ZERO
    for uid, entry in known.items():
        if not uid.startswith(prefix) or uid in entries:
            continue
        if rolled:
            entries[uid] = PodLedgerEntry(spend=entry.spend, at=entry.at, baseline=entry.spend)
        else:
            entries[uid] = entry
            carried += max(entry.spend - entry.baseline, ZERO)
    return carried


def _closed(
    ledger: BudgetLedger, entries: Mapping[str, PodLedgerEntry], rolled: bool
) -> tuple[Decimal, dict[str, Decimal]]:
    """``closedSpend`` and each kind's part of it, with what the ledger held that this pass
    does not cover closed at its last figure (a new period starts both at 0)."""
    if rolled:
        return ZERO, dict.fromkeys(CLOSED_FIELDS, ZERO)
    closed = ledger.closed_spend
    kinds = {prefix: getattr(ledger, name) for prefix, name in CLOSED_FIELDS.items()}
    for uid, entry in ledger.pods.items():
        if uid not in entries and entry.spend > entry.baseline:
            closed += entry.spend - entry.baseline
            prefix = uid[: uid.find(":") + 1]
            if prefix in kinds:
                kinds[prefix] += entry.spend - entry.baseline
    return closed, kinds


def settle(
    ledger: BudgetLedger, period_start: datetime | None, pods: Sequence[CoveredPod], now: datetime
) -> Settlement:
    """The updated ledger, the budget's spend in the period, its hourly rate and live pods."""
    key = format_time(period_start) if period_start is not None else None
    return settle_at(ledger, (period_start, key), pods, now, format_time(now))


def settle_at(  # noqa: PLR0917 -- the ledger, the period, what it covers and the clock
    ledger: BudgetLedger,
    period: tuple[datetime | None, str | None],
    pods: Sequence[CoveredPod],
    now: datetime,
    now_text: str,
    outside: Sequence[OutsideGroup] = (),
) -> Settlement:
    """``settle`` with the period start and ``now`` already rendered (``format_time``), as the
    caller has them: ``period`` is ``(start, format_time(start))``, ``(None, None)`` for Lifetime.

    Covered VMs and Slurm jobs (``outside``, by kind) are settled exactly as pods, keyed by
    their kind's prefix in the same table; each kind's part of the spend is also returned on its
    own (``outside``), and its closed part kept beside ``closedSpend``. Until every source of a
    kind has been read once (``all_read`` False, just after a start) an entry of that kind not
    covered now is carried over as it is, never closed: it may only be unread yet."""
    period_start, key = period
    rolled = ledger.period_start != key and not _is_fresh(ledger)
    # The model's own validator: the constructor's validation without its per-call overhead
    # (tens of thousands of entries per pass).
    make_entry = PodLedgerEntry.__pydantic_validator__.validate_python
    known = ledger.pods
    entries: dict[str, PodLedgerEntry] = {}
    with localcontext(MONEY_CONTEXT):
        open_spend, rate, live_pods, live_gpus = ZERO, ZERO, 0, 0
        for item in pods:
            pod, accrual = item.pod, item.accrual
            uid = pod.uid
            if uid in entries:
                continue
            previous = known.get(uid)
            if previous is None:
                figure = accrual.spend
                baseline = _first_baseline(pod, accrual, period_start)
            else:
                figure = previous.spend if previous.spend > accrual.spend else accrual.spend
                baseline = (
                    _rolled_baseline(pod, accrual, previous, figure, period_start)
                    if rolled
                    else previous.baseline
                )
            if figure > baseline:
                open_spend += figure - baseline
            rate += accrual.rate
            if not pod.is_terminal:
                live_pods += 1
                live_gpus += pod.gpus
            at = now_text if accrual.at == now else format_time(accrual.at)
            if (
                previous is not None
                and previous.spend == figure
                and previous.at == at
                and previous.baseline == baseline
            ):
                entries[uid] = previous
                continue
            shared = item.ledger_entries.get(baseline)
            if shared is None or shared.spend != figure or shared.at != at:
                shared = make_entry({"spend": figure, "at": at, "baseline": baseline})
                item.ledger_entries[baseline] = shared
            entries[uid] = shared
        parts: dict[str, _Part] = {}
        for group in outside:
            part = _settle_outside(group.view.items, known, entries, (period_start, rolled))
            if not group.view.all_read:
                part.spend += _carry_unread(group.prefix, known, entries, rolled)
            parts[group.prefix] = part
            rate += part.rate
            live_gpus += part.gpus
        closed, closed_kinds = _closed(ledger, entries, rolled)
        spend = closed + open_spend + sum((part.spend for part in parts.values()), ZERO)
    updated = BudgetLedger(
        period_start=key,
        closed_spend=closed,
        pods=entries,
        **{CLOSED_FIELDS[prefix]: amount for prefix, amount in closed_kinds.items()},
    )
    kinds = {
        prefix: KindFigures(live=part.live, spend=closed_kinds.get(prefix, ZERO) + part.spend)
        for prefix, part in parts.items()
    }
    return Settlement(
        ledger=updated,
        spend=spend,
        hourly_rate=rate,
        live_pods=live_pods,
        live_gpus=live_gpus,
        outside=kinds,
    )
