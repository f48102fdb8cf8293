"""The budget-hour notes the evaluation pass takes (EstimateBuffer.note_budget) are the same as
before they were made cheap (issue 12): the same figures to the last digit, across hour
boundaries, a rate change, a pod first seen hours after it started, pods and ledgers that do not
change, a figure that goes down, pods on no node or an unknown one, and a node whose record
changes under the same name.

Taken at most once a minute per budget (and at each hour's first pass) instead of every pass,
with passes every 10 s, they add up to the same: the same (budget, resource, hour) figures at
constant rates; per budget the same totals, with a rate change too; pods that leave between two
notes noted up to their last figure; budgets gone forgotten; a new leadership term noting from
the ledger it sees; a pass that notes nothing walking no pod.

``_notes_before`` is the note_budget of before, kept here as the reference."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

from costwarden.billing.resources import node_keys
from costwarden.engine.ledger import CoveredPod, PodAccrual
from costwarden.engine.money import cost_between
from costwarden.engine.reconcile import split_hours
from costwarden.models import BudgetLedger, PodLedgerEntry
from costwarden.operator.estimatebuffer import EstimateBuffer
from costwarden.records import NodeRecord, PodRecord, format_time, parse_time
from tests import shapes
from tests.unit.test_operator_passes import EmptyView
from tests.unit.test_runtime import runtime as make_runtime

D = Decimal
T0 = datetime(2026, 11, 20, 9, tzinfo=UTC)
Notes = dict[tuple[str, str, datetime], Decimal]


def _notes_before(
    totals: Notes,
    budget: str,
    covered: Sequence[CoveredPod],
    ledgers: tuple[BudgetLedger, BudgetLedger],
    nodes: Mapping[str, NodeRecord],
    now: datetime,
) -> None:
    """note_budget as it was (commit 095e145), one pod and one parse at a time."""
    before, after = ledgers[0].pods, ledgers[1].pods
    for item in covered:
        pod = item.pod
        node = nodes.get(pod.node_name) if pod.node_name else None
        keys = node_keys(node) if node is not None else ()
        entry = after.get(pod.uid)
        if not keys or entry is None:
            continue
        previous = before.get(pod.uid)
        if previous is not None:
            spent, since = entry.spend - previous.spend, parse_time(previous.at)
        else:
            spent, since = entry.spend - entry.baseline, pod.started or pod.created
        if spent <= 0:
            continue
        until = parse_time(entry.at) or now
        hour = until.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        if since is not None and hour <= since <= until:
            key = (budget, keys[0], hour)
            totals[key] = totals.get(key, D(0)) + spent
            continue
        for hour, amount in split_hours(since or until, until, spent):
            key = (budget, keys[0], hour)
            totals[key] = totals.get(key, D(0)) + amount


def _node(name: str, instance: str) -> NodeRecord:
    body = shapes.eks_p5_node(name)
    body["spec"]["providerID"] = f"aws:///us-east-1a/{instance}"
    return NodeRecord.from_body(body)


def _pod(name: str, node: str, started: datetime) -> PodRecord:
    return PodRecord("research", name, f"uid-{name}", node_name=node, phase="Running", started=started)


class _Pod:
    """A pod's lifetime spend, charged at its rate piece by piece (rates change at given times)."""

    def __init__(self, record: PodRecord, rates: list[tuple[datetime, Decimal]]) -> None:
        self.record, self.rates = record, rates

    def spend(self, at: datetime) -> Decimal:
        total = D(0)
        for index, (start, rate) in enumerate(self.rates):
            end = self.rates[index + 1][0] if index + 1 < len(self.rates) else at
            total += cost_between(rate, start, min(end, at))
        return total


def _ledger(pods: Sequence[_Pod], at: datetime, lower: str = "") -> BudgetLedger:
    """The pods' entries at ``at``; the pod named ``lower`` $10 below its spend (a figure
    that went down: nothing is noted for it, and the next pass notes the whole rise)."""
    return BudgetLedger(
        pods={
            p.record.uid: PodLedgerEntry(
                spend=p.spend(at) - (10 if p.record.name == lower else 0), at=format_time(at)
            )
            for p in pods
        }
    )


