"""Pure parsing of Azure Retail Prices API pages (https://learn.microsoft.com/en-us/rest/api/cost-management/retail-prices/azure-retail-prices).

A page is ``{"Items": [...], "NextPageLink": url | null}``; each item has ``armSkuName``,
``armRegionName``, ``skuName``, ``productName``, ``retailPrice``, ``unitOfMeasure``, ``type``,
``currencyCode``, ``effectiveStartDate``, ``isPrimaryMeterRegion``. Kept: Linux pay-as-you-go
hourly rows. Dropped: Windows (``productName`` ends "Windows"), Low Priority (the retired
predecessor of Spot), and any other unit or type. Spot rows have ``skuName`` ending " Spot".
JSON numbers are read as Decimal, so ``retailPrice`` is exact.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from costwarden.pricefeeds.model import ON_DEMAND, SPOT, FeedPrice, PriceWant

API = "azure retail prices"


@dataclass(frozen=True, slots=True)
class RetailRow:
    arm_sku_name: str
    region: str
    capacity_type: str  # on-demand | spot
    retail_price: Decimal
    effective_start: str  # ISO 8601 text; compared as text, which orders ISO timestamps
    primary: bool  # isPrimaryMeterRegion


def odata_filter(region: str, sku_names: Sequence[str]) -> str:
    """``$filter`` for these VM sizes' pay-as-you-go prices in one region."""
    skus = " or ".join(f"armSkuName eq {_quoted(name)}" for name in sku_names)
    return (
        "serviceName eq 'Virtual Machines' and priceType eq 'Consumption' "
        f"and armRegionName eq {_quoted(region)} and ({skus})"
    )


def parse_page(text: str) -> tuple[list[RetailRow], str | None]:
    """The usable rows of one page and the next page's URL; ValueError when it is not a page."""
    page = json.loads(text, parse_float=Decimal, parse_int=Decimal)
    if not isinstance(page, Mapping) or not isinstance(page.get("Items"), list):
        raise ValueError("not a Retail Prices page (no Items list)")
    rows = [row for row in map(_row, page["Items"]) if row is not None]
    link = page.get("NextPageLink")
    return rows, link if isinstance(link, str) and link else None


def pick_prices(
    wants: Sequence[PriceWant], rows: Iterable[RetailRow], now: datetime
) -> tuple[list[FeedPrice], list[str]]:
    """One price per want: of its rows in effect at ``now``, the primary meter region's, then
    the latest effective start; rows left that still disagree make a note instead of a price."""
    today = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    grouped: dict[tuple[str, str, str], list[RetailRow]] = {}
    for row in rows:
        if row.effective_start[:19] > today:
            continue
        grouped.setdefault((row.region.lower(), row.arm_sku_name.lower(), row.capacity_type), []).append(row)
    prices: list[FeedPrice] = []
    notes: list[str] = []
    for want in wants:
        found = grouped.get((want.region.lower(), want.instance_type.lower(), want.capacity_type), [])
        if not found:
            notes.append(f"{want.region} {want.instance_type} {want.capacity_type}: no Linux hourly price")
            continue
        best = max((r.primary, r.effective_start) for r in found)
        chosen = {r.retail_price for r in found if (r.primary, r.effective_start) == best}
        if len(chosen) != 1:
            listed = ", ".join(str(p) for p in sorted(chosen))
            notes.append(
                f"{want.region} {want.instance_type} {want.capacity_type}: prices disagree: {listed}"
            )
            continue
        (hourly,) = chosen
        prices.append(
            FeedPrice("azure", want.region, None, want.instance_type, want.capacity_type, hourly, API)
        )
    return prices, notes


def _row(item: Any) -> RetailRow | None:
    if not isinstance(item, Mapping):
        return None
    text = {key: item.get(key) for key in ("armSkuName", "armRegionName", "skuName", "productName")}
    if not all(isinstance(value, str) and value for value in text.values()):
        return None
    sku_name, product = str(text["skuName"]), str(text["productName"])
    if item.get("type") != "Consumption" or item.get("unitOfMeasure") != "1 Hour":
        return None
    if item.get("currencyCode", "USD") != "USD" or "windows" in product.lower():
        return None
    if "low priority" in sku_name.lower() or "low priority" in str(item.get("meterName", "")).lower():
        return None
    price = item.get("retailPrice")
    if not isinstance(price, Decimal) or not price.is_finite() or price <= 0:
        return None
    return RetailRow(
        arm_sku_name=str(text["armSkuName"]),
        region=str(text["armRegionName"]),
        capacity_type=SPOT if sku_name.endswith(" Spot") else ON_DEMAND,
        retail_price=price,
        effective_start=str(item.get("effectiveStartDate", "")),
        primary=item.get("isPrimaryMeterRegion", True) is True,
    )


def _quoted(value: str) -> str:
    """An OData string literal: single quotes, a quote inside doubled."""
    return "'" + value.replace("'", "''") + "'"
