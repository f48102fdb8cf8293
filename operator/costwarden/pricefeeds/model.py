"""What a live price feed is asked for, what it answers, and the one interface every feed has.

A feed is blocking (it calls a cloud SDK or an HTTP API) and is run in a worker thread by the
refresher (``pricefeeds/refresher.py``); everything else in this package is pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from costwarden.pricefeeds.gcp_machines import instance_key
from costwarden.pricing import NodeFacts

ON_DEMAND = "on-demand"
SPOT = "spot"
FEED_CLOUDS = ("aws", "gcp", "azure")


class FeedError(Exception):
    """A feed could not fetch at all (HTTP status, API error); the message is one line."""


@dataclass(frozen=True, slots=True, order=True)
class PriceWant:
    """One price the cluster needs: a region's price of a VM type, on-demand or spot.

    Spot prices are fetched for every zone of the region (AWS answers per zone; GCP and Azure
    price per region), so a want names the region only. ``instance_type`` is the key the
    catalog uses: a GCE N1 VM with GPUs attached is ``n1-standard-8+nvidia-tesla-t4x1``.
    """

    cloud: str
    region: str
    instance_type: str
    capacity_type: str  # on-demand | spot


@dataclass(frozen=True, slots=True)
class FeedPrice:
    """A feed's price of a whole VM, USD/hour, and which API said so."""

    cloud: str
    region: str
    zone: str | None  # AWS spot prices are per availability zone; None: the region's price
    instance_type: str  # the same key as PriceWant.instance_type
    capacity_type: str
    hourly: Decimal
    api: str  # e.g. "aws pricing get_products"
    detail: str = ""  # how the price was put together (GCE: which SKUs), shown after the source


@dataclass(frozen=True, slots=True)
class FeedPrices:
    """One fetch's prices; ``notes`` says which wants got no price and why (not an error)."""

    prices: tuple[FeedPrice, ...]
    notes: tuple[str, ...] = ()


class PriceFeed(Protocol):
    """A cloud's live prices. ``fetch`` blocks and may raise; the refresher turns that into data."""

    name: str  # the name in ``--price-feed`` and in the feed's status
    cloud: str  # which NodeFacts.cloud it prices

    def fetch(self, wants: Sequence[PriceWant], now: datetime) -> FeedPrices: ...


def want_for(facts: NodeFacts) -> PriceWant | None:
    """The price a node needs, or None when a feed cannot price it (unknown cloud or type).

    A reserved node wants the on-demand price: no feed lists reserved or capacity-block rates.
    """
    if facts.cloud not in FEED_CLOUDS or not facts.instance_type or not facts.region:
        return None
    capacity = SPOT if facts.capacity_type == SPOT else ON_DEMAND
    return PriceWant(facts.cloud, facts.region.lower(), feed_instance_key(facts), capacity)


def wants_for(facts: Iterable[NodeFacts]) -> tuple[PriceWant, ...]:
    """The distinct wants of these nodes, sorted (so a fetch's requests are deterministic)."""
    return tuple(sorted({want for want in map(want_for, facts) if want is not None}))


def feed_instance_key(facts: NodeFacts) -> str:
    """The instance key a feed prices this node under (GCE N1 + GPUs combined, as the catalog)."""
    kind = facts.instance_type or ""
    if facts.cloud == "gcp":
        return instance_key(kind, facts.gpu_model, facts.gpu_count)
    return kind
