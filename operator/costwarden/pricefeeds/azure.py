"""Azure: VM prices from the public Retail Prices API (no authentication), through urllib3.

One query per region names all its wanted VM sizes; the feed follows ``NextPageLink`` while it
stays on the base URL's host, up to ``max_pages`` pages.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlencode, urlsplit

import urllib3

from costwarden.pricefeeds.azure_parse import RetailRow, odata_filter, parse_page, pick_prices
from costwarden.pricefeeds.errors import collect
from costwarden.pricefeeds.model import FeedError, FeedPrices, PriceWant

RETAIL_PRICES_URL = "https://prices.azure.com/api/retail/prices"
_SKUS_PER_QUERY = 15  # keeps the URL short


class AzurePriceFeed:
    name = "azure"
    cloud = "azure"

    def __init__(
        self,
        base_url: str = RETAIL_PRICES_URL,
        http: urllib3.PoolManager | None = None,
        timeout: float = 30.0,
        max_pages: int = 50,
    ) -> None:
        self._base_url = base_url
        self._http = http
        self._timeout = urllib3.Timeout(total=timeout)
        self._max_pages = max_pages

    def fetch(self, wants: Sequence[PriceWant], now: datetime) -> FeedPrices:
        mine = [w for w in wants if w.cloud == self.cloud]
        errors = collect()
        rows: list[RetailRow] = []
        for region in sorted({w.region for w in mine}):
            kinds = sorted({w.instance_type for w in mine if w.region == region})
            for start in range(0, len(kinds), _SKUS_PER_QUERY):
                with errors.attempt(f"{self._base_url} {region}"):
                    rows += self._query(odata_filter(region, kinds[start : start + _SKUS_PER_QUERY]))
        prices, notes = pick_prices(mine, rows, now)
        return errors.result(prices, notes)

    def _query(self, odata: str) -> list[RetailRow]:
        if self._http is None:
            self._http = urllib3.PoolManager(retries=urllib3.Retry(total=3, backoff_factor=1.0))
        url: str | None = f"{self._base_url}?{urlencode({'$filter': odata})}"
        rows: list[RetailRow] = []
        pages = 0
        while url is not None:
            if pages == self._max_pages:
                raise FeedError(f"more than {self._max_pages} pages; stopped")
            pages += 1
            response = self._http.request("GET", url, timeout=self._timeout)
            if response.status != 200:
                raise FeedError(f"HTTP {response.status} from {urlsplit(url).netloc}")
            page_rows, url = parse_page(response.data.decode("utf-8"))
            rows += page_rows
            if url is not None and urlsplit(url).netloc != urlsplit(self._base_url).netloc:
                raise FeedError(f"NextPageLink leaves {urlsplit(self._base_url).netloc}: {url}")
        return rows
