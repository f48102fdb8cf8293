"""Deciding when a pod's spend annotations are worth a PATCH (pure; time is passed in).

A 10,000-pod cluster must not be flooded: each pod is written when something a reader needs
changed (first figure, budgets, rate), otherwise at most every ``interval`` seconds, and all
writes draw from one token bucket.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from costwarden.engine.ledger import PodAccrual
from costwarden.models import idle_set_key, pod_set_key
from costwarden.records import PodSpendMark


@dataclass(frozen=True, slots=True)
class WritePolicy:
    interval_seconds: float = 60.0
    rate_change: Decimal = Decimal("0.01")


def write_reason(
    policy: WritePolicy,
    written: PodSpendMark | None,
    current: PodAccrual,
    budgets_written: str | None,
    budgets_now: str,
) -> str | None:
    """Why this pod's annotations should be written now, or None if they can wait."""
    if written is None:
        return "first"
    if (budgets_written or "") != budgets_now:
        return "budgets"
    if _rate_changed(written.rate, current.rate, policy.rate_change):
        return "rate"
    if current.spend == written.spend:
        return None
    if (current.at - written.at).total_seconds() >= policy.interval_seconds:
        return "interval"
    return None


def _rate_changed(before: Decimal, after: Decimal, tolerance: Decimal) -> bool:
    if before == after:
        return False
    if before == 0 or after == 0:
        return True
    return abs(after - before) / before > tolerance


class TokenBucket:
    """A classic token bucket; ``now`` is seconds on any monotonic clock, passed in."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("token bucket rate and burst must be positive")
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = now

    def take(self, now: float) -> bool:
        self._tokens = min(self._burst, self._tokens + max(0.0, now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def priority(reason: str, written: PodSpendMark | None, now: datetime) -> tuple[int, float]:
    """Order pending writes: new figures and budget/rate changes first, then the stalest."""
    rank = {"first": 0, "budgets": 1, "rate": 1, "interval": 2}.get(reason, 3)
    age = (now - written.at).total_seconds() if written else float("inf")
    return (rank, -age)


_MEANINGFUL = ("phase", "actions", "conditions", "hourlyRate", "pods", "gpus", "observedGeneration")


def status_due(
    old: Mapping[str, Any], new: Mapping[str, Any], seconds_since_write: float, interval: float
) -> bool:
    """Whether a budget's status is worth a PATCH now.

    Anything a reader acts on (phase, actions, conditions, the rate, which pods are in the
    ledger, which are idle) is written at once; the steadily rising figures at most every
    ``interval`` seconds, so a short evaluation interval (fast enforcement) does not mean a
    write per pass. Which pods the ledger holds, and which are idle, are compared by
    ``pod_set_key`` and ``idle_set_key``, in the packed form or the map that earlier releases
    stored, without unpacking either.
    """
    if seconds_since_write >= interval:
        return True
    if any(old.get(key) != new.get(key) for key in _MEANINGFUL):
        return True
    old_ledger, new_ledger = old.get("ledger") or {}, new.get("ledger") or {}
    if pod_set_key(old_ledger) != pod_set_key(new_ledger):
        return True
    return idle_set_key(old_ledger) != idle_set_key(new_ledger)
