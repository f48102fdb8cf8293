"""What one NVML pass read, as plain records. Pure.

Units are NVML's, converted once where NVML's are awkward (https://docs.nvidia.com/deploy/nvml-api/):

- utilisation: ``nvmlUtilization_t.gpu``, "percent of time over the past sample period during
  which one or more kernels was executing on the GPU" (the period is between 1/6 s and 1 s,
  depending on the product);
- memory: ``nvmlMemory_t.used``, bytes of device memory allocated;
- power: ``nvmlDeviceGetPowerUsage`` answers milliwatts for the board; kept here in watts.

A value NVML would not give (the call failed or is not supported on this GPU, e.g. power on some
boards, utilisation of a GPU in MIG mode) is None, and its series is left out.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GpuReading:
    """One GPU: its NVML index (``gpu``), the three figures, and the PIDs of the processes on it
    (compute and graphics, each once, ascending)."""

    gpu: str
    utilization_percent: float | None
    memory_used_bytes: int | None
    power_watts: float | None
    pids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class NvmlPass:
    """All GPUs of one pass, and the NVML calls that failed during it (one entry per failure,
    named by the NVML function). ``ok`` is False when NVML could not even list the GPUs."""

    gpus: tuple[GpuReading, ...]
    failures: tuple[str, ...] = ()
    ok: bool = True
