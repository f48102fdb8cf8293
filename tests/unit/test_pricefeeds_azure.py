"""The Azure feed against a local Retail Prices stand-in: the query, NextPageLink, Windows and
Low Priority rows skipped, Spot rows, exact prices, HTTP errors."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from costwarden.pricefeeds.azure import AzurePriceFeed
from costwarden.pricefeeds.azure_parse import odata_filter, parse_page
from costwarden.pricefeeds.model import FeedError, PriceWant
from tests.pricefeed_fakes import RETAIL_PATH, PageServer, retail_item, retail_route, serving

NOW = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)
NC = "Standard_NC24ads_A100_v4"
T4 = "Standard_NC4as_T4_v3"


def _pages() -> list[list[dict[str, Any]]]:
    return [
        [
            retail_item(NC, "eastus", "3.673", sku_name="NC24ads A100 v4"),
            retail_item(
                NC, "eastus", "4.409", sku_name="NC24ads A100 v4", product="NCads A100 v4 Series Windows"
            ),
            retail_item(NC, "eastus", "0.7346", sku_name="NC24ads A100 v4 Low Priority"),
        ],
        [
            retail_item(NC, "eastus", "0.444433", sku_name="NC24ads A100 v4 Spot"),
            retail_item(
                NC, "eastus", "1.2", sku_name="NC24ads A100 v4 Spot", product="NCads A100 v4 Series Windows"
            ),
            retail_item(T4, "eastus", "0.1", sku_name="NC4as T4 v3 Spot"),
            retail_item(T4, "eastus", "0.2", sku_name="NC4as T4 v3 Spot", primary=False),
        ],
        [
            retail_item(T4, "eastus", "0.526", sku_name="NC4as T4 v3", start="2024-01-01T00:00:00Z"),
            retail_item(T4, "eastus", "0.5", sku_name="NC4as T4 v3", start="2025-01-01T00:00:00Z"),
            retail_item(T4, "eastus", "0.4", sku_name="NC4as T4 v3", start="2027-06-01T00:00:00Z"),  # future
            retail_item(T4, "eastus", "9.9", sku_name="NC4as T4 v3", kind="DevTestConsumption"),
            retail_item(T4, "eastus", "9.9", sku_name="NC4as T4 v3", unit="1/Month"),
        ],
    ]


def _fetch(wants: list[PriceWant]) -> tuple[Any, PageServer]:
    holder: list[PageServer] = []
    with serving(retail_route(_pages(), lambda: holder[0].url)) as server:
        holder.append(server)
        result = AzurePriceFeed(f"{server.url}{RETAIL_PATH}").fetch(wants, NOW)
    return result, server


def test_prices_from_all_pages_with_windows_and_low_priority_skipped() -> None:
    wants = [
        PriceWant("azure", "eastus", NC, "on-demand"),
        PriceWant("azure", "eastus", NC, "spot"),
        PriceWant("azure", "eastus", T4, "on-demand"),
        PriceWant("azure", "eastus", T4, "spot"),
    ]
    result, server = _fetch(wants)
    got = {(p.instance_type, p.capacity_type): p.hourly for p in result.prices}
    assert got == {
        (NC, "on-demand"): Decimal("3.673"),
        (NC, "spot"): Decimal("0.444433"),
        (T4, "on-demand"): Decimal("0.5"),  # the latest row already in effect
        (T4, "spot"): Decimal("0.1"),  # the primary meter region's row
    }
    assert all(isinstance(p.hourly, Decimal) for p in result.prices)
    assert result.notes == ()
    # one query for the region, naming both sizes, then the two NextPageLinks
    assert [q.get("$skip") for _, q in server.requests] == [None, ["100"], ["200"]]
    (odata,) = server.requests[0][1]["$filter"]
    assert odata == (
        "serviceName eq 'Virtual Machines' and priceType eq 'Consumption' and armRegionName eq 'eastus' "
        f"and (armSkuName eq '{NC}' or armSkuName eq '{T4}')"
    )


def test_a_size_without_rows_is_a_note() -> None:
    result, _ = _fetch([PriceWant("azure", "eastus", "Standard_ND96isr_H100_v5", "on-demand")])
    assert result.prices == ()
    assert result.notes == ("eastus Standard_ND96isr_H100_v5 on-demand: no Linux hourly price",)


def test_http_error_fails_the_feed() -> None:
    with serving(lambda path, query: (429, {"Error": "Too Many Requests"})) as server:
        feed = AzurePriceFeed(f"{server.url}{RETAIL_PATH}")
        with pytest.raises(FeedError, match="HTTP 429"):
            feed.fetch([PriceWant("azure", "eastus", NC, "on-demand")], NOW)


def test_a_next_page_on_another_host_is_refused() -> None:
    def route(path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        return 200, {"Items": [], "NextPageLink": "https://elsewhere.example/api/retail/prices?$skip=100"}

    with serving(route) as server:
        feed = AzurePriceFeed(f"{server.url}{RETAIL_PATH}")
        with pytest.raises(FeedError, match="NextPageLink leaves"):
            feed.fetch([PriceWant("azure", "eastus", NC, "on-demand")], NOW)


def test_parse_page_reads_numbers_as_decimal_and_refuses_other_json() -> None:
    rows, link = parse_page('{"Items": [' + _item_json("0.1") + '], "NextPageLink": null}')
    assert link is None and rows[0].retail_price == Decimal("0.1")
    rows2, _ = parse_page('{"Items": [' + _item_json("0.2") + "]}")
    assert rows[0].retail_price + rows2[0].retail_price == Decimal("0.3")  # not 0.30000000000000004
    with pytest.raises(ValueError):
        parse_page('{"value": []}')


def test_odata_quotes_are_escaped() -> None:
    assert "armSkuName eq 'it''s'" in odata_filter("eastus", ["it's"])


def _item_json(price: str) -> str:
    return (
        '{"armSkuName": "Standard_NC4as_T4_v3", "armRegionName": "eastus", "skuName": "NC4as T4 v3", '
        f'"productName": "Virtual Machines NCasT4_v3 Series", "retailPrice": {price}, '
        '"unitOfMeasure": "1 Hour", "type": "Consumption", "currencyCode": "USD"}'
    )
