"""PriceFeeds.refresh: last good prices kept through a failure, stale prices dropped, a status
per feed, never raising; and feeds_from_names."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from costwarden.pricefeeds import (
    FAILED,
    NEVER,
    OK,
    FeedError,
    FeedPrice,
    FeedPrices,
    PriceFeeds,
    PriceWant,
    feeds_from_names,
)
from costwarden.pricing import NodeFacts

T0 = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)
HOUR = 3600.0
P5 = NodeFacts("aws", "us-east-1", "us-east-1a", "p5.48xlarge", "on-demand", 8, "H100")
NC = NodeFacts("azure", "eastus", None, "Standard_NC24ads_A100_v4", "on-demand", 1, "A100-80GB")


class ScriptedFeed:
    """Answers each fetch with the next scripted result (FeedPrices, or an exception to raise)."""

    def __init__(self, name: str, cloud: str, script: list[FeedPrices | Exception]) -> None:
        self.name, self.cloud = name, cloud
        self.script = script
        self.calls: list[tuple[tuple[PriceWant, ...], datetime]] = []

    def fetch(self, wants: Sequence[PriceWant], now: datetime) -> FeedPrices:
        self.calls.append((tuple(wants), now))
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


def _aws(hourly: str) -> FeedPrices:
    price = FeedPrice(
        "aws", "us-east-1", None, "p5.48xlarge", "on-demand", Decimal(hourly), "aws pricing get_products"
    )
    return FeedPrices((price,))


def _azure(hourly: str) -> FeedPrices:
    price = FeedPrice(
        "azure", "eastus", None, NC.instance_type or "", "on-demand", Decimal(hourly), "azure retail prices"
    )
    return FeedPrices((price,))


async def test_a_failing_feed_keeps_its_last_good_prices_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    aws = ScriptedFeed(
        "aws", "aws", [_aws("55.04"), FeedError("AccessDeniedException: no pricing:GetProducts")]
    )
    azure = ScriptedFeed("azure", "azure", [_azure("3.673"), _azure("3.5")])
    feeds = PriceFeeds([aws, azure], interval=HOUR)
    assert [s.state for s in feeds.statuses()] == [NEVER, NEVER]

    live = await feeds.refresh([P5, NC], T0)
    quote = live.lookup(P5)
    assert quote is not None and quote.hourly == Decimal("55.04")
    assert aws.calls == [((PriceWant("aws", "us-east-1", "p5.48xlarge", "on-demand"),), T0)]

    later = T0 + timedelta(hours=1)
    with caplog.at_level(logging.WARNING, logger="costwarden.pricefeeds.refresher"):
        live = await feeds.refresh([P5, NC], later)
    quote = live.lookup(P5)
    assert quote is not None and quote.hourly == Decimal("55.04")
    assert (
        quote.source == "aws pricing get_products us-east-1 (fetched 2026-12-01T05:00Z)"
    )  # when it was good
    nc = live.lookup(NC)
    assert nc is not None and nc.hourly == Decimal("3.5")

    aws_status, azure_status = feeds.statuses()
    assert (aws_status.state, aws_status.error) == (
        FAILED,
        "FeedError: AccessDeniedException: no pricing:GetProducts",
    )
    assert (aws_status.last_attempt, aws_status.last_success, aws_status.prices) == (later, T0, 1)
    assert (azure_status.state, azure_status.error, azure_status.last_success) == (OK, None, later)
    (record,) = caplog.records
    assert record.getMessage() == (
        "price feed aws failed: FeedError: AccessDeniedException: no pricing:GetProducts "
        "(keeping 1 last good price(s))"
    )


async def test_a_price_older_than_the_kept_intervals_is_dropped() -> None:
    aws = ScriptedFeed(
        "aws", "aws", [_aws("55.04"), RuntimeError("down"), RuntimeError("down"), RuntimeError("down")]
    )
    feeds = PriceFeeds([aws], interval=HOUR, keep_intervals=2)
    await feeds.refresh([P5], T0)
    live = await feeds.refresh([P5], T0 + timedelta(hours=2))  # exactly 2 intervals old: kept
    assert live.lookup(P5) is not None
    live = await feeds.refresh([P5], T0 + timedelta(hours=2, seconds=1))
    assert live.lookup(P5) is None and len(live) == 0
    assert feeds.statuses()[0].prices == 0
    assert feeds.live is live


async def test_unexpected_exceptions_and_bugs_never_escape_refresh() -> None:
    class Broken:
        name, cloud = "aws", "aws"

        def fetch(self, wants: Sequence[PriceWant], now: datetime) -> FeedPrices:
            raise KeyError("a bug")

    feeds = PriceFeeds([Broken()], interval=HOUR)
    live = await feeds.refresh([P5], T0)
    assert len(live) == 0
    assert feeds.statuses()[0].error == "KeyError: 'a bug'"


async def test_a_feed_without_nodes_of_its_cloud_is_not_called() -> None:
    gcp = ScriptedFeed("gcp", "gcp", [])
    feeds = PriceFeeds([gcp], interval=HOUR)
    await feeds.refresh([P5], T0)
    assert gcp.calls == [] and feeds.statuses()[0].state == NEVER


async def test_a_fetch_past_its_timeout_fails_and_is_not_started_twice() -> None:
    release = threading.Event()

    class Hanging:
        name, cloud = "aws", "aws"
        calls = 0

        def fetch(self, wants: Sequence[PriceWant], now: datetime) -> FeedPrices:
            Hanging.calls += 1
            release.wait(30)
            return _aws("1")

    feeds = PriceFeeds([Hanging()], interval=HOUR, fetch_timeout=0.05)
    try:
        await feeds.refresh([P5], T0)
        assert feeds.statuses()[0].error == "TimeoutError: no answer within 0.05s"
        await feeds.refresh([P5], T0 + timedelta(hours=1))
        assert "has not finished" in (feeds.statuses()[0].error or "")
        assert Hanging.calls == 1
    finally:
        release.set()


async def test_notes_are_kept_in_the_status() -> None:
    aws = ScriptedFeed(
        "aws", "aws", [FeedPrices((), ("us-east-1 p5.48xlarge: on-demand Linux prices listed: none",))]
    )
    feeds = PriceFeeds([aws], interval=HOUR)
    await feeds.refresh([P5], T0)
    assert feeds.statuses()[0].notes == ("us-east-1 p5.48xlarge: on-demand Linux prices listed: none",)


def test_feeds_from_names() -> None:
    feeds = feeds_from_names(
        ["azure", "AWS", "gcp", "aws"], aws_pricing=lambda: None, aws_ec2=lambda region: None
    )
    assert [feed.name for feed in feeds] == ["azure", "aws", "gcp"]
    assert feeds_from_names(()) == ()
    with pytest.raises(ValueError, match="unknown price feed 'ibm'"):
        feeds_from_names(["ibm"])
    made = PriceFeeds.from_names(["azure"], HOUR, azure_base_url="http://127.0.0.1:9/api/retail/prices")
    assert [s.name for s in made.statuses()] == ["azure"]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        PriceFeeds([], interval=0)
