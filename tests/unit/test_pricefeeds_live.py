"""LivePrices.lookup: zone, the region's median zone, reserved, unknown nodes; and PriceBook
pricing a node from it, with the quote's source."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from costwarden.pricefeeds import DatedPrice, FeedPrice, LivePrices, wants_for
from costwarden.pricefeeds.model import PriceWant
from costwarden.pricing import NodeFacts, PriceBook, load_bundled_catalog
from costwarden.records import NodeRecord

FETCHED = datetime(2026, 12, 1, 5, 0, 42, tzinfo=UTC)
SPOT_API = "aws ec2 describe_spot_price_history"


def _price(
    kind: str, hourly: str, *, capacity: str = "on-demand", zone: str | None = None, **kw: Any
) -> DatedPrice:
    cloud = kw.get("cloud", "aws")
    region = kw.get("region", "us-east-1")
    api = kw.get("api", SPOT_API if capacity == "spot" else "aws pricing get_products")
    return DatedPrice(
        FeedPrice(cloud, region, zone, kind, capacity, Decimal(hourly), api, kw.get("detail", "")), FETCHED
    )


def _facts(kind: str | None, capacity: str = "on-demand", zone: str | None = None, **kw: Any) -> NodeFacts:
    return NodeFacts(
        cloud=kw.get("cloud", "aws"),
        region=kw.get("region", "us-east-1"),
        zone=zone,
        instance_type=kind,
        capacity_type=capacity,
        gpu_count=kw.get("gpus", 0),
        gpu_model=kw.get("gpu_model"),
    )


LIVE = LivePrices(
    [
        _price("p5.48xlarge", "55.04"),
        _price("g5.xlarge", "0.30", capacity="spot", zone="us-east-1a"),
        _price("g5.xlarge", "0.50", capacity="spot", zone="us-east-1b"),
        _price("g5.xlarge", "0.40", capacity="spot", zone="us-east-1c"),
        _price("g5.xlarge", "0.45", capacity="spot", zone="us-east-1d"),
        _price(
            "n1-standard-8+nvidia-tesla-t4x1",
            "0.73",
            cloud="gcp",
            region="us-central1",
            api="gcp cloudbilling list_skus",
            detail="OnDemand SKUs: 8 vCPU x 0.031611 (N1C) + 30 GiB x 0.004237 (N1R) + 1 T4 x 0.35 (T4)",
        ),
    ]
)


def test_on_demand_quote_names_api_region_and_fetch_time() -> None:
    quote = LIVE.lookup(_facts("p5.48xlarge"))
    assert quote is not None
    assert quote.hourly == Decimal("55.04")
    assert quote.source == "aws pricing get_products us-east-1 (fetched 2026-12-01T05:00Z)"


def test_spot_node_with_a_zone_gets_its_zone() -> None:
    quote = LIVE.lookup(_facts("g5.xlarge", "spot", zone="us-east-1b"))
    assert quote is not None and quote.hourly == Decimal("0.50")
    assert quote.source == f"{SPOT_API} us-east-1b (fetched 2026-12-01T05:00Z)"


@pytest.mark.parametrize("zone", [None, "us-east-1f"])
def test_spot_node_without_a_listed_zone_gets_the_lower_median_zone(zone: str | None) -> None:
    quote = LIVE.lookup(_facts("g5.xlarge", "spot", zone=zone))
    assert quote is not None
    assert quote.hourly == Decimal("0.40")  # of 0.30, 0.40, 0.45, 0.50
    assert (
        quote.source == f"{SPOT_API} us-east-1 (median of 4 zone(s): us-east-1c) (fetched 2026-12-01T05:00Z)"
    )


def test_reserved_gets_on_demand_and_says_so() -> None:
    quote = LIVE.lookup(_facts("p5.48xlarge", "reserved"))
    assert quote is not None and quote.hourly == Decimal("55.04")
    assert quote.source.endswith("; no reserved price in the feed; on-demand price used")


@pytest.mark.parametrize(
    "facts",
    [
        _facts("x99.mega"),
        _facts("p5.48xlarge", "spot"),  # no spot price: the catalog decides
        _facts("p5.48xlarge", region="eu-west-1"),
        _facts(None),
        _facts("p5.48xlarge", region=None),
        _facts("p5.48xlarge", cloud="azure"),
    ],
)
def test_unknown_nodes_get_none(facts: NodeFacts) -> None:
    assert LIVE.lookup(facts) is None


def test_gce_n1_with_a_t4_is_found_by_its_accelerator_label() -> None:
    facts = _facts("n1-standard-8", cloud="gcp", region="us-central1", gpus=1, gpu_model="nvidia-tesla-t4")
    quote = LIVE.lookup(facts)
    assert quote is not None and quote.hourly == Decimal("0.73")
    assert quote.source.startswith(
        "gcp cloudbilling list_skus us-central1 (fetched 2026-12-01T05:00Z); OnDemand SKUs"
    )


def test_wants_are_distinct_and_reserved_wants_on_demand() -> None:
    wants = wants_for(
        [
            _facts("p5.48xlarge"),
            _facts("p5.48xlarge", "reserved"),
            _facts("g5.xlarge", "spot", zone="us-east-1a"),
            _facts("g5.xlarge", "spot", zone="us-east-1b"),
            _facts("x1", cloud="unknown"),
            _facts(None),
        ]
    )
    assert wants == (
        PriceWant("aws", "us-east-1", "g5.xlarge", "spot"),
        PriceWant("aws", "us-east-1", "p5.48xlarge", "on-demand"),
    )


def _eks(kind: str, capacity: str, zone: str) -> NodeRecord:
    return NodeRecord.from_body(
        {
            "metadata": {
                "name": f"node-{kind}",
                "labels": {
                    "node.kubernetes.io/instance-type": kind,
                    "topology.kubernetes.io/region": "us-east-1",
                    "topology.kubernetes.io/zone": zone,
                    "eks.amazonaws.com/capacityType": capacity,
                },
            },
            "spec": {"providerID": f"aws:///{zone}/i-0fea4fd46592d050b"},
            "status": {"capacity": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"}},
        }
    )


def test_price_book_prices_from_live_prices_and_falls_back_to_the_catalog() -> None:
    catalog = load_bundled_catalog()
    book = PriceBook(catalog, live=LIVE.lookup)
    spot = book.price(_eks("g5.xlarge", "SPOT", "us-east-1c"))
    assert spot.hourly == Decimal("0.40")
    assert spot.source == f"live: {SPOT_API} us-east-1c (fetched 2026-12-01T05:00Z)"
    # not in the live prices: the bundled catalog, as without a feed
    fallback = book.price(_eks("g4dn.xlarge", "ON_DEMAND", "us-east-1a"))
    assert fallback.hourly == Decimal("0.526") and fallback.source.startswith("catalog: aws g4dn.xlarge")
    empty = PriceBook(catalog, live=LivePrices().lookup).price(_eks("g5.xlarge", "SPOT", "us-east-1c"))
    assert empty.source.startswith("catalog: aws g5.xlarge")
