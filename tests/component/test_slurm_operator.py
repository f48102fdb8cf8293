"""The real operator with ``--slurm`` against a real Slurm (tests/slurm_cluster.py): a budget
naming a SkyPilot cluster and a user covers exactly that cluster's job, prices it from its
allocation, shows it in ``status.slurmJobs``, and at the crossing sends it TERM, waits the grace
period and cancels it by id; a job of another user with the same name and another job of the
same user keep running. Then the operator restarts while a covered job ends, and closes it from
accounting."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from costwarden.engine.slurm import SlurmJob
from costwarden.models import CostBudgetStatus
from costwarden.pricing.overrides import PriceDefaults
from costwarden.sim.testing import ThreadedSimCluster
from costwarden.slurm.base import JobActionResult, JobListing
from costwarden.slurm.commands import CommandSource
from tests import shapes
from tests.component.test_cloud_vms import condition, record
from tests.component.test_operator_spend import NS, budget, status_of
from tests.slurm_cluster import CLUSTER_NAME, OTHER_USER, SlurmCluster

pytestmark = pytest.mark.timeout(900)  # installing Slurm on a fresh machine may take minutes

CLUSTER_ON_CLOUD = "train-llama-2ea4"  # SkyPilot's job for the cluster the user typed as train-llama
SLEEP = "sleep 600 &\nwait\n"


def slurm_budget(limit: float) -> dict[str, Any]:
    body = budget(
        limit=limit,
        skypilotCluster="train-llama",
        slurm={"cluster": CLUSTER_NAME, "user": "root"},
        thresholds=[{"percent": 50, "action": "Notify"}, {"percent": 100, "action": "Kill"}],
        enforcement={"gracePeriodSeconds": 1},
    )
    body["spec"]["selector"] = {"matchLabels": {"nothing": "here"}}  # no pod: the job only
    return body


def allocation_rate(gpus: int, cpus: int, gib: int) -> Decimal:
    """The defaults' price of an allocation (no overrides file): what the operator must charge."""
    gpu, cpu, ram = PriceDefaults().rates("on-demand")
    return gpu * gpus + cpu * cpus + ram * gib


def test_a_budget_covers_prices_and_cancels_exactly_its_slurm_job(
    cluster: ThreadedSimCluster, start_operator: Any, clock: Any, slurm: SlurmCluster
) -> None:
    sky = slurm.submit_skypilot(CLUSTER_ON_CLOUD)  # 1 GPU, 4 CPUs, 16 GiB (SkyPilot's defaults)
    decoy = slurm.submit(SLEEP, name=CLUSTER_ON_CLOUD, user=OTHER_USER, gres="gpu:1")
    other = slurm.submit(SLEEP, name="eval-harness", gres="gpu:1")
    for job_id in (sky, decoy, other):
        slurm.wait_state(job_id, "RUNNING")
    cluster.create(shapes.namespace(NS))
    cluster.create(slurm_budget(limit=2))
    rate = allocation_rate(1, 4, 16)
    operator = start_operator(slurm=(CLUSTER_NAME,), slurm_interval=0.5)

    cluster.wait_for(lambda: status_of(cluster).get("slurmJobs") == 1, timeout=30)
    cluster.wait_for(lambda: status_of(cluster).get("hourlyRate") == float(round(rate, 4)), timeout=15)
    assert status_of(cluster)["gpus"] == 1
    assert condition(status_of(cluster), "SlurmUnavailable") == "False"

    clock.advance(timedelta(hours=1))  # 1.14 of 2: Notify only
    cluster.wait_for(lambda: record(status_of(cluster), "threshold/50") is not None, timeout=15)
    assert slurm.state_of(slurm.job(sky) or {}) == "RUNNING"

    clock.advance(timedelta(hours=1))  # 2.29 of 2: Kill
    cluster.wait_for(
        lambda: (record(status_of(cluster), "threshold/100") or {}).get("result") == "Done", timeout=30
    )
    killed = record(status_of(cluster), "threshold/100")
    assert killed is not None and killed["targets"] == [f"SlurmJob/{CLUSTER_NAME}:{sky}"]
    ended = slurm.wait_state(sky, {"COMPLETED", "CANCELLED"})  # SkyPilot's TERM trap exits 0
    assert slurm.state_of(ended) in ("COMPLETED", "CANCELLED")
    assert slurm.state_of(slurm.job(decoy) or {}) == "RUNNING"  # same name, another user
    assert slurm.state_of(slurm.job(other) or {}) == "RUNNING"  # same user, not the cluster's
    cluster.wait_for(lambda: status_of(cluster).get("slurmJobs") == 0, timeout=30)
    assert float(status_of(cluster)["slurmSpend"]) >= float(round(2 * rate, 2))
    assert operator.error is None


