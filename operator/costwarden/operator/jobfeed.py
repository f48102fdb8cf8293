"""The Slurm jobs of every ``--slurm`` cluster as the operator knows them: read, accrued, acted on.

Each cluster's ``JobSource`` is read every ``slurm_interval`` seconds in a worker thread (the
client commands and the HTTP calls block), with the back-off and staleness rules of
``polling.Sources``. A job that leaves ``squeue`` between two reads, and a job a budget's ledger
holds that no read lists (it ended while the operator was down), is looked up in accounting
(``history``, ``sacct``) on the next read, so that it is closed at its real end time rather than
at its last figure; until that lookup has been made, such ledger entries are carried over,
never closed (``all_read``).

Where job spend lives: in the ledger of each budget that covers the job (``status.ledger``,
keyed ``slurm:<cluster>:<job id>``) and in memory here, as for cloud VMs (vmfeed.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from costwarden.engine.outside import CoveredOutside
from costwarden.engine.slurm import JOB_KEY_PREFIX, SlurmJob, accrue_job
from costwarden.models import BudgetLedger
from costwarden.operator.polling import Figures, PollSettings, Sources
from costwarden.pricing import PriceBook
from costwarden.pricing.slurm import slurm_unit_price
from costwarden.slurm.base import JobActionResult, JobListing, JobSource

log = logging.getLogger(__name__)

Run = Callable[[Callable[[], Any]], Awaitable[Any]]  # how a blocking call is run


async def in_thread(call: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(call)


class JobFeed:
    """The jobs of every ``--slurm`` cluster, their accrual, and the door to signal, cancel or
    suspend them."""

    def __init__(self, sources: Sequence[JobSource], settings: PollSettings, run: Run = in_thread):
        self.settings = settings
        self._run = run
        self._sources = {source.cluster: source for source in sources}
        self.sources: Sources[SlurmJob] = Sources(self._sources, settings)
        self._figures = Figures()
        self._wanted: dict[str, set[str]] = {cluster: set() for cluster in self._sources}  # job ids
        self._looked: set[str] = set()  # keys accounting was asked about (found or not)

    @property
    def clusters(self) -> list[str]:
        return list(self._sources)

    async def poll(self, now: float) -> dict[str, bool]:
        """Read every cluster that is due, and look up the jobs that left it; never raises."""
        due = self.sources.due(now)
        results = await asyncio.gather(*(self._read(cluster) for cluster in due), return_exceptions=True)
        polled: dict[str, bool] = {}
        for cluster, result in zip(due, results, strict=True):
            listing = (
                result if isinstance(result, JobListing) else JobListing((), False, f"{cluster}: {result!r}")
            )
            before = {key for key, job in self.sources.states[cluster].records.items() if not job.is_terminal}
            self.sources.take(cluster, listing.jobs, (listing.complete, listing.error, None), now)
            polled[cluster] = listing.complete
            if not listing.complete:
                wait = self.sources.states[cluster].next_poll - now
                log.warning("%s: %s (next read in %.0f s)", cluster, listing.error, wait)
                continue
            listed = {job.key for job in listing.jobs}
            self._wanted[cluster].update(_job_id(key) for key in before - listed)
            await self._look_up(cluster, listed)
        self._figures.retain(job.key for job in self.sources.records())
        return polled

    async def _read(self, cluster: str) -> JobListing:
        result = await self._run(self._sources[cluster].jobs)
        assert isinstance(result, JobListing)
        return result

    async def _look_up(self, cluster: str, listed: set[str]) -> None:
        """Ask accounting about the wanted jobs of ``cluster`` that the read did not list."""
        ids = sorted(
            job_id for job_id in self._wanted[cluster] if f"{JOB_KEY_PREFIX}{cluster}:{job_id}" not in listed
        )
        self._wanted[cluster].clear()
        if not ids:
            return
        try:
            found = await self._run(lambda: self._sources[cluster].history(ids))
        except Exception as exc:  # a source bug: look again next time
            found = JobListing((), False, f"{cluster} history: {exc!r}")
        assert isinstance(found, JobListing)
        if not found.complete:
            log.warning("%s: %s (asked again on the next read)", cluster, found.error)
            self._wanted[cluster].update(ids)
            return
        state = self.sources.states[cluster]
        for job in found.jobs:
            state.records.setdefault(job.key, job)  # ended: accrued to its end, then closed
        self._looked.update(f"{JOB_KEY_PREFIX}{cluster}:{job_id}" for job_id in ids)

    def want(self, ledger: BudgetLedger) -> None:
        """Note the jobs a budget's ledger holds that no read lists (after a restart: jobs that
        may have ended while the operator was down), to be looked up on the next read."""
        for key in ledger.pods:
            if not key.startswith(JOB_KEY_PREFIX) or key in self._looked:
                continue
            cluster, _, job_id = key[len(JOB_KEY_PREFIX) :].rpartition(":")
            if cluster in self._wanted and self.sources.record(key) is None:
                self._wanted[cluster].add(job_id)

    def all_read(self) -> bool:
        """Every cluster read completely once, and every job wanted from accounting looked up."""
        return self.sources.all_read() and not any(self._wanted.values())

    def records(self) -> list[SlurmJob]:
        return self.sources.records()

    def record(self, key: str) -> SlurmJob | None:
        return self.sources.record(key)

    def fresh(self, cluster: str, now: float) -> bool:
        return self.sources.fresh(cluster, now)

    def problems(self, now: float) -> tuple[str, ...]:
        return self.sources.problems(now)

    def covered(
        self, job: SlurmJob, prices: PriceBook, now: datetime, ledger: BudgetLedger
    ) -> CoveredOutside:
        """The job's accrual at ``now``, once per pass however many budgets cover it."""

        def price() -> tuple[Decimal, int]:
            unit = slurm_unit_price(prices, job.nodes, job.partition)
            return unit.hourly(job.gpus, job.cpus, job.memory_gib), job.gpus

        return self._figures.covered(
            job, (now, ledger), price, lambda rate, previous, mark: accrue_job(job, rate, now, previous, mark)
        )

    def retain(self, keys: Iterable[str]) -> None:
        self._figures.retain(keys)

    def clear(self) -> None:
        """A new leadership term resumes from the stored ledgers."""
        self._figures.clear()
        self._looked.clear()

    async def act(
        self, cluster: str, verb: str, jobs: Sequence[SlurmJob], signal: str = "TERM"
    ) -> list[JobActionResult]:
        """``signal``, ``cancel`` or ``suspend`` these jobs of one cluster in a worker thread;
        never raises."""
        source = self._sources.get(cluster)
        if source is None:
            return [JobActionResult(job.job_id, False, f"{cluster} is not a --slurm cluster") for job in jobs]
        calls: dict[str, Callable[[], list[JobActionResult]]] = {
            "signal": lambda: source.signal(jobs, signal),
            "cancel": lambda: source.cancel(jobs),
            "suspend": lambda: source.suspend(jobs),
        }
        try:
            result = await self._run(calls[verb])
        except Exception as exc:  # a source bug: report, never crash the action worker
            return [
                JobActionResult(job.job_id, False, f"{cluster} {verb}: {exc!r}", transient=True)
                for job in jobs
            ]
        assert isinstance(result, list)
        return result


def _job_id(key: str) -> str:
    return key.rpartition(":")[2]
