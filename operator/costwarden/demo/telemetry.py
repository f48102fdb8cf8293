"""The demo's simulated DCGM: what each stand-in pod's GPUs are doing.

The stand-in cluster has no GPUs, so the demo's scenario writes what each simulated pod's GPUs
do into the pod annotation ``SIMULATED_GPU_UTIL``, and this source reads it back as if a
dcgm-exporter had measured it. It exists only in the demo (the ``demo`` extra): the operator
itself never takes GPU utilisation from a pod's annotations, which anyone allowed to patch pods
could forge.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from costwarden.telemetry.samples import PodGpuUsage, TelemetryReading

SIMULATED_GPU_UTIL = "demo.costwarden.dev/simulated-gpu-utilization"


class SimulatedDcgm:
    """A ``GpuUsageSource`` over the stand-in's pods (``list_pods`` returns their bodies)."""

    name = "simulated DCGM (demo)"

    def __init__(self, list_pods: Callable[[], Iterable[Mapping[str, Any]]]) -> None:
        self._list_pods = list_pods

    async def sample(self, now: datetime) -> TelemetryReading:
        try:
            bodies = await asyncio.to_thread(lambda: list(self._list_pods()))
        except Exception as exc:  # the stand-in stopping under the demo's feet
            return TelemetryReading(self.name, now, {}, error=f"cannot list pods: {exc}")
        pods = {}
        for body in bodies:
            meta = body.get("metadata") or {}
            value = (meta.get("annotations") or {}).get(SIMULATED_GPU_UTIL)
            try:
                utilization = Decimal(str(value)) if value is not None else None
            except InvalidOperation:
                utilization = None
            if utilization is None:
                continue
            key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
            pods[key] = PodGpuUsage(key[0], key[1], utilization, gpus=1, at=now)
        return TelemetryReading(self.name, now, pods)
