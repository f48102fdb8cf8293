"""When a budget runs out at the current burn rate."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from costwarden.engine.money import HOUR_MICROS, MONEY_CONTEXT


def exhausts_at(
    spend: Decimal, limit: Decimal, hourly_rate: Decimal, now: datetime, period_end: datetime | None
) -> datetime | None:
    """The moment ``spend`` reaches ``limit`` at ``hourly_rate``.

    ``now`` when the limit is already reached (whatever the rate); None when nothing is being
    spent, when the period resets first (exhaustion at or after ``period_end``), or when the
    moment is beyond what a datetime can hold.
    """
    if spend >= limit:
        return now
    if hourly_rate <= 0:
        return None
    ctx = MONEY_CONTEXT
    micros = ctx.divide(ctx.multiply(ctx.subtract(limit, spend), HOUR_MICROS), hourly_rate)
    try:
        moment = now + timedelta(microseconds=int(micros))
    except OverflowError:
        return None
    if period_end is not None and moment >= period_end:
        return None
    return moment