def _covered(pods: Sequence[_Pod], at: datetime) -> list[CoveredPod]:
    return [CoveredPod(p.record, PodAccrual(p.spend(at), p.rates[-1][1], at)) for p in pods]


def _run() -> tuple[Notes, Notes, dict[str, Decimal]]:
    """Passes every 7 minutes from 08:50 to 11:20 (hour boundaries at 09:00, 10:00 and 11:00),
    through both note_budget and the reference: the drained notes of each and each budget's
    total spend over the passes."""
    n1, n2 = _node("n1", "i-0000000000000000a"), _node("n2", "i-0000000000000000b")
    n2_replaced = _node("n2", "i-0000000000000000c")  # same name, another instance
    a = _Pod(  # first seen three hours after it started (no previous entry: split over hours)
        _pod("a", "n1", T0 - timedelta(hours=3)),
        [(T0 - timedelta(hours=3), D("12.5")), (T0 + timedelta(minutes=95), D("31.25"))],  # rate change
    )
    b = _Pod(_pod("b", "n2", T0 - timedelta(minutes=10)), [(T0 - timedelta(minutes=10), D("55.04"))])
    ghost = _Pod(_pod("c", "ghost", T0), [(T0, D("7"))])  # on a node the watches do not know
    unscheduled = _Pod(_pod("d", "", T0), [(T0, D("7"))])
    buffer, reference = EstimateBuffer(), {}
    totals = {"research/x": D(0), "research/y": D(0)}
    previous: dict[str, BudgetLedger] = {"research/x": BudgetLedger(), "research/y": BudgetLedger()}
    at, index = T0 - timedelta(minutes=10), 0
    while at <= T0 + timedelta(hours=2, minutes=20):
        nodes = {"n1": n1, "n2": n2_replaced if at >= T0 + timedelta(minutes=70) else n2}
        x_pods = [a, ghost, unscheduled] + ([] if index % 5 == 3 else [b])  # b leaves now and then
        passes = {"research/x": x_pods, "research/y": [a]}
        for budget, pods in passes.items():
            before = previous[budget]
            # y's ledger stays as it is on every fourth pass (nothing accrued: the same object)
            lower = "b" if index % 6 == 4 else ""
            after = before if budget == "research/y" and index % 4 == 2 else _ledger(pods, at, lower)
            covered = _covered(pods, at)
            buffer.note_budget(budget, covered, (before, after), nodes, at)
            _notes_before(reference, budget, covered, (before, after), nodes, at)
            previous[budget] = after
        totals["research/y"] = a.spend(at)
        at, index = at + timedelta(minutes=7), index + 1
    drained = {(n.budget, n.resource, n.hour): n.estimated for n in buffer.drain().budgets}
    return drained, reference, totals


def test_budget_notes_are_the_same_as_before_across_hours_and_a_rate_change() -> None:
    drained, reference, _ = _run()
    assert drained == reference
    hours = sorted({hour for _, _, hour in drained})
    assert hours[0] == T0 - timedelta(hours=3) and hours[-1] == T0 + timedelta(hours=2)
    # both of n2's resources (its record changed under the same name), never the unknown node
    resources = {resource for budget, resource, _ in drained if budget == "research/x"}
    assert resources == {"aws:i-0000000000000000a", "aws:i-0000000000000000b", "aws:i-0000000000000000c"}


def test_a_budget_covering_one_pod_is_noted_exactly_what_the_pod_spent() -> None:
    """Budget y covers pod a only, on every pass (some passes leave its ledger as it was): its
    notes add up to a's whole spend since it started, to the nanodollar, rate change included."""
    drained, _, totals = _run()
    noted = sum((v for (budget, _, _), v in drained.items() if budget == "research/y"), D(0))
    assert noted == totals["research/y"] > 0
    by_hour = {hour: v for (budget, _, hour), v in drained.items() if budget == "research/y"}
    # a whole hour between passes of the same rate: 12.5 USD an hour, to the nanodollar
    assert by_hour[T0 - timedelta(hours=2)] == D("12.5")


