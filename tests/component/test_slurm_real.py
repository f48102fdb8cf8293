"""A real Slurm (tests/slurm_cluster.py): a job shaped as SkyPilot shapes a Slurm "cluster" and a
decoy of another user with the same name, both seen in ``squeue --json`` with their GPUs; one is
cancelled by its id and leaves the running state while the other keeps running; SkyPilot's own
teardown (``scancel --name <cluster> --signal TERM --full``) is shown to reach every user's job of
that name when root runs it, unless it is narrowed to the user.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.slurm_cluster import ACCOUNT, GPU_TYPE, OTHER_ACCOUNT, OTHER_USER, SlurmCluster

# Installing Slurm (first test of a fresh machine) may take minutes; each wait has its own deadline.
pytestmark = pytest.mark.timeout(900)

CLUSTER_ON_CLOUD = "train-llama-2ea4"  # a SkyPilot cluster's name on cloud: the job's name
SLEEP = "sleep 600 &\nwait\n"


def by_id(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(job["job_id"]): job for job in answer["jobs"]}


def test_skypilot_job_and_a_decoy_show_in_squeue_with_their_gpus_and_one_is_cancelled(
    slurm: SlurmCluster,
) -> None:
    sky = slurm.submit_skypilot(CLUSTER_ON_CLOUD)
    decoy = slurm.submit(SLEEP, name=CLUSTER_ON_CLOUD, user=OTHER_USER, gres="gpu:1")
    slurm.wait_state(sky, "RUNNING")
    slurm.wait_state(decoy, "RUNNING")

    jobs = by_id(slurm.squeue_json())
    sky_job, decoy_job = jobs[sky], jobs[decoy]
    assert sky_job["name"] == decoy_job["name"] == CLUSTER_ON_CLOUD
    assert (sky_job["user_name"], sky_job["account"], sky_job["partition"]) == ("root", ACCOUNT, "gpu")
    assert (decoy_job["user_name"], decoy_job["account"]) == (OTHER_USER, OTHER_ACCOUNT)
    # What was asked for, and what was given: SkyPilot's typed GRES, the decoy's untyped one.
    assert sky_job["tres_per_node"] == f"gres:gpu:{GPU_TYPE}:1"
    assert decoy_job["tres_per_node"] == "gres:gpu:1"
    assert "gres/gpu=1" in sky_job["tres_alloc_str"].split(",")
    assert "gres/gpu=1" in decoy_job["tres_alloc_str"].split(",")
    assert "cpu=4" in sky_job["tres_alloc_str"].split(",")
    assert "mem=16G" in sky_job["tres_alloc_str"].split(",")
    assert sky_job["gres_detail"][0].startswith(f"gpu:{GPU_TYPE}:1(IDX:")
    assert decoy_job["gres_detail"][0].startswith(f"gpu:{GPU_TYPE}:1(IDX:")
    assert sky_job["gres_detail"] != decoy_job["gres_detail"]  # two different GPUs
    assert sky_job["time_limit"] == 24 * 60  # --time = the partition's MaxTime, in minutes

    slurm.run("scancel", sky)
    slurm.wait_state(sky, "CANCELLED")
    assert slurm.state_of(slurm.wait_state(decoy, "RUNNING")) == "RUNNING"
    accounted = slurm.wait_accounted(sky, "CANCELLED")
    assert accounted["name"] == CLUSTER_ON_CLOUD
    assert slurm.state_of(by_id(slurm.squeue_json())[decoy]) == "RUNNING"


def test_skypilot_teardown_by_name_reaches_every_users_job_of_that_name_unless_narrowed(
    slurm: SlurmCluster,
) -> None:
    sky = slurm.submit_skypilot(CLUSTER_ON_CLOUD)
    decoy = slurm.submit(SLEEP, name=CLUSTER_ON_CLOUD, user=OTHER_USER, gres="gpu:1")
    slurm.wait_state(sky, "RUNNING")
    slurm.wait_state(decoy, "RUNNING")

    # SkyPilot's `sky down` (run as the cluster's user, who can only signal their own jobs),
    # narrowed here to root's jobs: root may signal anyone's.
    slurm.run("scancel", "--name", CLUSTER_ON_CLOUD, "--signal", "TERM", "--full", "--user", "root")
    # The script's TERM trap exits 0: the job completes rather than being cancelled.
    slurm.wait_state(sky, "COMPLETED")
    assert slurm.state_of(slurm.wait_state(decoy, "RUNNING")) == "RUNNING"

    # Unnarrowed, the same command from root reaches the other user's job of that name too.
    slurm.run("scancel", "--name", CLUSTER_ON_CLOUD, "--signal", "TERM", "--full")
    slurm.wait_state(decoy, {"COMPLETED", "CANCELLED", "FAILED"})
