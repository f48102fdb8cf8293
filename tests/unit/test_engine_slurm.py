"""Slurm jobs in the pure engine: which budget covers a job, its price from its allocation, its
accrual, its place in the ledger and the status, and the targets of a Kill or a Suspend."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from costwarden.engine.enforcement import EnforcementPolicy, job_key, plan_record
from costwarden.engine.evaluation import BudgetInput, evaluate_budget
from costwarden.engine.ledger import PodAccrual
from costwarden.engine.outside import CoveredOutside, Mark, OutsideView
from costwarden.engine.slurm import (
    ENDED,
    PENDING,
    RUNNING,
    SUSPENDED,
    SlurmJob,
    accrue_job,
    covered_jobs,
)
from costwarden.models import Action, ActionRecord, CostBudgetSpec, CostBudgetStatus
from costwarden.pricing import PriceBook, load_bundled_catalog
from costwarden.pricing.overrides import OverridesError, load_overrides_text
from costwarden.pricing.slurm import slurm_unit_price

NOV_3 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
NS = "research"


def spec(**raw: Any) -> CostBudgetSpec:
    return CostBudgetSpec.model_validate({"limit": 500, "period": "Monthly", **raw})


def job(job_id: str, **changes: Any) -> SlurmJob:
    base = SlurmJob(
        cluster="hpc",
        job_id=job_id,
        name="train-llama",
        user="alice",
        account="ml-research",
        partition="gpu",
        state=RUNNING,
        slurm_state="RUNNING",
        nodes=("gpu-01",),
        gpus=4,
        cpus=32,
        memory_gib=Decimal(256),
        submitted=NOV_3 - timedelta(hours=3),
        started=NOV_3 - timedelta(hours=2),
    )
    return replace(base, **changes)


def test_filters_are_anded_and_a_budget_without_slurm_or_skypilot_covers_no_job() -> None:
    jobs = [
        job("1"),
        job("2", user="bob"),
        job("3", partition="debug"),
        job("4", cluster="other"),
        job("5", name="eval"),
        job("6", account=None),
    ]
    chosen = covered_jobs(spec(slurm={"cluster": "hpc", "user": "alice", "partition": "gpu"}), jobs)
    assert [j.job_id for j in chosen] == ["1", "5", "6"]
    by_account = covered_jobs(spec(slurm={"account": "ml-research", "jobName": "train-llama"}), jobs)
    assert [j.job_id for j in by_account] == ["1", "2", "3", "4"]
    assert [j.job_id for j in covered_jobs(spec(slurm={}), jobs)] == ["1", "2", "3", "4", "5", "6"]
    assert covered_jobs(spec(), jobs) == []


def test_skypilot_cluster_selects_the_job_named_as_the_cluster_on_cloud() -> None:
    jobs = [job("1", name="llama-sweep-2ea4"), job("2", name="llama-sweep2-2ea4"), job("3", name="other")]
    chosen = covered_jobs(spec(skypilotCluster="llama-sweep"), jobs)
    assert [j.job_id for j in chosen] == ["1"]
    both = covered_jobs(spec(skypilotCluster="llama-sweep", slurm={"user": "bob"}), jobs)
    assert both == []  # AND: the cluster's job, and bob's


def test_a_running_job_accrues_from_its_start_and_stops_at_its_end() -> None:
    rate = Decimal("10")
    running = accrue_job(job("1"), rate, NOV_3, None, None)
    assert (running.spend, running.rate) == (Decimal(20), rate)
    ended = job("1", state=ENDED, slurm_state="COMPLETED", ended=NOV_3 - timedelta(hours=1))
    closed = accrue_job(ended, rate, NOV_3, None, None)
    assert (closed.spend, closed.rate) == (Decimal(10), Decimal(0))
    pending = accrue_job(job("2", state=PENDING, started=None), rate, NOV_3, None, None)
    assert (pending.spend, pending.rate) == (Decimal(0), Decimal(0))


def test_accrual_continues_stops_when_suspended_and_closes_at_the_end_seen_after_a_restart() -> None:
    rate = Decimal("10")
    previous = PodAccrual(Decimal(5), rate, NOV_3)
    suspended = accrue_job(job("1", state=SUSPENDED), rate, NOV_3 + timedelta(minutes=30), previous, None)
    assert (suspended.spend, suspended.rate) == (Decimal(10), Decimal(0))
    # the job ended at +1 h while the operator was down; accounting says so
    ended = job("1", state=ENDED, slurm_state="COMPLETED", ended=NOV_3 + timedelta(hours=1))
    resumed = accrue_job(ended, rate, NOV_3 + timedelta(hours=5), None, Mark(Decimal(5), NOV_3))
    assert resumed.spend == Decimal(15)


def test_the_status_shows_jobs_and_their_spend_only_when_slurm_is_read() -> None:
    budget = BudgetInput(NS, "hpc", 1, spec(slurm={"user": "alice"}), CostBudgetStatus())
    covered = (CoveredOutside(job("1"), PodAccrual(Decimal("12.5"), Decimal("3"), NOV_3), gpus=4),)
    status = evaluate_budget(budget, [], NOV_3, slurm=OutsideView(covered)).status
    assert (status.slurm_jobs, status.slurm_spend, status.spend, status.gpus) == (
        1,
        Decimal("12.5"),
        Decimal("12.5"),
        4,
    )
    assert status.ledger.pods[job("1").key].spend == Decimal("12.5")
    condition = next(c for c in status.conditions if c.type == "SlurmUnavailable")
    assert condition.status == "False"
    down = evaluate_budget(budget, [], NOV_3, slurm=OutsideView(covered, ("hpc: squeue: exit 1",))).status
    assert "squeue: exit 1" in next(c for c in down.conditions if c.type == "SlurmUnavailable").message
    unread = evaluate_budget(budget, [], NOV_3).status
    assert unread.slurm_jobs is None and "slurmSpend" not in unread.to_k8s()


def record(action: Action) -> ActionRecord:
    return ActionRecord(
        id="threshold/100/2026-11-01T00:00:00Z", time="", trigger="spend reached 100%", action=action
    )


JOBS = [job("12"), job("11", state=PENDING, started=None), job("9", state=ENDED, slurm_state="COMPLETED")]


def test_kill_and_suspend_target_the_live_jobs_and_scale_leaves_them_alone() -> None:
    budget = spec(slurm={"user": "alice"})
    kill = plan_record(NS, budget, record(Action.KILL), ([], []), EnforcementPolicy(), jobs=JOBS)
    assert [str(t) for t in kill.targets] == ["SlurmJob/hpc:11", "SlurmJob/hpc:12"]
    assert job_key(kill.targets[0]) == job("11").key
    suspend = plan_record(NS, budget, record(Action.SUSPEND), ([], []), EnforcementPolicy(), jobs=JOBS)
    assert len(suspend.targets) == 2
    scale = plan_record(NS, budget, record(Action.SCALE), ([], []), EnforcementPolicy(), jobs=JOBS)
    assert scale.targets == () and len(scale.left_alone) == 2
    off = plan_record(NS, budget, record(Action.KILL), ([], []), EnforcementPolicy(mode="off"), jobs=JOBS)
    assert off.targets == ()


OVERRIDES = """
defaults: {gpu: 2.0, cpu: 0.05, ramGiB: 0.01}
slurm:
  nodes:
    gpu-[01-04]: {gpu: 3.0}
    h100-01: {instance: aws/us-east-1/p5.48xlarge}
  partitions:
    debug: {gpu: 1.0, cpu: 0.02, ramGiB: 0.001}
