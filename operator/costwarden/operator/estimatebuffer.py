"""The operator's estimates per billed resource and hour, gathered by the passes until the
billing feed writes them to the store (only the event loop touches a buffer).

Two kinds (costwarden.billing.estimates has the tables):

* node-hours, from the accrual pass: each node's price over the time since it was last seen,
  as charged and at list price (``NodePrice.factor`` undone), spread over the UTC hours;
* budget-hours, from the evaluations: what the budget's covered pods accrued since their figures
  in the ledger last noted, on the resource their node is. A budget is noted once a minute
  (``NOTE_EVERY``), at a second of the minute of its own (a hash of its name, so that each pass
  notes about as many budgets as the next, not all of them in one pass of six), and at its first
  pass of each UTC hour, not on every pass: spend is
  cumulative, so the increments of one note add up to those of the passes it stands for. The
  first pass of an hour notes up to the previous pass first, so only its own interval is split
  over the two hours, as before. Passes in between only look whether a pod left the ledger
  (deleted, or no longer covered: its entry is closed and gone from the next ledger), which
  notes the budget at once, up to that pod's last figure; a budget's ledger replaced (the budget
  created again) or a budget gone (``retain``) first has what it had not noted yet noted, and so
  does every budget when the store is closed (``note_pending``). What a budget accrued since its
  last note (under a minute) is not noted when this replica stops leading (``clear``, before the
  store is closed): the new leader notes from the ledger it reads from the budget's status.

A node seen for the first time is only noted, not charged: the operator does not know what it
did before. After a restart the store's marks say until when each node was recorded, and the
hours in between are charged (the node was running then, as it is now).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zlib import crc32

from costwarden.billing.estimates import BudgetHour, NodeHour
from costwarden.billing.resources import node_keys
from costwarden.engine.ledger import CoveredPod
from costwarden.engine.money import MONEY_CONTEXT, cost_between
from costwarden.engine.reconcile import split_hours
from costwarden.models import BudgetLedger, PodLedgerEntry
from costwarden.pricing import NodePrice
from costwarden.records import NodeRecord, parse_time

_HOUR = timedelta(hours=1)
NOTE_EVERY = timedelta(minutes=1)  # a budget's notes: once in each (and each hour's first pass)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_ZERO = Decimal(0)
_MEMO_LIMIT = 65536  # node keys and figure times kept (a pass has a handful of times)


@dataclass(frozen=True, slots=True)
class Drained:
    nodes: list[NodeHour]
    budgets: list[BudgetHour]
    aliases: dict[str, str]
    marks: dict[str, datetime]

    def __bool__(self) -> bool:
        return bool(self.nodes or self.budgets or self.aliases or self.marks)


@dataclass
class _NodeHourSum:
    cloud: str
    instance_type: str
    capacity_type: str
    estimated: Decimal = _ZERO
    listed: Decimal = _ZERO
    seconds: float = 0.0


@dataclass(slots=True)
class _Noted:
    """Where a budget's notes stand: the ledger (its pods) last noted, when the next note is due,
    and the ledger and covered pods of its latest pass (what a note then starts from)."""

    base: Mapping[str, PodLedgerEntry]  # the ledger's pods at the last note
    hour: datetime  # the UTC hour of the last note
    due: datetime  # the budget's next second of its note_every slots, or the next hour if sooner
    last: Mapping[str, PodLedgerEntry]  # the ledger's pods after the latest pass
    covered: Sequence[CoveredPod]  # the pods the latest pass covered
    at: datetime  # the latest pass


@dataclass
class EstimateBuffer:
    seen: dict[str, datetime] = field(default_factory=dict)  # node name -> recorded until
    _nodes: dict[tuple[str, datetime], _NodeHourSum] = field(default_factory=dict)
    _budgets: dict[tuple[str, str, datetime], Decimal] = field(default_factory=dict)
    _aliases: dict[str, str] = field(default_factory=dict)
    _keys: dict[NodeRecord, tuple[str, ...]] = field(default_factory=dict)
    # what the passes share: each node's keys by name, for the very record they were worked out
    # from (a record's hash is its every field: too slow to look up once per pod and pass), and
    # figure times (text -> time, the start of its UTC hour)
    _resources: dict[str, tuple[NodeRecord, tuple[str, ...]]] = field(default_factory=dict)
    _times: dict[str, tuple[datetime | None, datetime | None]] = field(default_factory=dict)
    _noted: dict[str, _Noted] = field(default_factory=dict)  # by budget
    note_every: timedelta = NOTE_EVERY  # a budget's notes: once in each (0: every pass)

    def resume_from(self, marks: Mapping[str, datetime]) -> None:
        """Continue each node from its stored mark (unless this buffer saw it later)."""
        for node, until in marks.items():
            if node not in self.seen or self.seen[node] < until:
                self.seen[node] = until

    def keys(self, node: NodeRecord) -> tuple[str, ...]:
        found = self._keys.get(node)
        if found is None:
            if len(self._keys) > 65536:
                self._keys.clear()
            found = self._keys[node] = node_keys(node)
        return found

    def _keys_by_name(self, name: str, node: NodeRecord) -> tuple[str, ...]:
        known = self._resources.get(name)
        if known is None or known[0] is not node:
            if len(self._resources) > _MEMO_LIMIT:
                self._resources.clear()
            known = self._resources[name] = (node, self.keys(node))
        return known[1]

    def note_nodes(
        self, prices: Mapping[str, NodePrice], nodes: Mapping[str, NodeRecord], now: datetime
    ) -> None:
        """Charge every priced node from when it was last seen until ``now``."""
        for name in [n for n in self.seen if n not in nodes]:
            del self.seen[name]
        for name, node in nodes.items():
            price = prices.get(name)
            keys = self._keys_by_name(name, node)
            if price is None or not keys:
                continue
            start = self.seen.get(name)
            self.seen[name] = now if start is None or now > start else start
            if start is None or now <= start:
                continue
            for alias in keys[1:]:
                self._aliases[alias] = keys[0]
            self._charge(keys[0], price, start, now)

    def _charge(self, resource: str, price: NodePrice, start: datetime, end: datetime) -> None:
        facts = price.facts
        list_rate = MONEY_CONTEXT.divide(price.hourly, price.factor) if price.factor != 1 else price.hourly
        hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        while hour < end:
            lower, upper = max(hour, start), min(hour + _HOUR, end)
            key = (resource, hour)
            total = self._nodes.get(key)
            if total is None:
                total = self._nodes[key] = _NodeHourSum(
                    facts.cloud, facts.instance_type or "", facts.capacity_type
                )
            total.estimated += cost_between(price.hourly, lower, upper)
            total.listed += cost_between(list_rate, lower, upper)
            total.seconds += (upper - lower).total_seconds()
            hour += _HOUR

    def note_budget(
        self,
        budget: str,
        covered: Sequence[CoveredPod],
        ledgers: tuple[BudgetLedger, BudgetLedger],
        nodes: Mapping[str, NodeRecord],
        now: datetime,
    ) -> None:
        """One evaluation of ``budget`` (``ledgers``: its ledger before and after it): what its
        covered pods accrued since the ledger last noted, when a note is due.

        Runs in every evaluation, for every budget, so a pass that notes nothing costs a few
        comparisons: a note is due at the budget's next instant after the last one (``_next_note``:
        one in each ``note_every``, at its own offset), or at the first pass of
        another UTC hour; a pod gone from the ledger (no longer covered) makes one due at once,
        so that its last figure is noted. Such a note takes two steps: up to ``before`` (the
        latest pass), then this pass. The budget's first pass here notes from ``before``.
        A note takes only the deltas (each pod's figure against the noted one), an increment
        within one hour (nearly all of them) is added as it is, and what the budgets share is
        worked out once: a node's resource key and each figure time's parse and UTC hour."""
        before, after = ledgers[0].pods, ledgers[1].pods
        state = self._noted.get(budget)
        if state is not None and state.last is before:
            gone = after is not before and not after.keys() >= before.keys()
            if state.hour <= now < state.due and not gone:
                state.last, state.covered, state.at = after, covered, now
                return
            base, hour = state.base, _hour_of(now)
            if gone or hour != state.hour:
                # first up to the latest pass, as it covered them: the pods gone, up to their last
                # figures; at an hour's first pass, the hour before, so that only this pass's
                # interval is split over the two
                self._note_pods(budget, state.covered, (base, before), nodes, state.at)
                base = before
        else:
            if state is not None:  # another ledger (the budget created again): the old one's first
                self._note_pods(budget, state.covered, (state.base, state.last), nodes, state.at)
            base, hour = before, _hour_of(now)
        self._note_pods(budget, covered, (base, after), nodes, now)
        self._noted[budget] = _Noted(
            after, hour, min(self._next_note(budget, now), hour + _HOUR), after, covered, now
        )

    def _next_note(self, budget: str, now: datetime) -> datetime:
        """The budget's next note after ``now``: its own instant in each ``note_every`` (an
        offset from its name's CRC-32; at most ``note_every`` away, ``now`` when that is 0)."""
        every = int(self.note_every.total_seconds() * 1_000_000)
        if every <= 0:
            return now
        offset = crc32(budget.encode()) % every
        micros = int((now - _EPOCH) / _MICROSECOND)
        return _EPOCH + _MICROSECOND * (micros + every - (micros - offset) % every)

    def retain(self, budgets: Collection[str], nodes: Mapping[str, NodeRecord]) -> int:
        """Forget the budgets not in ``budgets`` (deleted), noting first what they had not noted
        yet; returns how many."""
        gone = [budget for budget in self._noted if budget not in budgets]
        for budget in gone:
            state = self._noted.pop(budget)
            self._note_pods(budget, state.covered, (state.base, state.last), nodes, state.at)
        return len(gone)

    def note_pending(self) -> None:
        """Note what every budget accrued since its last note, on the resources last known for
        its pods' nodes, and forget where the notes stood (the store is flushed and closed next:
        a graceful stop loses nothing)."""
        self.retain((), {})

    def _note_pods(
        self,
        budget: str,
        covered: Sequence[CoveredPod],
        ledgers: tuple[Mapping[str, PodLedgerEntry], Mapping[str, PodLedgerEntry]],
        nodes: Mapping[str, NodeRecord],
        now: datetime,
    ) -> None:
        """What each of ``covered`` accrued from its figure in one ledger's pods to the next's
        (``ledgers``), on its node's resource (the one last known for a node gone since)."""
        before, after = ledgers
        if after is before:  # nothing accrued: every delta would be zero
            return
        resources, times = self._resources, self._times
        if len(times) > _MEMO_LIMIT:
            times.clear()
        totals = self._budgets
        for item in covered:
            pod = item.pod
            name = pod.node_name
            if not name:
                continue
            uid = pod.uid
            entry = after.get(uid)
            if entry is None:
                continue
            known = resources.get(name)
            node = nodes.get(name)
            if known is not None and (node is None or known[0] is node):
                keys = known[1]
            elif node is not None:
                keys = self._keys_by_name(name, node)
            else:  # a node this buffer never knew
                continue
            if not keys:  # a node without a billed resource
                continue
            resource = keys[0]
            previous = before.get(uid)
            if previous is not None:
                spent = entry.spend - previous.spend
                if spent <= _ZERO:
                    continue
                when = times.get(previous.at) or _when(times, previous.at)
                since = when[0]
            else:
                spent = entry.spend - entry.baseline
                if spent <= _ZERO:
                    continue
                since = pod.started or pod.created
            until, hour = times.get(entry.at) or _when(times, entry.at)
            if until is None:
                until, hour = now, _hour_of(now)
            if since is not None and hour is not None and hour <= since <= until:
                key = (budget, resource, hour)
                totals[key] = totals.get(key, _ZERO) + spent
                continue
            for part_hour, amount in split_hours(since or until, until, spent):
                key = (budget, resource, part_hour)
                totals[key] = totals.get(key, _ZERO) + amount

    def drain(self) -> Drained:
        """Everything gathered since the last drain (the marks: every node seen, until when).

        Where each budget's notes stand is kept: what it accrued since its last note is noted
        by its next one."""
        nodes = [
            NodeHour(
                resource, hour, s.cloud, s.instance_type, s.capacity_type, s.estimated, s.listed, s.seconds
            )
            for (resource, hour), s in self._nodes.items()
        ]
        budgets = [BudgetHour(b, r, h, amount) for (b, r, h), amount in self._budgets.items()]
        drained = Drained(nodes, budgets, dict(self._aliases), dict(self.seen))
        self._nodes, self._budgets, self._aliases = {}, {}, {}
        return drained

    def clear(self) -> None:
        """A new leadership term: what this replica gathered before is another term's."""
        self.seen.clear()
        self._nodes.clear()
        self._budgets.clear()
        self._aliases.clear()
        self._resources.clear()
        self._noted.clear()  # the new term notes each budget from the ledger it sees


def _hour_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _when(
    memo: dict[str, tuple[datetime | None, datetime | None]], text: str
) -> tuple[datetime | None, datetime | None]:
    """A figure's time and the start of its UTC hour (None, None: not a time), parsed and kept
    (callers look in ``memo`` first)."""
    at = parse_time(text)
    found = memo[text] = (at, _hour_of(at) if at is not None else None)
    return found
