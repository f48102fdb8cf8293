"""Both Slurm job sources against a real Slurm 22.05 (tests/slurm_cluster.py): ``CommandSource``
(squeue, sacct, scancel, scontrol) and ``RestSource`` (the real slurmrestd 22.05, JWT auth,
data_parser v0.0.38).

Each lists a SkyPilot-shaped job and a decoy of another user with the same name with what Slurm
allocated them; signals and cancels exactly the job id given (the decoy stays RUNNING); suspends
a running job (client commands; slurmrestd has no suspend and says so) and holds a pending one
and an array's pending tasks; reads an ended job back from accounting with its end time. A
broken SLURM_CONF, a stopped slurmctld, a refused token and a stopped slurmrestd give incomplete
listings with the reason. Waits are the fixture's polls, never sleeps.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from costwarden.engine.slurm import ENDED, PENDING, RUNNING, SUSPENDED, SlurmJob
from costwarden.slurm.base import JobListing, JobSource
from costwarden.slurm.commands import CommandSource
from costwarden.slurm.rest import RestSource
from tests.slurm_cluster import (
    ACCOUNT,
    CLUSTER_NAME,
    GPU_TYPE,
    NODE,
    OTHER_ACCOUNT,
    OTHER_USER,
    SlurmCluster,
    SlurmUnavailable,
    slurm_binaries,
)

pytestmark = pytest.mark.timeout(900)

CLUSTER_ON_CLOUD = "train-llama-2ea4"
SLEEP = "sleep 600 &\nwait\n"


def make_source(kind: str, cluster: SlurmCluster) -> JobSource:
    if kind == "commands":
        return CommandSource(CLUSTER_NAME)
    rest = cluster.start_slurmrestd()
    return RestSource(CLUSTER_NAME, rest.url, rest.token_file, user=rest.user)


@pytest.fixture(params=["commands", "rest"])
def source(request: pytest.FixtureRequest, slurm: SlurmCluster) -> JobSource:
    return make_source(request.param, slurm)


def listed(source: JobSource) -> dict[str, SlurmJob]:
    listing = source.jobs()
    assert listing.complete, listing.error
    assert listing.error is None
    return {job.job_id: job for job in listing.jobs}


def epoch(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value), UTC)


def test_both_sources_list_the_skypilot_job_and_a_decoy_with_what_slurm_allocated(
    source: JobSource, slurm: SlurmCluster
) -> None:
    sky = slurm.submit_skypilot(CLUSTER_ON_CLOUD)
    decoy = slurm.submit(SLEEP, name=CLUSTER_ON_CLOUD, user=OTHER_USER, gres="gpu:1")
    sky_raw = slurm.wait_state(sky, "RUNNING")
    slurm.wait_state(decoy, "RUNNING")

    jobs = listed(source)
    assert source.cluster == CLUSTER_NAME
    sky_job, decoy_job = jobs[sky], jobs[decoy]
    assert (sky_job.cluster, sky_job.name, sky_job.user, sky_job.account, sky_job.partition) == (
        CLUSTER_NAME,
        CLUSTER_ON_CLOUD,
        "root",
        ACCOUNT,
        "gpu",
    )
    assert (sky_job.state, sky_job.slurm_state, sky_job.nodes) == (RUNNING, "RUNNING", (NODE,))
    # SkyPilot's shape: --gres=gpu:h100:1, --cpus-per-task=4, --mem=16G, as allocated
    assert (sky_job.gpus, sky_job.cpus, sky_job.memory_gib, sky_job.gpu_type) == (1, 4, Decimal(16), GPU_TYPE)
    assert sky_job.started == epoch(sky_raw["start_time"])
    assert sky_job.submitted == epoch(sky_raw["submit_time"])
    assert sky_job.ended is None  # squeue's end_time of a running job is its time limit's
    assert sky_job.key == f"slurm:{CLUSTER_NAME}:{sky}"
    # The decoy: same name, another user and account, an untyped GPU request given an h100.
    assert (decoy_job.name, decoy_job.user, decoy_job.account) == (
        CLUSTER_ON_CLOUD,
        OTHER_USER,
        OTHER_ACCOUNT,
    )
    assert (decoy_job.gpus, decoy_job.cpus, decoy_job.memory_gib, decoy_job.gpu_type) == (
        1,
        1,
        Decimal(1),
        GPU_TYPE,
    )
    assert decoy_job.state == RUNNING
    if isinstance(source, CommandSource):  # with --clusters, as with several --slurm clusters
        many = CommandSource(CLUSTER_NAME, clusters_flag=True).jobs()
        assert many.complete, many.error
        assert {job.job_id for job in many.jobs} >= {sky, decoy}
    else:
        assert isinstance(source, RestSource)
        assert source.version == "v0.0.38"  # what Debian's 22.05 slurmrestd serves


def test_signal_then_cancel_end_exactly_the_given_job_and_never_the_decoy_of_that_name(
    source: JobSource, slurm: SlurmCluster
) -> None:
    sky = slurm.submit_skypilot(CLUSTER_ON_CLOUD)
    other_sky = slurm.submit_skypilot(CLUSTER_ON_CLOUD)  # root's second job of that name
    decoy = slurm.submit(SLEEP, name=CLUSTER_ON_CLOUD, user=OTHER_USER, gres="gpu:1")
    for job_id in (sky, other_sky, decoy):
        slurm.wait_state(job_id, "RUNNING")
    jobs = listed(source)

    # TERM to the whole job, batch script included (--full): SkyPilot's script traps it and exits 0.
    [signalled] = source.signal([jobs[sky]], "TERM")
    assert (signalled.job_id, signalled.ok, signalled.message) == (sky, True, "signalled TERM")
    slurm.wait_state(sky, "COMPLETED")
    assert slurm.state_of(slurm.wait_state(other_sky, "RUNNING")) == "RUNNING"
    assert slurm.state_of(slurm.wait_state(decoy, "RUNNING")) == "RUNNING"

    # Cancelling the job as last read (still "running" there): it has ended, which is no failure.
    [again] = source.cancel([jobs[sky]])
    assert again.ok, again
    assert "already ended" in again.message
    [cancelled] = source.cancel([jobs[other_sky]])
    assert (cancelled.job_id, cancelled.ok, cancelled.message) == (other_sky, True, "cancelled")
    slurm.wait_state(other_sky, "CANCELLED")

    now = listed(source)
    assert (now[sky].state, now[sky].slurm_state) == (ENDED, "COMPLETED")
    assert (now[other_sky].state, now[other_sky].slurm_state) == (ENDED, "CANCELLED")
    assert (now[decoy].state, now[decoy].user) == (RUNNING, OTHER_USER)
    assert now[sky].ended is not None and now[other_sky].ended is not None
    # A pending job is not signalled: nothing of it runs (nor a suspended one: scancel waits on it).
    pending = slurm.submit(SLEEP, name=CLUSTER_ON_CLOUD, gres="gpu:4")  # the decoy holds a GPU
    slurm.wait_state(pending, "PENDING")
    [refused] = source.signal([listed(source)[pending]], "TERM")
    assert (refused.ok, refused.transient) == (False, False)
    assert refused.message == "pending, not running: nothing to signal (cancel ends it)"
    assert slurm.state_of(slurm.wait_state(decoy, "RUNNING")) == "RUNNING"


def test_suspend_suspends_a_running_job_and_holds_pending_ones(
    source: JobSource, slurm: SlurmCluster
) -> None:
    running = slurm.submit(SLEEP, name="finetune", gres="gpu:1")
    array = slurm.submit(SLEEP, name="sweep", partition="debug", gres="gpu:1", extra_args=["--array=0-2%1"])
    slurm.wait_state(running, "RUNNING")
    slurm.wait_state(f"{array}_0", "RUNNING")  # tasks 1-2 wait in the array's own record
    pending = slurm.submit(SLEEP, name="needs-4-gpus", gres="gpu:4")  # two GPUs are taken
    slurm.wait_state(pending, "PENDING")
    jobs = listed(source)
    assert {running, f"{array}_0", f"{array}_[1-2%1]", pending} <= set(jobs)

    results = {r.job_id: r for r in source.suspend([jobs[running], jobs[pending], jobs[f"{array}_[1-2%1]"]])}
    assert results[pending].ok and results[pending].message == "held", results[pending]
    assert results[f"{array}_[1-2%1]"].ok, results[f"{array}_[1-2%1]"]
    assert slurm.job(pending)["state_reason"] == "JobHeldAdmin"  # type: ignore[index]
    assert slurm.job(pending)["priority"] == 0  # type: ignore[index]
    assert slurm.job(array)["priority"] == 0  # type: ignore[index] # the array's pending tasks held ...
    task0 = slurm.wait_state(f"{array}_0", "RUNNING")
    assert task0["job_id"] != int(array) and task0["priority"] != 0  # ... and its running task not
    if isinstance(source, CommandSource):
        assert (results[running].ok, results[running].message) == (True, "suspended")
        slurm.wait_state(running, "SUSPENDED")
        [again, task] = source.suspend([listed(source)[running], jobs[f"{array}_0"]])
        assert (again.ok, again.message) == (True, "already suspended")
        assert (task.ok, task.message) == (True, "suspended")  # scontrol suspend <array>_0
        slurm.wait_state(f"{array}_0", "SUSPENDED")
        assert listed(source)[f"{array}_0"].state == SUSPENDED
    else:  # no slurmrestd version suspends a job: said, and nothing done
        assert not results[running].ok
        assert "cannot suspend a running job" in results[running].message
        assert "client commands" in results[running].message
        assert slurm.state_of(slurm.wait_state(running, "RUNNING")) == "RUNNING"
    after = listed(source)
    assert after[pending].state == PENDING and after[pending].started is None


def test_history_gives_an_ended_job_with_its_end_time_from_accounting(
    source: JobSource, slurm: SlurmCluster
) -> None:
    done = slurm.submit("sleep 1\n", name="eval-done", gres="gpu:1")
    array = slurm.submit(SLEEP, name="sweep", partition="debug", gres="gpu:1", extra_args=["--array=0-1"])
    task0 = f"{array}_0"
    task0_raw = str(slurm.wait_state(task0, "RUNNING")["job_id"])  # the task's own job id
    [cancelled] = source.cancel([listed(source)[task0]])
    assert cancelled.ok, cancelled
    assert slurm.state_of(slurm.wait_state(f"{array}_1", "RUNNING")) == "RUNNING"  # task 0 alone
    accounted = slurm.wait_accounted(done, "COMPLETED")
    slurm.wait_accounted(task0_raw, "CANCELLED")

    found = source.history([done, task0, "999999"])
    assert found.complete, found.error
    jobs = {job.job_id: job for job in found.jobs}
    assert set(jobs) == {done, task0}  # an id accounting does not know is simply not there
    job = jobs[done]
    assert (job.state, job.slurm_state, job.name, job.user, job.account) == (
        ENDED,
        "COMPLETED",
        "eval-done",
        "root",
        ACCOUNT,
    )
    assert job.ended == epoch(accounted["time"]["end"])
    assert job.started == epoch(accounted["time"]["start"])
    assert job.ended is not None and job.started is not None and job.ended >= job.started
    assert (job.gpus, job.cpus, job.memory_gib, job.nodes) == (1, 1, Decimal(1), (NODE,))
    assert (jobs[task0].state, jobs[task0].slurm_state) == (ENDED, "CANCELLED")
    assert jobs[task0].ended is not None
    assert source.history([]) == JobListing((), True)


def test_array_tasks_and_an_arrays_pending_tasks_are_cancelled_alone(
    source: JobSource, slurm: SlurmCluster
) -> None:
    pair = slurm.submit(SLEEP, name="pair", partition="debug", gres="gpu:1", extra_args=["--array=0-1"])
    sweep = slurm.submit(SLEEP, name="sweep", partition="debug", gres="gpu:1", extra_args=["--array=0-3%1"])
    slurm.wait_state(f"{pair}_0", "RUNNING")
    last = slurm.wait_state(f"{pair}_1", "RUNNING")
    assert str(last["job_id"]) == pair  # the array's last task runs in the array's own record
    slurm.wait_state(f"{sweep}_0", "RUNNING")
    jobs = listed(source)
    waiting = jobs[f"{sweep}_[1-3%1]"]  # squeue's own form, limit included
    assert (waiting.state, waiting.gpus, waiting.nodes) == (PENDING, 0, ())

    [result] = source.cancel([waiting])
    assert (result.ok, result.message) == (True, "cancelled"), result
    slurm.wait_state(sweep, "CANCELLED")  # the pending tasks' record ...
    assert slurm.state_of(slurm.wait_state(f"{sweep}_0", "RUNNING")) == "RUNNING"  # ... not task 0

    [result] = source.cancel([jobs[f"{pair}_1"]])
    assert result.ok, result
    slurm.wait_state(f"{pair}_1", "CANCELLED")
    assert slurm.state_of(slurm.wait_state(f"{pair}_0", "RUNNING")) == "RUNNING"

    [result] = source.cancel([jobs[f"{pair}_0"]])
    assert result.ok, result
    slurm.wait_state(f"{pair}_0", "CANCELLED")
    assert slurm.state_of(slurm.wait_state(f"{sweep}_0", "RUNNING")) == "RUNNING"


def test_a_broken_slurm_conf_makes_the_commands_listing_incomplete_with_the_reason(
    slurm: SlurmCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broken = tmp_path / "slurm.conf"
    broken.write_text("ClusterName=costwarden-test\nNotASlurmKey=1\n")
    monkeypatch.setenv("SLURM_CONF", str(broken))
    source = CommandSource(CLUSTER_NAME)
    listing = source.jobs()
    assert (listing.complete, listing.jobs) == (False, ())
    assert listing.error is not None and listing.error.startswith(f"{CLUSTER_NAME} squeue: exit 1: ")
    assert "NotASlurmKey" in listing.error and "\n" not in listing.error
    history = source.history(["1"])
    assert not history.complete and history.error is not None
    assert history.error.startswith(f"{CLUSTER_NAME} sacct: exit 1: ")
    [cancel] = source.cancel([_job("1")])
    assert (cancel.ok, cancel.transient) == (False, False)
    assert cancel.message.startswith("scancel: exit 1: ")

    # A SLURM_CONF naming no file: the commands wait for it to appear (up to 60 s), past the timeout.
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "missing.conf"))
    waiting = CommandSource(CLUSTER_NAME, timeout=3).jobs()
    assert not waiting.complete and waiting.error is not None
    assert waiting.error.startswith(f"{CLUSTER_NAME} squeue: no answer within 3 s: ")
    assert "missing.conf" in waiting.error


def test_a_refused_token_is_an_incomplete_listing_and_a_rotated_one_is_read_on_the_next_call(
    slurm: SlurmCluster, tmp_path: Path
) -> None:
    rest = slurm.start_slurmrestd()
    token_file = tmp_path / "token"
    source = RestSource(CLUSTER_NAME, rest.url, token_file, user="root")
    missing = source.jobs()
    assert not missing.complete and missing.error is not None
    assert missing.error.startswith(f"{CLUSTER_NAME} slurmrestd token file {token_file}")

    token_file.write_text("not-a-jwt\n")
    refused = source.jobs()
    assert not refused.complete and refused.error is not None
    assert "HTTP 401" in refused.error or "HTTP 403" in refused.error or "slurm error" in refused.error, (
        refused.error
    )

    token_file.write_text(f"SLURM_JWT={slurm.mint_token('root')}\n")  # as `scontrol token` prints it
    rotated = source.jobs()
    assert rotated.complete, rotated.error


@pytest.fixture
def lone_cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlurmCluster]:
    """A second private Slurm (no accounting), whose daemons this test may stop; SLURM_CONF points
    at it for the test."""
    try:
        cluster = SlurmCluster(slurm_binaries(), accounting=False).start()
    except SlurmUnavailable as exc:
        message = f"no Slurm for the Slurm tests: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
    try:
        yield cluster
    finally:
        cluster.stop()


def test_a_stopped_controller_makes_both_listings_incomplete_and_actions_transient(
    lone_cluster: SlurmCluster,
) -> None:
    rest = lone_cluster.start_slurmrestd()
    commands = CommandSource(CLUSTER_NAME)
    over_http = RestSource(CLUSTER_NAME, rest.url, rest.token_file, user=rest.user)
    assert commands.jobs().complete and over_http.jobs().complete
    running = lone_cluster.submit(SLEEP, name="train", gres="gpu:1")
    lone_cluster.wait_state(running, "RUNNING")
    job = listed(commands)[running]

    lone_cluster.stop_daemon("slurmctld")
    listing = commands.jobs()
    assert (listing.complete, listing.jobs) == (False, ())
    # 22.05's squeue --json exits 0 and says so in the answer's errors
    assert listing.error == (
        f"{CLUSTER_NAME} squeue: slurm error -1: slurm_load_jobs: Failed while looking for jobs: "
        "Unspecified error"
    )
    [cancel] = commands.cancel([job])
    assert (cancel.ok, cancel.transient) == (False, True)
    assert "Unable to contact slurm controller" in cancel.message

    answer = over_http.jobs()
    assert not answer.complete and answer.error is not None
    assert answer.error.startswith(f"{CLUSTER_NAME} slurmrestd GET /slurm/v0.0.38/jobs: HTTP 500")
    assert "Failed while looking for jobs" in answer.error
    [rest_cancel] = over_http.cancel([job])
    assert (rest_cancel.ok, rest_cancel.transient) == (False, True)

    lone_cluster.stop_daemon("slurmrestd")
    gone = over_http.jobs()
    assert not gone.complete and gone.error is not None and "GET /slurm/v0.0.38/jobs" in gone.error


def _job(job_id: str) -> SlurmJob:
    return SlurmJob(CLUSTER_NAME, job_id, "x", "root", ACCOUNT, "gpu", RUNNING, "RUNNING")
