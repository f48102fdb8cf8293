"""NVML readings and each process's pod folded into the agent's metric series. Pure.

A GPU's figures are the GPU's, not a process's: NVML's utilisation, memory and power describe the
whole device. So a GPU gets one series per pod with a process on it, each carrying the GPU's own
figures (a GPU shared by two pods: two series, the same values), and one series with
``pod_uid=""`` when a process on it is in no pod (or its pod could not be told) or when no process
is on it at all. Consumers aggregate per GPU with ``max``, never ``sum``.

``namespace`` and ``pod`` are filled from ``names`` (pod UID to namespace and name) where it knows
the UID and are empty otherwise; ``costwarden agent`` passes none, and the operator, which indexes
every pod, maps ``pod_uid`` itself (docs/agent.md says why).

Every process is listed as well (``ProcessSeries``), with its PID and pod UID, so a process that
is in no pod can still be found by its PID.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from costwarden.agent.readings import GpuReading

NO_POD = ""


@dataclass(frozen=True, slots=True)
class PodName:
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class GpuSeries:
    """The labels and values of one GPU for one pod (``pod_uid=""``: no pod)."""

    gpu: str
    pod_uid: str
    namespace: str
    pod: str
    utilization_percent: float | None
    memory_used_bytes: int | None
    power_watts: float | None


@dataclass(frozen=True, slots=True)
class ProcessSeries:
    gpu: str
    pid: int
    pod_uid: str


@dataclass(frozen=True, slots=True)
class Series:
    gpus: tuple[GpuSeries, ...]
    processes: tuple[ProcessSeries, ...]


EMPTY = Series((), ())


def fold(
    readings: Iterable[GpuReading],
    pod_of_pid: Mapping[int, str | None],
    names: Mapping[str, PodName] | None = None,
) -> Series:
    """The series of ``readings``; a PID missing from ``pod_of_pid`` (or mapped to None) is in no pod.

    GPUs keep their order; within a GPU, pods are sorted by UID, ``""`` first.
    """
    known = names or {}
    gpus: list[GpuSeries] = []
    processes: list[ProcessSeries] = []
    for reading in readings:
        owners = {pod_of_pid.get(pid) or NO_POD for pid in reading.pids} or {NO_POD}
        for uid in sorted(owners):
            name = known.get(uid) if uid else None
            gpus.append(
                GpuSeries(
                    gpu=reading.gpu,
                    pod_uid=uid,
                    namespace=name.namespace if name else "",
                    pod=name.name if name else "",
                    utilization_percent=reading.utilization_percent,
                    memory_used_bytes=reading.memory_used_bytes,
                    power_watts=reading.power_watts,
                )
            )
        processes.extend(
            ProcessSeries(reading.gpu, pid, pod_of_pid.get(pid) or NO_POD) for pid in reading.pids
        )
    return Series(tuple(gpus), tuple(processes))
