"""GPU usage and counters per pod from a Prometheus server's HTTP API.

One instant query per reading, ``POST /api/v1/query`` (Prometheus docs, "HTTP API", Instant
queries; POST with a form body keeps long queries out of the URL). For GPU usage the query is a
range selector over the DCGM fields ``dcgm.METRICS``, e.g.
``{__name__=~"DCGM_FI_PROF_GR_ENGINE_ACTIVE|…"}[120s]``: a range selector returns the raw samples
with the times they were scraped (a plain instant selector would stamp every value with the
query's evaluation time, hiding how old it is), and the newest sample of each series is used. A
series with no sample in the window is absent: unknown, not idle.

Why aiohttp rather than a client library: the async Prometheus clients on PyPI either wrap a
synchronous client (prometheus-api-client uses requests and pulls in pandas and numpy) or are
small and little maintained, while all we need is one POST and a JSON document whose shape the
API documents; aiohttp is already the operator's HTTP client.

Nothing raises: a connection error, a timeout, a non-200 answer, ``"status": "error"``, a body
that is not JSON or not shaped as documented all become a reading whose ``error`` names the
source and the reason.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeGuard
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from costwarden.telemetry import dcgm
from costwarden.telemetry.bounded import TooLarge, read_bounded
from costwarden.telemetry.guard import never_raising
from costwarden.telemetry.samples import CounterReading, PodKey, TelemetryReading, pod_usage
from costwarden.telemetry.series import Series, Tally, number, pod_of

log = logging.getLogger(__name__)

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
MAX_ANSWER_BYTES = 64 * 1024 * 1024
MALFORMED = "malformed result entry"


class QueryError(Exception):
    """Why a query got no usable answer (the message is the reason, without the source)."""


class PrometheusSource:
    """A ``GpuUsageSource`` and ``CounterSource`` reading a Prometheus server at ``url``
    (``http://prometheus.monitoring:9090``, or with a path prefix; credentials in the URL are sent
    as basic auth and never shown). ``headers`` are sent with every query (a bearer token, say).
    ``window`` bounds how old a sample may be to be returned at all."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        window: timedelta = timedelta(minutes=2),
        headers: Mapping[str, str] | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self.url = url.rstrip("/")
        self.name = f"prometheus {redacted(self.url)}"
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._window_s = max(1, int(window.total_seconds()))
        self._headers = {"Accept": "application/json", **(headers or {})}
        self._max_bytes = max_answer_bytes

    def gpu_query(self) -> str:
        names = "|".join(dcgm.METRICS)
        return f'{{__name__=~"{names}"}}[{self._window_s}s]'

    async def sample(self, now: datetime) -> TelemetryReading:
        return await never_raising(self.name, now, self._sample)

    async def _sample(self, now: datetime) -> TelemetryReading:
        try:
            series, tally = await self.query(self.gpu_query())
        except QueryError as exc:
            return TelemetryReading(source=self.name, at=now, pods={}, error=f"{self.name}: {exc}")
        parsed = dcgm.gpu_samples(series, now)
        skipped = dict(parsed.skipped)
        for reason, count in tally.counts().items():
            skipped[reason] = skipped.get(reason, 0) + count
        return TelemetryReading(
            source=self.name, at=now, pods=pod_usage(parsed.samples), skipped=dict(sorted(skipped.items()))
        )

    async def counters(self, metric: str, now: datetime) -> CounterReading:
        """``metric``'s current value summed per (namespace, pod), over every series of the pod."""
        try:
            return await self._counters(metric, now)
        except Exception as exc:  # as in sample()
            log.exception("%s: reading counter %s failed", self.name, metric)
            error = f"{self.name}: unexpected {type(exc).__name__}: {exc}"
            return CounterReading(source=self.name, at=now, values={}, error=error)

    async def _counters(self, metric: str, now: datetime) -> CounterReading:
        if not METRIC_NAME.match(metric):
            error = f"{self.name}: {metric!r} is not a Prometheus metric name"
            return CounterReading(source=self.name, at=now, values={}, error=error)
        try:
            series, tally = await self.query(f'{{__name__="{metric}"}}')
        except QueryError as exc:
            return CounterReading(source=self.name, at=now, values={}, error=f"{self.name}: {exc}")
        values: dict[PodKey, Decimal] = {}
        for s in series:
            pod = pod_of(s.labels)
            value = number(s.value)
            if isinstance(pod, str):
                tally.skip(pod)
            elif value is None or value < 0:
                tally.skip(f"{metric}: not a finite, non-negative number")
            else:
                values[pod] = values.get(pod, Decimal(0)) + value
        return CounterReading(source=self.name, at=now, values=values, skipped=tally.counts())

    async def query(self, promql: str) -> tuple[list[Series], Tally]:
        """The series an instant query answers (for a range selector, each series' newest sample),
        and a tally of result entries that could not be read. Raises only ``QueryError``."""
        try:
            status, body = await self._post(promql)
        except TimeoutError:
            raise QueryError(f"no answer within {self._timeout.total:g}s") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise QueryError(f"cannot query: {type(exc).__name__}: {exc}") from None
        answer = _json(body)
        if status != 200:
            raise QueryError(f"HTTP {status}: {_api_error(answer) or _excerpt(body)}")
        if answer is None:
            raise QueryError(f"answer is not JSON: {_excerpt(body)}")
        if not isinstance(answer, dict) or answer.get("status") != "success":
            raise QueryError(f"query failed: {_api_error(answer) or _excerpt(body)}")
        data = answer.get("data")
        result = data.get("result") if isinstance(data, dict) else None
        if not isinstance(result, list):
            raise QueryError(f"answer has no data.result list: {_excerpt(body)}")
        tally = Tally()
        series = [s for entry in result if (s := _series(entry, tally)) is not None]
        return series, tally

    async def _post(self, promql: str) -> tuple[int, bytes]:
        async with (
            aiohttp.ClientSession(timeout=self._timeout, headers=self._headers) as session,
            session.post(f"{self.url}/api/v1/query", data={"query": promql}) as response,
        ):
            try:
                return response.status, await read_bounded(response, self._max_bytes)
            except TooLarge as exc:
                raise ValueError(f"answer {exc}") from exc


