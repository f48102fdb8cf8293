"""Lease-based leader election: client-go's rules, with a fence that stops the old leader
before anyone else can take over."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from costwarden.operator.leader import LeaderElector, LeaseSettings, Move, decide
from tests.leases import Leases


class Clock:
    def __init__(self) -> None:
        self.seconds = 0.0

    def monotonic(self) -> float:
        return self.seconds

    def wall(self) -> datetime:
        return datetime(2026, 12, 1, tzinfo=UTC) + timedelta(seconds=self.seconds)


def elector(leases: Leases, clock: Clock, identity: str) -> LeaderElector:
    settings = LeaseSettings(
        "costwarden", "ops", identity, lease_duration=15, renew_deadline=10, retry_period=2
    )
    return LeaderElector(leases, settings, clock=clock.wall, monotonic=clock.monotonic)


def test_decide():
    lease = {"spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}
    assert decide(None, "a", 0, 15) is Move.CREATE
    assert decide(lease, "a", 100, 15) is Move.RENEW
    assert decide(lease, "b", 14.9, 15) is Move.WAIT
    assert decide(lease, "b", 15, 15) is Move.TAKE
    assert decide({"spec": {"holderIdentity": ""}}, "b", 0, 15) is Move.TAKE


def test_settings_must_leave_a_fencing_margin():
    with pytest.raises(ValueError, match="renew deadline < lease duration"):
        LeaseSettings("x", "ns", "me", lease_duration=10, renew_deadline=10, retry_period=2)


async def test_one_leader_and_a_fenced_takeover():
    leases, clock = Leases(), Clock()
    a, b = elector(leases, clock, "a"), elector(leases, clock, "b")
    await a.try_once()
    await b.try_once()
    assert a.acting() and not b.acting()
    assert leases.stored is not None and leases.stored["spec"]["holderIdentity"] == "a"

    # a loses the API server; it keeps acting only until renew_deadline after its last renewal
    leases.reachable = False
    clock.seconds = 9.9
    assert a.acting()
    clock.seconds = 10.0
    assert not a.acting()

    # b saw a's last renewal at t=0; it may take over only at t >= 15, after a stopped acting
    leases.reachable = True
    clock.seconds = 14.0
    await b.try_once()
    assert not b.acting()
    clock.seconds = 15.0
    await b.try_once()
    assert b.acting()
    assert leases.stored["spec"]["holderIdentity"] == "b"
    assert leases.stored["spec"]["leaseTransitions"] == 1


async def test_renewals_keep_the_standby_waiting():
    leases, clock = Leases(), Clock()
    a, b = elector(leases, clock, "a"), elector(leases, clock, "b")
    for second in range(0, 60, 2):
        clock.seconds = float(second)
        await a.try_once()
        await b.try_once()
        assert a.acting() and not b.acting()


async def test_a_released_lease_is_taken_at_once():
    leases, clock = Leases(), Clock()
    a, b = elector(leases, clock, "a"), elector(leases, clock, "b")
    await a.try_once()
    await b.try_once()
    await a.stop()
    assert not a.acting()
    clock.seconds = 2.0
    await b.try_once()
    assert b.acting()


async def test_two_standbys_racing_for_an_expired_lease_produce_one_leader():
    leases, clock = Leases(), Clock()
    a, b, c = (elector(leases, clock, name) for name in "abc")
    await a.try_once()
    await b.try_once()
    await c.try_once()
    clock.seconds = 20.0
    stale = copy.deepcopy(leases.stored)

    async def read_stale(namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(stale)

    leases.read_lease = read_stale  # type: ignore[method-assign]  # both read before either writes
    await b.try_once()
    await c.try_once()
    assert [b.acting(), c.acting()].count(True) == 1
