"""The Slurm side of a pass: reading the ``--slurm`` clusters, and cancelling or suspending jobs.

A job action is carried out only when what it rests on is fresh: the job is still listed and
its cluster's last read was complete and recent (``JobFeed.fresh``); a stale cluster keeps the
action Pending (``waiting_on_slurm``) without using up its attempts. Jobs are always acted on by
id, never by name (as root, ``scancel --name`` reaches every user's job of that name).

Kill is graceful, like a pod's grace period: the running jobs get ``scancel --signal=TERM
--full`` (their batch script and steps, as SkyPilot's own teardown sends), then, after the
budget's ``gracePeriodSeconds``, ``scancel``. Suspend suspends running jobs and holds pending
ones (the source decides which call each needs).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from costwarden.engine.enforcement import ActionPlan, Target, job_key
from costwarden.engine.slurm import RUNNING, SlurmJob
from costwarden.models import Action
from costwarden.operator.jobfeed import JobFeed
from costwarden.operator.polling import publish, waiting_on
from costwarden.operator.runtime import Runtime
from costwarden.operator.workloads import Outcome, TargetResult
from costwarden.slurm.base import JobActionResult

log = logging.getLogger(__name__)

SLURM_TICK = 5.0  # seconds between checks for due clusters (each keeps its own interval)


async def poll_slurm(runtime: Runtime, feed: JobFeed) -> dict[str, bool]:
    """Read the clusters that are due and publish what they hold."""
    now = runtime.monotonic()
    polled = await feed.poll(now)
    metrics = runtime.metrics
    publish(feed.sources, polled, now, (metrics.slurm_polls, metrics.slurm_jobs, metrics.slurm_up))
    return polled


def waiting_on_slurm(runtime: Runtime, plan: ActionPlan) -> str | None:
    """Why a destructive plan with job targets must wait (a cluster not fresh), else None."""
    feed = runtime.slurm
    targets = [t for t in plan.targets if t.kind == "SlurmJob"]
    if feed is None or not targets or plan.dry_run or plan.skipped:
        return None
    now = runtime.monotonic()
    jobs = [job for job in (feed.record(job_key(t)) for t in targets) if job is not None]
    return waiting_on((f"Slurm {job.cluster}" for job in jobs if not feed.fresh(job.cluster, now)), "job")


async def act_on_jobs(
    runtime: Runtime, action: Action, targets: Sequence[Target], grace_seconds: int
) -> list[TargetResult]:
    """Cancel (Kill: TERM, the grace period, then scancel) or suspend (Suspend) the job targets."""
    feed = runtime.slurm
    if feed is None or action not in (Action.KILL, Action.SUSPEND):
        why = (
            "the operator reads no Slurm cluster (--slurm)"
            if feed is None
            else f"{action.value} leaves jobs alone"
        )
        return [TargetResult(f"SlurmJob {t.name}", Outcome.SKIPPED, why) for t in targets]
    results: list[TargetResult] = []
    chosen: list[SlurmJob] = []
    now = runtime.monotonic()
    for target in targets:
        job = feed.record(job_key(target))
        if job is None or job.is_terminal:
            results.append(
                TargetResult(f"SlurmJob {target.name}", Outcome.GONE, "no longer running or pending")
            )
        elif not feed.fresh(job.cluster, now):
            results.append(
                TargetResult(_name(job), Outcome.THROTTLED, f"{job.cluster} answer is stale: not acting")
            )
        else:
            chosen.append(job)
    if not chosen:
        return results
    if runtime.kube.dry_run:
        verb = "cancel" if action is Action.KILL else "suspend"
        log.info("dry-run: would %s Slurm jobs %s", verb, ", ".join(job.job_id for job in chosen))
        return [*results, *(TargetResult(_name(job), Outcome.DRY_RUN, f"would {verb}") for job in chosen)]
    if action is Action.SUSPEND:
        return [*results, *await _each_cluster(runtime, feed, "suspend", chosen)]
    running = [job for job in chosen if job.state == RUNNING]
    if running:
        signalled = await _each_cluster(runtime, feed, "signal", running)
        if any(r.result == Outcome.DONE for r in signalled) and grace_seconds > 0:
            await asyncio.sleep(grace_seconds)  # the jobs' grace period, as a pod's
    return [*results, *await _each_cluster(runtime, feed, "cancel", chosen)]


async def _each_cluster(
    runtime: Runtime, feed: JobFeed, verb: str, jobs: Sequence[SlurmJob]
) -> list[TargetResult]:
    results: list[TargetResult] = []
    for cluster in sorted({job.cluster for job in jobs}):
        if not runtime.acting():
            return results
        in_cluster = [job for job in jobs if job.cluster == cluster]
        answered = await feed.act(cluster, verb, in_cluster)
        results.extend(_result(job, answered) for job in in_cluster)
    return results


def _name(job: SlurmJob) -> str:
    return f"SlurmJob {job.cluster}:{job.job_id}"


def _result(job: SlurmJob, answered: Sequence[JobActionResult]) -> TargetResult:
    found = next((r for r in answered if r.job_id == job.job_id), None)
    if found is None:
        return TargetResult(_name(job), Outcome.FAILED, "the job source did not answer for it")
    if found.ok:
        return TargetResult(_name(job), Outcome.DONE, found.message)
    return TargetResult(_name(job), Outcome.THROTTLED if found.transient else Outcome.FAILED, found.message)
