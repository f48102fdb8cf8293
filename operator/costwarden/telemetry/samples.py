"""What a GPU telemetry source reports, and how one pod's GPUs fold into one figure. Pure.

A source answers ``sample(now)`` with a ``TelemetryReading``: per (namespace, pod) the mean GPU
utilisation of the pod's GPUs, how many GPUs reported, and the time of the oldest sample it used,
so a consumer can tell a fresh 0 % (idle) from an old one (unknown). A source that cannot answer
says why in ``error`` and reports no pods; it never raises. Missing data is not idleness.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

PodKey = tuple[str, str]


def uid_key(uid: str) -> PodKey:
    """The key of a pod known only by its uid: ``("", uid)``. The node agent labels its series
    with the pod uid alone (it holds no Kubernetes credentials); the operator resolves it."""
    return ("", uid)


"""(namespace, pod name)."""


@dataclass(frozen=True, slots=True)
class GpuSample:
    """One GPU (or MIG instance) of one pod, as one source saw it.

    ``gpu`` is the GPU's UUID (else its index), with ``/<GPU_I_ID>`` appended for a MIG instance.
    ``utilization`` is a percentage from 0 to 100; ``at`` is the sample's own time (UTC).
    """

    namespace: str
    pod: str
    gpu: str
    utilization: Decimal
    at: datetime
    memory_used_bytes: int | None = None
    power_watts: Decimal | None = None

    @property
    def key(self) -> PodKey:
        return (self.namespace, self.pod)


@dataclass(frozen=True, slots=True)
class PodGpuUsage:
    """A pod's GPUs folded: mean utilisation (percent), GPUs counted, and the oldest sample's time.

    ``memory_used_bytes`` and ``power_watts`` are sums over the GPUs that reported them (None when
    none did).
    """

    namespace: str
    pod: str
    utilization: Decimal
    gpus: int
    at: datetime
    memory_used_bytes: int | None = None
    power_watts: Decimal | None = None


@dataclass(frozen=True, slots=True)
class TelemetryReading:
    """What one source saw in one ``sample()`` call.

    ``at`` is the ``now`` passed in. ``error`` set means the source failed, wholly (``pods`` is
    empty) or in part (a scrape source whose other targets answered); it names the source and the
    reason. ``skipped`` counts series left out, by reason (garbage values, series without a pod).
    """

    source: str
    at: datetime
    pods: Mapping[PodKey, PodGpuUsage]
    error: str | None = None
    skipped: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CounterReading:
    """A Prometheus counter's current value summed per (namespace, pod), for unit economics.

    Values are raw counter values: resets (pod restarts) are the consumer's to handle, as
    Prometheus's ``increase()`` does. ``skipped`` counts series left out, by reason.
    """

    source: str
    at: datetime
    values: Mapping[PodKey, Decimal]
    error: str | None = None
    skipped: Mapping[str, int] = field(default_factory=dict)


class GpuUsageSource(Protocol):
    name: str

    async def sample(self, now: datetime) -> TelemetryReading:
        """Per-pod GPU usage now. Never raises: a failure is a reading with ``error`` set."""
        ...


class CounterSource(Protocol):
    async def counters(self, metric: str, now: datetime) -> CounterReading:
        """``metric``'s value per pod now. Never raises: a failure is a reading with ``error`` set."""
        ...


def pod_usage(samples: Iterable[GpuSample]) -> dict[PodKey, PodGpuUsage]:
    """Fold samples per pod: one sample per GPU (the newest when a GPU appears twice), the mean
    utilisation over those GPUs, their count, and the oldest of their times."""
    newest: dict[PodKey, dict[str, GpuSample]] = {}
    for sample in samples:
        gpus = newest.setdefault(sample.key, {})
        seen = gpus.get(sample.gpu)
        if seen is None or sample.at > seen.at:
            gpus[sample.gpu] = sample
    return {key: _fold(key, list(gpus.values())) for key, gpus in newest.items()}


def _fold(key: PodKey, gpus: list[GpuSample]) -> PodGpuUsage:
    memory = [s.memory_used_bytes for s in gpus if s.memory_used_bytes is not None]
    power = [s.power_watts for s in gpus if s.power_watts is not None]
    return PodGpuUsage(
        namespace=key[0],
        pod=key[1],
        utilization=sum((s.utilization for s in gpus), Decimal(0)) / len(gpus),
        gpus=len(gpus),
        at=min(s.at for s in gpus),
        memory_used_bytes=sum(memory) if memory else None,
        power_watts=sum(power, Decimal(0)) if power else None,
    )
