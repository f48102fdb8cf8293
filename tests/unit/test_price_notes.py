"""status.nodePrices: the covered nodes' prices and sources, from the spend book."""

from __future__ import annotations

from decimal import Decimal

from costwarden.models import MAX_NODE_PRICES, CostBudgetStatus
from costwarden.operator.spendbook import SpendBook
from costwarden.pricing import NodeFacts, PriceBook, RateFactor, load_bundled_catalog
from costwarden.records import NodeRecord
from tests import shapes


def _nodes(count: int) -> dict[str, NodeRecord]:
    return {f"n{i:02}": NodeRecord.from_body(shapes.eks_p5_node(f"n{i:02}")) for i in range(count)}


def test_notes_follow_the_book_and_are_capped() -> None:
    book = SpendBook()
    nodes = _nodes(MAX_NODE_PRICES + 5)
    listed = PriceBook(load_bundled_catalog())
    book.price_nodes(nodes, listed)
    notes = book.price_notes(["n03", "n01", "n03", "gone"])
    assert [(n.name, n.hourly_rate) for n in notes] == [("n01", Decimal("55.04")), ("n03", Decimal("55.04"))]
    assert notes[0].source.startswith("catalog: aws p5.48xlarge us-east-1 on-demand")
    assert book.price_notes(["n01"])[0] is notes[0]  # one entry per price, shared
    assert len(book.price_notes(nodes)) == MAX_NODE_PRICES

    def factors(_: NodeFacts) -> RateFactor:
        return RateFactor(Decimal("0.7"), "billing: 48 node-hours")

    book.price_nodes(nodes, listed.with_feeds(None, factors))
    [note] = book.price_notes(["n01"])
    assert note.hourly_rate == Decimal("38.528")
    assert note.source.endswith("x 0.7 (billing: 48 node-hours)")
    body = CostBudgetStatus(node_prices=(note,)).to_k8s()["nodePrices"]
    assert body == [{"name": "n01", "hourlyRate": 38.528, "source": note.source}]
