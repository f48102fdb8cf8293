"""Slurm's job JSON -> SlurmJob (costwarden.slurm.parse): every recorded or traced answer of
tests/data/slurm (22.05 recorded from a real Slurm, 23.02 .. 24.11 in each data_parser's shape),
the state mapping, the allocation and its units, the ids of array tasks, and bad input, which
gives errors naming the job and the field and never an exception (fuzzed with hypothesis)."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costwarden.engine.slurm import ENDED, PENDING, RUNNING, SUSPENDED, SlurmJob
from costwarden.slurm.parse import (
    action_id,
    array_of,
    parse_sacct,
    parse_squeue,
    sacct_entries,
    squeue_entries,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "slurm"
CLUSTER = "hpc"
CASES: dict[str, str] = json.loads((DATA / "22.05" / "jobs.json").read_text())
NEWER = ("23.02", "23.11", "24.05", "24.11")


def text(*parts: str) -> str:
    return (DATA.joinpath(*parts)).read_text()


def by_id(jobs: list[SlurmJob]) -> dict[str, SlurmJob]:
    found = {job.job_id: job for job in jobs}
    assert len(found) == len(jobs), "job ids are unique"
    return found


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def squeue_doc(*jobs: dict[str, Any]) -> str:
    return json.dumps({"meta": {}, "errors": [], "jobs": list(jobs)})


def raw_squeue(job_id: int) -> dict[str, Any]:
    """One recorded 22.05 squeue entry, to be changed by a test."""
    for job in json.loads(text("22.05", "squeue-all.json"))["jobs"]:
        if job["job_id"] == job_id:
            return dict(copy.deepcopy(job))
    raise KeyError(job_id)


def raw_sacct(case: str) -> dict[str, Any]:
    return dict(json.loads(text("22.05", f"sacct-{case}.json"))["jobs"][0])


# -- 22.05, recorded --------------------------------------------------------------------------


def test_squeue_22_05_every_job_with_its_state_allocation_and_times() -> None:
    jobs, errors = parse_squeue(text("22.05", "squeue-all.json"), CLUSTER)
    assert errors == []
    found = by_id(jobs)
    assert sorted(found) == ["1", "2", "3", "4", "5", "6_0", "6_[1-2%1]", "7", "9"]
    raw = {str(job["job_id"]): job for job in json.loads(text("22.05", "squeue-all.json"))["jobs"]}
    expected = {  # id: (state, slurm_state, gpus, cpus, GiB, gpu type, nodes)
        "1": (ENDED, "COMPLETED", 1, 1, 1, None, ("localhost",)),  # finished: gres_detail is gone
        "2": (ENDED, "CANCELLED", 1, 1, 1, None, ("localhost",)),
        "3": (RUNNING, "RUNNING", 1, 4, 16, "h100", ("localhost",)),  # SkyPilot's shape
        "4": (RUNNING, "RUNNING", 1, 1, 1, "h100", ("localhost",)),  # the decoy, another user
        "5": (SUSPENDED, "SUSPENDED", 1, 1, 1, "h100", ("localhost",)),
        "6_0": (RUNNING, "RUNNING", 1, 1, 1, "h100", ("localhost",)),  # the array's task 0: job 8
        "6_[1-2%1]": (PENDING, "PENDING", 0, 0, 0, None, ()),  # its pending tasks, as squeue says
        "7": (PENDING, "PENDING", 0, 0, 0, None, ()),  # asked for 2 GPUs: none given yet
        "9": (PENDING, "PENDING", 0, 0, 0, None, ()),  # held
    }
    for job_id, (state, slurm_state, gpus, cpus, gib, gpu_type, nodes) in expected.items():
        job = found[job_id]
        assert (job.state, job.slurm_state, job.gpus, job.cpus, job.memory_gib, job.gpu_type, job.nodes) == (
            state,
            slurm_state,
            gpus,
            cpus,
            Decimal(gib),
            gpu_type,
            nodes,
        ), job_id
        assert job.cluster == CLUSTER
    sky = found["3"]
    assert (sky.name, sky.user, sky.account, sky.partition) == (
        "train-llama-2ea4",
        "root",
        "ml-research",
        "gpu",
    )
    assert (sky.submitted, sky.started, sky.ended) == (
        at(raw["3"]["submit_time"]),
        at(raw["3"]["start_time"]),
        None,
    )
    decoy = found["4"]
    assert (decoy.name, decoy.user, decoy.account) == ("train-llama-2ea4", "nobody", "decoy-team")
    done = found["1"]
    assert (done.started, done.ended) == (at(raw["1"]["start_time"]), at(raw["1"]["end_time"]))
    # a pending job's start and end in squeue are forecasts: left out
    assert raw["7"]["start_time"] > 0 and (found["7"].started, found["7"].ended) == (None, None)
    assert found["6_[1-2%1]"].partition == "debug" and found["6_0"].partition == "debug"
    assert all(
        job.started is not None and job.ended is None for job in (sky, decoy, found["5"], found["6_0"])
    )


def test_squeue_entries_carry_the_record_id_the_id_to_act_by_and_holds() -> None:
    entries, errors = squeue_entries(text("22.05", "squeue-all.json").encode(), CLUSTER)  # bytes too
    assert errors == []
    found = {entry.job.job_id: entry for entry in entries}
    assert (found["6_0"].raw_id, found["6_0"].action_id) == (8, "6_0")
    assert (found["6_[1-2%1]"].raw_id, found["6_[1-2%1]"].action_id) == (6, "6_[1-2]")
    assert (found["3"].raw_id, found["3"].action_id) == (3, "3")
    assert [job_id for job_id, entry in found.items() if entry.held] == ["9"]  # priority 0, pending


@pytest.mark.parametrize("case", sorted(CASES))
def test_sacct_22_05_each_case(case: str) -> None:
    jobs, errors = parse_sacct(text("22.05", f"sacct-{case}.json"), CLUSTER)
    assert errors == []
    raw = raw_sacct(case)
    expected_state = {
        "completed": (ENDED, "COMPLETED"),
        "cancelled": (ENDED, "CANCELLED"),
        "running": (RUNNING, "RUNNING"),
        "running-other-user": (RUNNING, "RUNNING"),
        "suspended": (SUSPENDED, "SUSPENDED"),
        "array": (PENDING, "PENDING"),
        "pending": (PENDING, "PENDING"),
        "held": (PENDING, "PENDING"),
    }[case]
    job = by_id(jobs)[CASES[case] if case != "array" else "6_[1-2%1]"]
    assert (job.state, job.slurm_state) == expected_state
    assert job.submitted == at(raw["time"]["submission"])
    if job.state == PENDING:
        assert (job.gpus, job.cpus, job.memory_gib, job.nodes, job.started, job.ended) == (
            0,
            0,
            Decimal(0),
            (),
            None,
            None,
        )
    else:
        assert job.started == at(raw["time"]["start"]) and job.nodes == ("localhost",)
        assert job.gpus == 1 and job.gpu_type is None  # accounting's gres/gpu has no type here
        assert job.ended == (at(raw["time"]["end"]) if job.state == ENDED else None)
    if case == "running":
        assert (job.cpus, job.memory_gib, job.user, job.account) == (4, Decimal(16), "root", "ml-research")
    if case == "array":  # the pending record's tasks are a hex mask in 22.05: 0x6 = tasks 1 and 2
        assert raw["array"]["task"] == "0x6"
        assert sorted(job.job_id for job in jobs) == ["6_0", "6_[1-2%1]"]


def test_sacct_22_05_all_agrees_with_squeue_on_every_job_both_hold() -> None:
    accounted, errors = parse_sacct(text("22.05", "sacct-all.json"), CLUSTER)
    assert errors == []
    queued, _ = parse_squeue(text("22.05", "squeue-all.json"), CLUSTER)
    sacct, squeue = by_id(accounted), by_id(queued)
    assert sorted(sacct) == ["1", "2", "3", "4", "5", "6_0", "7", "9"]  # no pending array record
    for job_id, job in sacct.items():
        other = squeue[job_id]
        for field in (
            "name",
            "user",
            "account",
            "partition",
            "state",
            "slurm_state",
            "nodes",
            "gpus",
            "cpus",
        ):
            assert getattr(job, field) == getattr(other, field), (job_id, field)
        assert (job.memory_gib, job.submitted, job.started, job.ended) == (
            other.memory_gib,
            other.submitted,
            other.started,
            other.ended,
        ), job_id


# -- 23.02 .. 24.11, traced shapes --------------------------------------------------------------


@pytest.mark.parametrize("version", NEWER)
def test_squeue_of_newer_data_parsers_gives_the_same_jobs_as_22_05(version: str) -> None:
    jobs, errors = parse_squeue(text(version, "squeue.json"), CLUSTER)
    assert errors == []
    reference = by_id(parse_squeue(text("22.05", "squeue-all.json"), CLUSTER)[0])
    found = by_id(jobs)
    assert sorted(found) == ["3", "5", "6_0", "6_[1-2%1]", "7"]
    for job_id, job in found.items():
        assert job == reference[job_id], (version, job_id)


@pytest.mark.parametrize("version", NEWER)
def test_sacct_of_newer_data_parsers(version: str) -> None:
    jobs, errors = parse_sacct(text(version, "sacct.json"), CLUSTER)
    reference = by_id(parse_sacct(text("22.05", "sacct-all.json"), CLUSTER)[0])
    found = by_id(jobs)
    if version == "23.02":  # UINT64 times: all there
        assert errors == []
        assert found == {job_id: reference[job_id] for job_id in ("1", "2", "3")}
        return
    # From 23.11 time/start, end and submission are TIMESTAMPs whose dump was not traced: the
    # samples leave them out, and an ended job without its end time cannot be closed at it.
    assert errors == [
        "job 1: ended (COMPLETED) but time.end is unset: it could not be closed at its end",
        "job 2: ended (CANCELLED) but time.end is unset: it could not be closed at its end",
    ]
    assert list(found) == ["3"]
    assert found["3"] == replace(reference["3"], submitted=None, started=None)


def test_a_number_object_or_plain_integer_anywhere() -> None:
    job = raw_squeue(3)
    job["job_state"] = ["RUNNING"]
    job["start_time"] = {"set": True, "infinite": False, "number": job["start_time"]}
    job["submit_time"] = {"set": True, "infinite": False, "number": job["submit_time"]}
    job["end_time"] = {"set": False, "infinite": True, "number": 0}
    job["array_task_id"] = {"set": False, "infinite": False, "number": 0}
    job["array_job_id"] = {"set": True, "infinite": False, "number": 0}
    job["priority"] = {"set": True, "infinite": False, "number": 7}
    jobs, errors = parse_squeue(squeue_doc(job), CLUSTER)
    assert errors == []
    assert jobs == parse_squeue(squeue_doc(raw_squeue(3)), CLUSTER)[0]


# -- states ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "engine", "slurm_state"),
    [
        ("PENDING", PENDING, "PENDING"),
        ("RUNNING", RUNNING, "RUNNING"),
        ("SUSPENDED", SUSPENDED, "SUSPENDED"),
        *[
            (name, ENDED, name)
            for name in (
                "COMPLETED",
                "CANCELLED",
                "FAILED",
                "TIMEOUT",
                "NODE_FAIL",
                "PREEMPTED",
                "BOOT_FAIL",
                "DEADLINE",
                "OUT_OF_MEMORY",
            )
        ],
        # 22.05 prints one name, a flag in place of the base state
        ("COMPLETING", RUNNING, "COMPLETING"),  # the nodes are still the job's: billed
        ("CONFIGURING", RUNNING, "CONFIGURING"),
        ("REQUEUED", PENDING, "REQUEUED"),
        ("REQUEUE_HOLD", PENDING, "REQUEUE_HOLD"),
        ("SPECIAL_EXIT", PENDING, "SPECIAL_EXIT"),
        ("REVOKED", ENDED, "REVOKED"),
        # 23.11 on: the base state and its flags
        (["CANCELLED", "COMPLETING"], RUNNING, "CANCELLED"),
        (["RUNNING", "CONFIGURING"], RUNNING, "RUNNING"),
        (["PENDING", "REQUEUED"], PENDING, "PENDING"),
        (["COMPLETED", "REQUEUED"], PENDING, "COMPLETED"),
        (["RUNNING", "UPDATE_DB"], RUNNING, "RUNNING"),
        (["suspended"], SUSPENDED, "SUSPENDED"),
    ],
)
def test_states(state: Any, engine: str, slurm_state: str) -> None:
    job = raw_squeue(1)  # has an end time, nodes and an allocation whatever the state says
    job["job_state"] = state
    [parsed], errors = parse_squeue(squeue_doc(job), CLUSTER)
    assert errors == []
    assert (parsed.state, parsed.slurm_state) == (engine, slurm_state)
    assert (parsed.ended is not None) == (engine == ENDED)


@pytest.mark.parametrize(
    ("state", "error"),
    [
        ("BOGUS", "job 1: job_state BOGUS: BOGUS is not a Slurm job state"),
        (["RUNNING", "NEW_FLAG"], "job 1: job_state RUNNING+NEW_FLAG: NEW_FLAG is not a Slurm job state"),
        ("UPDATE_DB", "job 1: job_state UPDATE_DB names no base state (pending, running, ...)"),
        (3, "job 1: job_state is a number, not a state name or a list of them"),
        ([], "job 1: job_state is empty"),
        (None, "job 1: no job_state"),
    ],
)
def test_an_unknown_state_is_an_error_never_a_guess(state: Any, error: str) -> None:
    job = raw_squeue(1)
    job["job_state"] = state
    jobs, errors = parse_squeue(squeue_doc(job, raw_squeue(3)), CLUSTER)
    assert errors == [error]
    assert [job.job_id for job in jobs] == ["3"]  # the others are still read


# -- allocation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tres", "gpus", "cpus", "gib", "gpu_type"),
    [
        ("cpu=4,mem=16G,node=1,billing=4,gres/gpu=1", 1, 4, Decimal(16), None),
        ("cpu=2,mem=1536M,node=1", 0, 2, Decimal("1.5"), None),
        ("cpu=1,mem=100", 0, 1, Decimal(100) / 1024, None),  # a bare figure is MiB
        ("cpu=1,mem=512K", 0, 1, Decimal(512) / 1024**2, None),
        ("cpu=96,mem=2T,node=2,gres/gpu=16", 16, 96, Decimal(2048), None),
        ("mem=1.50G,cpu=8", 0, 8, Decimal("1.50"), None),
        ("cpu=8,gres/gpu=2,gres/gpu:a100=2", 2, 8, Decimal(0), "a100"),  # typed TRES tracked
        ("cpu=8,gres/gpu:a100=1,gres/gpu:h100=2", 3, 8, Decimal(0), "a100"),
        ("cpu=8,gres/gpumem=80G,gres/mps=100,license/matlab=1,energy=5", 0, 8, Decimal(0), None),
        ("", 0, 0, Decimal(0), None),
    ],
)
def test_allocation_from_tres_alloc_str(
    tres: str, gpus: int, cpus: int, gib: Decimal, gpu_type: str | None
) -> None:
    job = raw_squeue(2)
    job["tres_alloc_str"] = tres
    job["gres_detail"] = []
    [parsed], errors = parse_squeue(squeue_doc(job), CLUSTER)
    assert errors == []
    assert (parsed.gpus, parsed.cpus, parsed.memory_gib, parsed.gpu_type) == (gpus, cpus, gib, gpu_type)


def test_the_gpu_type_from_gres_detail_and_nothing_for_a_pending_job() -> None:
    job = raw_squeue(3)
    job["gres_detail"] = ["gpu:a100:8(IDX:0-7)", "gpu:a100:8(IDX:0-7)"]
    job["nodes"] = "gpu-[01-02]"
    job["tres_alloc_str"] = "cpu=192,mem=2000G,node=2,gres/gpu=16"
    [parsed], errors = parse_squeue(squeue_doc(job), CLUSTER)
    assert errors == []
    assert (parsed.gpus, parsed.gpu_type, parsed.nodes) == (16, "a100", ("gpu-01", "gpu-02"))
    job["job_state"] = "PENDING"  # whatever a pending record carries, nothing is allocated yet
    [pending], _ = parse_squeue(squeue_doc(job), CLUSTER)
    assert (pending.gpus, pending.cpus, pending.memory_gib, pending.gpu_type, pending.nodes) == (
        0,
        0,
        Decimal(0),
        None,
        (),
    )


def test_sacct_allocation_with_a_typed_gpu_and_memory_in_mib() -> None:
    job = raw_sacct("running")
    job["tres"]["allocated"] = [
        {"type": "cpu", "name": None, "id": 1, "count": 64},
        {"type": "mem", "name": None, "id": 2, "count": 524288},
        {"type": "energy", "name": None, "id": 3, "count": None},
        {"type": "gres", "name": "gpu", "id": 1001, "count": 8},
        {"type": "gres", "name": "gpu:h100", "id": 1002, "count": 8},
    ]
    [parsed], errors = parse_sacct(json.dumps({"jobs": [job]}), CLUSTER)
    assert errors == []
    assert (parsed.gpus, parsed.cpus, parsed.memory_gib, parsed.gpu_type) == (8, 64, Decimal(512), "h100")


# -- ids ----------------------------------------------------------------------------------------


def test_sacct_pending_array_record_from_a_hex_mask_or_a_range_string() -> None:
    raw = raw_sacct("array")
    for task, limit, expected in (
        ("0x6", 1, "6_[1-2%1]"),
        ("0x2D", 0, "6_[0,2-3,5]"),
        ("1-2%1", 0, "6_[1-2%1]"),
        ("[4-7]", 2, "6_[4-7%2]"),
    ):
        changed = copy.deepcopy(raw)
        changed["array"]["task"] = task
        changed["array"]["limits"]["max"]["running"]["tasks"] = limit
        [job], errors = parse_sacct(json.dumps({"jobs": [changed]}), CLUSTER)
        assert errors == [] and job.job_id == expected, (task, errors)


@pytest.mark.parametrize(
    ("job_id", "act_as", "array"),
    [
        ("7", "7", None),
        ("6_0", "6_0", "6"),
        ("6_[1-2%1]", "6_[1-2]", "6"),
        ("6_[1-3,5]", "6_[1-3,5]", "6"),
        ("--name=train", None, None),
        ("0", None, None),
        ("6_[x]", None, None),
        ("6_", None, None),
        ("", None, None),
        ("7 8", None, None),
    ],
)
def test_action_ids(job_id: str, act_as: str | None, array: str | None) -> None:
    assert action_id(job_id) == act_as
    assert array_of(job_id) == array


# -- bad input ----------------------------------------------------------------------------------


def test_not_json_not_an_object_and_no_jobs_are_errors() -> None:
    assert parse_squeue("squeue: error: Invalid user\n", CLUSTER) == (
        [],
        ["answer is not JSON (Expecting value: line 1 column 1 (char 0)): 'squeue: error: Invalid user'"],
    )
    assert parse_squeue("", CLUSTER) == ([], ["answer is empty, not JSON"])
    assert parse_squeue("[1, 2]", CLUSTER) == ([], ["answer is a list in JSON, not an object with 'jobs'"])
    assert parse_sacct('{"meta": {}}', CLUSTER) == ([], ["answer has no 'jobs' list"])
    assert parse_sacct('{"jobs": {"1": {}}}', CLUSTER) == ([], ["jobs is an object, not a list"])
    assert parse_squeue(b"\xff\xfe", CLUSTER)[1][0].startswith("answer is not UTF-8 text")


def test_slurm_s_own_errors_are_errors_and_nothing_found_is_an_empty_answer() -> None:
    down = {
        "errors": [
            {
                "description": "Failed while looking for jobs",
                "error_number": -1,
                "error": "Unspecified error",
                "source": "slurm_load_jobs",
            }
        ],
        "jobs": [],
    }
    assert parse_squeue(json.dumps(down), CLUSTER) == (
        [],
        ["slurm error -1: slurm_load_jobs: Failed while looking for jobs: Unspecified error"],
    )
    nothing = {
        "errors": [
            {
                "description": "Nothing found",
                "error_number": 9003,
                "error": "Nothing found with query",
                "source": "slurmdb_jobs_get",
            }
        ],
        "jobs": [],
    }
    assert parse_sacct(json.dumps(nothing), CLUSTER) == ([], [])


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"job_id": None}, "jobs[0]: no job_id"),
        ({"job_id": "abc"}, "job abc: job_id is 'abc', not a number"),
        ({"job_id": [3]}, "jobs[0]: job_id is a list, not a number"),
        ({"job_id": -4}, "job -4: job_id is -4, not a job id"),
        ({"user_name": ["root"]}, "job 3: user_name is a list, not a string"),
        ({"start_time": "yesterday"}, "job 3: start_time is 'yesterday', not a number"),
        ({"start_time": 10**20}, f"job 3: start_time is {10**20}, not a time in epoch seconds"),
        ({"start_time": {"set": True}}, "job 3: start_time is an object without 'number'"),
        ({"start_time": 1.5}, "job 3: start_time is 1.5, not a whole number"),
        ({"start_time": True}, "job 3: start_time is True, not a number"),
        ({"tres_alloc_str": "cpu=four,mem=16G"}, "job 3: tres_alloc_str cpu is 'four', not a count"),
        (
            {"tres_alloc_str": "cpu=4,mem=lots"},
            "job 3: tres_alloc_str mem is 'lots', not a size (a number of MiB, or with K/M/G/T/P)",
        ),
        ({"tres_alloc_str": "cpu"}, "job 3: tres_alloc_str: 'cpu' is not name=count"),
        ({"tres_alloc_str": 4}, "job 3: tres_alloc_str is a number, not a TRES string"),
        ({"gres_detail": "gpu:h100:1"}, "job 3: gres_detail is a string, not a list of strings"),
        ({"nodes": {"list": []}}, "job 3: nodes is an object, not a string"),
    ],
)
def test_a_wrong_field_names_the_job_and_the_field(change: dict[str, Any], error: str) -> None:
    job = raw_squeue(3)
    job.update(change)
    jobs, errors = parse_squeue(squeue_doc(raw_squeue(4), job), CLUSTER)
    assert errors == [error.replace("jobs[0]", "jobs[1]")]
    assert [job.job_id for job in jobs] == ["4"]


def test_sacct_bad_fields_and_the_placeholder_record() -> None:
    bad_tres = raw_sacct("running")
    bad_tres["tres"]["allocated"] = [{"type": "cpu", "count": None}]
    not_a_list = raw_sacct("running-other-user")
    not_a_list["tres"] = {"allocated": "cpu=1"}
    placeholder = raw_sacct("completed")
    placeholder.update(name="allocation", partition="")
    no_state = raw_sacct("suspended")
    no_state["state"] = "SUSPENDED"
    jobs, errors = parse_sacct(
        json.dumps({"jobs": [bad_tres, not_a_list, placeholder, no_state, "x"]}), CLUSTER
    )
    assert jobs == []
    assert errors == [
        "job 3: tres.allocated[0] (cpu) count is unset",
        "job 4: tres.allocated is a string, not a list",
        "job 1: accounting holds only slurmctld's placeholder record (named 'allocation', no partition) "
        "until the job's start record reaches slurmdbd: read it again later",
        "job 5: state is a string, not an object",
        "jobs[4]: is a string, not an object",
    ]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
SQUEUE_KEYS = st.sampled_from([*sorted(raw_squeue(3)), "priority"])
SACCT_KEYS = st.sampled_from(sorted(raw_sacct("array")))


@settings(max_examples=300, deadline=None)
@given(document=JSON)
def test_fuzz_any_json_document_never_raises(document: Any) -> None:
    for parse in (parse_squeue, parse_sacct):
        jobs, errors = parse(json.dumps(document), CLUSTER)
        assert isinstance(jobs, list) and isinstance(errors, list)
        jobs, errors = parse(json.dumps({"jobs": [document]}), CLUSTER)
        assert all(isinstance(error, str) and "\n" not in error for error in errors)


@settings(max_examples=400, deadline=None)
@given(
    changes=st.dictionaries(SQUEUE_KEYS, JSON, max_size=4),
    sacct_changes=st.dictionaries(SACCT_KEYS, JSON, max_size=4),
)
def test_fuzz_recorded_jobs_with_fields_replaced_never_raise(
    changes: dict[str, Any], sacct_changes: dict[str, Any]
) -> None:
    job = raw_squeue(3)
    job.update(changes)
    jobs, errors = squeue_entries(squeue_doc(job), CLUSTER)
    assert len(jobs) + len(errors) >= 1
    for entry in jobs:
        assert entry.job.state in (PENDING, RUNNING, SUSPENDED, ENDED)
        assert entry.job.memory_gib >= 0 or "tres_alloc_str" in changes
    record = raw_sacct("array")
    record.update(sacct_changes)
    entries, problems = sacct_entries(json.dumps({"jobs": [record]}), CLUSTER)
    assert len(entries) + len(problems) >= 1


@settings(max_examples=200, deadline=None)
@given(text_input=st.text(max_size=200) | st.binary(max_size=200))
def test_fuzz_any_text_never_raises(text_input: str | bytes) -> None:
    assert isinstance(parse_squeue(text_input, CLUSTER), tuple)
    assert isinstance(parse_sacct(text_input, CLUSTER), tuple)
