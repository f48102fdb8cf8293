"""Budget periods on the UTC calendar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from costwarden.models import Period


def period_bounds(period: Period, now: datetime) -> tuple[datetime | None, datetime | None]:
    """``[start, end)`` of the period containing ``now`` (UTC); ``(None, None)`` for Lifetime.

    Daily is midnight to midnight, Weekly is the ISO week (Monday 00:00), Monthly is the 1st
    00:00 to the next 1st.
    """
    if period is Period.LIFETIME:
        return None, None
    utc = now.astimezone(UTC)
    midnight = utc.replace(hour=0, minute=0, second=0, microsecond=0)
    if period is Period.DAILY:
        return midnight, midnight + timedelta(days=1)
    if period is Period.WEEKLY:
        monday = midnight - timedelta(days=utc.weekday())
        return monday, monday + timedelta(days=7)
    first = midnight.replace(day=1)
    following = (
        first.replace(year=first.year + 1, month=1)
        if first.month == 12
        else first.replace(month=first.month + 1)
    )
    return first, following
