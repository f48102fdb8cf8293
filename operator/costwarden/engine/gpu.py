"""GPU telemetry as the engine sees it: fresh utilisation per pod, waste, and units of work.

The shell samples its sources (Prometheus, dcgm-exporter, the node agent) and hands the engine a
``Telemetry`` snapshot keyed by pod uid. Everything here is pure and takes ``now``.

- **Fresh or unknown.** A reading older than ``stale_after`` is unknown, never idle; so is a pod
  with no reading (its source failed, or has no series for it). Unknown pauses the
  idle rule for that pod (``anomalies.track_idle``): its clock neither starts nor fires.
- **Utilisation** (``status.gpuUtilization``): the mean over covered pods' GPUs, weighted by each
  pod's GPU count, of their fresh readings; None when no covered GPU pod has one.
- **Wasted spend** (``status.wastedSpend``): what covered pods spent, between two evaluations,
  while their fresh reading was below the idle threshold (the budget's ``idleGpu.belowPercent``,
  else ``DEFAULT_IDLE_PERCENT``). Kept exact in the ledger, restarted each period.
- **Units of work** (``spec.unitEconomics``): a counter per pod (e.g. vLLM's
  ``vllm:generation_tokens_total``) turned into the period's count the way Prometheus's
  ``increase()`` treats counters: a value below the last one is a reset (the process restarted),
  so the new value itself is the increase; a pod's first value only sets the baseline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from costwarden.engine.money import MONEY_CONTEXT
from costwarden.records import PodRecord

DEFAULT_IDLE_PERCENT = Decimal(5)
DEFAULT_STALE_AFTER = timedelta(minutes=2)
_MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class GpuReading:
    """One pod's GPU utilisation (percent, averaged over its GPUs) at the sample's own time."""

    utilization: Decimal
    at: datetime


@dataclass(frozen=True, slots=True)
class Telemetry:
    """What the shell knows about GPU use for one evaluation.

    ``configured`` is False when no source is set up at all; ``problems`` names each source that
    failed and why (the shell leaves out the readings of a source that failed, so its pods are
    unknown). ``counters`` holds each unit-economics counter (by metric name) per pod uid;
    ``counter_problems`` why a counter could not be read.
    """

    readings: Mapping[str, GpuReading] = field(default_factory=dict)
    stale_after: timedelta = DEFAULT_STALE_AFTER
    problems: tuple[str, ...] = ()
    configured: bool = False
    counters: Mapping[str, Mapping[str, Decimal]] = field(default_factory=dict)
    counter_problems: Mapping[str, str] = field(default_factory=dict)

    def utilization(self, uid: str, now: datetime) -> Decimal | None:
        """The pod's utilisation if a fresh, trusted reading exists, else None (unknown)."""
        if not self.configured:
            return None
        reading = self.readings.get(uid)
        # Either side of ``now``: a source's clock (Prometheus stamps samples with its own) may run
        # ahead of the operator's by some seconds.
        if reading is None or abs(now - reading.at) > self.stale_after:
            return None
        return reading.utilization


NO_TELEMETRY = Telemetry()


def gpu_utilization(pods: Iterable[PodRecord], telemetry: Telemetry, now: datetime) -> Decimal | None:
    """GPU-weighted mean utilisation of the covered pods with a fresh reading."""
    weighted, gpus = Decimal(0), 0
    for pod in pods:
        if pod.gpus <= 0 or pod.is_terminal:
            continue
        utilization = telemetry.utilization(pod.uid, now)
        if utilization is None:
            continue
        weighted += utilization * pod.gpus
        gpus += pod.gpus
    if gpus == 0:
        return None
    return MONEY_CONTEXT.divide(weighted, Decimal(gpus))


def unknown_gpu_pods(pods: Iterable[PodRecord], telemetry: Telemetry, now: datetime) -> list[str]:
    """Names of running covered GPU pods without a fresh reading (sorted)."""
    return sorted(
        pod.name
        for pod in pods
        if pod.gpus > 0 and not pod.is_terminal and telemetry.utilization(pod.uid, now) is None
    )


def wasted_increase(
    figures: Iterable[tuple[PodRecord, Decimal, Decimal | None]],
    telemetry: Telemetry,
    threshold: Decimal,
    now: datetime,
) -> Decimal:
    """Spend since the last evaluation of pods idle now: ``figures`` holds (pod, lifetime spend
    now, lifetime spend at the last evaluation or None when first seen)."""
    total = Decimal(0)
    for pod, figure, before in figures:
        if before is None or pod.gpus <= 0:
            continue
        utilization = telemetry.utilization(pod.uid, now)
        if utilization is not None and utilization < threshold and figure > before:
            total = MONEY_CONTEXT.add(total, MONEY_CONTEXT.subtract(figure, before))
    return total


def counter_increase(
    last: Mapping[str, Decimal], current: Mapping[str, Decimal]
) -> tuple[Decimal, dict[str, Decimal]]:
    """The increase of a per-pod counter since ``last`` (resets counted as Prometheus does) and the
    new last values (pods without a current value are dropped)."""
    increase = Decimal(0)
    for uid, value in current.items():
        before = last.get(uid)
        if before is None:
            continue
        increase += value - before if value >= before else value
    return increase, dict(current)


def cost_per_million(spend: Decimal, count: Decimal) -> Decimal | None:
    """USD per million units, or None before the first unit."""
    if count <= 0:
        return None
    return MONEY_CONTEXT.divide(MONEY_CONTEXT.multiply(spend, _MILLION), count)


TELEMETRY_UNAVAILABLE = "TelemetryUnavailable"
_NAMES_SHOWN = 5


def telemetry_condition(
    needs: tuple[bool, str | None], pods: Iterable[PodRecord], telemetry: Telemetry, now: datetime
) -> tuple[str, str, str] | None:
    """``TelemetryUnavailable`` as (status, reason, message), or None when it does not apply (no
    source configured and nothing in the budget needs one). ``needs`` is (the budget has an
    idle-GPU rule or unit economics, the counter it reads or None)."""
    needs_telemetry, counter = needs
    if not telemetry.configured:
        if not needs_telemetry:
            return None
        message = (
            "no GPU telemetry source is configured (--prometheus-url, --dcgm-exporter-selector or "
            "--agent-selector): the idle-GPU rule and unit economics cannot work"
        )
        return ("True", "NoSource", message)
    if telemetry.problems:
        message = (
            "; ".join(telemetry.problems) + "; the idle-GPU rule is paused for pods without a fresh reading"
        )
        return ("True", "SourceFailed", message)
    unknown = unknown_gpu_pods(pods, telemetry, now)
    if unknown:
        shown = ", ".join(unknown[:_NAMES_SHOWN]) + (
            f" and {len(unknown) - _NAMES_SHOWN} more" if len(unknown) > _NAMES_SHOWN else ""
        )
        stale = int(telemetry.stale_after.total_seconds())
        message = (
            f"no GPU utilisation sample newer than {stale}s for {shown}; the idle-GPU rule is paused for them"
        )
        return ("True", "NoFreshSamples", message)
    if counter is not None and counter in telemetry.counter_problems:
        return ("True", "CounterUnavailable", telemetry.counter_problems[counter])
    return ("False", "Fresh", "every covered GPU pod has a fresh utilisation sample")
