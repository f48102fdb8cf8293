"""DCGM series (as NVIDIA dcgm-exporter prints them) turned into per-pod GPU samples. Pure.

Fields read, from dcgm-exporter's default counters (etc/default-counters.csv and
etc/dcp-metrics-included.csv in github.com/NVIDIA/dcgm-exporter):

- ``DCGM_FI_PROF_GR_ENGINE_ACTIVE`` (gauge, "Ratio of time the graphics engine is active", 0..1):
  preferred where a GPU has it. It is a profiling field, available on datacenter GPUs and per MIG
  instance, and it counts time any kernel runs, as ``DCGM_FI_DEV_GPU_UTIL`` does, but measured
  by DCGM's profiler rather than NVML's coarse sampling.
- ``DCGM_FI_DEV_GPU_UTIL`` (gauge, "GPU utilization (in %)"): otherwise.
- ``DCGM_FI_DEV_FB_USED`` (gauge, "Framebuffer memory used (in MiB)") and
  ``DCGM_FI_DEV_POWER_USAGE`` (gauge, "Power draw (in W)"), when present.

Labels: the pod in any naming ``series.pod_of`` knows; the GPU by ``UUID`` (or ``uuid``, or the
``gpu`` index), a MIG instance by ``GPU_I_ID`` (``GPU_I_PROFILE`` names its profile). A GPU that
no pod uses carries ``pod=""`` (dcgm-exporter README) and is left out. When Prometheus scraped an
exporter whose target has its own ``pod`` label (``honor_labels: false``), allocated GPUs carry
``exported_pod`` and an unallocated GPU's series carries only the target's ``pod`` (the exporter
pod itself, since Prometheus does not rename an empty label); such series are left out too.

Values that are not finite numbers, negative, out of range, or DCGM's "blank" sentinels
(``DCGM_INT32_BLANK``/``DCGM_INT64_BLANK``/``DCGM_FP64_BLANK`` in DCGM's dcgm_structs.h; the
dcgm-exporter README shows 9223372036854775794 for a blank field) are left out with a reason
counted. Nothing here raises.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from costwarden.telemetry.samples import GpuSample
from costwarden.telemetry.series import (
    EXPORTER_POD_LABELS,
    Parsed,
    Series,
    Tally,
    first_label,
    gpu_of,
    number,
    pod_of,
)

ENGINE_ACTIVE = "DCGM_FI_PROF_GR_ENGINE_ACTIVE"
GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"
FB_USED = "DCGM_FI_DEV_FB_USED"
POWER_USAGE = "DCGM_FI_DEV_POWER_USAGE"
METRICS = (ENGINE_ACTIVE, GPU_UTIL, FB_USED, POWER_USAGE)
"""The DCGM fields read, the preferred utilisation first."""

DCGM_INT32_BLANK = Decimal(0x7FFFFFF0)
"""Integer fields at or above this are blank (DCGM_INT64_BLANK, 0x7ffffffffffffff0, is above too)."""
DCGM_FP64_BLANK = Decimal(2**47)
"""Floating-point fields at or above this are blank."""
_MIB = 1024 * 1024
_HUNDRED = Decimal(100)
_BLANK_AT = {
    ENGINE_ACTIVE: DCGM_FP64_BLANK,
    POWER_USAGE: DCGM_FP64_BLANK,
    GPU_UTIL: DCGM_INT32_BLANK,
    FB_USED: DCGM_INT32_BLANK,
}
_MAXIMUM = {ENGINE_ACTIVE: (Decimal(1), "ratio above 1"), GPU_UTIL: (_HUNDRED, "above 100 %")}
TARGET_POD = "no pod (GPU not allocated; the pod label names the scrape target)"
NO_GPU = "no GPU label (UUID, uuid or gpu)"
NO_UTILIZATION = "memory or power without a utilisation series"

_GpuKey = tuple[str, str, str]  # namespace, pod, gpu


@dataclass(frozen=True, slots=True)
class _Value:
    value: Decimal
    at: datetime


def gpu_samples(series: Iterable[Series], now: datetime) -> Parsed:
    """One ``GpuSample`` per pod and GPU from DCGM series; series of other metrics are ignored.

    A series without a time (a scrape without timestamps) is taken to be from ``now``. When a
    GPU's field appears more than once (two scrape jobs, a range of samples) the newest counts.
    """
    wanted = [s for s in series if s.name in _BLANK_AT]
    relabelled = {_target(s) for s in wanted if _exporter_pod_label(s) and s.labels.get("pod")}
    tally = Tally()
    fields: dict[_GpuKey, dict[str, _Value]] = {}
    garbage_utilization: set[_GpuKey] = set()  # counted already: no second reason for the GPU
    for s in wanted:
        if _target(s) in relabelled and not _exporter_pod_label(s):
            tally.skip(TARGET_POD)
            continue
        pod = pod_of(s.labels)
        if isinstance(pod, str):
            tally.skip(pod)
            continue
        gpu = gpu_of(s.labels)
        if gpu is None:
            tally.skip(NO_GPU)
            continue
        known = fields.setdefault((*pod, gpu), {})
        value = _checked(s, tally)
        if value is None:
            if s.name in (ENGINE_ACTIVE, GPU_UTIL):
                garbage_utilization.add((*pod, gpu))
            continue
        at = s.at or now
        if s.name not in known or at > known[s.name].at:
            known[s.name] = _Value(value, at)
    samples = [_sample(key, known, key in garbage_utilization, tally) for key, known in fields.items()]
    return Parsed(samples=tuple(s for s in samples if s is not None), skipped=tally.counts())


def _target(s: Series) -> tuple[str | None, str | None]:
    return (s.labels.get("job"), s.labels.get("instance"))


def _exporter_pod_label(s: Series) -> bool:
    return first_label(s.labels, EXPORTER_POD_LABELS) is not None


def _checked(s: Series, tally: Tally) -> Decimal | None:
    value = number(s.value)
    if value is None:
        tally.skip(f"{s.name}: not a finite number")
        return None
    if value >= _BLANK_AT[s.name]:
        tally.skip(f"{s.name}: DCGM blank value")
        return None
    if value < 0:
        tally.skip(f"{s.name}: negative")
        return None
    if s.name in _MAXIMUM and value > _MAXIMUM[s.name][0]:
        tally.skip(f"{s.name}: {_MAXIMUM[s.name][1]}")
        return None
    return value


def _sample(key: _GpuKey, known: dict[str, _Value], counted: bool, tally: Tally) -> GpuSample | None:
    if ENGINE_ACTIVE in known:
        utilization, at = known[ENGINE_ACTIVE].value * _HUNDRED, known[ENGINE_ACTIVE].at
    elif GPU_UTIL in known:
        utilization, at = known[GPU_UTIL].value, known[GPU_UTIL].at
    else:
        if known and not counted:  # valid memory or power only; nothing counted for this GPU yet
            tally.skip(NO_UTILIZATION)
        return None
    memory = known.get(FB_USED)
    power = known.get(POWER_USAGE)
    return GpuSample(
        namespace=key[0],
        pod=key[1],
        gpu=key[2],
        utilization=utilization,
        at=at,
        memory_used_bytes=int(memory.value * _MIB) if memory is not None else None,
        power_watts=power.value if power is not None else None,
    )
