"""The AWS feed against real boto3 clients answered by botocore's Stubber (moto mocks neither the
Price List API nor a real spot history): the requests it makes, pagination, parsing, spot zones."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from botocore.stub import Stubber

from costwarden.pricefeeds.aws import AwsPriceFeed
from costwarden.pricefeeds.aws_parse import latest_spot_prices, on_demand_prices, product_filters
from costwarden.pricefeeds.model import FeedError, PriceWant
from tests.pricefeed_fakes import aws_product, stubbed

NOW = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)


def _products_params(instance_type: str, region: str, token: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {
        "ServiceCode": "AmazonEC2",
        "FormatVersion": "aws_v1",
        "Filters": [
            {"Type": "TERM_MATCH", "Field": "instanceType", "Value": instance_type},
            {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region},
            {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
            {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
            {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
            {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"},
        ],
    }
    if token:
        params["NextToken"] = token
    return params


def _spot(kind: str, zone: str, price: str, minutes_ago: int, product: str = "Linux/UNIX") -> dict[str, Any]:
    return {
        "AvailabilityZone": zone,
        "InstanceType": kind,
        "ProductDescription": product,
        "SpotPrice": price,
        "Timestamp": NOW - timedelta(minutes=minutes_ago),
    }


def _spot_params(kinds: list[str], token: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {
        "InstanceTypes": kinds,
        "ProductDescriptions": ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"],
        "StartTime": NOW,
    }
    if token:
        params["NextToken"] = token
    return params


def test_on_demand_follows_pages_and_reads_the_usd_hourly_price_exactly() -> None:
    pricing, stub = stubbed("pricing", "us-east-1")
    first = {"PriceList": [], "FormatVersion": "aws_v1", "NextToken": "page-2"}
    second = {
        "PriceList": [aws_product("p5.48xlarge", "us-east-1", "55.0400000000")],
        "FormatVersion": "aws_v1",
    }
    stub.add_response("get_products", first, _products_params("p5.48xlarge", "us-east-1"))
    stub.add_response("get_products", second, _products_params("p5.48xlarge", "us-east-1", "page-2"))
    feed = AwsPriceFeed(lambda: pricing, lambda region: pytest.fail("no spot want"))
    with stub:
        result = feed.fetch([PriceWant("aws", "us-east-1", "p5.48xlarge", "on-demand")], NOW)
        stub.assert_no_pending_responses()
    (price,) = result.prices
    assert (price.region, price.zone, price.instance_type, price.capacity_type) == (
        "us-east-1",
        None,
        "p5.48xlarge",
        "on-demand",
    )
    assert isinstance(price.hourly, Decimal) and price.hourly == Decimal("55.04")
    assert price.api == "aws pricing get_products"
    assert result.notes == ()


def test_spot_takes_the_newest_price_per_zone_and_follows_pages() -> None:
    ec2, stub = stubbed("ec2", "us-west-2")
    page1 = {
        "SpotPriceHistory": [
            _spot("g5.xlarge", "us-west-2a", "0.4100", 50),
            _spot("g5.xlarge", "us-west-2a", "0.4321", 5),
        ],
        "NextToken": "more",
    }
    page2 = {
        "SpotPriceHistory": [
            _spot("g5.xlarge", "us-west-2b", "0.3900", 120),
            _spot("g5.xlarge", "us-west-2a", "0.5000", 90),
            _spot("g5.xlarge", "us-west-2c", "0.4400", 10, "Linux/UNIX (Amazon VPC)"),
        ],
        "NextToken": "",
    }
    stub.add_response("describe_spot_price_history", page1, _spot_params(["g5.xlarge"]))
    stub.add_response("describe_spot_price_history", page2, _spot_params(["g5.xlarge"], "more"))
    regions: list[str] = []

    def make_ec2(region: str) -> Any:
        regions.append(region)
        return ec2

    feed = AwsPriceFeed(lambda: pytest.fail("no on-demand want"), make_ec2)
    with stub:
        result = feed.fetch([PriceWant("aws", "us-west-2", "g5.xlarge", "spot")], NOW)
        stub.assert_no_pending_responses()
    assert regions == ["us-west-2"]
    assert {(p.zone, p.hourly) for p in result.prices} == {
        ("us-west-2a", Decimal("0.4321")),
        ("us-west-2b", Decimal("0.3900")),
        ("us-west-2c", Decimal("0.4400")),
    }
    assert all(p.capacity_type == "spot" and p.region == "us-west-2" for p in result.prices)


def test_an_unknown_instance_type_is_a_note_not_a_price() -> None:
    pricing, stub = stubbed("pricing", "us-east-1")
    stub.add_response(
        "get_products",
        {"PriceList": [aws_product("g4dn.xlarge", "us-east-1", "0.5260000000")]},
        _products_params("g4dn.xlarge", "us-east-1"),
    )
    stub.add_response("get_products", {"PriceList": []}, _products_params("x99.mega", "us-east-1"))
    feed = AwsPriceFeed(lambda: pricing, lambda region: pytest.fail("no spot want"))
    wants = [
        PriceWant("aws", "us-east-1", "g4dn.xlarge", "on-demand"),
        PriceWant("aws", "us-east-1", "x99.mega", "on-demand"),
    ]
    with stub:
        result = feed.fetch(wants, NOW)
    assert [(p.instance_type, p.hourly) for p in result.prices] == [("g4dn.xlarge", Decimal("0.526"))]
    assert result.notes == ("us-east-1 x99.mega: on-demand Linux prices listed: none",)


def test_one_failing_request_is_a_note_all_failing_is_the_feeds_error() -> None:
    pricing, stub = stubbed("pricing", "us-east-1")
    stub.add_client_error(
        "get_products", "AccessDeniedException", "not authorized to perform pricing:GetProducts"
    )
    stub.add_response(
        "get_products",
        {"PriceList": [aws_product("g5.xlarge", "us-east-1", "1.0060000000")]},
        _products_params("g5.xlarge", "us-east-1"),
    )
    feed = AwsPriceFeed(lambda: pricing, lambda region: pytest.fail("no spot want"))
    wants = [
        PriceWant("aws", "us-east-1", "g4dn.xlarge", "on-demand"),
        PriceWant("aws", "us-east-1", "g5.xlarge", "on-demand"),
    ]
    with stub:
        result = feed.fetch(wants, NOW)
    assert [p.hourly for p in result.prices] == [Decimal("1.006")]
    assert any("AccessDeniedException" in note and "g4dn.xlarge" in note for note in result.notes)

    stub.add_client_error("get_products", "AccessDeniedException", "not authorized")
    with (
        stub,
        pytest.raises(
            FeedError, match=r"get_products us-east-1 g4dn.xlarge: AccessDeniedException: .*not authorized"
        ),
    ):
        feed.fetch(wants[:1], NOW)


def test_products_that_are_not_plain_on_demand_are_skipped() -> None:
    block = aws_product("p5.48xlarge", "us-east-1", "31.464", marketoption="CapacityBlock")
    plain = aws_product("p5.48xlarge", "us-east-1", "55.04")
    assert on_demand_prices([block, plain]) == {Decimal("55.04")}
    # two different on-demand prices for one query: ambiguous, none is taken (the feed notes it)
    assert on_demand_prices([plain, aws_product("p5.48xlarge", "us-east-1", "98.32")]) == {
        Decimal("55.04"),
        Decimal("98.32"),
    }
    zero = json.loads(plain)
    for offer in zero["terms"]["OnDemand"].values():
        for dimension in offer["priceDimensions"].values():
            dimension["pricePerUnit"]["USD"] = "0.0000000000"
    assert on_demand_prices([json.dumps(zero)]) == set()
    with pytest.raises(ValueError):
        on_demand_prices(["not json"])


def test_filters_name_the_instance_and_region() -> None:
    fields = {f["Field"]: f["Value"] for f in product_filters("g6.xlarge", "eu-west-1")}
    assert fields["instanceType"] == "g6.xlarge" and fields["regionCode"] == "eu-west-1"


def test_latest_spot_prices_skips_bad_records() -> None:
    records = [
        _spot("g5.xlarge", "us-east-1a", "not a number", 1),
        _spot("g5.xlarge", "us-east-1b", "0", 1),
        {"InstanceType": "g5.xlarge", "SpotPrice": "0.3"},
        _spot("g5.xlarge", "us-east-1c", "0.3", 1),
    ]
    assert latest_spot_prices(records) == {("g5.xlarge", "us-east-1c"): Decimal("0.3")}


def test_stubber_is_what_answers() -> None:
    """Guard for the tests above: a stubbed client with no queued answer raises, it never calls AWS."""
    pricing, stub = stubbed("pricing", "us-east-1")
    feed = AwsPriceFeed(lambda: pricing, lambda region: pytest.fail("no spot want"))
    assert isinstance(stub, Stubber)
    with stub, pytest.raises(FeedError, match="UnStubbedResponseError"):
        feed.fetch([PriceWant("aws", "us-east-1", "g5.xlarge", "on-demand")], NOW)
