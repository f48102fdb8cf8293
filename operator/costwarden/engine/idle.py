"""Idle node cost: what a node costs beyond the pods that run on it (OpenCost's ``__idle__``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from costwarden.engine.money import ZERO
from costwarden.engine.rates import PodRate, UnitPrices


def idle_node_costs(
    prices: Mapping[str, UnitPrices], pod_rates: Iterable[tuple[str, PodRate]]
) -> dict[str, Decimal]:
    """USD/hour per priced node: its hourly price minus the rates of the pods on it, floored at 0.

    ``pod_rates`` pairs a node name with the rate of one pod on it; pods on unpriced nodes are
    ignored.
    """
    used: dict[str, Decimal] = {}
    for node, rate in pod_rates:
        if node in prices:
            used[node] = used.get(node, ZERO) + rate.total
    return {node: max(price.hourly - used.get(node, ZERO), ZERO) for node, price in prices.items()}
