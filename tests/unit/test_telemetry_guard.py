"""A telemetry source that raises reads as an outage of that source, never an exception."""

from __future__ import annotations

from datetime import UTC, datetime

from costwarden.telemetry.guard import never_raising
from costwarden.telemetry.samples import TelemetryReading

NOW = datetime(2026, 12, 1, tzinfo=UTC)


async def test_a_source_that_raises_is_an_error_reading():
    async def broken(now: datetime) -> TelemetryReading:
        raise KeyError("labels")

    reading = await never_raising("prometheus http://p:9090", NOW, broken)
    assert (reading.pods, reading.at) == ({}, NOW)
    assert reading.error == "prometheus http://p:9090: unexpected KeyError: 'labels'"


async def test_a_working_source_is_passed_through():
    async def fine(now: datetime) -> TelemetryReading:
        return TelemetryReading(source="s", at=now, pods={})

    assert (await never_raising("s", NOW, fine)).error is None
