from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from costwarden.engine.ledger import PodAccrual
from costwarden.operator.throttle import TokenBucket, WritePolicy, priority, status_due, write_reason
from costwarden.records import PodSpendMark

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
POLICY = WritePolicy(interval_seconds=60, rate_change=Decimal("0.01"))


def mark(spend: str, rate: str, seconds: float = 0) -> PodSpendMark:
    return PodSpendMark(Decimal(spend), Decimal(rate), T0 + timedelta(seconds=seconds))


def accrual(spend: str, rate: str, seconds: float) -> PodAccrual:
    return PodAccrual(Decimal(spend), Decimal(rate), T0 + timedelta(seconds=seconds))


@pytest.mark.parametrize(
    ("written", "current", "budgets_written", "budgets_now", "expected"),
    [
        (None, accrual("1", "55.04", 0), None, "b", "first"),
        (mark("1", "55.04"), accrual("1.1", "55.04", 5), "a", "a,b", "budgets"),
        (mark("1", "55.04"), accrual("1.1", "110.08", 5), "a", "a", "rate"),
        (mark("1", "55.04"), accrual("1.1", "55.05", 5), "a", "a", None),  # within 1 %
        (mark("1", "55.04"), accrual("1.5", "55.04", 30), "a", "a", None),
        (mark("1", "55.04"), accrual("1.9", "55.04", 60), "a", "a", "interval"),
        (mark("2", "0"), accrual("2", "0", 3600), "a", "a", None),  # finished pod: nothing new
        (mark("1", "0"), accrual("1", "3", 1), None, "", "rate"),  # a pod that started running
    ],
)
def test_write_reason(written, current, budgets_written, budgets_now, expected):
    assert write_reason(POLICY, written, current, budgets_written, budgets_now) == expected


def test_token_bucket_limits_bursts_and_refills():
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.4) is False  # 0.8 of a token
    assert bucket.take(0.5) is True
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]  # capped at burst


def test_token_bucket_rejects_nonsense():
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(rate=0, burst=1, now=0)


def test_priority_puts_new_figures_then_stalest_first():
    now = T0 + timedelta(seconds=600)
    items = [
        ("interval", mark("1", "1", 500)),
        ("interval", mark("1", "1", 100)),
        ("first", None),
        ("rate", mark("1", "1", 590)),
    ]
    ordered = sorted(items, key=lambda item: priority(item[0], item[1], now))
    assert [reason for reason, _ in ordered] == ["first", "rate", "interval", "interval"]
    assert ordered[2][1].at == T0 + timedelta(seconds=100)


STATUS = {
    "phase": "Ok",
    "spend": 10.0,
    "hourlyRate": 55.04,
    "pods": 1,
    "gpus": 8,
    "actions": [],
    "conditions": [],
    "ledger": {"pods": {"uid-a": {"spend": "10"}}, "idleSince": {}},
}


@pytest.mark.parametrize(
    ("change", "seconds", "expected"),
    [
        ({"spend": 11.0}, 3, False),  # only the spend moved: wait for the interval
        ({"spend": 11.0}, 10, True),
        ({"phase": "Warning"}, 1, True),
        ({"actions": [{"id": "threshold/80/lifetime"}]}, 1, True),
        ({"hourlyRate": 110.08}, 1, True),
        ({"ledger": {"pods": {"uid-a": {}, "uid-b": {}}, "idleSince": {}}}, 1, True),
        ({"ledger": {"pods": {"uid-a": {"spend": "12"}}, "idleSince": {}}}, 1, False),
        ({"ledger": {"pods": {"uid-a": {}, "uid-gone": None}, "idleSince": {}}}, 1, False),  # null = removed
    ],
)
def test_status_due(change, seconds, expected):
    assert status_due(STATUS, {**STATUS, **change}, seconds, interval=10) is expected


def test_a_first_status_is_always_due():
    assert status_due({}, STATUS, 0, interval=10) is True