# Notes once a minute (issue 12): passes every 10 s, each budget noted at most once a minute and
# by its first pass of each hour; the same totals as the per-pass reference.

STEP = timedelta(seconds=10)
START = T0 - timedelta(minutes=10) + timedelta(seconds=3)  # 08:50:03: passes straddle the hours
Plan = Callable[[datetime, int], dict[str, list[_Pod]]]


def _add(notes: Notes, buffer: EstimateBuffer) -> None:
    for n in buffer.drain().budgets:
        key = (n.budget, n.resource, n.hour)
        notes[key] = notes.get(key, D(0)) + n.estimated


def _simulate(
    plan: Plan,
    end: datetime,
    nodes_at: Callable[[datetime], Mapping[str, NodeRecord]],
    buffer: EstimateBuffer | None = None,
) -> tuple[Notes, Notes, EstimateBuffer]:
    """Passes every 10 s from ``START`` to ``end``, each budget's ledger holding the pods ``plan``
    covers then (a pod not covered is closed: gone from the ledger, as ``settle`` does), through
    the buffer (drained every minute, as the billing feed does; at the end every budget gone,
    so that what was not noted yet is) and the per-pass reference."""
    buffer = buffer if buffer is not None else EstimateBuffer()
    drained: Notes = {}
    reference: Notes = {}
    previous: dict[str, BudgetLedger] = {}
    at, index = START, 0
    while at <= end:
        nodes = nodes_at(at)
        for budget, pods in plan(at, index).items():
            before = previous.get(budget, BudgetLedger())
            after = _ledger(pods, at)
            covered = _covered(pods, at)
            buffer.note_budget(budget, covered, (before, after), nodes, at)
            _notes_before(reference, budget, covered, (before, after), nodes, at)
            previous[budget] = after
        at, index = at + STEP, index + 1
        if index % 6 == 0:
            _add(drained, buffer)
    buffer.retain((), nodes)  # the budgets gone: what they had not noted yet, noted
    _add(drained, buffer)
    return drained, reference, buffer


def _total(notes: Notes, budget: str) -> Decimal:
    return sum((v for (b, _, _), v in notes.items() if b == budget), D(0))


def _by_hour(notes: Notes, budget: str) -> dict[datetime, Decimal]:
    hours: dict[datetime, Decimal] = {}
    for (b, _, hour), v in notes.items():
        if b == budget:
            hours[hour] = hours.get(hour, D(0)) + v
    return hours


def _two_nodes(_at: datetime) -> Mapping[str, NodeRecord]:
    return NODES


NODES = {"n1": _node("n1", "i-0000000000000000a"), "n2": _node("n2", "i-0000000000000000b")}
END = T0 + timedelta(hours=2, minutes=10)  # 11:10: hour boundaries at 09:00, 10:00 and 11:00
LAST = START + (END - START) // STEP * STEP  # the last pass, 11:09:53


def _counting(buffer: EstimateBuffer) -> list[tuple[str, datetime]]:
    """The (budget, pass time) of every pass that notes, walking pods."""
    calls: list[tuple[str, datetime]] = []
    walked: list[bool] = []
    walk, note = buffer._note_pods, buffer.note_budget

    def walking(budget: str, covered: Sequence[CoveredPod], ledgers: Any, nodes: Any, now: datetime) -> None:
        if covered and ledgers[0] is not ledgers[1]:
            walked.append(True)
        walk(budget, covered, ledgers, nodes, now)

    def noting(budget: str, covered: Sequence[CoveredPod], ledgers: Any, nodes: Any, now: datetime) -> None:
        walked.clear()
        note(budget, covered, ledgers, nodes, now)
        if walked:
            calls.append((budget, now))

    buffer._note_pods = walking  # type: ignore[method-assign]
    buffer.note_budget = noting  # type: ignore[method-assign]
    return calls


