"""The demo's simulated Slurm: one cluster's jobs in memory, as a ``JobSource``.

The operator reads it, prices its jobs' allocations and signals, cancels or suspends them
exactly as it does a real cluster through the client commands or slurmrestd (the demo hands it
to ``OperatorThread`` as it hands over the simulated DCGM and cloud). Like ``squeue``, ``jobs``
lists pending, running and suspended jobs and those that ended less than ``MinJobAge`` (300 s
of the demo clock) ago; an older one has left the listing, and ``history`` (``sacct``) answers
for it. ``signal`` / ``cancel`` / ``suspend`` act by job id only, and only on this cluster's
own jobs: a record of another cluster or an id the cluster does not know is left alone, with
the reason as the answer, never matched by name. Every call is recorded. It exists only in the
demo (the ``demo`` extra); nothing here runs a Slurm command.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

from costwarden.engine.slurm import ENDED, PENDING, RUNNING, SUSPENDED, SlurmJob
from costwarden.slurm.base import JobActionResult, JobListing

MIN_JOB_AGE = timedelta(seconds=300)  # slurm.conf MinJobAge's default: how long squeue shows an ended job


@dataclass(frozen=True, slots=True)
class SlurmCall:
    """One job's answer to a signal, cancel or suspend the operator asked for (what the demo reports)."""

    verb: str  # signal | cancel | suspend
    job_id: str
    ok: bool
    message: str
    signal: str | None = None  # the signal sent, for ``signal``
    at: datetime | None = field(default=None, compare=False)  # the demo clock's time of the call


