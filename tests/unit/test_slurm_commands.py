"""CommandSource with a recording runner instead of the Slurm commands: the argument lists it runs
(always a job id, never a name; ``--clusters`` when asked), and what it makes of missing commands,
timeouts, failures, and scancel's exit 0 over an error. The real commands: tests/component/
test_slurm_sources.py."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from costwarden.engine.slurm import ENDED, PENDING, RUNNING, SUSPENDED, SlurmJob
from costwarden.slurm.base import JobActionResult, JobListing
from costwarden.slurm.commands import CommandSource

DATA = Path(__file__).resolve().parents[1] / "data" / "slurm" / "22.05"
SQUEUE = (DATA / "squeue-all.json").read_text()
SACCT_ALL = (DATA / "sacct-all.json").read_text()
SACCT_ARRAY = (DATA / "sacct-array.json").read_text()


class Runner:
    """Answers each command by its name; records every argument list."""

    def __init__(self, answers: dict[str, Callable[[list[str]], subprocess.CompletedProcess[str]]]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []

    def __call__(self, args: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
        assert timeout == 30.0
        self.calls.append(list(args))
        return self.answers[args[0]](list(args))


def done(
    stdout: str = "", stderr: str = "", code: int = 0
) -> Callable[[list[str]], subprocess.CompletedProcess[str]]:
    return lambda args: subprocess.CompletedProcess(args, code, stdout, stderr)


def raises(exc: BaseException) -> Callable[[list[str]], subprocess.CompletedProcess[str]]:
    def answer(args: list[str]) -> subprocess.CompletedProcess[str]:
        raise exc

    return answer


def job(job_id: str, state: str = RUNNING, cluster: str = "hpc") -> SlurmJob:
    return SlurmJob(cluster, job_id, "train", "root", "ml", "gpu", state, state.upper())


def test_jobs_runs_squeue_json_over_every_job_and_parses_it() -> None:
    run = Runner({"squeue": done(SQUEUE)})
    listing = CommandSource("hpc", run=run).jobs()
    assert run.calls == [["squeue", "--json", "--all", "--states=all"]]
    assert (listing.complete, listing.error) == (True, None)
    assert {j.job_id for j in listing.jobs} == {"1", "2", "3", "4", "5", "6_0", "6_[1-2%1]", "7", "9"}
    assert {j.cluster for j in listing.jobs} == {"hpc"}


def test_clusters_flag_goes_to_every_command() -> None:
    run = Runner({"squeue": done(SQUEUE), "sacct": done(SACCT_ALL), "scancel": done(), "scontrol": done()})
    source = CommandSource("hpc", clusters_flag=True, run=run)
    source.jobs()
    source.history(["3"])
    source.cancel([job("3")])
    source.signal([job("3")], "TERM")
    source.suspend([job("3"), job("7", PENDING)])
    assert run.calls == [
        ["squeue", "--json", "--all", "--states=all", "--clusters", "hpc"],
        ["sacct", "--json", "--allusers", "--starttime=now-62days", "--jobs=3", "--clusters", "hpc"],
        ["scancel", "--verbose", "--clusters", "hpc", "3"],
        ["scancel", "--verbose", "--signal=TERM", "--full", "--clusters", "hpc", "3"],
        ["scontrol", "--clusters", "hpc", "suspend", "3"],
        ["scontrol", "--clusters", "hpc", "hold", "7"],
    ]


def test_actions_name_jobs_by_id_arrays_included_and_skip_what_needs_nothing() -> None:
    run = Runner({"scancel": done(), "scontrol": done()})
    source = CommandSource("hpc", run=run)
    results = source.cancel([job("6_0"), job("6_[1-2%1]", PENDING), job("2", ENDED)])
    assert results == [
        JobActionResult("6_0", True, "cancelled"),
        JobActionResult("6_[1-2%1]", True, "cancelled"),
        JobActionResult("2", True, "already ended (ENDED)"),
    ]
    assert run.calls == [["scancel", "--verbose", "6_0"], ["scancel", "--verbose", "6_[1-2]"]]
    run.calls.clear()
    suspended = source.suspend([job("5", SUSPENDED), job("6_[1-2%1]", PENDING), job("8")])
    assert [r.message for r in suspended] == ["already suspended", "held", "suspended"]
    assert run.calls == [["scontrol", "hold", "6_[1-2]"], ["scontrol", "suspend", "8"]]
    run.calls.clear()
    signalled = source.signal([job("7", PENDING), job("5", SUSPENDED), job("3")], "USR1")
    assert [(r.ok, r.message) for r in signalled] == [
        (False, "pending, not running: nothing to signal (cancel ends it)"),
        (False, "suspended, not running: nothing to signal (cancel ends it)"),
        (True, "signalled USR1"),
    ]
    assert run.calls == [["scancel", "--verbose", "--signal=USR1", "--full", "3"]]


@pytest.mark.parametrize("bad", ["--name=train-llama", "-u", "3 4", "", "3;rm"])
def test_what_is_not_a_job_id_never_reaches_a_command(bad: str) -> None:
    run = Runner({})
    source = CommandSource("hpc", run=run)
    for results in (source.cancel([job(bad)]), source.signal([job(bad)], "TERM"), source.suspend([job(bad)])):
        assert [(r.ok, r.message) for r in results] == [(False, f"not a Slurm job id: {bad!r}: left alone")]
    history = source.history([bad])
    assert (history.complete, history.error) == (False, f"hpc sacct: not a Slurm job id: {bad!r}")
    assert source.signal([job("3")], "TERM --name x") == [
        JobActionResult("3", False, "not a signal name: 'TERM --name x'")
    ]
    assert source.cancel([job("3", cluster="other")]) == [
        JobActionResult("3", False, "a job of cluster 'other', not 'hpc': left alone")
    ]
    assert run.calls == []


def test_history_asks_for_the_ids_and_an_arrays_pending_record_by_the_array() -> None:
    run = Runner({"sacct": done(SACCT_ARRAY)})
    listing = CommandSource("hpc", run=run, history_days=10).history(["6_[1-2%1]", "6_0", "12", "6_0"])
    assert run.calls == [["sacct", "--json", "--allusers", "--starttime=now-10days", "--jobs=6,6_0,12"]]
    assert (listing.complete, sorted(j.job_id for j in listing.jobs)) == (True, ["6_0", "6_[1-2%1]"])
    assert CommandSource("hpc", run=run).history([]) == JobListing((), True)
    assert len(run.calls) == 1


def test_a_missing_command_a_timeout_and_a_failure() -> None:
    missing = CommandSource("hpc", run=Runner({"squeue": raises(FileNotFoundError(2, "No such file"))}))
    assert missing.jobs() == JobListing(
        (), False, "hpc squeue: squeue is not on PATH (install the Slurm client commands)"
    )
    slow = Runner(
        {
            "squeue": raises(
                subprocess.TimeoutExpired(["squeue"], 30, stderr=b"squeue: error: Socket timed out\n")
            ),
            "scancel": raises(subprocess.TimeoutExpired(["scancel"], 30)),
        }
    )
    source = CommandSource("hpc", run=slow)
    assert source.jobs().error == "hpc squeue: no answer within 30 s: error: Socket timed out"
    assert source.cancel([job("3")]) == [JobActionResult("3", False, "scancel: no answer within 30 s", True)]
    down = (
        "scancel: error: Kill job error on job id 3: Unable to contact slurm controller (connect failure)\n"
    )
    failing = CommandSource("hpc", run=Runner({"scancel": done(stderr=down, code=8), "sacct": done(code=1)}))
    [result] = failing.cancel([job("3")])
    assert (result.ok, result.transient) == (False, True)
    assert result.message == (
        "scancel: exit 8: error: Kill job error on job id 3: "
        "Unable to contact slurm controller (connect failure)"
    )
    assert failing.history(["3"]) == JobListing((), False, "hpc sacct: exit 1")
    denied = (
        "scancel: Terminating job 4\nscancel: error: Kill job error on job id 4: Access/permission denied\n"
    )
    [refused] = CommandSource("hpc", run=Runner({"scancel": done(stderr=denied)})).cancel([job("4")])
    assert (refused.ok, refused.transient) == (False, False)  # scancel exits 0 all the same
    assert refused.message == "scancel: error: Kill job error on job id 4: Access/permission denied"


@pytest.mark.parametrize(
    ("command", "stderr", "code"),
    [
        (
            "scancel",
            "scancel: error: Kill job error on job id 1: Job/step already completing or completed\n",
            0,
        ),
        ("scancel", "scancel: error: Kill job error on job id 1: Invalid job id specified\n", 1),
        (
            "scontrol",
            "Job has already finished for job 1\nslurm_suspend error: Job has already finished\n",
            1,
        ),
    ],
)
def test_an_already_ended_job_is_no_failure(command: str, stderr: str, code: int) -> None:
    source = CommandSource("hpc", run=Runner({command: done(stderr=stderr, code=code)}))
    act = source.cancel if command == "scancel" else source.suspend
    [result] = act([job("1")])
    assert result.ok and result.message.startswith("already ended: ")


def test_unparsable_output_is_an_incomplete_listing() -> None:
    source = CommandSource("hpc", run=Runner({"squeue": done("squeue: warning: not JSON")}))
    listing = source.jobs()
    assert (listing.complete, listing.jobs) == (False, ())
    assert listing.error is not None and listing.error.startswith("hpc squeue: answer is not JSON")
    bad = SQUEUE.replace('"job_state": "SUSPENDED"', '"job_state": "HIBERNATING"')
    partial = CommandSource("hpc", run=Runner({"squeue": done(bad)})).jobs()
    assert not partial.complete and len(partial.jobs) == 8
    assert partial.error == "hpc squeue: job 5: job_state HIBERNATING: HIBERNATING is not a Slurm job state"
