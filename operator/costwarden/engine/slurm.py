"""Slurm jobs: the record every job source returns, normalised across Slurm's JSON versions.

Slurm's own states are many (``JOB_STATE_BASES`` in slurm/slurm.h: PENDING, RUNNING, SUSPENDED,
COMPLETED, CANCELLED, FAILED, TIMEOUT, NODE_FAIL, PREEMPTED, BOOT_FAIL, DEADLINE,
OUT_OF_MEMORY) with flags on top (COMPLETING, ...); the engine needs four: pending (not
allocated, not billed), running (allocated: billed), suspended (allocation paused: not billed),
ended. A job's rate comes from what it was allocated (``AllocTRES``), never what it asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final

from costwarden.engine.outside import OutsideView, condition_state
from costwarden.models import CostBudgetSpec

PENDING: Final = "pending"
RUNNING: Final = "running"
SUSPENDED: Final = "suspended"
ENDED: Final = "ended"
STATES: Final = frozenset({PENDING, RUNNING, SUSPENDED, ENDED})
JOB_KEY_PREFIX: Final = "slurm:"  # a job's key in a budget's ledger; pod uids never start so


@dataclass(frozen=True, slots=True)
class SlurmJob:
    """One Slurm job (or array task) as a job source saw it.

    ``cluster`` is the name the operator knows the Slurm cluster by (``--slurm NAME``);
    ``job_id`` is Slurm's id, ``<array job id>_<task id>`` for an array task.
    """

    cluster: str
    job_id: str
    name: str
    user: str
    account: str | None
    partition: str
    state: str  # one of STATES
    slurm_state: str  # Slurm's own base state, e.g. RUNNING, COMPLETED, CANCELLED
    nodes: tuple[str, ...] = ()  # the nodes allocated (expanded from Slurm's host list)
    gpus: int = 0  # allocated: gres/gpu in AllocTRES
    cpus: int = 0  # allocated
    memory_gib: Decimal = Decimal(0)  # allocated
    gpu_type: str | None = None  # gres/gpu:<type> when the allocation names one
    submitted: datetime | None = None
    started: datetime | None = None  # when it started running (None while pending)
    ended: datetime | None = None  # when it ended (None while it has not)

    @property
    def key(self) -> str:
        return f"{JOB_KEY_PREFIX}{self.cluster}:{self.job_id}"

    # The ledger's view of a job's life (budget_ledger reads pods, VMs and jobs alike).
    @property
    def uid(self) -> str:
        return self.key

    @property
    def created(self) -> datetime | None:
        return self.submitted

    @property
    def finished(self) -> datetime | None:
        return self.ended

    @property
    def is_terminal(self) -> bool:
        return self.state == ENDED


SLURM_UNAVAILABLE: Final = "SlurmUnavailable"


def slurm_condition(spec: CostBudgetSpec, view: OutsideView) -> tuple[str, str, str] | None:
    """``(status, reason, message)`` of the SlurmUnavailable condition, for budgets that cover
    Slurm jobs (``spec.slurm`` or ``skypilotCluster``); None for the rest."""
    if spec.slurm is None and not spec.skypilot_cluster:
        return None
    return condition_state(view.problems, "--slurm cluster")