def redacted(url: str) -> str:
    """``url`` without a password (``http://user:***@host``): the name shows up in conditions and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _api_error(answer: Any) -> str | None:
    if isinstance(answer, dict) and answer.get("status") == "error":
        return f"{answer.get('errorType', 'error')}: {answer.get('error', '')}"
    return None


def _excerpt(body: bytes, limit: int = 200) -> str:
    text = body.decode("utf-8", "replace").strip()
    return repr(text[:limit] + ("…" if len(text) > limit else ""))


def _series(entry: object, tally: Tally) -> Series | None:
    """One vector or matrix entry as a Series (a matrix entry: its newest sample)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("metric"), dict):
        tally.skip(MALFORMED)
        return None
    labels = {str(k): str(v) for k, v in entry["metric"].items()}
    point = entry.get("value")
    values = entry.get("values")
    if point is None and isinstance(values, list) and values:
        point = max((v for v in values if _is_point(v)), key=lambda v: float(v[0]), default=None)
    if not _is_point(point):
        tally.skip(MALFORMED)
        return None
    at = _time(point[0])
    if at is None:
        tally.skip(MALFORMED)
        return None
    return Series(labels.pop("__name__", ""), labels, point[1], at)


def _is_point(point: object) -> TypeGuard[list[Any]]:
    return (
        isinstance(point, list)
        and len(point) == 2
        and isinstance(point[0], int | float)
        and not isinstance(point[0], bool)
    )


def _time(seconds: float) -> datetime | None:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError, TypeError):
        return None
