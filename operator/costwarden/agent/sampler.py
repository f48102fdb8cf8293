"""One sampling pass: NVML read, PIDs mapped to pods, series folded; the last pass kept for scrapes.

The sampler runs on the agent's main thread; the HTTP server's threads only read ``view()``, an
immutable value replaced whole after each pass, so a scrape never sees half a pass.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

from costwarden.agent.procfs import pods_of
from costwarden.agent.readings import NvmlPass
from costwarden.agent.series import EMPTY, Series, fold

PROC_CGROUP = "proc_cgroup"
"""The error counter's ``call`` for a PID whose ``/proc/<pid>/cgroup`` could not be read."""


class Reader(Protocol):
    def read(self) -> NvmlPass: ...


@dataclass(frozen=True, slots=True)
class AgentView:
    """What a scrape shows: the series of the last pass, whether NVML answered it, when it ran
    (Unix seconds; None before the first), and the errors counted since the agent started."""

    series: Series = EMPTY
    up: bool = False
    sampled_at: float | None = None
    errors: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))


class Sampler:
    def __init__(self, reader: Reader, proc: Path, clock: Callable[[], float] = time.time) -> None:
        self._reader = reader
        self._proc = proc
        self._clock = clock
        self._errors: Counter[str] = Counter()
        self._view = AgentView()
        self._lock = threading.Lock()  # one pass at a time

    def view(self) -> AgentView:
        return self._view

    def sample(self) -> AgentView:
        """Run one pass and publish it."""
        with self._lock:
            nvml = self._reader.read()
            self._errors.update(nvml.failures)
            pids = {pid for gpu in nvml.gpus for pid in gpu.pids}
            pods, unreadable = pods_of(self._proc, sorted(pids))
            if unreadable:
                self._errors[PROC_CGROUP] += unreadable
            series = fold(nvml.gpus, pods) if nvml.ok else EMPTY
            self._view = AgentView(series, nvml.ok, self._clock(), MappingProxyType(dict(self._errors)))
            return self._view
