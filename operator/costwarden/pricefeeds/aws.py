"""AWS: on-demand prices from the Price List API, spot prices from EC2's spot price history.

Both through boto3 clients made by the caller (``pricefeeds/factory.py``: the default credential
chain, never keys in code or config). The Price List API has endpoints in us-east-1, eu-central-1
and ap-south-1 only, whatever region is priced; the spot history is read from each region's EC2.
IAM: ``pricing:GetProducts`` and ``ec2:DescribeSpotPriceHistory``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from costwarden.pricefeeds.aws_parse import (
    SPOT_PRODUCTS,
    latest_spot_prices,
    on_demand_prices,
    product_filters,
)
from costwarden.pricefeeds.errors import collect
from costwarden.pricefeeds.model import ON_DEMAND, SPOT, FeedPrice, FeedPrices, PriceWant

PRICING_API = "aws pricing get_products"
SPOT_API = "aws ec2 describe_spot_price_history"


class AwsPriceFeed:
    """``pricing()`` makes the Pricing client, ``ec2(region)`` a region's EC2 client; both are
    called lazily, in the fetching thread, and the clients kept."""

    name = "aws"
    cloud = "aws"

    def __init__(self, pricing: Callable[[], Any], ec2: Callable[[str], Any]) -> None:
        self._make_pricing = pricing
        self._make_ec2 = ec2
        self._pricing: Any = None
        self._ec2: dict[str, Any] = {}

    def fetch(self, wants: Sequence[PriceWant], now: datetime) -> FeedPrices:
        mine = [w for w in wants if w.cloud == self.cloud]
        errors = collect()
        prices: list[FeedPrice] = []
        notes: list[str] = []
        for want in (w for w in mine if w.capacity_type == ON_DEMAND):
            with errors.attempt(f"{PRICING_API} {want.region} {want.instance_type}"):
                prices += self._on_demand(want, notes)
        spot_regions = sorted({w.region for w in mine if w.capacity_type == SPOT})
        for region in spot_regions:
            kinds = sorted({w.instance_type for w in mine if w.capacity_type == SPOT and w.region == region})
            with errors.attempt(f"{SPOT_API} {region}"):
                prices += self._spot(region, kinds, now, notes)
        return errors.result(prices, notes)

    def _on_demand(self, want: PriceWant, notes: list[str]) -> list[FeedPrice]:
        found = on_demand_prices(self._price_list(want.instance_type, want.region))
        if len(found) != 1:
            listed = ", ".join(str(p) for p in sorted(found)) or "none"
            notes.append(f"{want.region} {want.instance_type}: on-demand Linux prices listed: {listed}")
            return []
        (hourly,) = found
        return [FeedPrice("aws", want.region, None, want.instance_type, ON_DEMAND, hourly, PRICING_API)]

    def _price_list(self, instance_type: str, region: str) -> Iterator[str]:
        if self._pricing is None:
            self._pricing = self._make_pricing()
        pages = self._pricing.get_paginator("get_products").paginate(
            ServiceCode="AmazonEC2",
            Filters=product_filters(instance_type, region),
            FormatVersion="aws_v1",
        )
        for page in pages:
            yield from page.get("PriceList", [])

    def _spot(self, region: str, kinds: list[str], now: datetime, notes: list[str]) -> list[FeedPrice]:
        client = self._ec2.get(region)
        if client is None:
            client = self._ec2[region] = self._make_ec2(region)
        pages = client.get_paginator("describe_spot_price_history").paginate(
            InstanceTypes=kinds, ProductDescriptions=list(SPOT_PRODUCTS), StartTime=now
        )
        latest = latest_spot_prices(record for page in pages for record in page.get("SpotPriceHistory", []))
        prices = [
            FeedPrice("aws", region, zone, kind, SPOT, hourly, SPOT_API)
            for (kind, zone), hourly in sorted(latest.items())
            if kind in kinds
        ]
        missing = sorted(set(kinds) - {p.instance_type for p in prices})
        notes += [f"{region} {kind}: no spot price in any zone" for kind in missing]
        return prices
