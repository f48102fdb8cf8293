"""LivePrices: an immutable snapshot of the feeds' prices, looked up per node.

``PriceBook(catalog, live=live_prices.lookup)`` prices a node from it (rule 3 of
docs/pricing.md); a node it has no price for gets None and the catalog takes over.

Spot prices per zone (AWS): a node whose zone is known gets its zone's price. Without a zone, or
when its zone is not listed, it gets the region's *median* zone price (the lower of the two
middle prices when the count is even, so the figure is one zone's real price, named in the
source); the lowest would understate what a node placed by the scheduler costs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType

from costwarden.pricefeeds.model import ON_DEMAND, SPOT, FeedPrice, feed_instance_key
from costwarden.pricing import LiveQuote, NodeFacts

_Key = tuple[str, str, str, str]  # (cloud, region or zone, instance key, capacity type), lowercased


@dataclass(frozen=True, slots=True)
class DatedPrice:
    price: FeedPrice
    fetched_at: datetime  # aware, UTC


class LivePrices:
    """Immutable; ``lookup`` never raises."""

    def __init__(self, entries: Iterable[DatedPrice] = ()) -> None:
        self._entries = tuple(entries)
        zonal: dict[_Key, DatedPrice] = {}
        regional: dict[_Key, DatedPrice] = {}
        zones_of: dict[_Key, list[DatedPrice]] = {}
        for entry in self._entries:
            price = entry.price
            if price.zone:
                zonal[_key(price.cloud, price.zone, price.instance_type, price.capacity_type)] = entry
                region_key = _key(price.cloud, price.region, price.instance_type, price.capacity_type)
                zones_of.setdefault(region_key, []).append(entry)
            else:
                regional[_key(price.cloud, price.region, price.instance_type, price.capacity_type)] = entry
        medians = {key: _median_quote(found) for key, found in zones_of.items() if key not in regional}
        self._zonal: Mapping[_Key, LiveQuote] = MappingProxyType(
            {key: _quote(entry) for key, entry in zonal.items()}
        )
        self._regional: Mapping[_Key, LiveQuote] = MappingProxyType(
            medians | {key: _quote(entry) for key, entry in regional.items()}
        )

    @property
    def entries(self) -> tuple[DatedPrice, ...]:
        return self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, facts: NodeFacts) -> LiveQuote | None:
        """The live price of this node, or None (the catalog then prices it).

        A reserved node gets the on-demand price and the source says so (no feed lists
        reserved or capacity-block rates; the catalog does the same).
        """
        if not facts.instance_type or not facts.region:
            return None
        kind = feed_instance_key(facts)
        capacity = SPOT if facts.capacity_type == SPOT else ON_DEMAND
        if capacity == SPOT and facts.zone:
            quote = self._zonal.get(_key(facts.cloud, facts.zone, kind, capacity))
            if quote is not None:
                return quote
        quote = self._regional.get(_key(facts.cloud, facts.region, kind, capacity))
        if quote is not None and facts.capacity_type not in (SPOT, ON_DEMAND):
            note = f"no {facts.capacity_type} price in the feed; on-demand price used"
            return LiveQuote(quote.hourly, f"{quote.source}; {note}")
        return quote


def format_fetched(at: datetime) -> str:
    """``2026-12-01T05:00Z``: minutes are enough to say how fresh a price is."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def source_of(price: FeedPrice, fetched_at: datetime, where: str | None = None) -> str:
    """``aws pricing get_products us-east-1 (fetched 2026-12-01T05:00Z)``, then any detail."""
    location = where or price.zone or price.region
    detail = f"; {price.detail}" if price.detail else ""
    return f"{price.api} {location} (fetched {format_fetched(fetched_at)}){detail}"


def median_zone(entries: Iterable[DatedPrice]) -> tuple[DatedPrice, int]:
    """The lower-median zone's price among one region's zonal prices (ties by zone name), and
    how many zones there were; the zones must not be empty."""
    ordered = sorted(entries, key=lambda e: (e.price.hourly, e.price.zone or ""))
    return ordered[(len(ordered) - 1) // 2], len(ordered)


def _median_quote(entries: list[DatedPrice]) -> LiveQuote:
    chosen, count = median_zone(entries)
    price = chosen.price
    where = f"{price.region} (median of {count} zone(s): {price.zone})"
    return LiveQuote(price.hourly, source_of(price, chosen.fetched_at, where))


def _quote(entry: DatedPrice) -> LiveQuote:
    return LiveQuote(entry.price.hourly, source_of(entry.price, entry.fetched_at))


def _key(cloud: str, where: str, kind: str, capacity: str) -> _Key:
    return (cloud.lower(), where.lower(), kind.lower(), capacity)
