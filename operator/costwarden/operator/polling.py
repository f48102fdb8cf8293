"""What the operator knows of workloads outside Kubernetes (cloud VMs, Slurm jobs), per source.

Each source (an AWS region, a GCP project, an Azure subscription, a Slurm cluster) is polled
every ``interval`` seconds; one that fails is polled again after a doubling back-off (capped at
``MAX_BACKOFF_INTERVALS`` intervals, never sooner than the source's Retry-After). What a source
last read completely stays the truth until its next complete read: a failed or partial read
updates what it did read and drops nothing (spend keeps accruing from the last known state), and
makes the source unfit to act on (``fresh``) until it answers completely again.

``Figures`` is the accrual memory: one figure per workload, computed once per pass however many
budgets cover it, resumed after a restart from the first covering budget's ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, Protocol, TypeVar

from costwarden.engine.ledger import PodAccrual
from costwarden.engine.outside import CoveredOutside, Mark, OutsideRecord
from costwarden.models import BudgetLedger
from costwarden.records import parse_time

MAX_BACKOFF_INTERVALS = 10


class Keyed(Protocol):
    @property
    def key(self) -> str: ...


R = TypeVar("R", bound=Keyed)


@dataclass(frozen=True, slots=True)
class PollSettings:
    interval: float = 60.0  # seconds between polls of each source
    stale_after: float = 0.0  # not read completely for this long: stale; 0 means 3 x interval

    @property
    def stale_seconds(self) -> float:
        return self.stale_after or 3 * self.interval


@dataclass
class SourceState(Generic[R]):
    """One source: what it last read, and how its polls have gone."""

    records: dict[str, R] = field(default_factory=dict)  # by key
    complete_at: float | None = None  # monotonic time of the last complete read
    error: str | None = None  # the last read's error, None after a complete one
    failures: int = 0  # reads in a row that were not complete
    next_poll: float = 0.0  # monotonic


class Sources(Generic[R]):
    """The sources of one kind, by name, and what each has read."""

    def __init__(self, names: Iterable[str], settings: PollSettings) -> None:
        self.settings = settings
        self.states: dict[str, SourceState[R]] = {name: SourceState() for name in names}

    def due(self, now: float) -> list[str]:
        return [name for name, state in self.states.items() if state.next_poll <= now]

    def take(
        self, name: str, read: Sequence[R], answer: tuple[bool, str | None, float | None], now: float
    ) -> None:
        """A read of source ``name``: ``answer`` is (complete, error, retry_after)."""
        complete, error, retry_after = answer
        state = self.states[name]
        found = {record.key: record for record in read}
        interval = self.settings.interval
        if complete:
            state.records, state.complete_at, state.error, state.failures = found, now, None, 0
            state.next_poll = now + interval
            return
        state.records.update(found)  # what was read is newer; nothing unread is dropped
        state.error = error or f"{name}: incomplete answer"
        state.failures += 1
        backoff = interval * min(2 ** (state.failures - 1), MAX_BACKOFF_INTERVALS)
        state.next_poll = now + max(backoff, retry_after or 0.0)

    def records(self) -> list[R]:
        return [record for state in self.states.values() for record in state.records.values()]

    def record(self, key: str) -> R | None:
        for state in self.states.values():
            found = state.records.get(key)
            if found is not None:
                return found
        return None

    def held(self, name: str) -> int:
        return len(self.states[name].records)

    def fresh(self, name: str, now: float) -> bool:
        """Whether the source's last read was complete and recent enough to act on."""
        state = self.states.get(name)
        return (
            state is not None
            and state.error is None
            and state.complete_at is not None
            and now - state.complete_at <= self.settings.stale_seconds
        )

    def all_read(self) -> bool:
        """Whether every source has answered completely at least once (since the operator started)."""
        return all(state.complete_at is not None for state in self.states.values())

    def problems(self, now: float) -> tuple[str, ...]:
        """One line per source that is failing or stale."""
        found = []
        for name, state in sorted(self.states.items()):
            if state.error is not None:
                found.append(f"{state.error} ({state.failures} failed polls in a row)")
            elif state.complete_at is None:
                found.append(f"{name}: not read yet")
            elif now - state.complete_at > self.settings.stale_seconds:
                found.append(f"{name}: last read {now - state.complete_at:.0f} s ago")
        return tuple(found)


class _Labelled(Protocol):
    def labels(self, *values: str) -> Any: ...


def publish(
    sources: Sources[Any], polled: Mapping[str, bool], now: float, series: tuple[_Labelled, ...]
) -> None:
    """The metrics of one kind after a poll: ``series`` is (polls counter by name and result,
    records gauge by name, up gauge by name)."""
    polls, held, up = series
    for name, complete in polled.items():
        polls.labels(name, "complete" if complete else "failed").inc()
    for name in sources.states:
        held.labels(name).set(sources.held(name))
        up.labels(name).set(1 if sources.fresh(name, now) else 0)


def waiting_on(stale: Iterable[str], what: str) -> str | None:
    """Why a destructive plan must wait: these sources have no recent complete answer."""
    names = sorted(set(stale))
    if not names:
        return None
    return f"waiting: no recent complete answer from {', '.join(names)}; no {what} is touched on stale data"


Accrue = Callable[[Decimal, PodAccrual | None, Mark | None], PodAccrual]  # rate, figure, mark


class Figures:
    """Each workload's accrual, once per pass, resumed from a budget's ledger after a restart."""

    def __init__(self) -> None:
        self._figures: dict[str, PodAccrual] = {}
        self._pass: dict[str, CoveredOutside] = {}
        self._pass_at: datetime | None = None

    def covered(
        self,
        record: OutsideRecord,
        at: tuple[datetime, BudgetLedger],
        price: Callable[[], tuple[Decimal, int]],
        accrue: Accrue,
    ) -> CoveredOutside:
        """``record``'s figure at ``now`` (``at`` is now and the asking budget's ledger);
        ``price()`` gives its rate and GPUs, ``accrue`` its new accrual from its last figure or,
        the first time, from the ledger's mark."""
        now, ledger = at
        if self._pass_at != now:
            self._pass, self._pass_at = {}, now
        key = record.key
        known = self._pass.get(key)
        if known is not None and known.record == record:
            return known
        rate, gpus = price()
        accrual = accrue(rate, self._figures.get(key), mark_of(ledger, key))
        self._figures[key] = accrual
        covered = CoveredOutside(record, accrual, gpus=gpus)
        self._pass[key] = covered
        return covered

    def retain(self, keys: Iterable[str]) -> None:
        """Forget the figures of workloads no source lists any more (their budgets closed them)."""
        keep = set(keys)
        for key in [key for key in self._figures if key not in keep]:
            del self._figures[key]

    def clear(self) -> None:
        """A new leadership term resumes from the stored ledgers."""
        self._figures.clear()
        self._pass, self._pass_at = {}, None


def mark_of(ledger: BudgetLedger, key: str) -> Mark | None:
    entry = ledger.pods.get(key)
    if entry is None:
        return None
    at = parse_time(entry.at)
    return Mark(entry.spend, at) if at is not None else None