def test_notes_once_a_minute_are_the_per_pass_notes_at_constant_rates() -> None:
    """Constant rates: every (budget, resource, hour) the same as noting every pass, to the
    nanodollar, across three hour boundaries; each budget noted at most once a minute plus
    once at each hour's first pass, and its notes add up to what its pods spent."""
    a = _Pod(_pod("a", "n1", T0 - timedelta(hours=2)), [(T0 - timedelta(hours=2), D("12.5"))])
    b = _Pod(_pod("b", "n2", START), [(START, D("55.04"))])
    c = _Pod(_pod("c", "n2", T0), [(T0, D("0.333333333"))])  # first covered at 09:00:03

    def plan(at: datetime, index: int) -> dict[str, list[_Pod]]:
        x = {"research/x": [a, b] + ([c] if at >= T0 else [])} if index >= 2 else {}  # from 08:50:23
        return {**x, "research/y": [a]}

    buffer = EstimateBuffer()
    notes = _counting(buffer)
    drained, reference, _ = _simulate(plan, END, _two_nodes, buffer)
    assert drained == reference
    assert _total(drained, "research/x") == a.spend(LAST) + b.spend(LAST) + c.spend(LAST)
    assert _total(drained, "research/y") == a.spend(LAST)
    # 141 minutes of passes: at most one note a minute (one more per hour boundary, and the first)
    x_notes = [at for budget, at in notes if budget == "research/x"]
    passes = int((END - START) / STEP) + 1
    assert len(x_notes) <= (END - START) / timedelta(minutes=1) + 1 + 1 + 3 < passes / 5
    # each hour's first pass notes (so the span split over two hours is one pass interval)
    firsts = {hour + timedelta(seconds=3) for hour in (T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2))}
    assert firsts <= set(x_notes)
    # the others a minute apart (the budget's own second of each minute), from the second on
    slots = [at for at in x_notes[1:] if at not in firsts]
    assert all(
        later - earlier == timedelta(minutes=1)
        for earlier, later in pairwise(slots)
        if later.hour == earlier.hour
    )


def test_notes_once_a_minute_across_rate_changes_are_the_per_pass_notes() -> None:
    """Rate changes at 09:59:45, between the last note of 09:00 and the first pass of 10:00, and
    at 10:31:07: still every (budget, resource, hour) the same as noting every pass, to the
    nanodollar (the first pass of an hour notes up to the pass before it first, so only its own
    interval is split over the two hours), and the budget's total is what its pods spent."""
    change = T0 + timedelta(minutes=59, seconds=45)
    a = _Pod(_pod("a", "n1", START), [(START, D("12.5")), (change, D("98.3"))])
    b = _Pod(_pod("b", "n2", START), [(START, D("55.04"))])
    mid = T0 + timedelta(hours=1, minutes=31, seconds=7)
    c = _Pod(_pod("c", "n2", START), [(START, D("3")), (mid, D("0.5"))])

    def plan(_at: datetime, _index: int) -> dict[str, list[_Pod]]:
        return {"research/x": [a, b, c]}

    buffer = EstimateBuffer()
    notes = _counting(buffer)
    drained, reference, _ = _simulate(plan, END, _two_nodes, buffer)
    assert drained == reference
    assert _total(drained, "research/x") == a.spend(LAST) + b.spend(LAST) + c.spend(LAST)
    # the change fell between two notes, the second the first pass of 10:00
    ten = T0 + timedelta(hours=1, seconds=3)
    earlier = max(at for _, at in notes if at < ten)
    assert earlier < change < ten and ten in {at for _, at in notes}