@dataclass
class SqueueForgets:
    """The real client commands, with squeue no longer listing ended jobs (as once MinJobAge has
    passed), so the operator must find how a job ended in accounting (``sacct``)."""

    source: CommandSource
    asked: list[tuple[str, ...]] = field(default_factory=list)
    answered: list[JobListing] = field(default_factory=list)

    @property
    def cluster(self) -> str:
        return self.source.cluster

    def jobs(self) -> JobListing:
        listing = self.source.jobs()
        return replace(listing, jobs=tuple(job for job in listing.jobs if not job.is_terminal))

    def history(self, job_ids: Sequence[str]) -> JobListing:
        self.asked.append(tuple(job_ids))
        found = self.source.history(job_ids)
        self.answered.append(found)
        return found

    def signal(self, jobs: Sequence[SlurmJob], signal: str) -> list[JobActionResult]:
        return self.source.signal(jobs, signal)

    def cancel(self, jobs: Sequence[SlurmJob]) -> list[JobActionResult]:
        return self.source.cancel(jobs)

    def suspend(self, jobs: Sequence[SlurmJob]) -> list[JobActionResult]:
        return self.source.suspend(jobs)


def test_a_job_that_ends_while_the_operator_is_down_is_closed_from_accounting(
    cluster: ThreadedSimCluster, start_operator: Any, clock: Any, slurm: SlurmCluster
) -> None:
    sky = slurm.submit_skypilot(CLUSTER_ON_CLOUD)
    slurm.wait_state(sky, "RUNNING")
    cluster.create(shapes.namespace(NS))
    cluster.create(slurm_budget(limit=10_000))
    rate = allocation_rate(1, 4, 16)
    first = start_operator(job_sources=(SqueueForgets(CommandSource(CLUSTER_NAME)),), slurm_interval=0.5)
    cluster.wait_for(lambda: status_of(cluster).get("slurmJobs") == 1, timeout=30)
    clock.advance(timedelta(hours=1))
    cluster.wait_for(lambda: status_of(cluster).get("slurmSpend") == float(round(rate, 2)), timeout=15)
    first.stop()

    slurm.run("scancel", sky)  # the job ends while no operator is looking
    slurm.wait_accounted(sky, "CANCELLED")
    clock.advance(timedelta(hours=1))
    source = SqueueForgets(CommandSource(CLUSTER_NAME))
    start_operator(job_sources=(source,), slurm_interval=0.5)
    # squeue no longer lists it: the ledger's entry is looked up in sacct and closed, its spend kept.
    cluster.wait_for(lambda: (sky,) in source.asked, timeout=30)
    key = f"slurm:{CLUSTER_NAME}:{sky}"
    cluster.wait_for(lambda: key not in ledger_keys(cluster), timeout=30)  # closed after the lookup
    assert status_of(cluster)["slurmJobs"] == 0
    found = [job for listing in source.answered for job in listing.jobs if job.job_id == sky]
    assert found and found[0].slurm_state == "CANCELLED" and found[0].ended is not None
    assert float(status_of(cluster)["slurmSpend"]) >= float(round(rate, 2))


def ledger_keys(cluster: ThreadedSimCluster) -> set[str]:
    stored = CostBudgetStatus.model_validate(status_of(cluster))
    return set(stored.ledger.pods)
