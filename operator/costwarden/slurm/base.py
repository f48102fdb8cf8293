"""The one interface every Slurm job source implements, and the data it answers with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from costwarden.engine.slurm import SlurmJob


@dataclass(frozen=True, slots=True)
class JobListing:
    """What one read of a Slurm cluster found.

    ``complete`` is False when the read failed or part of its answer could not be parsed;
    ``jobs`` then holds what was read, ``error`` says what was not in one line naming the
    cluster and the command or endpoint. The operator never closes or acts on jobs from an
    incomplete listing.
    """

    jobs: tuple[SlurmJob, ...]
    complete: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class JobActionResult:
    job_id: str
    ok: bool
    message: str  # what happened, e.g. "signalled TERM", "cancelled", "suspended", "held"
    transient: bool = False  # worth retrying later (controller busy or unreachable)


class JobSource(Protocol):
    """One Slurm cluster, through its client commands or its slurmrestd."""

    @property
    def cluster(self) -> str: ...  # the --slurm NAME

    def jobs(self) -> JobListing:
        """Pending, running and suspended jobs, and those that ended recently (``squeue``)."""
        ...

    def history(self, job_ids: Sequence[str]) -> JobListing:
        """These jobs from accounting (``sacct``), ended ones with their end time; used to close
        jobs that left ``squeue`` while the operator was not looking."""
        ...

    def signal(self, jobs: Sequence[SlurmJob], signal: str) -> list[JobActionResult]:
        """``scancel --signal=<signal> --full``: the graceful first step of a Kill."""
        ...

    def cancel(self, jobs: Sequence[SlurmJob]) -> list[JobActionResult]:
        """``scancel``: the job ends (its steps get SIGTERM, then SIGKILL after KillWait)."""
        ...

    def suspend(self, jobs: Sequence[SlurmJob]) -> list[JobActionResult]:
        """``scontrol suspend`` for running jobs, ``scontrol hold`` for pending ones."""
        ...
