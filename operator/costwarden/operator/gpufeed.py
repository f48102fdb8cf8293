"""GPU telemetry for the passes: every source sampled each ``--telemetry-interval`` into one
immutable ``engine.gpu.Telemetry`` snapshot, keyed by pod uid.

The sources (``costwarden.telemetry``: Prometheus, dcgm-exporter scrapes, node agents) never
raise; a source that failed is named in the snapshot's ``problems`` and contributes only what it
did read. Readings are matched to pods by namespace and name through the watches' index, so a
sample of a pod that is gone, or of a pod name reused by a new pod, never lands on the wrong uid
(the new pod's reading must be newer than its start). The passes only ever read the snapshot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from costwarden.engine.gpu import GpuReading, Telemetry
from costwarden.records import PodRecord
from costwarden.telemetry.samples import CounterSource, GpuUsageSource, PodGpuUsage, uid_key

log = logging.getLogger(__name__)

PodKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class FeedSettings:
    stale_after: timedelta


def pods_by_key(pods: Iterable[PodRecord]) -> dict[PodKey, PodRecord]:
    """Pods by (namespace, name), and by ``uid_key`` for the node agent's series."""
    found: dict[PodKey, PodRecord] = {}
    for pod in pods:
        found[(pod.namespace, pod.name)] = pod
        found[uid_key(pod.uid)] = pod
    return found


def readings_by_uid(
    usage: Mapping[PodKey, PodGpuUsage], pods: Mapping[PodKey, PodRecord]
) -> dict[str, GpuReading]:
    """Each reading on the uid of the pod it names, unless it predates that pod's start."""
    found: dict[str, GpuReading] = {}
    for key, sample in usage.items():
        pod = pods.get(key)
        if pod is None:
            continue
        started = pod.started or pod.created
        if started is not None and sample.at < started:
            continue
        found[pod.uid] = GpuReading(sample.utilization, sample.at)
    return found


class GpuFeed:
    """The latest telemetry snapshot, refreshed by ``run``; ``snapshot`` is read by the passes."""

    def __init__(
        self,
        sources: Sequence[GpuUsageSource],
        counters: CounterSource | None,
        settings: FeedSettings,
    ) -> None:
        self._sources = tuple(sources)
        self._counters = counters
        self._settings = settings
        self.snapshot = Telemetry(stale_after=settings.stale_after, configured=bool(sources))

    @property
    def configured(self) -> bool:
        return bool(self._sources)

    async def refresh(
        self, now: datetime, pods: Iterable[PodRecord], counter_names: Iterable[str] = ()
    ) -> Telemetry:
        """Sample every source at ``now`` (concurrently) and publish the new snapshot."""
        by_key = pods_by_key(pods)
        readings = await asyncio.gather(*(source.sample(now) for source in self._sources))
        found: dict[str, GpuReading] = {}
        problems: list[str] = []
        for reading in readings:
            if reading.error:
                problems.append(f"{reading.source}: {reading.error}")
            for uid, value in readings_by_uid(reading.pods, by_key).items():
                known = found.get(uid)
                if known is None or value.at > known.at:
                    found[uid] = value
        counters, counter_problems = await self._read_counters(sorted(set(counter_names)), now, by_key)
        self.snapshot = Telemetry(
            readings=found,
            stale_after=self._settings.stale_after,
            problems=tuple(problems),
            configured=self.configured,
            counters=counters,
            counter_problems=counter_problems,
        )
        return self.snapshot

    async def _read_counters(
        self, names: Sequence[str], now: datetime, pods: Mapping[PodKey, PodRecord]
    ) -> tuple[dict[str, dict[str, Decimal]], dict[str, str]]:
        counters: dict[str, dict[str, Decimal]] = {}
        problems: dict[str, str] = {}
        if not names:
            return counters, problems
        if self._counters is None:
            why = "unit economics needs --prometheus-url (counters are read from Prometheus)"
            return counters, dict.fromkeys(names, why)
        for name in names:
            reading = await self._counters.counters(name, now)
            if reading.error:
                problems[name] = f"{reading.source}: counter {name}: {reading.error}"
                continue
            counters[name] = {pods[key].uid: value for key, value in reading.values.items() if key in pods}
        return counters, problems