def test_a_pod_that_leaves_between_notes_is_noted_to_its_last_figure() -> None:
    """Pods that leave the budget between two notes (deleted, or their labels change: closed,
    gone from the ledger) are noted up to their last figure: one covered at the last note, one
    covered only between two notes, one whose node left the node map with it, and one still
    covered whose node left the map (noted on the node's last known resource)."""
    a = _Pod(_pod("a", "n1", START), [(START, D("12.5"))])
    b = _Pod(_pod("b", "n2", START), [(START, D("55.04"))])  # leaves at 09:20:13
    c = _Pod(_pod("c", "n2", START), [(START, D("7"))])  # covered 09:30:23 to 09:30:43 only
    d = _Pod(_pod("d", "n3", START), [(START, D("9"))])  # leaves at 09:40:23, n3 with it
    e = _Pod(_pod("e", "n4", START), [(START, D("4"))])  # n4 leaves the map at 09:50:03
    n3, n4 = _node("n3", "i-0000000000000000c"), _node("n4", "i-0000000000000000d")
    b_left, d_left = T0 + timedelta(minutes=20, seconds=13), T0 + timedelta(minutes=40, seconds=23)
    c_from, c_until = T0 + timedelta(minutes=30, seconds=23), T0 + timedelta(minutes=30, seconds=43)
    n4_left = T0 + timedelta(minutes=50, seconds=3)

    def plan(at: datetime, _index: int) -> dict[str, list[_Pod]]:
        pods = [a, e] + ([b] if at < b_left else []) + ([d] if at < d_left else [])
        return {"research/x": pods + ([c] if c_from <= at <= c_until else [])}

    def nodes_at(at: datetime) -> Mapping[str, NodeRecord]:
        return {**NODES, **({"n3": n3} if at < d_left else {}), **({"n4": n4} if at < n4_left else {})}

    drained, reference, _ = _simulate(plan, END, nodes_at)
    last = LAST
    b_last, d_last = b_left - STEP, d_left - STEP
    spent = {
        "aws:i-0000000000000000a": a.spend(last),
        "aws:i-0000000000000000b": b.spend(b_last) + c.spend(c_until),
        "aws:i-0000000000000000c": d.spend(d_last),
        "aws:i-0000000000000000d": e.spend(last),
    }
    by_resource: dict[str, Decimal] = {}
    for (_, resource, _), v in drained.items():
        by_resource[resource] = by_resource.get(resource, D(0)) + v
    assert by_resource == spent
    # the per-pass notes lose e's spend after n4 left the map; all else is the same
    lost = e.spend(last) - e.spend(n4_left - STEP)
    assert _total(reference, "research/x") == _total(drained, "research/x") - lost


def test_a_budget_gone_is_noted_and_forgotten() -> None:
    """A budget no longer evaluated (deleted) is forgotten by ``retain``, its last minute noted
    first; the budgets still there are kept, and nothing is noted twice."""
    a = _Pod(_pod("a", "n1", T0), [(T0, D("12.5"))])
    buffer = EstimateBuffer()
    before = {"research/x": BudgetLedger(), "research/y": BudgetLedger()}
    for index in range(5):  # 09:00 to 09:00:40: y noted at 09:00 and at its second of the minute
        at = T0 + index * STEP
        for budget, ledger in list(before.items()):
            after = _ledger([a], at)
            buffer.note_budget(budget, _covered([a], at), (ledger, after), NODES, at)
            before[budget] = after
    assert buffer.retain({"research/y", "research/z"}, NODES) == 1
    assert set(buffer._noted) == {"research/y"}
    assert buffer.retain({"research/y"}, NODES) == 0
    notes: Notes = {}
    _add(notes, buffer)
    at = T0 + 4 * STEP
    assert _total(notes, "research/x") == a.spend(at)  # all of it, the last 40 s included
    # y: noted up to its last note (its first pass, and its second of the minute), the rest not yet
    noted = buffer._noted["research/y"].base
    assert _total(notes, "research/y") == sum((e.spend for e in noted.values()), D(0)) < a.spend(at)


