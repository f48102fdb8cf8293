"""The operator's view of Slurm jobs: reads with back-off, jobs that left squeue looked up in
accounting and closed at their end, ledger entries carried until then, and the action door
(TERM, the grace period, then cancel; suspend; nothing on stale data; dry run)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from costwarden.engine.enforcement import ActionPlan, job_target
from costwarden.engine.slurm import ENDED, PENDING, RUNNING, SlurmJob
from costwarden.models import Action, BudgetLedger, PodLedgerEntry
from costwarden.operator.jobactions import act_on_jobs, waiting_on_slurm
from costwarden.operator.jobfeed import JobFeed
from costwarden.operator.polling import PollSettings
from costwarden.operator.workloads import Outcome
from costwarden.pricing import PriceBook, load_bundled_catalog
from costwarden.slurm.base import JobActionResult, JobListing
from tests.outside_runtime import FakeKube, FakeRuntime

NOV_3 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
CLUSTER = "hpc"


def job(job_id: str, **changes: Any) -> SlurmJob:
    base = SlurmJob(
        cluster=CLUSTER,
        job_id=job_id,
        name="train",
        user="alice",
        account="ml",
        partition="gpu",
        state=RUNNING,
        slurm_state="RUNNING",
        nodes=("gpu-01",),
        gpus=1,
        cpus=4,
        memory_gib=Decimal(16),
        started=NOV_3 - timedelta(hours=1),
    )
    return replace(base, **changes)


@dataclass
class ScriptedSource:
    """A JobSource answering what the test scripts, recording what it is asked."""

    listings: list[JobListing]
    history_answer: JobListing = field(default_factory=lambda: JobListing((), True))
    cluster: str = CLUSTER
    calls: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    def jobs(self) -> JobListing:
        self.calls.append(("jobs", ()))
        return self.listings.pop(0) if len(self.listings) > 1 else self.listings[0]

    def history(self, job_ids: Sequence[str]) -> JobListing:
        self.calls.append(("history", tuple(job_ids)))
        return self.history_answer

    def signal(self, jobs: Sequence[SlurmJob], signal: str) -> list[JobActionResult]:
        self.calls.append((f"signal {signal}", tuple(j.job_id for j in jobs)))
        return [JobActionResult(j.job_id, True, f"signalled {signal}") for j in jobs]

    def cancel(self, jobs: Sequence[SlurmJob]) -> list[JobActionResult]:
        self.calls.append(("cancel", tuple(j.job_id for j in jobs)))
        return [JobActionResult(j.job_id, True, "cancelled") for j in jobs]

    def suspend(self, jobs: Sequence[SlurmJob]) -> list[JobActionResult]:
        self.calls.append(("suspend", tuple(j.job_id for j in jobs)))
        return [JobActionResult(j.job_id, True, "suspended") for j in jobs]


async def same_thread(call: Any) -> Any:
    return call()


def feed_of(source: ScriptedSource) -> JobFeed:
    return JobFeed([source], PollSettings(interval=30.0), run=same_thread)


def test_a_job_that_left_squeue_is_looked_up_and_closed_at_its_end() -> None:
    ended = job("7", state=ENDED, slurm_state="COMPLETED", ended=NOV_3 - timedelta(minutes=10))
    source = ScriptedSource(
        [JobListing((job("7"), job("8")), True), JobListing((job("8"),), True)],
        history_answer=JobListing((ended,), True),
    )
    feed = feed_of(source)
    asyncio.run(feed.poll(0.0))
    asyncio.run(feed.poll(30.0))
    assert ("history", ("7",)) in source.calls
    found = feed.record(job("7").key)
    assert found is not None and found.state == ENDED and found.ended == ended.ended
    prices = PriceBook(load_bundled_catalog())
    rate = feed.covered(job("7"), prices, NOV_3 - timedelta(hours=1), BudgetLedger()).accrual.rate
    closed = feed.covered(found, prices, NOV_3, BudgetLedger()).accrual
    assert closed.rate == 0 and closed.spend == rate * Decimal(50) / Decimal(60)  # to its end, not to now


def test_ledger_jobs_no_read_lists_are_looked_up_and_carried_until_then() -> None:
    source = ScriptedSource([JobListing((job("8"),), True)], history_answer=JobListing((), True))
    feed = feed_of(source)
    asyncio.run(feed.poll(0.0))
    ledger = BudgetLedger(pods={job("5").key: PodLedgerEntry(spend=Decimal(3), at="2026-11-03T09:00:00Z")})
    feed.want(ledger)
    assert not feed.all_read()  # the ledger's job 5 may have ended while we were down: not closed yet
    asyncio.run(feed.poll(30.0))
    assert ("history", ("5",)) in source.calls and feed.all_read()
    feed.want(ledger)  # asked once: accounting did not know it, the ledger closes it at its last figure
    assert feed.all_read()


def test_a_failed_read_keeps_the_jobs_and_a_failed_lookup_is_asked_again() -> None:
    source = ScriptedSource(
        [JobListing((job("7"),), True), JobListing((), True)],
        history_answer=JobListing((), False, "hpc sacct: slurmdbd unreachable"),
    )
    feed = feed_of(source)
    asyncio.run(feed.poll(0.0))
    asyncio.run(feed.poll(30.0))
    assert not feed.all_read()
    asyncio.run(feed.poll(60.0))
    assert [c for c in source.calls if c[0] == "history"] == [("history", ("7",))] * 2
    failing = ScriptedSource([JobListing((job("1"),), True), JobListing((), False, "hpc squeue: exit 1")])
    other = feed_of(failing)
    asyncio.run(other.poll(0.0))
    asyncio.run(other.poll(30.0))
    assert [j.job_id for j in other.records()] == ["1"] and "squeue: exit 1" in other.problems(31.0)[0]


def plan_for(action: Action, jobs: Sequence[SlurmJob]) -> ActionPlan:
    targets = tuple(job_target("research", j) for j in jobs)
    return ActionPlan("threshold/100/x", action, "spend reached 100%", targets, False, 0, None)


def test_kill_signals_the_running_jobs_then_cancels_every_live_one_by_id() -> None:
    running, pending = job("12"), job("13", state=PENDING, started=None)
    source = ScriptedSource([JobListing((running, pending), True)])
    feed = feed_of(source)
    asyncio.run(feed.poll(0.0))
    runtime: Any = FakeRuntime(slurm=feed)
    plan = plan_for(Action.KILL, [running, pending])
    assert waiting_on_slurm(runtime, plan) is None
    results = asyncio.run(act_on_jobs(runtime, Action.KILL, plan.targets, grace_seconds=0))
    assert source.calls[1:] == [("signal TERM", ("12",)), ("cancel", ("12", "13"))]
    assert [(r.target, r.result) for r in results] == [
        ("SlurmJob hpc:12", Outcome.DONE),
        ("SlurmJob hpc:13", Outcome.DONE),
    ]


def test_suspend_stale_data_vanished_jobs_and_dry_run() -> None:
    running = job("12")
    source = ScriptedSource([JobListing((running,), True)])
    feed = feed_of(source)
    asyncio.run(feed.poll(0.0))
    runtime: Any = FakeRuntime(slurm=feed)
    suspended = asyncio.run(
        act_on_jobs(runtime, Action.SUSPEND, plan_for(Action.SUSPEND, [running]).targets, 0)
    )
    assert suspended[0].result == Outcome.DONE
    stale: Any = FakeRuntime(slurm=feed, now=1000.0)
    plan = plan_for(Action.KILL, [running, job("99")])
    assert "hpc" in (waiting_on_slurm(stale, plan) or "")
    results = asyncio.run(act_on_jobs(stale, Action.KILL, plan.targets, 0))
    assert {r.result for r in results} == {Outcome.THROTTLED, Outcome.GONE}
    dry: Any = FakeRuntime(slurm=feed, kube=FakeKube(dry_run=True))
    results = asyncio.run(act_on_jobs(dry, Action.KILL, plan_for(Action.KILL, [running]).targets, 0))
    assert [(r.result, r.message) for r in results] == [(Outcome.DRY_RUN, "would cancel")]
    assert [c[0] for c in source.calls] == ["jobs", "suspend"]  # nothing else was sent