"""


def test_a_job_is_priced_by_its_node_then_its_partition_then_the_defaults() -> None:
    book = PriceBook(load_bundled_catalog(), load_overrides_text(OVERRIDES, "prices.yaml"))
    on_node = slurm_unit_price(book, ("gpu-03", "gpu-04"), "debug")
    assert (on_node.gpu, on_node.cpu, on_node.ram_gib) == (Decimal("3.0"), Decimal("0.05"), Decimal("0.01"))
    assert "slurm.nodes gpu-[01-04]" in on_node.source
    assert on_node.hourly(4, 32, Decimal(256)) == Decimal("12") + Decimal("1.6") + Decimal("2.56")
    in_partition = slurm_unit_price(book, ("cpu-07",), "debug")
    assert (in_partition.gpu, in_partition.source) == (
        Decimal("1.0"),
        "overrides:prices.yaml slurm.partitions debug",
    )
    default = slurm_unit_price(book, ("cpu-07",), "batch")
    assert (default.gpu, default.cpu) == (Decimal("2.0"), Decimal("0.05"))
    as_vm = slurm_unit_price(book, ("h100-01",), "gpu")
    p5 = as_vm.hourly(8, 192, Decimal(2048))
    assert p5 == pytest.approx(
        Decimal("55.04"), abs=Decimal("0.0001")
    )  # the whole node, as the catalog prices it
    assert "catalog" in as_vm.source


def test_with_nothing_configured_a_job_is_never_free() -> None:
    price = slurm_unit_price(PriceBook(load_bundled_catalog()), ("n1",), "gpu")
    assert price.hourly(1, 1, Decimal(1)) > 0 and price.source == "defaults: opencost"


def test_a_malformed_slurm_price_names_the_field() -> None:
    with pytest.raises(OverridesError, match=r"prices.yaml: slurm.nodes.gpu-01.instance"):
        load_overrides_text("slurm: {nodes: {gpu-01: {instance: 'aws/a/b/c/d'}}}", "prices.yaml")
    with pytest.raises(OverridesError, match=r"slurm.partitions.gpu.gpu"):
        load_overrides_text("slurm: {partitions: {gpu: {gpu: -1}}}", "prices.yaml")