async def test_the_evaluation_pass_forgets_the_budgets_gone(tmp_path: Path) -> None:
    """``evaluate_all`` hands the buffer the budgets there are: one deleted is forgotten, with
    what it had not noted yet noted."""
    from costwarden.operator.loops import evaluate_all

    runtime = make_runtime(tmp_path, billing_store=tmp_path / "b.duckdb", freeze_heap_when_synced=False)
    assert runtime.billing is not None
    buffer = runtime.billing.buffer
    a = _Pod(_pod("a", "n1", T0), [(T0, D("12.5"))])
    first, second = _ledger([a], T0), _ledger([a], T0 + STEP)
    buffer.note_budget("research/gone", _covered([a], T0), (BudgetLedger(), first), NODES, T0)
    buffer.note_budget("research/gone", _covered([a], T0 + STEP), (first, second), NODES, T0 + STEP)
    runtime.start_work()
    try:
        await evaluate_all(runtime, EmptyView())  # type: ignore[arg-type]
    finally:
        await runtime.work.close()
    assert not buffer._noted
    notes: Notes = {}
    _add(notes, buffer)
    assert _total(notes, "research/gone") == a.spend(T0 + STEP)


def test_a_new_leadership_term_notes_from_the_ledger_it_sees() -> None:
    """``clear`` (another replica led meanwhile) forgets where the budgets' notes stood: the new
    term notes from the ledger it is handed, nothing from the old term's ledgers (no double
    counting), and ``drain`` alone keeps where they stand (nothing lost between flushes)."""
    a = _Pod(_pod("a", "n1", T0), [(T0, D("12.5"))])
    buffer = EstimateBuffer()
    before = BudgetLedger()
    for index in range(4):  # noted at 09:00:00; 09:00:10 to 09:00:30 not yet
        at = T0 + index * STEP
        after = _ledger([a], at)
        buffer.note_budget("research/x", _covered([a], at), (before, after), NODES, at)
        before = after
    first: Notes = {}
    _add(first, buffer)
    assert _total(first, "research/x") == a.spend(T0)
    buffer.clear()  # lost the lease; another replica led from 09:00:30 to 09:10
    stored = _ledger([a], T0 + timedelta(minutes=10))  # the status that replica wrote last
    later = T0 + timedelta(minutes=10, seconds=10)
    after = _ledger([a], later)
    buffer.note_budget("research/x", _covered([a], later), (stored, after), NODES, later)
    second: Notes = {}
    _add(second, buffer)
    assert _total(second, "research/x") == a.spend(later) - a.spend(T0 + timedelta(minutes=10))
    # a drain keeps where the notes stand: 09:10:20's spend is noted at 09:11:10, with the rest
    for seconds in (20, 70):
        at = T0 + timedelta(minutes=10, seconds=seconds)
        before, after = after, _ledger([a], at)
        buffer.note_budget("research/x", _covered([a], at), (before, after), NODES, at)
        third: Notes = {}
        _add(third, buffer)
    assert _total(third, "research/x") == a.spend(at) - a.spend(later)


def test_a_budget_created_again_notes_the_old_ledger_then_the_new_one() -> None:
    """A pass handed another ledger than the one the budget's last pass left (the budget
    deleted and created again under its name, between two notes): what the old ledger had not
    noted yet is noted, then the new ledger from its start, as the per-pass notes do."""
    a = _Pod(_pod("a", "n1", T0), [(T0, D("12.5"))])
    buffer, reference = EstimateBuffer(), {}
    before = BudgetLedger()
    for index in range(5):  # noted at 09:00:00; 09:00:10 and :20 not yet; created again at :30
        at = T0 + index * STEP
        if index == 3:
            before = BudgetLedger()
        after = _ledger([a], at)
        covered = _covered([a], at)
        buffer.note_budget("research/x", covered, (before, after), NODES, at)
        _notes_before(reference, "research/x", covered, (before, after), NODES, at)
        before = after
    buffer.retain((), NODES)
    notes: Notes = {}
    _add(notes, buffer)
    assert notes == reference
    assert _total(notes, "research/x") == a.spend(T0 + 2 * STEP) + a.spend(T0 + 4 * STEP)


