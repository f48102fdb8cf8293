"""Record what a real Slurm answers (tests/slurm_cluster.py, Debian's 22.05) for the unit tests.

    PYTHONPATH=. .venv/bin/python tools/record_slurm_outputs.py tests/data/slurm/22.05

Starts a private cluster (root), puts jobs in every state the operator meets (``jobs.json`` maps
each case to its job id), and writes ``squeue-all.json`` (``squeue --json``), ``sacct-<case>.json``
(``sacct --json --jobs=<id>``), ``sacct-all.json``, ``sinfo.json`` and the text of ``scontrol show
job`` for the running job. 22.05's ``squeue --json`` ignores ``--jobs``: a ``squeue-<case>.json``
is written only where the answer differs from ``squeue-all.json``. ``scontrol show job --json``
does not exist in 22.05 (``scontrol: unrecognized option '--json'``); it is recorded when the Slurm
here has it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from tests.slurm_cluster import OTHER_USER, SlurmCluster, slurm_binaries

SLEEP = "sleep 600 &\nwait\n"


def write_json(directory: Path, name: str, answer: dict[str, Any]) -> None:
    (directory / name).write_text(json.dumps(answer, indent=2) + "\n")


def wait_reason(cluster: SlurmCluster, job_id: str, reason: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (job := cluster.job(job_id)) is None or job.get("state_reason") != reason:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"job {job_id} never pending for {reason}: {job and job.get('state_reason')}"
            )
        time.sleep(0.2)


def wait_in_sacct(cluster: SlurmCluster, job_id: str, timeout: float = 30) -> None:
    """Until sacct has the job's start record (its partition; see SlurmCluster.wait_accounted)."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = cluster.sacct_json(f"--jobs={job_id}").get("jobs", [])
        if jobs and all(job.get("partition") for job in jobs):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"sacct has no complete record of job {job_id}")
        time.sleep(0.2)


def record(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with SlurmCluster(slurm_binaries()) as cluster:
        print(f"started in {cluster.started_s:.1f} s", file=sys.stderr)
        cases: dict[str, str] = {}

        cases["completed"] = cluster.submit("sleep 1\n", name="eval-done", gres="gpu:1")
        cluster.wait_state(cases["completed"], "COMPLETED")

        cases["cancelled"] = cluster.submit(SLEEP, name="to-cancel", gres="gpu:1")
        cluster.wait_state(cases["cancelled"], "RUNNING")
        cluster.run("scancel", cases["cancelled"])
        cluster.wait_state(cases["cancelled"], "CANCELLED")

        cases["running"] = cluster.submit_skypilot("train-llama-2ea4")
        cluster.wait_state(cases["running"], "RUNNING")

        cases["running-other-user"] = cluster.submit(SLEEP, name="train-llama-2ea4", user=OTHER_USER)
        cluster.wait_state(cases["running-other-user"], "RUNNING")

        cases["suspended"] = cluster.submit(SLEEP, name="paused-finetune", gres="gpu:1")
        cluster.wait_state(cases["suspended"], "RUNNING")
        cluster.run("scontrol", "suspend", cases["suspended"])
        cluster.wait_state(cases["suspended"], "SUSPENDED")

        # Four GPUs are taken now: one task of the array runs (%1), the others wait.
        cases["array"] = cluster.submit(SLEEP, name="sweep", partition="debug", extra_args=["--array=0-2%1"])
        cluster.wait_state(cases["array"], {"RUNNING", "PENDING"})

        cases["pending"] = cluster.submit(SLEEP, name="needs-2-gpus", gres="gpu:2")
        wait_reason(cluster, cases["pending"], "Resources")

        cases["held"] = cluster.submit(SLEEP, name="held-by-admin", gres="gpu:1")
        cluster.run("scontrol", "hold", cases["held"])
        wait_reason(cluster, cases["held"], "JobHeldAdmin")

        for job_id in cases.values():
            wait_in_sacct(cluster, job_id)

        scontrol_json = cluster.run("scontrol", "show", "job", cases["running"], "--json", check=False)
        everything = cluster.squeue_json()
        for case, job_id in cases.items():
            # 22.05's `squeue --json` ignores --jobs (and the other filters): one file holds them all
            answer = cluster.squeue_json(f"--jobs={job_id}")
            if answer["jobs"] != everything["jobs"]:
                write_json(directory, f"squeue-{case}.json", answer)
            write_json(directory, f"sacct-{case}.json", cluster.sacct_json(f"--jobs={job_id}"))
            if scontrol_json.returncode == 0:
                write_json(directory, f"scontrol-{case}.json", cluster.scontrol_json(job_id))
        write_json(directory, "squeue-all.json", everything)
        write_json(directory, "sacct-all.json", cluster.sacct_json())
        write_json(directory, "sinfo.json", json.loads(cluster.run("sinfo", "--json").stdout))
        (directory / "scontrol-show-job-running.txt").write_text(
            cluster.run("scontrol", "show", "job", cases["running"]).stdout
        )
        (directory / "jobs.json").write_text(json.dumps(cases, indent=2) + "\n")
        if scontrol_json.returncode != 0:
            print(f"scontrol show job --json: {scontrol_json.stderr.strip()}", file=sys.stderr)


if __name__ == "__main__":
    record(Path(sys.argv[1]))
