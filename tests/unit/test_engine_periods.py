"""UTC calendar periods and the exhaustion forecast."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from costwarden.engine.forecast import exhausts_at
from costwarden.engine.periods import period_bounds
from costwarden.models import Period


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("period", "now", "start", "end"),
    [
        pytest.param(Period.LIFETIME, utc(2026, 11, 3, 10), None, None, id="lifetime"),
        pytest.param(Period.DAILY, utc(2026, 11, 3, 10, 5), utc(2026, 11, 3), utc(2026, 11, 4), id="daily"),
        pytest.param(
            Period.DAILY, utc(2026, 11, 3), utc(2026, 11, 3), utc(2026, 11, 4), id="daily-at-midnight"
        ),
        pytest.param(
            Period.DAILY,
            utc(2026, 11, 3, 23, 59, 59, 999999),
            utc(2026, 11, 3),
            utc(2026, 11, 4),
            id="daily-last-microsecond",
        ),
        pytest.param(
            Period.DAILY,
            datetime(2026, 11, 3, 23, 30, tzinfo=timezone(timedelta(hours=-5))),
            utc(2026, 11, 4),
            utc(2026, 11, 5),
            id="daily-is-utc-whatever-the-offset",
        ),
        pytest.param(
            Period.WEEKLY, utc(2026, 11, 8, 23, 59), utc(2026, 11, 2), utc(2026, 11, 9), id="weekly-on-sunday"
        ),
        pytest.param(
            Period.WEEKLY, utc(2026, 11, 9, 0, 0), utc(2026, 11, 9), utc(2026, 11, 16), id="weekly-on-monday"
        ),
        pytest.param(
            Period.WEEKLY,
            utc(2026, 12, 31, 12),
            utc(2026, 12, 28),
            utc(2027, 1, 4),
            id="weekly-across-the-year",
        ),
        pytest.param(
            Period.MONTHLY, utc(2026, 12, 31, 23, 59), utc(2026, 12, 1), utc(2027, 1, 1), id="monthly-dec-31"
        ),
        pytest.param(
            Period.MONTHLY, utc(2028, 2, 29, 12), utc(2028, 2, 1), utc(2028, 3, 1), id="monthly-leap-february"
        ),
        pytest.param(
            Period.MONTHLY, utc(2026, 1, 1), utc(2026, 1, 1), utc(2026, 2, 1), id="monthly-on-the-first"
        ),
    ],
)
def test_period_bounds(period: Period, now: datetime, start: datetime | None, end: datetime | None) -> None:
    assert period_bounds(period, now) == (start, end)


NOW = utc(2026, 11, 3, 10)


@pytest.mark.parametrize(
    ("spend", "limit", "rate", "period_end", "expected"),
    [
        pytest.param("100", "500", "40", None, NOW + timedelta(hours=10), id="at-the-current-rate"),
        pytest.param("0", "1", "3", None, NOW + timedelta(minutes=20), id="fraction-of-an-hour"),
        pytest.param("100", "500", "0", None, None, id="nothing-burning"),
        pytest.param("100", "500", "-1", None, None, id="negative-rate"),
        pytest.param("500", "500", "0", None, NOW, id="already-reached"),
        pytest.param("700", "500", "40", utc(2026, 11, 4), NOW, id="already-over"),
        pytest.param("100", "500", "40", utc(2026, 11, 3, 20), None, id="period-resets-exactly-then"),
        pytest.param(
            "100", "500", "40", utc(2026, 11, 3, 20, 0, 1), NOW + timedelta(hours=10), id="just-in-time"
        ),
        pytest.param("0", "1000000", "0.000000001", None, None, id="beyond-the-calendar"),
    ],
)
def test_exhausts_at(
    spend: str, limit: str, rate: str, period_end: datetime | None, expected: datetime | None
) -> None:
    assert exhausts_at(Decimal(spend), Decimal(limit), Decimal(rate), NOW, period_end) == expected
