"""GPU usage per pod scraped straight from ``/metrics`` endpoints: NVIDIA dcgm-exporter pods, or
costwarden's node agents, without a Prometheus server in between.

The endpoints come from a ``targets()`` callable, called on every reading (the operator builds it
with ``targets.exporter_targets`` over its pod index, so exporters that come and go are followed).
All targets are fetched concurrently, each under the timeout; each page is read with
``exposition.parse`` and turned into samples by ``parse`` (``dcgm.gpu_samples`` or
``agent_metrics.gpu_samples``). A target that fails (refused, timed out, non-200, unparsable) is
named in the reading's ``error`` while the others still count; with no target at all, the error
says so. Nothing raises.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterable
from datetime import datetime

import aiohttp

from costwarden.telemetry import agent_metrics, dcgm, exposition
from costwarden.telemetry.bounded import TooLarge, read_bounded
from costwarden.telemetry.guard import never_raising
from costwarden.telemetry.samples import GpuSample, TelemetryReading, pod_usage
from costwarden.telemetry.series import Parsed, Series

log = logging.getLogger(__name__)

Parse = Callable[[Iterable[Series], datetime], Parsed]
ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1"
"""Ask for the text format (prometheus-client's exporters also speak OpenMetrics)."""
MAX_PAGE_BYTES = 16 * 1024 * 1024
ERRORS_NAMED = 5
"""At most this many failed targets are named in an error; the rest are counted."""


class TargetError(Exception):
    """Why one target gave no page."""


class ScrapeSource:
    """A ``GpuUsageSource`` that scrapes ``targets()`` and reads them with ``parse``."""

    def __init__(
        self,
        name: str,
        targets: Callable[[], Iterable[str]],
        parse: Parse,
        metrics: Collection[str],
        *,
        timeout_s: float = 5.0,
        concurrency: int = 32,
        max_page_bytes: int = MAX_PAGE_BYTES,
    ) -> None:
        self.name = name
        self._targets = targets
        self._parse = parse
        self._metrics = frozenset(metrics)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._concurrency = concurrency
        self._max_bytes = max_page_bytes

    @classmethod
    def dcgm_exporters(
        cls,
        targets: Callable[[], Iterable[str]],
        selector: str,
        *,
        timeout_s: float = 5.0,
        max_page_bytes: int = MAX_PAGE_BYTES,
    ) -> ScrapeSource:
        """dcgm-exporter pods (``selector`` names them in readings and errors)."""
        name = f"dcgm-exporter pods {selector}"
        return cls(
            name, targets, dcgm.gpu_samples, dcgm.METRICS, timeout_s=timeout_s, max_page_bytes=max_page_bytes
        )

    @classmethod
    def agents(
        cls, targets: Callable[[], Iterable[str]], selector: str, *, timeout_s: float = 5.0
    ) -> ScrapeSource:
        """costwarden's node agents (``selector`` names them in readings and errors)."""
        name = f"costwarden agents {selector}"
        return cls(name, targets, agent_metrics.gpu_samples, agent_metrics.METRICS, timeout_s=timeout_s)

    async def sample(self, now: datetime) -> TelemetryReading:
        return await never_raising(self.name, now, self._sample)

    async def _sample(self, now: datetime) -> TelemetryReading:
        try:
            urls = sorted(set(self._targets()))
        except Exception as exc:
            error = f"{self.name}: cannot list targets: {type(exc).__name__}: {exc}"
            return TelemetryReading(source=self.name, at=now, pods={}, error=error)
        if not urls:
            return TelemetryReading(source=self.name, at=now, pods={}, error=f"{self.name}: no targets")
        connector = aiohttp.TCPConnector(limit=self._concurrency)
        async with aiohttp.ClientSession(
            timeout=self._timeout, connector=connector, headers={"Accept": ACCEPT}
        ) as session:
            pages = await asyncio.gather(*(self._fetch(session, url) for url in urls))
        samples: list[GpuSample] = []
        skipped: dict[str, int] = {}
        failures: list[str] = []
        for url, page in zip(urls, pages, strict=True):
            if isinstance(page, TargetError):
                failures.append(f"{url}: {page}")
                continue
            series, unparsable = exposition.parse(page, self._metrics)
            if unparsable is not None:
                failures.append(f"{url}: {unparsable}")
                continue
            parsed = self._parse(series, now)
            samples.extend(parsed.samples)
            for reason, count in parsed.skipped.items():
                skipped[reason] = skipped.get(reason, 0) + count
        return TelemetryReading(
            source=self.name,
            at=now,
            pods=pod_usage(samples),
            error=self._failed(failures, len(urls)),
            skipped=dict(sorted(skipped.items())),
        )

    def _failed(self, failures: list[str], total: int) -> str | None:
        if not failures:
            return None
        named = "; ".join(failures[:ERRORS_NAMED])
        more = f"; and {len(failures) - ERRORS_NAMED} more" if len(failures) > ERRORS_NAMED else ""
        return f"{self.name}: {len(failures)} of {total} targets failed: {named}{more}"

    async def _fetch(self, session: aiohttp.ClientSession, url: str) -> str | TargetError:
        try:
            async with session.get(url) as response:
                if response.status != 200:
                    return TargetError(f"HTTP {response.status}")
                try:
                    body = await read_bounded(response, self._max_bytes)
                except TooLarge as exc:
                    return TargetError(f"page {exc}")
        except TimeoutError:
            return TargetError(f"no answer within {self._timeout.total:g}s")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return TargetError(f"{type(exc).__name__}: {exc}")
        return body.decode("utf-8", "replace")
