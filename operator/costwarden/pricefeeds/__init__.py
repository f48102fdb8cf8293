"""Live cloud prices: AWS Pricing and spot history, GCP Cloud Billing Catalog, Azure Retail Prices.

The operator's entry point is ``PriceFeeds`` (refresher.py): ``await feeds.refresh(facts, now)``
returns a ``LivePrices`` whose ``lookup`` is ``PriceBook``'s ``live`` hook. docs/pricing.md,
"Live price feeds", says what each feed calls and needs.
"""

from costwarden.pricefeeds.factory import feeds_from_names
from costwarden.pricefeeds.live import DatedPrice, LivePrices
from costwarden.pricefeeds.model import FeedError, FeedPrice, FeedPrices, PriceFeed, PriceWant, wants_for
from costwarden.pricefeeds.refresher import FAILED, NEVER, OK, FeedStatus, PriceFeeds

__all__ = [
    "FAILED",
    "NEVER",
    "OK",
    "DatedPrice",
    "FeedError",
    "FeedPrice",
    "FeedPrices",
    "FeedStatus",
    "LivePrices",
    "PriceFeed",
    "PriceFeeds",
    "PriceWant",
    "feeds_from_names",
    "wants_for",
]
