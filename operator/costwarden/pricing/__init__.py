"""Pricing: node facts, the bundled catalog, operator overrides and price resolution (pure)."""

from costwarden.pricing.catalog import Catalog, CatalogError, CatalogRow, load_bundled_catalog
from costwarden.pricing.classify import NodeFacts, classify_node
from costwarden.pricing.overrides import OverridesError, PriceOverrides, load_overrides_text, parse_overrides
from costwarden.pricing.resolve import LiveFeed, LiveQuote, NodePrice, PriceBook, RateFactor, RateFactors

__all__ = [
    "Catalog",
    "CatalogError",
    "CatalogRow",
    "LiveFeed",
    "LiveQuote",
    "NodeFacts",
    "NodePrice",
    "OverridesError",
    "PriceBook",
    "PriceOverrides",
    "RateFactor",
    "RateFactors",
    "classify_node",
    "load_bundled_catalog",
    "load_overrides_text",
    "parse_overrides",
]