class SimulatedSlurm:
    """The jobs of one simulated Slurm cluster; safe to call from any thread (the operator reads
    and acts from worker threads, the demo's loop submits, starts and reads jobs)."""

    def __init__(self, cluster: str, clock: Callable[[], datetime]) -> None:
        self._cluster = cluster
        self._clock = clock
        self._lock = threading.Lock()
        self._jobs: dict[str, SlurmJob] = {}  # by id, in submission order
        self._calls: list[SlurmCall] = []
        self._requests: dict[str, tuple[int, int, Decimal]] = {}  # pending jobs' gpus, cpus, GiB
        self._held: set[str] = set()  # pending jobs held by scontrol hold: never started
        self._next_id = 4101

    def __repr__(self) -> str:
        return f"SimulatedSlurm({self._cluster!r})"

    @property
    def cluster(self) -> str:
        return self._cluster

    # -- the scenario's side ---------------------------------------------------------------------

    def submit(
        self,
        name: str,
        *,
        user: str,
        account: str,
        partition: str,
        gpus: int,
        cpus: int,
        memory_gib: int,
        gpu_type: str | None,
        at: datetime,
        nodes: Sequence[str] = (),
    ) -> SlurmJob:
        """A job submitted at ``at`` (the demo clock's time) asking for this allocation: running
        from ``at`` on ``nodes`` when they are given, else pending (allocated nothing) until
        ``start``."""
        with self._lock:
            job_id = str(self._next_id)
            self._next_id += 1
            job = SlurmJob(
                cluster=self._cluster,
                job_id=job_id,
                name=name,
                user=user,
                account=account,
                partition=partition,
                state=PENDING,
                slurm_state="PENDING",
                gpu_type=gpu_type,
                submitted=at,
            )
            self._jobs[job_id] = job
            self._requests[job_id] = (gpus, cpus, Decimal(memory_gib))
            if nodes:
                job = self._start(job_id, nodes, at)
        return job

    def start(self, job_id: str, nodes: Sequence[str], at: datetime) -> SlurmJob:
        """The scheduler starts a pending job on ``nodes`` at ``at``, allocating what it asked
        for; a held job stays pending."""
        with self._lock:
            if job_id in self._held:
                return self._jobs[job_id]
            return self._start(job_id, nodes, at)

    def _start(self, job_id: str, nodes: Sequence[str], at: datetime) -> SlurmJob:
        job = self._jobs[job_id]
        if job.state != PENDING:
            raise ValueError(f"job {job_id} is {job.state}, not pending")
        gpus, cpus, memory_gib = self._requests.pop(job_id)
        started = replace(
            job,
            state=RUNNING,
            slurm_state="RUNNING",
            nodes=tuple(nodes),
            gpus=gpus,
            cpus=cpus,
            memory_gib=memory_gib,
            started=at,
        )
        self._jobs[job_id] = started
        return started

    def all_jobs(self) -> list[SlurmJob]:
        """Every job the cluster ever had, in submission order (the demo's own view)."""
        with self._lock:
            return list(self._jobs.values())

    def calls(self) -> list[SlurmCall]:
        """Each job's answer to every signal, cancel or suspend asked so far, in order."""
        with self._lock:
            return list(self._calls)

    # -- the JobSource the operator reads --------------------------------------------------------

    def jobs(self) -> JobListing:
        """Pending, running and suspended jobs, and those that ended within ``MinJobAge`` (squeue)."""
        now = self._clock()
        with self._lock:
            listed = tuple(
                job for job in self._jobs.values() if job.ended is None or now - job.ended < MIN_JOB_AGE
            )
        return JobListing(listed, complete=True)

    def history(self, job_ids: Sequence[str]) -> JobListing:
        """These jobs from accounting (sacct), whatever their state; an id it never had is not listed."""
        with self._lock:
            found = tuple(self._jobs[job_id] for job_id in job_ids if job_id in self._jobs)
        return JobListing(found, complete=True)

    def signal(self, jobs: Sequence[SlurmJob], signal: str) -> list[JobActionResult]:
        """``scancel --signal=<signal> --full``: the job is told, and keeps running (this demo's
        jobs trap TERM to write a checkpoint); a pending job has nothing to signal."""
        return self._act("signal", jobs, signal)

    def cancel(self, jobs: Sequence[SlurmJob]) -> list[JobActionResult]:
        """``scancel <id>``: the job ends now, CANCELLED."""
        return self._act("cancel", jobs)

    def suspend(self, jobs: Sequence[SlurmJob]) -> list[JobActionResult]:
        """``scontrol suspend`` a running job, ``scontrol hold`` a pending one."""
        return self._act("suspend", jobs)

    def _act(self, verb: str, jobs: Sequence[SlurmJob], signal: str | None = None) -> list[JobActionResult]:
        now = self._clock()
        answers = []
        with self._lock:
            for job in jobs:
                answer = self._act_on(verb, job, signal, now)
                self._calls.append(SlurmCall(verb, job.job_id, answer.ok, answer.message, signal, now))
                answers.append(answer)
        return answers

    def _act_on(self, verb: str, job: SlurmJob, signal: str | None, now: datetime) -> JobActionResult:
        """One job, under the lock: found by its id in this cluster, never by its name."""
        if job.cluster != self._cluster:
            return JobActionResult(
                job.job_id, False, f"a job of cluster {job.cluster}, not {self._cluster}: left alone"
            )
        live = self._jobs.get(job.job_id)
        if live is None:
            return JobActionResult(job.job_id, False, "Invalid job id specified")
        if live.state == ENDED:
            return JobActionResult(job.job_id, verb == "cancel", f"already ended ({live.slurm_state})")
        if verb == "signal":
            if live.state == PENDING:
                return JobActionResult(job.job_id, False, "job is pending execution: not signalled")
            return JobActionResult(job.job_id, True, f"signalled {signal}")
        if verb == "cancel":
            self._jobs[job.job_id] = replace(live, state=ENDED, slurm_state="CANCELLED", ended=now)
            self._requests.pop(job.job_id, None)
            return JobActionResult(job.job_id, True, "cancelled")
        if live.state == PENDING:
            self._held.add(job.job_id)
            return JobActionResult(job.job_id, True, "held")
        if live.state == SUSPENDED:
            return JobActionResult(job.job_id, True, "already suspended")
        self._jobs[job.job_id] = replace(live, state=SUSPENDED, slurm_state="SUSPENDED")
        return JobActionResult(job.job_id, True, "suspended")
