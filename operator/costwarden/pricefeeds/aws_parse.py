"""Pure parsers of the AWS Price List API and EC2 spot price history answers.

``pricing.get_products`` answers ``PriceList``: a list of JSON *strings*, one product each, with
``terms.OnDemand.<offer>.priceDimensions.<rate>.pricePerUnit.USD`` (a decimal string) per
``unit`` "Hrs" (https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_pricing_GetProducts.html,
https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/price-changes.html). JSON numbers
are read as Decimal too, so no float ever holds money.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

# The filters every on-demand query uses (Linux, shared tenancy, no pre-installed software, a
# running instance rather than an unused reservation), each a TERM_MATCH on the product attribute.
PRODUCT_FILTERS = (
    ("operatingSystem", "Linux"),
    ("tenancy", "Shared"),
    ("preInstalledSw", "NA"),
    ("capacitystatus", "Used"),
)
SPOT_PRODUCTS = ("Linux/UNIX", "Linux/UNIX (Amazon VPC)")


def product_filters(instance_type: str, region: str) -> list[dict[str, str]]:
    """The ``Filters`` of ``get_products`` for one instance type in one region."""
    pairs = (("instanceType", instance_type), ("regionCode", region), *PRODUCT_FILTERS)
    return [{"Type": "TERM_MATCH", "Field": field, "Value": value} for field, value in pairs]


def on_demand_prices(price_list: Iterable[str]) -> set[Decimal]:
    """The distinct positive USD/hour on-demand prices in a ``PriceList``.

    A product whose ``marketoption`` attribute is present and not "OnDemand" (a capacity block)
    is skipped, and so are rate lines in another unit or at $0. A string that is not a product
    raises ValueError (the feed reports it).
    """
    found: set[Decimal] = set()
    for text in price_list:
        product = _mapping(json.loads(text, parse_float=Decimal))
        attributes = _mapping(_mapping(product.get("product")).get("attributes"))
        if attributes.get("marketoption", "OnDemand") != "OnDemand":
            continue
        for offer in _mapping(_mapping(product.get("terms")).get("OnDemand")).values():
            for dimension in _mapping(_mapping(offer).get("priceDimensions")).values():
                price = _usd(_mapping(dimension))
                if price is not None:
                    found.add(price)
    return found


def latest_spot_prices(history: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Decimal]:
    """(instance type, zone) -> the most recent ``SpotPrice`` in ``SpotPriceHistory`` records.

    ``describe_spot_price_history`` with ``StartTime`` now answers the price in effect now per
    zone (and any change since); the newest record per zone wins, and of two at the same time
    the lower product description in ``SPOT_PRODUCTS`` order.
    """
    newest: dict[tuple[str, str], tuple[datetime, int, Decimal]] = {}
    for record in history:
        kind, zone = record.get("InstanceType"), record.get("AvailabilityZone")
        stamp, text = record.get("Timestamp"), record.get("SpotPrice")
        if not (isinstance(kind, str) and isinstance(zone, str) and isinstance(stamp, datetime)):
            continue
        price = _decimal(text)
        if price is None or price <= 0:
            continue
        description = record.get("ProductDescription")
        rank = -SPOT_PRODUCTS.index(description) if description in SPOT_PRODUCTS else -len(SPOT_PRODUCTS)
        candidate = (stamp, rank, price)
        known = newest.get((kind, zone))
        if known is None or candidate[:2] > known[:2]:
            newest[(kind, zone)] = candidate
    return {key: value[2] for key, value in newest.items()}


def _usd(dimension: Mapping[str, Any]) -> Decimal | None:
    if str(dimension.get("unit", "")).lower() not in ("hrs", "hours", "hour"):
        return None
    price = _decimal(_mapping(dimension.get("pricePerUnit")).get("USD"))
    return price if price is not None and price > 0 else None


def _decimal(value: object) -> Decimal | None:
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if not isinstance(value, str):
        return None
    try:
        result = Decimal(value)
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
