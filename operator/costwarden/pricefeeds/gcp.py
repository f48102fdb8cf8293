"""GCP: Compute Engine SKUs from the Cloud Billing Catalog API, assembled into VM prices.

``CloudCatalogClient.list_skus(parent="services/6F81-5844-456A")`` lists every Compute Engine
SKU (tens of thousands, in pages the client follows); only Compute SKUs for on-demand or Spot
use in a wanted region are kept. The client is made by the caller (``pricefeeds/factory.py``:
Application Default Credentials). https://cloud.google.com/billing/docs/how-to/get-pricing-information-api
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime

from google.cloud.billing_v1 import CloudCatalogClient, ListSkusRequest, Sku

from costwarden.pricefeeds.gcp_parse import COMPUTE_SERVICE, USAGE_TYPES, SkuPrice, money, price_wants
from costwarden.pricefeeds.model import FeedPrices, PriceWant

PAGE_SIZE = 5000  # the API's largest page


class GcpPriceFeed:
    """``client()`` makes the catalog client, lazily, in the fetching thread; it is kept."""

    name = "gcp"
    cloud = "gcp"

    def __init__(self, client: Callable[[], CloudCatalogClient], timeout: float = 60.0) -> None:
        self._make_client = client
        self._client: CloudCatalogClient | None = None
        self._timeout = timeout

    def fetch(self, wants: Sequence[PriceWant], now: datetime) -> FeedPrices:
        mine = [w for w in wants if w.cloud == self.cloud]
        if not mine:
            return FeedPrices(())
        if self._client is None:
            self._client = self._make_client()
        regions = frozenset(w.region for w in mine)
        request = ListSkusRequest(parent=COMPUTE_SERVICE, page_size=PAGE_SIZE, currency_code="USD")
        pager = self._client.list_skus(request=request, timeout=self._timeout)
        prices, notes = price_wants(mine, _relevant(pager, regions))
        return FeedPrices(tuple(prices), tuple(notes))


def _relevant(skus: Iterable[Sku], regions: frozenset[str]) -> Iterator[SkuPrice]:
    usages = set(USAGE_TYPES.values())
    for sku in skus:
        category = sku.category
        if category.resource_family != "Compute" or category.usage_type not in usages:
            continue
        if regions.isdisjoint(sku.service_regions):
            continue
        price = sku_price(sku)
        if price is not None:
            yield price


def sku_price(sku: Sku) -> SkuPrice | None:
    """The SKU's current USD price per usage unit (the latest pricing info, its last tier: the
    rate past any free tier), or None when it has none."""
    if not sku.pricing_info:
        return None
    expression = sku.pricing_info[-1].pricing_expression
    if not expression.tiered_rates:
        return None
    unit_price = expression.tiered_rates[-1].unit_price
    if unit_price.currency_code not in ("", "USD"):
        return None
    return SkuPrice(
        sku_id=sku.sku_id,
        description=sku.description,
        resource_group=sku.category.resource_group,
        usage_type=sku.category.usage_type,
        regions=frozenset(sku.service_regions),
        usage_unit=expression.usage_unit,
        unit_price=money(unit_price.units, unit_price.nanos),
    )
