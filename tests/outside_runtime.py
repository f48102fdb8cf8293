"""The parts of the operator's runtime that the VM and Slurm action doors read, for unit tests:
the feeds, a monotonic clock the test sets, the global dry-run switch and the leader fence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeKube:
    dry_run: bool = False


@dataclass
class FakeRuntime:
    vms: Any = None  # a VMFeed
    slurm: Any = None  # a JobFeed
    now: float = 1.0
    kube: FakeKube = field(default_factory=FakeKube)

    def monotonic(self) -> float:
        return self.now

    def acting(self) -> bool:
        return True
