"""The budget-hour notes the evaluation pass takes (EstimateBuffer.note_budget) are the same as
before they were made cheap (issue 12): the same figures to the last digit, across hour
boundaries, a rate change, a pod first seen hours after it started, pods and ledgers that do not
change, a figure that goes down, pods on no node or an unknown one, and a node whose record
changes under the same name.

``_notes_before`` is the note_budget of before, kept here as the reference."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from costwarden.billing.resources import node_keys
from costwarden.engine.ledger import CoveredPod, PodAccrual
from costwarden.engine.money import cost_between
from costwarden.engine.reconcile import split_hours
from costwarden.models import BudgetLedger, PodLedgerEntry
from costwarden.operator.estimatebuffer import EstimateBuffer
from costwarden.records import NodeRecord, PodRecord, format_time, parse_time
from tests import shapes

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
