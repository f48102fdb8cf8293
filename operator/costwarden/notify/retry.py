"""Retrying one delivery: deterministic exponential backoff that honours ``Retry-After``.

Delays carry no jitter, so a test (or an operator reading the log) can predict them exactly;
the notifications of one budget are few, so there is no thundering herd to spread out.
slack-sdk's own ``AsyncRateLimitErrorRetryHandler`` is not used: it sleeps through
``asyncio.sleep`` directly (the wait could not be injected) and adds a random second.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

RETRY_AFTER_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class Outcome:
    """The result of one attempt; ``status`` is None when no HTTP answer came (connect, timeout)."""

    ok: bool
    status: int | None = None
    retry_after: float | None = None  # seconds, from the answer's Retry-After header
    error: str | None = None
    final: bool = False  # a failure that no retry can change (a malformed URL, a missing channel)

    @property
    def retryable(self) -> bool:
        """Transport failures, 429 and 5xx may pass; any other answer will be the same next time."""
        if self.ok or self.final:
            return False
        return self.status is None or self.status == 429 or self.status >= 500


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` tries in all; after failed try n it waits ``base_delay * factor ** (n - 1)``
    seconds, at most ``max_delay``.

    A ``Retry-After`` on 429/503 replaces the computed wait (still capped at ``max_delay``, so one
    misbehaving receiver cannot hold an enforcement step for an hour).
    """

    max_attempts: int = 4
    base_delay: float = 1.0
    factor: float = 2.0
    max_delay: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1")

    def delay(self, attempt: int, outcome: Outcome) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        if outcome.retry_after is not None and outcome.status in RETRY_AFTER_STATUSES:
            wanted = outcome.retry_after
        else:
            wanted = self.base_delay * self.factor ** (attempt - 1)
        return max(0.0, min(wanted, self.max_delay))


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


async def with_retries(
    attempt: Callable[[], Awaitable[Outcome]],
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]],
) -> tuple[Outcome, int]:
    """Run ``attempt`` until it succeeds, fails for good, or the policy's tries are used up.

    Returns the last outcome and the number of tries made.
    """
    tries = 0
    while True:
        tries += 1
        outcome = await attempt()
        if outcome.ok or not outcome.retryable or tries >= policy.max_attempts:
            return outcome, tries
        await sleep(policy.delay(tries, outcome))
