"""A telemetry source never raises: a bug in one must not stop the operator's loop."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from costwarden.telemetry.samples import TelemetryReading

log = logging.getLogger(__name__)


async def never_raising(
    name: str, now: datetime, sample: Callable[[datetime], Awaitable[TelemetryReading]]
) -> TelemetryReading:
    """``sample(now)``, or an error reading (an outage of that source) when it raised."""
    try:
        return await sample(now)
    except Exception as exc:
        log.exception("%s: reading GPU usage failed", name)
        error = f"{name}: unexpected {type(exc).__name__}: {exc}"
        return TelemetryReading(source=name, at=now, pods={}, error=error)
