"""The one interface every cloud adapter implements, and the data it answers with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from costwarden.engine.vms import VMRecord


@dataclass(frozen=True, slots=True)
class Discovery:
    """What one poll of one scope found.

    ``complete`` is False when any part of the scope could not be read (a region or zone down,
    throttled, credentials expired); ``vms`` then holds only what was read, and ``error`` says
    what was not, in one line naming the cloud, the scope and the API. The operator never
    closes or acts on VMs from an incomplete discovery.
    """

    vms: tuple[VMRecord, ...]
    complete: bool
    error: str | None = None
    retry_after: float | None = None  # seconds the cloud asked us to wait (throttling), if it said


@dataclass(frozen=True, slots=True)
class VMActionResult:
    vm_id: str
    ok: bool
    message: str  # what happened, e.g. "stopping", "terminated", "not SkyPilot's: left alone"
    transient: bool = False  # worth retrying later (throttled, API down)


class VMInventory(Protocol):
    """One cloud scope: an AWS region, a GCP project or an Azure subscription."""

    @property
    def cloud(self) -> str: ...  # aws | gcp | azure

    @property
    def scope(self) -> str: ...  # e.g. "aws:us-east-1", "gcp:my-project", "azure:<subscription>"

    def discover(self) -> Discovery:
        """Every VM of the scope that carries a SkyPilot cluster tag (one of ``CLUSTER_TAGS``)."""
        ...

    def describe(self, vms: Sequence[VMRecord]) -> Discovery:
        """These VMs as they are now (re-read just before acting on them)."""
        ...

    def stop(self, vms: Sequence[VMRecord]) -> list[VMActionResult]:
        """Stop (AWS stop, GCE stop, Azure deallocate), disks kept, as ``sky stop`` does."""
        ...

    def terminate(self, vms: Sequence[VMRecord]) -> list[VMActionResult]:
        """Terminate (AWS terminate, GCE delete, Azure delete), as ``sky down`` does."""
        ...
