"""An accelerated clock: simulated time runs ``speed`` times faster than the wall clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta


class AcceleratedClock:
    """``now = start + speed * (wall seconds since creation)``; safe to call from any thread.

    The operator, the stand-in cluster and the demo all read the same instance, so creation
    timestamps, spend figures and the scenario's timeline agree.
    """

    def __init__(
        self, start: datetime, speed: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.start = start
        self.speed = speed
        self._monotonic = monotonic
        self._origin = monotonic()

    def __call__(self) -> datetime:
        return self.start + self.elapsed()

    def elapsed(self) -> timedelta:
        """Simulated time since ``start``."""
        return timedelta(seconds=(self._monotonic() - self._origin) * self.speed)

    def hours(self, moment: datetime | None = None) -> float:
        """Simulated hours from ``start`` to ``moment`` (default: now), for charts and views."""
        if moment is None:
            return self.elapsed().total_seconds() / 3600
        return (moment - self.start).total_seconds() / 3600

    def wall_seconds(self, simulated: timedelta) -> float:
        """How many wall seconds ``simulated`` takes at this speed."""
        return simulated.total_seconds() / self.speed
