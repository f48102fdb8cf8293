"""RestSource against a local fake of slurmrestd (tests/json_server.py) serving the traced 23.02 ..
24.11 answers, for what the real 22.05 slurmrestd (tests/component/test_slurm_sources.py) cannot
show: the newest supported version chosen from /openapi/v3 or by ping, the token re-read on every
call, array tasks named by their own job id (23.02-24.05 drop the task from ``6_0``), the array's
own record refused where that is not known exact, v0.0.39's wrapped update body, and errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from costwarden.engine.slurm import ENDED, PENDING, RUNNING, SUSPENDED, SlurmJob
from costwarden.slurm.base import JobActionResult
from costwarden.slurm.rest import RestSource
from tests.json_server import Call, Reply, serve_json
from tests.slurm_cluster import free_port

DATA = Path(__file__).resolve().parents[1] / "data" / "slurm"
NOTHING = {"description": "Nothing found", "error_number": 9003, "error": "Nothing found with query"}


def openapi(*versions: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for version in versions:
        paths[f"/slurm/{version}/jobs/"] = {"get": {}}
        paths[f"/slurm/{version}/job/{{job_id}}"] = {"get": {}, "post": {}, "delete": {}}
        paths[f"/slurmdb/{version}/job/{{job_id}}"] = {"get": {}}
    return {"openapi": "3.0.3", "paths": paths}


def fake(
    versions: tuple[str, ...],
    squeue: str,
    sacct: str | None = None,
    *,
    delete: Callable[[Call], Reply] | None = None,
) -> Callable[[Call], Reply]:
    jobs = json.loads((DATA / squeue).read_text())
    accounted = json.loads((DATA / sacct).read_text())["jobs"] if sacct else []

    def handle(call: Call) -> Reply:
        if call.path == "/openapi/v3":
            return Reply(200, openapi(*versions))
        version = call.path.split("/")[2]
        if version not in versions:
            return Reply(404, None)
        if call.path == f"/slurm/{version}/jobs" and call.method == "GET":
            return Reply(200, {"errors": [], "warnings": [], **jobs})
        if call.path.startswith(f"/slurmdb/{version}/job/"):
            wanted = call.path.rsplit("/", 1)[1]
            found = [job for job in accounted if str(job["job_id"]) == wanted]
            return Reply(200, {"errors": [] if found else [NOTHING], "jobs": found})
        if call.method == "DELETE" and delete is not None:
            return delete(call)
        return Reply(200, {"errors": [], "warnings": []})

    return handle


@pytest.fixture
def token(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("first-token\n")
    return path


def job(job_id: str, state: str = RUNNING) -> SlurmJob:
    return SlurmJob("hpc", job_id, "sweep", "root", "ml-research", "debug", state, state.upper())


def test_the_newest_supported_version_the_token_read_on_every_call_and_the_user(token: Path) -> None:
    versions = ("v0.0.40", "v0.0.42", "v0.0.43")  # a newer one than we know is passed over
    with serve_json(fake(versions, "24.11/squeue.json")) as server:
        source = RestSource("hpc", server.url + "/", token, user="costwarden")
        first = source.jobs()
        assert first.complete, first.error
        assert source.version == "v0.0.42"
        assert sorted(j.job_id for j in first.jobs) == ["3", "5", "6_0", "6_[1-2%1]", "7"]
        token.write_text("SLURM_JWT=second-token\n")  # a rotated Secret, in scontrol token's form
        assert source.jobs().complete
    assert server.paths() == ["/openapi/v3", "/slurm/v0.0.42/jobs", "/slurm/v0.0.42/jobs"]
    tokens = [call.headers["x-slurm-user-token"] for call in server.calls]
    assert tokens == ["first-token", "first-token", "second-token"]
    assert {call.headers["x-slurm-user-name"] for call in server.calls} == {"costwarden"}


def test_without_openapi_the_first_version_whose_ping_answers(token: Path) -> None:
    def handle(call: Call) -> Reply:
        if call.path in ("/slurm/v0.0.41/ping", "/slurm/v0.0.41/jobs"):
            return Reply(200, {"errors": [], "pings": []} if "ping" in call.path else {"jobs": []})
        return Reply(404, None)

    with serve_json(handle) as server:
        source = RestSource("hpc", server.url, token)
        assert source.jobs().complete
        assert "x-slurm-user-name" not in server.calls[0].headers
    assert server.paths() == [
        "/openapi/v3",
        "/slurm/v0.0.42/ping",
        "/slurm/v0.0.41/ping",
        "/slurm/v0.0.41/jobs",
    ]


def test_array_tasks_by_their_own_job_id_and_the_array_record_refused_where_not_exact(token: Path) -> None:
    with serve_json(fake(("v0.0.41",), "24.05/squeue.json")) as server:
        source = RestSource("hpc", server.url, token)
        results = source.cancel([job("6_0"), job("6_[1-2%1]", PENDING), job("3"), job("1", ENDED), job("99")])
        signalled = source.signal([job("6_0")], "TERM")
    assert results == [
        JobActionResult("6_0", True, "cancelled"),
        JobActionResult(
            "6_[1-2%1]",
            False,
            "slurmrestd v0.0.41 is not known to signal or cancel 6_[1-2] alone (the array's own record: "
            "it may reach all of array 6): use the client commands",
        ),
        JobActionResult("3", True, "cancelled"),
        JobActionResult("1", True, "already ended (ENDED)"),
        JobActionResult("99", True, "already ended (slurmctld no longer holds it)"),
    ]
    assert signalled == [JobActionResult("6_0", True, "signalled TERM")]
    deletes = [(call.path, call.query) for call in server.calls if call.method == "DELETE"]
    assert deletes == [
        ("/slurm/v0.0.41/job/8", {}),
        ("/slurm/v0.0.41/job/3", {}),
        ("/slurm/v0.0.41/job/8", {"signal": "TERM"}),
    ]


def test_a_server_that_takes_ids_as_strings_gets_the_task_id_after_invalid_job_id(token: Path) -> None:
    def delete(call: Call) -> Reply:
        if call.path.endswith("/job/8"):  # slurmctld looked for an array 8
            error = {"error_number": 2017, "error": "Invalid job id specified", "source": "slurm_kill_jobs()"}
            return Reply(500, {"errors": [error]})
        return Reply(200, {"errors": []})

    with serve_json(fake(("v0.0.42",), "24.11/squeue.json", delete=delete)) as server:
        [result] = RestSource("hpc", server.url, token).cancel([job("6_0")])
    assert result == JobActionResult("6_0", True, "cancelled")
    assert [call.path for call in server.calls if call.method == "DELETE"] == [
        "/slurm/v0.0.42/job/8",
        "/slurm/v0.0.42/job/6_0",
    ]


@pytest.mark.parametrize(
    ("version", "body"), [("v0.0.39", {"job": {"hold": True}}), ("v0.0.40", {"hold": True})]
)
def test_suspend_holds_a_pending_job_and_cannot_suspend_a_running_one(
    token: Path, version: str, body: dict[str, Any]
) -> None:
    sample = "23.02/squeue.json" if version == "v0.0.39" else "23.11/squeue.json"
    with serve_json(fake((version,), sample)) as server:
        results = RestSource("hpc", server.url, token).suspend(
            [job("7", PENDING), job("3"), job("5", SUSPENDED)]
        )
    assert [(r.job_id, r.ok) for r in results] == [("7", True), ("3", False), ("5", True)]
    assert [r.message for r in results][0::2] == ["held", "already suspended"]
    assert results[1].message == (
        f"slurmrestd ({version}) cannot suspend a running job (no endpoint does): use the client commands "
        "(--slurm without --slurmrestd-url) to suspend, or Kill"
    )
    posts = [(call.path, call.body) for call in server.calls if call.method == "POST"]
    assert posts == [(f"/slurm/{version}/job/7", body)]


def test_history_by_job_or_array_id_from_slurmdb(token: Path) -> None:
    with serve_json(fake(("v0.0.39",), "23.02/squeue.json", "23.02/sacct.json")) as server:
        listing = RestSource("hpc", server.url, token).history(["2", "6_0", "3", "6_[1-2%1]"])
    assert listing.complete, listing.error
    assert {(j.job_id, j.state) for j in listing.jobs} == {("2", ENDED), ("3", RUNNING)}
    assert [call.path for call in server.calls][1:] == [
        "/slurmdb/v0.0.39/job/2",
        "/slurmdb/v0.0.39/job/6",
        "/slurmdb/v0.0.39/job/3",
    ]


def test_a_refused_token_an_unknown_server_and_no_server(token: Path) -> None:
    def refuse(call: Call) -> Reply:
        return Reply(401, {"errors": [{"error": "Authentication failure", "error_number": 1007}]})

    with serve_json(refuse) as server:
        listing = RestSource("hpc", server.url, token).jobs()
    assert not listing.complete
    assert listing.error == (
        "hpc slurmrestd GET /openapi/v3: HTTP 401: the token was refused (expired, or minted with another "
        "key or for another user): slurm error 1007: Authentication failure"
    )

    with serve_json(fake(("v0.0.36", "v0.0.37"), "23.02/squeue.json")) as server:
        old = RestSource("hpc", server.url, token).jobs()
    assert old.error == (
        "hpc slurmrestd /openapi/v3: the server offers data_parser versions v0.0.36, v0.0.37, none of "
        "v0.0.38, v0.0.39, v0.0.40, v0.0.41, v0.0.42"
    )

    gone = RestSource("hpc", f"http://127.0.0.1:{free_port()}", token, timeout=2)
    listing = gone.jobs()
    assert not listing.complete and listing.error is not None
    assert listing.error.startswith("hpc slurmrestd GET /openapi/v3: ")
    [result] = gone.cancel([job("3")])
    assert (result.ok, result.transient) == (False, True)
    assert result.message.startswith("re-read before acting: GET /openapi/v3: ")

    token.unlink()
    assert RestSource("hpc", "http://127.0.0.1:1", token).jobs().error == (
        f"hpc slurmrestd token file {token}: No such file or directory"
    )
