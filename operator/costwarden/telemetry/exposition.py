"""A ``/metrics`` page (Prometheus text exposition format) read into ``Series``.

Parsing is prometheus-client's (``prometheus_client.parser.text_string_to_metric_families``), the
reference Python parser of the format. Only the lines of the wanted metrics are handed to it: a
dcgm-exporter page carries dozens of fields per GPU and we read four, so filtering first keeps the
parse (pure Python, on the event loop's thread) short. A page that does not parse yields an error
string, never an exception.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families

from costwarden.telemetry.series import Series


def wanted_lines(text: str, names: Collection[str]) -> str:
    """The sample, ``# HELP`` and ``# TYPE`` lines of the metrics ``names``; nothing else."""
    kept: list[str] = []
    for line in text.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("#"):
            parts = stripped.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE") and parts[2] in names:
                kept.append(stripped)
            continue
        end = len(stripped)
        for stop in ("{", " ", "\t"):
            found = stripped.find(stop)
            if found != -1:
                end = min(end, found)
        if stripped[:end] in names:
            kept.append(stripped)
    return "\n".join(kept) + "\n" if kept else ""


def parse(text: str, names: Collection[str]) -> tuple[list[Series], str | None]:
    """The samples of the metrics ``names`` on a page, and why the page did not parse (or None)."""
    series: list[Series] = []
    try:
        for family in text_string_to_metric_families(wanted_lines(text, names)):
            for sample in family.samples:
                at = (
                    datetime.fromtimestamp(float(sample.timestamp), UTC)
                    if sample.timestamp is not None
                    else None
                )
                series.append(Series(sample.name, dict(sample.labels), sample.value, at))
    except Exception as exc:  # the parser raises ValueError, IndexError, ... on malformed pages
        return [], f"unparsable exposition: {type(exc).__name__}: {exc}"
    return series, None