class _Untouchable(Sequence[CoveredPod]):
    """Covered pods that must not be looked at."""

    def __getitem__(self, index: Any) -> Any:
        raise AssertionError("covered pods walked")

    def __len__(self) -> int:
        raise AssertionError("covered pods counted")

    def __iter__(self) -> Iterator[CoveredPod]:
        raise AssertionError("covered pods walked")


def test_a_pass_that_notes_nothing_walks_no_pod() -> None:
    """A ledger that did not change (the same object), and a changed one within the minute with
    no pod gone, cost a few comparisons: the covered pods are not walked."""
    a = _Pod(_pod("a", "n1", T0), [(T0, D("12.5"))])
    buffer = EstimateBuffer()
    first = _ledger([a], T0)
    buffer.note_budget("research/x", _covered([a], T0), (BudgetLedger(), first), NODES, T0)
    buffer.note_budget("research/x", _Untouchable(), (first, first), NODES, T0 + STEP)
    second = _ledger([a], T0 + 2 * STEP)
    buffer.note_budget("research/x", _Untouchable(), (first, second), NODES, T0 + 2 * STEP)
    buffer.note_budget("research/x", _Untouchable(), (second, second), NODES, T0 + 3 * STEP)
    notes: Notes = {}
    _add(notes, buffer)
    assert _total(notes, "research/x") == a.spend(T0)


async def test_closing_the_store_writes_what_was_not_noted_yet(tmp_path: Path) -> None:
    """The operator stops: the feed notes what each budget accrued since its last note before
    its last flush, so the store has every budget's spend up to its last pass."""
    from costwarden.billing.estimates import dollars
    from costwarden.billing.store import BillingStore
    from costwarden.operator.billingfeed import BillingFeed
    from costwarden.operator.metrics import Metrics
    from costwarden.operator.settings import OperatorSettings

    path = tmp_path / "b.duckdb"
    feed = BillingFeed(OperatorSettings(billing_store=path), [], Metrics(), clock=lambda: T0)
    a = _Pod(_pod("a", "n1", T0), [(T0, D("12.5"))])
    first, second = _ledger([a], T0), _ledger([a], T0 + STEP)
    try:
        assert await feed.step(T0) is not None  # the store open
        feed.buffer.note_budget("research/x", _covered([a], T0), (BudgetLedger(), first), NODES, T0)
        feed.buffer.note_budget("research/x", _covered([a], T0 + STEP), (first, second), NODES, T0 + STEP)
    finally:
        await feed.shutdown()
    assert not feed.buffer._noted
    with BillingStore(path) as store:
        [(total,)] = store.connection.execute("SELECT sum(estimated) FROM budget_hours").fetchall()
    assert dollars(total) == a.spend(T0 + STEP) > a.spend(T0)  # stored in nanodollars


def test_each_pass_notes_about_as_many_budgets_as_the_next() -> None:
    """600 budgets evaluated every 10 s within one hour: after the first pass (each budget's
    first, noted at once), each budget is noted once a minute at its own second, so each pass
    notes about a sixth of them (100), never all at once; and all of them once a minute."""
    a = _Pod(_pod("a", "n1", T0), [(T0, D("12.5"))])
    budgets = [f"team-{i % 37}/budget-{i}" for i in range(600)]
    buffer = EstimateBuffer()
    notes = _counting(buffer)
    ledgers = dict.fromkeys(budgets, BudgetLedger())
    for index in range(1, 25):  # 09:00:10 to 09:04:00
        at = T0 + index * STEP
        after = _ledger([a], at)
        for budget in budgets:
            buffer.note_budget(budget, _covered([a], at), (ledgers[budget], after), NODES, at)
            ledgers[budget] = after
    per_pass = Counter(at for _, at in notes)
    steady = [per_pass[T0 + index * STEP] for index in range(7, 25)]  # from 09:01:10
    assert per_pass[T0 + STEP] == 600
    assert max(steady) < 160 and min(steady) > 50, steady
    minute = [budget for budget, at in notes if T0 + 7 * STEP <= at < T0 + 13 * STEP]
    assert sorted(minute) == sorted(budgets)  # every budget once in a minute
