"""accrue: continue from memory, else from the pod's mark, else from its start; marks round-trip."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from costwarden.engine.ledger import PodAccrual, accrue, mark_annotations, spend_mark
from costwarden.engine.money import cost_between
from costwarden.records import (
    ANNOTATION_RATE,
    ANNOTATION_SPEND_AT,
    PodRecord,
    PodSpendMark,
    format_time,
)

T0 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


BASE = PodRecord(
    namespace="research",
    name="llama-sweep-2ea4-head",
    uid="uid-1",
    node_name="node-a",
    phase="Running",
    gpus=8,
    created=T0 - timedelta(minutes=1),
    started=T0,
)


def running(**overrides: Any) -> PodRecord:
    return replace(BASE, **overrides)


@pytest.mark.parametrize(
    ("pod", "rate", "now", "previous", "spend", "next_rate", "at"),
    [
        pytest.param(
            running(),
            Decimal(10),
            T0 + 2 * HOUR,
            None,
            Decimal(20),
            Decimal(10),
            T0 + 2 * HOUR,
            id="never-seen-accrues-since-start",
        ),
        pytest.param(
            running(started=None),
            Decimal(10),
            T0 + 2 * HOUR,
            None,
            Decimal("20.166666667"),
            Decimal(10),
            T0 + 2 * HOUR,
            id="no-start-time-uses-creation",
        ),
        pytest.param(
            running(started=None, created=None),
            Decimal(10),
            T0,
            None,
            Decimal(0),
            Decimal(10),
            T0,
            id="no-times-at-all-starts-at-zero",
        ),
        pytest.param(
            running(),
            Decimal(99),
            T0 + 3 * HOUR,
            PodAccrual(Decimal(5), Decimal(10), T0 + HOUR),
            Decimal(25),
            Decimal(99),
            T0 + 3 * HOUR,
            id="previous-rate-until-now-new-rate-after",
        ),
        pytest.param(
            running(spend_mark=PodSpendMark(Decimal(7), Decimal(4), T0 + HOUR)),
            Decimal(50),
            T0 + 4 * HOUR,
            None,
            Decimal(19),
            Decimal(50),
            T0 + 4 * HOUR,
            id="resume-from-mark-at-the-marks-rate",
        ),
        pytest.param(
            running(phase="Succeeded", finished=T0 + 2 * HOUR),
            Decimal(0),
            T0 + 5 * HOUR,
            PodAccrual(Decimal(10), Decimal(10), T0 + HOUR),
            Decimal(20),
            Decimal(0),
            T0 + 5 * HOUR,
            id="terminal-stops-at-finish",
        ),
        pytest.param(
            running(phase="Failed", finished=T0 + HOUR / 2),
            Decimal(0),
            T0 + 5 * HOUR,
            PodAccrual(Decimal(10), Decimal(10), T0 + HOUR),
            Decimal(10),
            Decimal(0),
            T0 + 5 * HOUR,
            id="finished-before-last-figure-adds-nothing",
        ),
        pytest.param(
            running(phase="Succeeded", finished=None),
            Decimal(0),
            T0 + 2 * HOUR,
            PodAccrual(Decimal(10), Decimal(10), T0 + HOUR),
            Decimal(20),
            Decimal(0),
            T0 + 2 * HOUR,
            id="terminal-without-finish-time-charges-to-now-once",
        ),
        pytest.param(
            running(),
            Decimal(10),
            T0 + HOUR,
            PodAccrual(Decimal(30), Decimal(10), T0 + 3 * HOUR),
            Decimal(30),
            Decimal(10),
            T0 + 3 * HOUR,
            id="clock-backwards-keeps-spend-and-later-time",
        ),
        pytest.param(
            running(),
            Decimal(-3),
            T0 + HOUR,
            None,
            Decimal(0),
            Decimal(0),
            T0 + HOUR,
            id="negative-rate-is-zero",
        ),
    ],
)
def test_accrue(
    pod: PodRecord,
    rate: Decimal,
    now: datetime,
    previous: PodAccrual | None,
    spend: Decimal,
    next_rate: Decimal,
    at: datetime,
) -> None:
    result = accrue(pod, rate, now, previous)
    assert (result.spend, result.rate, result.at) == (spend, next_rate, at)


def test_previous_wins_over_mark() -> None:
    pod = running(spend_mark=PodSpendMark(Decimal(1000), Decimal(1000), T0))
    result = accrue(pod, Decimal(1), T0 + HOUR, PodAccrual(Decimal(2), Decimal(1), T0))
    assert result.spend == Decimal(3)


def test_mark_in_the_future_is_not_charged_twice() -> None:
    pod = running(spend_mark=PodSpendMark(Decimal(7), Decimal(4), T0 + 2 * HOUR))
    first = accrue(pod, Decimal(4), T0 + HOUR, None)
    assert (first.spend, first.at) == (Decimal(7), T0 + 2 * HOUR)
    assert accrue(pod, Decimal(4), T0 + 3 * HOUR, first).spend == Decimal(11)


def test_charges_are_within_a_nanodollar_of_exact() -> None:
    rate = Decimal("0.004237") * Decimal("15.625") + Decimal("6.4") * 8
    end = T0 + timedelta(hours=7, seconds=13, microseconds=123457)
    exact = Fraction(rate) * Fraction(7 * 3600_000_000 + 13_123_457, 3600_000_000)
    assert abs(Fraction(cost_between(rate, T0, end)) - exact) <= Fraction(1, 10**9)


def test_mark_annotations_resume_exactly_even_with_sub_second_times() -> None:
    pod = running(started=T0 + timedelta(microseconds=250_000))
    rate = Decimal("55.04")
    t1 = T0 + timedelta(hours=1, seconds=7, microseconds=999_999)
    t2 = T0 + timedelta(hours=5, microseconds=3)
    before = accrue(pod, rate, t1, None)
    continuous = accrue(pod, rate, t2, before)
    annotations = mark_annotations(before)
    assert annotations[ANNOTATION_SPEND_AT] == format_time(t1)
    assert annotations[ANNOTATION_RATE] == "55.04"
    body = {
        "metadata": {"namespace": "research", "name": pod.name, "uid": pod.uid, "annotations": annotations},
        "spec": {"nodeName": "node-a"},
        "status": {"phase": "Running", "startTime": format_time(pod.started or T0)},
    }
    restarted = PodRecord.from_body(body)
    assert restarted.spend_mark == spend_mark(before)
    assert accrue(restarted, rate, t2, None).spend == continuous.spend


def test_spend_mark_of_a_whole_second_figure_is_the_figure() -> None:
    accrual = PodAccrual(Decimal("12.5"), Decimal(3), T0)
    assert spend_mark(accrual) == PodSpendMark(Decimal("12.5"), Decimal(3), T0)
