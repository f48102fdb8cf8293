"""PriceFeeds: runs the feeds, keeps each one's last good prices, and never raises."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from costwarden.pricefeeds.errors import one_line
from costwarden.pricefeeds.factory import feeds_from_names
from costwarden.pricefeeds.live import DatedPrice, LivePrices
from costwarden.pricefeeds.model import FeedPrice, FeedPrices, PriceFeed, PriceWant, wants_for
from costwarden.pricing import NodeFacts

log = logging.getLogger(__name__)

NEVER, OK, FAILED = "never", "ok", "failed"
_PriceKey = tuple[str, str, str | None, str, str]


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """One feed's state, for a metric and a log line: errors are data here."""

    name: str
    state: str  # never (not run yet: no node of its cloud) | ok | failed (the last refresh)
    error: str | None  # the last refresh's error, one line
    last_attempt: datetime | None
    last_success: datetime | None
    prices: int  # live prices held for it now (stale ones dropped)
    notes: tuple[str, ...] = ()  # the last good fetch's wants without a price, and why


class PriceFeeds:
    """Live prices from the configured feeds, refreshed by the operator's shell.

    Each ``refresh`` asks every feed, in a worker thread (``asyncio.to_thread``), for the prices
    the given nodes need, and returns an immutable ``LivePrices``. A feed that fails keeps its
    last good prices (one warning line names the feed and the error); a price fetched more than
    ``keep_intervals`` x ``interval`` seconds ago is dropped, so the bundled catalog prices that
    node again. ``refresh`` never raises; ``statuses()`` says how each feed is doing.

    Usage (the operator's price loop)::

        feeds = PriceFeeds.from_names(settings.price_feeds, settings.price_feed_interval)
        while True:
            facts = [classify_node(node, catalog) for node in nodes]
            live = await feeds.refresh(facts, datetime.now(UTC))
            book = book.with_feeds(live.lookup, factors)  # PriceBook(catalog, live=live.lookup)
            for status in feeds.statuses():
                ...  # e.g. a gauge per status.name: status.state == "ok", status.last_success
            await asyncio.sleep(settings.price_feed_interval)
    """

    def __init__(
        self,
        feeds: Sequence[PriceFeed],
        interval: float,
        keep_intervals: int = 3,
        fetch_timeout: float | None = None,
    ) -> None:
        if interval <= 0 or keep_intervals < 1:
            raise ValueError("interval must be > 0 and keep_intervals >= 1")
        self._feeds = tuple(feeds)
        self._max_age = timedelta(seconds=interval * keep_intervals)
        self._fetch_timeout = fetch_timeout if fetch_timeout is not None else interval
        self._held: dict[str, dict[_PriceKey, DatedPrice]] = {feed.name: {} for feed in self._feeds}
        self._status = {feed.name: FeedStatus(feed.name, NEVER, None, None, None, 0) for feed in self._feeds}
        self._running: dict[str, asyncio.Future[FeedPrices]] = {}
        self._live = LivePrices()

    @classmethod
    def from_names(cls, names: Iterable[str], interval: float, **clients: Any) -> PriceFeeds:
        """From ``--price-feed`` names and ``--price-feed-interval``; ``clients`` as in
        ``feeds_from_names`` (tests inject fakes; the operator passes none)."""
        return cls(feeds_from_names(names, **clients), interval)

    @property
    def live(self) -> LivePrices:
        """The prices of the last refresh."""
        return self._live

    def statuses(self) -> tuple[FeedStatus, ...]:
        return tuple(self._status[feed.name] for feed in self._feeds)

    async def refresh(self, facts: Iterable[NodeFacts], now: datetime) -> LivePrices:
        """Fetch what these nodes need from every feed (concurrently); return all live prices."""
        now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
        wants = wants_for(facts)
        await asyncio.gather(
            *(
                self._refresh_one(feed, [w for w in wants if w.cloud == feed.cloud], now)
                for feed in self._feeds
                if any(w.cloud == feed.cloud for w in wants)
            )
        )
        for feed in self._feeds:
            held = self._held[feed.name]
            for key in [k for k, entry in held.items() if now - entry.fetched_at > self._max_age]:
                del held[key]
            status = self._status[feed.name]
            self._status[feed.name] = replace(status, prices=len(held))
        self._live = LivePrices(entry for feed in self._feeds for entry in self._held[feed.name].values())
        return self._live

    async def _refresh_one(self, feed: PriceFeed, wants: list[PriceWant], now: datetime) -> None:
        status = self._status[feed.name]
        try:
            result = await self._fetch(feed, wants, now)
        except Exception as exc:  # any failure of the feed is data: its status and one log line
            error = one_line(exc)
            held = len(self._held[feed.name])
            log.warning("price feed %s failed: %s (keeping %d last good price(s))", feed.name, error, held)
            self._status[feed.name] = replace(status, state=FAILED, error=error, last_attempt=now)
            return
        held_prices = self._held[feed.name]
        for price in result.prices:
            held_prices[_price_key(price)] = DatedPrice(price, now)
        if result.notes:
            log.info(
                "price feed %s: %d price(s); not priced: %s", feed.name, len(result.prices), result.notes
            )
        self._status[feed.name] = FeedStatus(
            feed.name, OK, None, now, now, len(held_prices), tuple(result.notes)
        )

    async def _fetch(self, feed: PriceFeed, wants: list[PriceWant], now: datetime) -> FeedPrices:
        """``feed.fetch`` in a thread; a fetch past ``fetch_timeout`` is failed (its thread runs
        on, and the next refresh skips the feed until that thread is done)."""
        running = self._running.get(feed.name)
        if running is not None and not running.done():
            raise TimeoutError(f"the fetch started earlier has not finished after {self._fetch_timeout}s")
        task = asyncio.ensure_future(asyncio.to_thread(feed.fetch, wants, now))
        task.add_done_callback(_consume)
        self._running[feed.name] = task
        try:
            return await asyncio.wait_for(asyncio.shield(task), self._fetch_timeout)
        except TimeoutError:
            raise TimeoutError(f"no answer within {self._fetch_timeout}s") from None


def _price_key(price: FeedPrice) -> _PriceKey:
    return (price.cloud, price.region.lower(), price.zone, price.instance_type.lower(), price.capacity_type)


def _consume(task: asyncio.Future[FeedPrices]) -> None:
    """Retrieve a timed-out fetch's outcome, so asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()
