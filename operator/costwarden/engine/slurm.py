"""Slurm jobs: the record every job source returns, normalised across Slurm's JSON versions.

Slurm's own states are many (``JOB_STATE_BASES`` in slurm/slurm.h: PENDING, RUNNING, SUSPENDED,
COMPLETED, CANCELLED, FAILED, TIMEOUT, NODE_FAIL, PREEMPTED, BOOT_FAIL, DEADLINE,
OUT_OF_MEMORY) with flags on top (COMPLETING, ...); the engine needs four: pending (not
allocated, not billed), running (allocated: billed), suspended (allocation paused: not billed),
ended. A job's rate comes from what it was allocated (``AllocTRES``), never what it asked for.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final

from costwarden.engine.ledger import PodAccrual
from costwarden.engine.money import MONEY_CONTEXT, ZERO, cost_between
from costwarden.engine.outside import Mark, OutsideFence, OutsideView, condition_state
from costwarden.engine.selection import cloud_name_test
from costwarden.models import CostBudgetSpec, SlurmSelector

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
    return condition_state(view.problems, "--slurm cluster", view.refused)


# SkyPilot's longest cluster name on Slurm (``_MAX_CLUSTER_NAME_LEN_LIMIT`` of sky/clouds/slurm.py).
SKYPILOT_NAME_LIMIT: Final = 120


def covered_jobs(spec: CostBudgetSpec, jobs: Iterable[SlurmJob]) -> list[SlurmJob]:
    """The jobs ``spec.slurm``'s filters select (every filter given must hold) and, with
    ``skypilotCluster``, only that SkyPilot cluster's job (named as the cluster on cloud). A
    budget with neither covers no job: jobs are in no namespace."""
    selector, typed_name = spec.slurm, spec.skypilot_cluster
    if selector is None and not typed_name:
        return []
    is_cluster = cloud_name_test(typed_name, SKYPILOT_NAME_LIMIT) if typed_name else None
    chosen = []
    for job in jobs:
        if selector is not None and not _selected(selector, job):
            continue
        if is_cluster is not None and not is_cluster(job.name):
            continue
        chosen.append(job)
    return chosen


def budget_jobs(
    spec: CostBudgetSpec, namespace: str, jobs: Iterable[SlurmJob], fence: OutsideFence
) -> tuple[list[SlurmJob], str | None]:
    """The jobs a budget in ``namespace`` covers, and why none when its namespace is outside the
    fence (``--outside-namespace``): ``covered_jobs`` behind the namespace allow-list."""
    if spec.slurm is None and not spec.skypilot_cluster:
        return [], None
    refused = fence.refusal(namespace, "Slurm jobs")
    if refused is not None:
        return [], refused
    return covered_jobs(spec, jobs), None


def _selected(selector: SlurmSelector, job: SlurmJob) -> bool:
    wanted = (
        (selector.cluster, job.cluster),
        (selector.account, job.account),
        (selector.user, job.user),
        (selector.partition, job.partition),
        (selector.job_name, job.name),
    )
    return all(want is None or want == have for want, have in wanted)


def accrue_job(
    job: SlurmJob, rate: Decimal, now: datetime, previous: PodAccrual | None, mark: Mark | None
) -> PodAccrual:
    """The job's spend at ``now``: its allocation is charged while it runs, at ``rate`` USD/hour.

    - ``previous`` (the in-memory figure): its spend plus its rate up to now, or up to the job's
      end if it ended since.
    - else ``mark`` (after a restart): the mark's spend, plus ``rate`` from the mark to now (or
      to its end, for a job that ended while the operator was down: accounting's end time).
    - else a job seen first: ``rate`` from its start to now, or to its end.

    Pending and suspended jobs accrue nothing from now on; an ended job's rate is zero.
    """
    end = job.ended if job.ended is not None and job.ended < now else now
    running_rate = rate if rate > ZERO else ZERO
    next_rate = running_rate if job.state == RUNNING else ZERO
    if previous is not None:
        spend = MONEY_CONTEXT.add(previous.spend, cost_between(previous.rate, previous.at, end))
        return PodAccrual(spend, next_rate, now if now > previous.at else previous.at)
    ran = job.state == RUNNING or (job.state == ENDED and job.started is not None)
    if mark is not None:
        spend = MONEY_CONTEXT.add(mark.spend, cost_between(running_rate if ran else ZERO, mark.at, end))
        return PodAccrual(spend, next_rate, max(now, mark.at))
    if ran and job.started is not None:
        return PodAccrual(cost_between(running_rate, job.started, end), next_rate, now)
    return PodAccrual(ZERO, next_rate, now)
