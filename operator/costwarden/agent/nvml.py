"""The NVML calls the agent makes, through nvidia-ml-py (``import pynvml``).

NVML API reference: https://docs.nvidia.com/deploy/nvml-api/ ("Initialization and Cleanup",
"Device Queries"). Per pass: ``nvmlDeviceGetCount``, then for each index
``nvmlDeviceGetHandleByIndex``, ``nvmlDeviceGetUtilizationRates``, ``nvmlDeviceGetMemoryInfo``,
``nvmlDeviceGetPowerUsage`` (milliwatts), ``nvmlDeviceGetComputeRunningProcesses`` and
``nvmlDeviceGetGraphicsRunningProcesses`` (each process's ``pid``: the driver is not aware of
PID namespaces and always answers the host's PIDs, whatever namespace the caller is in, as
NVIDIA's container toolkit maintainers state in NVIDIA/nvidia-docker#1483; so the agent reads
them in the host's ``/proc``, ``--proc``).

``start`` turns a node without a usable driver into ``NvmlUnavailable`` with NVML's own words
(``NVML_ERROR_LIBRARY_NOT_FOUND``: libnvidia-ml.so.1 is not in the container;
``NVML_ERROR_DRIVER_NOT_LOADED``: no kernel driver). After that nothing here raises: a failing call
is a missing value and a failure named by its function, and ``NVML_ERROR_NOT_SUPPORTED`` (a
figure this GPU does not have) is a missing value only, logged once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import pynvml

from costwarden.agent.readings import GpuReading, NvmlPass

log = logging.getLogger(__name__)

T = TypeVar("T")

_NOT_SUPPORTED = pynvml.NVML_ERROR_NOT_SUPPORTED
_NVML_ERRORS: tuple[type[Exception], ...] = (pynvml.NVMLError, pynvml.NVMLLibraryMismatchError)


class NvmlUnavailable(Exception):
    """NVML cannot be used on this node; the message says why in one line."""


def start() -> None:
    """Load and initialise NVML (``nvmlInit``), or raise NvmlUnavailable."""
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound as exc:
        raise NvmlUnavailable(
            f"NVML: {exc} (libnvidia-ml.so.1): no NVIDIA driver is mounted into this container; "
            "on a GPU node the NVIDIA container runtime provides it (runtimeClassName nvidia, "
            "NVIDIA_VISIBLE_DEVICES=all)"
        ) from exc
    except pynvml.NVMLError_DriverNotLoaded as exc:
        raise NvmlUnavailable(f"NVML: {exc}: this node has no NVIDIA kernel driver loaded") from exc
    except _NVML_ERRORS as exc:
        raise NvmlUnavailable(f"NVML could not be initialised: {exc}") from exc


def stop() -> None:
    """``nvmlShutdown``; errors are of no interest at exit."""
    try:
        pynvml.nvmlShutdown()
    except _NVML_ERRORS as exc:
        log.debug("nvmlShutdown: %s", exc)


class NvmlReader:
    """Reads every GPU once per ``read()``; remembers which (GPU, call) pairs are not supported."""

    def __init__(self) -> None:
        self._unsupported_logged: set[tuple[str, str]] = set()

    def read(self) -> NvmlPass:
        failures: list[str] = []
        count = self._call("nvmlDeviceGetCount", "-", failures, pynvml.nvmlDeviceGetCount)
        if count is None:
            return NvmlPass((), tuple(failures), ok=False)
        gpus = []
        for index in range(int(count)):
            gpu = str(index)
            handle = self._call(
                "nvmlDeviceGetHandleByIndex", gpu, failures, pynvml.nvmlDeviceGetHandleByIndex, index
            )
            if handle is not None:
                gpus.append(self._read_gpu(gpu, handle, failures))
        return NvmlPass(tuple(gpus), tuple(failures))

    def _read_gpu(self, gpu: str, handle: Any, failures: list[str]) -> GpuReading:
        utilization = self._call(
            "nvmlDeviceGetUtilizationRates", gpu, failures, pynvml.nvmlDeviceGetUtilizationRates, handle
        )
        memory = self._call("nvmlDeviceGetMemoryInfo", gpu, failures, pynvml.nvmlDeviceGetMemoryInfo, handle)
        milliwatts = self._call(
            "nvmlDeviceGetPowerUsage", gpu, failures, pynvml.nvmlDeviceGetPowerUsage, handle
        )
        pids: set[int] = set()
        for name, function in (
            ("nvmlDeviceGetComputeRunningProcesses", pynvml.nvmlDeviceGetComputeRunningProcesses),
            ("nvmlDeviceGetGraphicsRunningProcesses", pynvml.nvmlDeviceGetGraphicsRunningProcesses),
        ):
            processes = self._call(name, gpu, failures, function, handle)
            pids.update(_pids(processes or ()))
        return GpuReading(
            gpu=gpu,
            utilization_percent=_number(getattr(utilization, "gpu", None)),
            memory_used_bytes=_integer(getattr(memory, "used", None)),
            power_watts=None if (mw := _number(milliwatts)) is None else mw / 1000.0,
            pids=tuple(sorted(pids)),
        )

    def _call(
        self, name: str, gpu: str, failures: list[str], function: Callable[..., T], *args: Any
    ) -> T | None:
        try:
            return function(*args)
        except _NVML_ERRORS as exc:
            if getattr(exc, "value", None) == _NOT_SUPPORTED:
                if (gpu, name) not in self._unsupported_logged:
                    self._unsupported_logged.add((gpu, name))
                    log.info("GPU %s: %s is not supported; that figure is left out", gpu, name)
                return None
            log.warning("GPU %s: %s failed: %s", gpu, name, exc)
            failures.append(name)
            return None


def _pids(processes: Any) -> set[int]:
    found: set[int] = set()
    for process in processes:
        pid = getattr(process, "pid", None)
        if isinstance(pid, int) and pid > 0:
            found.add(pid)
    return found


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _integer(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value
