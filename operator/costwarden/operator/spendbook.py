"""In-memory spend of every pod, continued from the pods' own annotations after a restart."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from costwarden.engine.ledger import PodAccrual, accrue, spend_mark
from costwarden.engine.rates import PodRate, pod_rate
from costwarden.models import MAX_NODE_PRICES, NodePriceStatus
from costwarden.pricing import NodePrice, PriceBook
from costwarden.records import NodeRecord, PodRecord, PodSpendMark


@dataclass(frozen=True, slots=True)
class WrittenMark:
    """What we last wrote onto a pod (or found there): the throttle compares against it."""

    mark: PodSpendMark
    budgets: str | None


class SpendBook:
    """Per-pod accrual state keyed by uid, and the node prices of the last pass: owned by the
    accrual pass; only the event loop touches it (no locking needed). Forgetting a pod is one
    call (``retain`` for all that are gone)."""

    def __init__(self) -> None:
        self._accruals: dict[str, PodAccrual] = {}
        self._rates: dict[str, PodRate] = {}
        # What each rate was made of (two maps, not a map of pairs: 10,000 fewer objects for the
        # garbage collector to walk).
        self._rated_pod: dict[str, PodRecord] = {}
        self._rated_price: dict[str, NodePrice | None] = {}
        self._written: dict[str, WrittenMark] = {}
        # USD each pod spent while its GPUs read idle, since this replica began leading (metrics
        # only; the budgets' exact, per-period figure is status.wastedSpend)
        self.wasted: dict[str, Decimal] = {}
        # Published: replaced by the next pass, never changed in place (/metrics reads them).
        self.node_prices: Mapping[str, NodePrice] = {}  # by node name, as last priced
        self.idle_costs: Mapping[str, Decimal] = {}  # by node name: node cost no pod uses, USD/h
        self._priced_nodes: Mapping[str, NodeRecord] | None = None  # what node_prices was made of
        self._priced_by: PriceBook | None = None  # and with which book
        self._notes: dict[str, NodePriceStatus] = {}  # status.nodePrices entries, as last priced

    def price_nodes(self, nodes: Mapping[str, NodeRecord], prices: PriceBook) -> Mapping[str, NodePrice]:
        """Price every node (``node_prices``); nothing is priced again while ``nodes`` is the same
        snapshot as last time (the cluster index hands out one per change of any node) and the book is
        the same (a new one comes with new live prices or effective-rate factors)."""
        if nodes is not self._priced_nodes or prices is not self._priced_by:
            self.node_prices = {name: prices.price(node) for name, node in nodes.items()}
            self._notes = {name: note for name, note in self._notes.items() if name in nodes}
            self._priced_nodes, self._priced_by = nodes, prices
        return self.node_prices

    def price_notes(self, names: Iterable[str]) -> tuple[NodePriceStatus, ...]:
        """``status.nodePrices`` for these nodes: the first ``MAX_NODE_PRICES`` by name that are
        priced, each entry made once per price (budgets on one node share it)."""
        notes: list[NodePriceStatus] = []
        for name in sorted(set(names))[:MAX_NODE_PRICES]:
            price = self.node_prices.get(name)
            if price is None:
                continue
            note = self._notes.get(name)
            if note is None or note.hourly_rate != price.hourly or note.source != price.source:
                note = self._notes[name] = NodePriceStatus(
                    name=name, hourly_rate=price.hourly, source=price.source
                )
            notes.append(note)
        return tuple(notes)

    def price_of(self, node: NodeRecord, prices: PriceBook) -> NodePrice:
        """``prices.price(node)``, from ``node_prices`` when the node is the record priced there."""
        priced = self._priced_nodes
        if priced is not None and prices is self._priced_by and priced.get(node.name) is node:
            return self.node_prices[node.name]
        return prices.price(node)

    def figure(self, pod: PodRecord, price: NodePrice | None, now: datetime) -> PodAccrual:
        """The pod's lifetime spend at ``now``; monotonic across calls.

        A pod bound to a node we have not seen yet (the node index is still filling, or the node
        is gone) is held at its last figure: charging it a zero rate would lose that time for good.
        """
        if price is None and pod.node_name:
            return self._held(pod)
        uid = pod.uid
        rate = self._rates.get(uid)
        if rate is None or self._rated_pod.get(uid) is not pod or self._rated_price.get(uid) is not price:
            rate = pod_rate(pod, price)  # a pure function of the two: the same objects, the same rate
        previous = self._accruals.get(uid)
        if previous is not None and now < previous.at:
            return previous
        accrual = accrue(pod, rate.total, now, previous)
        self._accruals[uid] = accrual
        self._rates[uid] = rate
        self._rated_pod[uid] = pod
        self._rated_price[uid] = price
        return accrual

    def _held(self, pod: PodRecord) -> PodAccrual:
        known = self._accruals.get(pod.uid)
        if known is not None:
            return known
        mark = pod.spend_mark
        if mark is not None:
            return PodAccrual(mark.spend, mark.rate, mark.at)
        since = pod.started or pod.created or datetime.min.replace(tzinfo=UTC)
        return PodAccrual(Decimal(0), Decimal(0), since)

    def is_priced(self, uid: str) -> bool:
        return uid in self._accruals

    def rate(self, uid: str) -> PodRate | None:
        return self._rates.get(uid)

    def written(self, pod: PodRecord) -> WrittenMark | None:
        """Our last write, else what the pod's annotations say (after a restart)."""
        known = self._written.get(pod.uid)
        if known is not None:
            return known
        if pod.spend_mark is None:
            return None
        return WrittenMark(pod.spend_mark, pod.budgets_annotation)

    def last(self, uid: str) -> PodAccrual | None:
        """The pod's figure as of the previous ``figure`` call."""
        return self._accruals.get(uid)

    def record_write(self, uid: str, accrual: PodAccrual, budgets: str) -> None:
        self._written[uid] = WrittenMark(spend_mark(accrual), budgets)

    def retain(self, live_uids: Iterable[str]) -> int:
        """Forget pods that are gone; returns how many were dropped (linear in pods)."""
        live = live_uids if isinstance(live_uids, set | frozenset) else set(live_uids)
        gone = [uid for uid in self._accruals if uid not in live]
        for uid in gone:
            self.forget(uid)
        return len(gone)

    def forget(self, uid: str) -> None:
        self._accruals.pop(uid, None)
        self._rates.pop(uid, None)
        self._rated_pod.pop(uid, None)
        self._rated_price.pop(uid, None)
        self._written.pop(uid, None)
        self.wasted.pop(uid, None)

    def clear(self) -> None:
        """Forget everything: after a change of leader, continue from the pods' annotations."""
        self._accruals.clear()
        self._rates.clear()
        self._rated_pod.clear()
        self._rated_price.clear()
        self._written.clear()
        self.wasted.clear()
        self.node_prices, self.idle_costs, self._priced_nodes, self._priced_by = {}, {}, None, None
        self._notes = {}

    def __len__(self) -> int:
        return len(self._accruals)

    def sizes(self) -> dict[str, int]:
        """Entries of each table (``costwarden_tracked_objects``): the per-pod ones follow the
        live pods, never the pods that came and went."""
        return {
            "accruals": len(self._accruals),
            "rates": len(self._rates),
            "rated_pods": len(self._rated_pod),
            "rated_prices": len(self._rated_price),
            "written": len(self._written),
            "wasted": len(self.wasted),
            "node_prices": len(self.node_prices),
            "price_notes": len(self._notes),
        }
