"""One Slurm cluster through slurmrestd (HTTP and JSON Web Tokens), as a ``JobSource``.

Each request carries ``X-SLURM-USER-TOKEN``, read from ``token_file`` on every call (a Secret
mounted as a file is rotated without a restart; a file holding ``scontrol token``'s
``SLURM_JWT=<token>`` line works too), and ``X-SLURM-USER-NAME`` when ``user`` is given (a token
minted for a service user). urllib3 (a dependency already) makes the calls; they block, and the
operator runs them in threads.

The data_parser version is found once, and again after a 404: the newest of ``SUPPORTED``
(v0.0.42 .. v0.0.38: Slurm 24.11 .. 22.05) among the paths ``/openapi/v3`` lists, or, when the
server does not answer that, the first ``/slurm/<version>/ping`` that answers. Answers are
parsed by parse.py, whose shapes are those of ``squeue --json`` and ``sacct --json`` of the same
version.

* ``jobs``: ``GET /slurm/<v>/jobs`` (every job slurmctld holds).
* ``history``: ``GET /slurmdb/<v>/job/<id>`` for each plain job, and the array's id for an array
  task or an array's pending record (22.05's slurmdb endpoint finds nothing for ``6_0``, and the
  array's id brings all its tasks); only the asked ids come back.
* ``signal``: ``DELETE /slurm/<v>/job/<id>?signal=<SIG>``; slurmrestd signals the whole job,
  batch script included (``KILL_FULL_JOB``: always in v0.0.38 and v0.0.39, the default when no
  ``flags`` are given after), as ``scancel --signal --full``. Running jobs only.
* ``cancel``: ``DELETE /slurm/<v>/job/<id>`` (SIGKILL, which slurmctld takes as a cancel).
* ``suspend``: ``POST /slurm/<v>/job/<id>`` with ``hold: true`` for a pending job (a priority of
  zero, as ``scontrol hold``; the body is the job's fields in v0.0.38 and from v0.0.40, wrapped
  in ``job`` in v0.0.39). No slurmrestd version suspends a running job: that is reported
  failed, naming the client commands as the way to do it.

Acting re-reads the jobs first: a job the re-read no longer holds, or holds as ended, is reported
already ended; the others are named as ``_names`` says. slurmrestd 23.02 to 24.05 keep only the
number of an id (``6_0`` would reach the whole array 6), 22.05 and the newest pass it to
slurmctld as a string (where the array's bare id is the whole array): an array task with a record
of its own is named by that record's id (8 for ``6_0``) and, should the server answer "Invalid job
id" for it, by ``6_0``; the array's own record (its pending tasks ``6_[1-2%1]``, or its last
task) is acted on as ``6_[1-2]`` / ``6_2`` through v0.0.38 only, which was tried on 22.05, and
refused elsewhere with a pointer to the client commands. 22.05's slurmrestd answers every
update of an array record with "job array update ... failed" though the update is made (it tests
the pointer to the error codes, not the codes); a hold so answered is checked by reading the job
again.

Nothing raises: an unreachable server, a refused token, a timeout or an unparsable answer gives
``JobListing(..., complete=False, error="<cluster> slurmrestd <endpoint>: <one line>")`` or a
failed ``JobActionResult`` (transient for timeouts, connection errors, 429 and 5xx gateway
answers, and slurmctld not answering slurmrestd).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import urllib3

from costwarden.engine.slurm import ENDED, PENDING, RUNNING, SUSPENDED, SlurmJob
from costwarden.slurm.base import JobActionResult, JobListing
from costwarden.slurm.parse import (
    Entry,
    action_id,
    array_of,
    envelope_errors,
    load_document,
    sacct_entries,
    squeue_entries,
)

SUPPORTED: Final = ("v0.0.42", "v0.0.41", "v0.0.40", "v0.0.39", "v0.0.38")  # newest first
DEFAULT_TIMEOUT: Final = 30.0
TOKEN_PREFIX: Final = "SLURM_JWT="
_SLURM_PATH = re.compile(r"^/slurm/(v0\.0\.[0-9]+)/jobs/?$")
_SLURMDB_PATH = re.compile(r"^/slurmdb/(v0\.0\.[0-9]+)/job/\{job_id\}/?$")
_SIGNAL = re.compile(r"^(?:SIG)?[A-Z][A-Z0-9+]{0,15}$|^[0-9]{1,2}$")
_TRANSIENT_STATUS: Final = frozenset({429, 502, 503, 504})
# What slurmrestd passes on when slurmctld or slurmdbd did not answer it: worth a retry.
TRANSIENT: Final = (
    "unable to contact slurm controller",
    "failed while looking for jobs",
    "socket timed out",
    "connection refused",
    "connection timed out",
    "problem talking to the database",
    "slurm_persist_conn",
    "unable to connect to database",
    "resource temporarily unavailable",
)
# What slurmctld says of a job that ended between the re-read and the request. "Invalid job id"
# is not among them: the re-read just saw the job, so that answer is about the name used.
ALREADY_ENDED: Final = (
    "already completing or completed",
    "job has already finished",
    "already sent signal",
)
INVALID_ID: Final = "invalid job id specified"
# Passes the id to slurmctld as a string, where "6_[1-2]" and "6_2" are exact (tried on 22.05).
EXACT_ARRAY_RECORDS: Final = "v0.0.38"


_Act = Callable[[SlurmJob, Entry], JobActionResult]


class _RestError(Exception):
    def __init__(self, message: str, transient: bool) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient


@dataclass(frozen=True, slots=True)
class _Versions:
    slurm: str
    slurmdb: str | None


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    document: Mapping[str, Any] | None
    errors: list[str]
    text: str


class RestSource:
    """A Slurm cluster read and acted on through slurmrestd."""

    def __init__(
        self,
        cluster: str,
        url: str,
        token_file: Path,
        *,
        user: str | None = None,
        client: urllib3.PoolManager | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._cluster = cluster
        self._base = url.rstrip("/")
        self._token_file = Path(token_file)
        self._user = user
        self._client = client if client is not None else urllib3.PoolManager()
        self._timeout = urllib3.Timeout(total=timeout)
        self._timeout_s = timeout
        self._versions: _Versions | None = None

    @property
    def cluster(self) -> str:
        return self._cluster

    def __repr__(self) -> str:
        return f"RestSource({self._cluster!r}, {self._base!r})"

    @property
    def version(self) -> str | None:
        """The data_parser version in use, once found."""
        return self._versions.slurm if self._versions else None

    # -- reading --------------------------------------------------------------------------------

    def jobs(self) -> JobListing:
        try:
            entries, errors = self._current_entries()
        except _RestError as exc:
            return JobListing((), False, f"{self._cluster} slurmrestd {exc.message}")
        jobs = tuple(entry.job for entry in entries)
        if errors:
            return JobListing(jobs, False, f"{self._cluster} slurmrestd {errors}")
        return JobListing(jobs, True)

    def history(self, job_ids: Sequence[str]) -> JobListing:
        wanted = list(dict.fromkeys(job_ids))
        problems: list[str] = []
        queries: list[str] = []
        for job_id in wanted:
            if action_id(job_id) is None:
                problems.append(f"not a Slurm job id: {job_id!r}")
                continue
            query = array_of(job_id) or job_id
            if query not in queries:
                queries.append(query)
        found: dict[str, SlurmJob] = {}
        asked = set(wanted)
        try:
            versions = self._discover()
            if versions.slurmdb is None and queries:
                raise _RestError(
                    f"slurmdb: the server offers no slurmdb API (slurmrestd without slurmdbd's "
                    f"openapi/dbv plugin): job history cannot be read (data_parser {versions.slurm})",
                    False,
                )
            for query in queries:
                path = f"/slurmdb/{versions.slurmdb}/job/{quote(query, safe='')}"
                answer = self._request("GET", path)
                if answer.status != 200 or answer.document is None:
                    problems.append(f"GET {path}: {self._why(answer)}")
                    continue
                entries, errors = sacct_entries(answer.document, self._cluster)
                problems += [f"GET {path}: {error}" for error in errors]
                for entry in entries:
                    if entry.job.job_id in asked:
                        found[entry.job.job_id] = entry.job
        except _RestError as exc:
            return JobListing(tuple(found.values()), False, f"{self._cluster} slurmrestd {exc.message}")
        if problems:
            return JobListing(
                tuple(found.values()), False, f"{self._cluster} slurmrestd {_summary(problems)}"
            )
        return JobListing(tuple(found.values()), True)

    # -- acting ---------------------------------------------------------------------------------

    def signal(self, jobs: Sequence[SlurmJob], signal: str) -> list[JobActionResult]:
        if not _SIGNAL.match(signal):
            return [JobActionResult(job.job_id, False, f"not a signal name: {signal!r}") for job in jobs]

        def act(job: SlurmJob, entry: Entry) -> JobActionResult:
            if entry.job.state != RUNNING:
                return JobActionResult(
                    job.job_id, False, f"{entry.job.state}, not running: nothing to signal (cancel ends it)"
                )
            return self._delete(job, entry, f"signalled {signal}", {"signal": signal})

        return self._each(jobs, act)

    def cancel(self, jobs: Sequence[SlurmJob]) -> list[JobActionResult]:
        return self._each(jobs, lambda job, entry: self._delete(job, entry, "cancelled", None))

    def suspend(self, jobs: Sequence[SlurmJob]) -> list[JobActionResult]:
        def act(job: SlurmJob, entry: Entry) -> JobActionResult:
            state = entry.job.state
            if state == SUSPENDED:
                return JobActionResult(job.job_id, True, "already suspended")
            if state == PENDING:
                if entry.held:
                    return JobActionResult(job.job_id, True, "already held")
                return self._hold(job, entry)
            return JobActionResult(
                job.job_id,
                False,
                f"slurmrestd ({self.version}) cannot suspend a running job (no endpoint does): "
                "use the client commands (--slurm without --slurmrestd-url) to suspend, or Kill",
            )

        return self._each(jobs, act)

    def _each(self, jobs: Sequence[SlurmJob], act: _Act) -> list[JobActionResult]:
        """``act(job, current entry)`` for each job slurmctld still holds as not ended, after one
        re-read of the jobs; the results in the order of ``jobs``."""
        early: dict[int, JobActionResult] = {}
        for index, job in enumerate(jobs):
            if action_id(job.job_id) is None:
                early[index] = JobActionResult(
                    job.job_id, False, f"not a Slurm job id: {job.job_id!r}: left alone"
                )
            elif job.cluster != self._cluster:
                early[index] = JobActionResult(
                    job.job_id, False, f"a job of cluster {job.cluster!r}, not {self._cluster!r}: left alone"
                )
            elif job.state == ENDED:
                early[index] = JobActionResult(job.job_id, True, f"already ended ({job.slurm_state})")
        if len(early) == len(jobs):
            return [early[index] for index in range(len(jobs))]
        try:
            current, errors = self._current()
        except _RestError as exc:
            failed = JobActionResult("", False, f"re-read before acting: {exc.message}", exc.transient)
            return [early.get(index) or replace(failed, job_id=job.job_id) for index, job in enumerate(jobs)]
        return [early.get(index) or self._act(job, current, errors, act) for index, job in enumerate(jobs)]

    def _act(self, job: SlurmJob, current: Mapping[str, Entry], errors: str, act: _Act) -> JobActionResult:
        entry = current.get(job.job_id)
        if entry is None and errors:
            return JobActionResult(job.job_id, False, f"re-read before acting was incomplete: {errors}", True)
        if entry is None:
            return JobActionResult(job.job_id, True, "already ended (slurmctld no longer holds it)")
        if entry.job.state == ENDED:
            return JobActionResult(job.job_id, True, f"already ended ({entry.job.slurm_state})")
        try:
            return act(job, entry)
        except _RestError as exc:
            return JobActionResult(job.job_id, False, exc.message, exc.transient)

    def _names(self, entry: Entry) -> list[str]:
        """The ids to name the record by, in the order to try them.

        slurmrestd names a job to slurmctld in one of two ways, by release: 23.02 to 24.05 keep
        only the number before ``_`` (``6_0`` would reach the whole array 6), 22.05 (v0.0.38)
        and the newest pass the id as a string, where a bare array id means the whole array too.
        So: a plain job by its id; an array task that has a record of its own by that record's
        id (8 for ``6_0``), and only when the server answers "Invalid job id" for it (a
        string-passing server looks for an array 8) by ``6_0``, which such a server takes
        exactly; the array's own record (its pending tasks ``6_[1-2]``, or its last task, whose
        record id is the array's) only as ``6_[1-2]`` / ``6_2`` and only where that is known
        exact (``_refusal``)."""
        own = str(entry.raw_id)
        array = array_of(entry.job.job_id)
        if array is None:
            return [own]
        if array != own:
            return [own, entry.action_id]
        return [entry.action_id]

    def _refusal(self, job: SlurmJob, entry: Entry, verb: str) -> JobActionResult | None:
        version = self._discover().slurm
        if array_of(job.job_id) == str(entry.raw_id) and version != EXACT_ARRAY_RECORDS:
            return JobActionResult(
                job.job_id,
                False,
                f"slurmrestd {version} is not known to {verb} {entry.action_id} alone (the array's own "
                f"record: it may reach all of array {entry.raw_id}): use the client commands",
            )
        return None

    def _send(
        self,
        method: str,
        entry: Entry,
        *,
        fields: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> tuple[str, _Answer]:
        version = self._discover().slurm
        names = self._names(entry)
        for index, name in enumerate(names):
            path = f"/slurm/{version}/job/{quote(name, safe='')}"
            answer = self._request(method, path, fields=fields, body=body)
            if index + 1 < len(names) and INVALID_ID in self._why(answer).lower():
                continue
            return f"{method} {path}", answer
        raise AssertionError("unreachable: there is always a name")  # pragma: no cover

    def _delete(
        self, job: SlurmJob, entry: Entry, done: str, fields: Mapping[str, str] | None
    ) -> JobActionResult:
        refusal = self._refusal(job, entry, "signal or cancel")
        if refusal is not None:
            return refusal
        request, answer = self._send("DELETE", entry, fields=fields)
        if answer.status == 200 and not answer.errors:
            return JobActionResult(job.job_id, True, done)
        why = self._why(answer)
        if any(text in why.lower() for text in ALREADY_ENDED):
            return JobActionResult(job.job_id, True, f"already ended: {why}")
        return JobActionResult(job.job_id, False, f"{request}: {why}", self._transient(answer))

    def _hold(self, job: SlurmJob, entry: Entry) -> JobActionResult:
        refusal = self._refusal(job, entry, "hold")
        if refusal is not None:
            return refusal
        fields: dict[str, Any] = {"hold": True}
        body = {"job": fields} if self._discover().slurm == "v0.0.39" else fields
        request, answer = self._send("POST", entry, body=body)
        if answer.status == 200 and not answer.errors:
            return JobActionResult(job.job_id, True, "held")
        why = self._why(answer)
        if any(text in why.lower() for text in ALREADY_ENDED):
            return JobActionResult(job.job_id, True, f"already ended: {why}")
        if answer.status == 200:  # 22.05 reports every array update failed: look
            current, _ = self._current()
            now = current.get(job.job_id)
            if now is not None and now.held:
                return JobActionResult(
                    job.job_id, True, f"held (the re-read shows it; slurmrestd said: {why})"
                )
        return JobActionResult(job.job_id, False, f"{request}: {why}", self._transient(answer))

    # -- reading helpers ------------------------------------------------------------------------

    def _current(self) -> tuple[dict[str, Entry], str]:
        entries, errors = self._current_entries()
        return {entry.job.job_id: entry for entry in entries}, errors

    def _current_entries(self) -> tuple[list[Entry], str]:
        versions = self._discover()
        path = f"/slurm/{versions.slurm}/jobs"
        answer = self._request("GET", path)
        if answer.status != 200 or answer.document is None:
            raise _RestError(f"GET {path}: {self._why(answer)}", self._transient(answer))
        entries, errors = squeue_entries(answer.document, self._cluster)
        return entries, (f"GET {path}: {_summary(errors)}" if errors else "")

    def _discover(self) -> _Versions:
        if self._versions is not None:
            return self._versions
        answer = self._request("GET", "/openapi/v3")
        if answer.status in (401, 403):
            raise _RestError(f"GET /openapi/v3: {self._why(answer)}", False)
        paths = answer.document.get("paths") if answer.status == 200 and answer.document else None
        if isinstance(paths, Mapping):
            slurm = {m.group(1) for path in paths if isinstance(path, str) and (m := _SLURM_PATH.match(path))}
            slurmdb = {
                m.group(1) for path in paths if isinstance(path, str) and (m := _SLURMDB_PATH.match(path))
            }
            chosen = next((version for version in SUPPORTED if version in slurm), None)
            if chosen is None:
                offered = ", ".join(sorted(slurm)) or "none"
                raise _RestError(
                    f"/openapi/v3: the server offers data_parser versions {offered}, none of "
                    f"{', '.join(reversed(SUPPORTED))}",
                    False,
                )
            chosen_db = next((version for version in SUPPORTED if version in slurmdb), None)
            self._versions = _Versions(chosen, chosen_db)
            return self._versions
        # No OpenAPI description: the first version whose ping answers.
        for version in SUPPORTED:
            ping = self._request("GET", f"/slurm/{version}/ping")
            if ping.status == 200:
                self._versions = _Versions(version, version)
                return self._versions
            if ping.status in (401, 403):
                raise _RestError(f"GET /slurm/{version}/ping: {self._why(ping)}", False)
        raise _RestError(
            f"/openapi/v3 answered {self._why(answer)}, and no /slurm/<version>/ping of "
            f"{', '.join(SUPPORTED)} answered: not a slurmrestd of Slurm 22.05 or later?",
            self._transient(answer),
        )

    # -- HTTP -----------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        try:
            token = self._token_file.read_text().strip()
        except OSError as exc:
            raise _RestError(f"token file {self._token_file}: {exc.strerror or exc}", False) from None
        except UnicodeDecodeError:
            raise _RestError(f"token file {self._token_file} is not text", False) from None
        token = token.removeprefix(TOKEN_PREFIX).strip()
        if not token:
            raise _RestError(f"token file {self._token_file} is empty", False)
        if any(ch in token for ch in "\r\n\0"):
            raise _RestError(f"token file {self._token_file} holds more than one line", False)
        headers = {"X-SLURM-USER-TOKEN": token, "Accept": "application/json"}
        if self._user:
            headers["X-SLURM-USER-NAME"] = self._user
        return headers

    def _request(
        self,
        method: str,
        path: str,
        *,
        fields: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> _Answer:
        headers = self._headers()
        payload: bytes | None = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            response = self._client.request(
                method,
                self._base + path,
                fields=dict(fields) if fields else None,
                body=payload,
                headers=headers,
                timeout=self._timeout,
                retries=False,
                redirect=False,
            )
        except urllib3.exceptions.TimeoutError:
            raise _RestError(f"{method} {path}: no answer within {self._timeout_s:g} s", True) from None
        except urllib3.exceptions.HTTPError as exc:
            raise _RestError(f"{method} {path}: {_one_line(str(exc))}", True) from None
        except Exception as exc:  # a client that raised something else: still never raise
            raise _RestError(f"{method} {path}: {type(exc).__name__}: {_one_line(str(exc))}", True) from None
        text = response.data.decode("utf-8", errors="replace")
        document, _ = load_document(text)
        errors = envelope_errors(document) if document is not None else []
        if response.status == 404 and self._versions is not None:
            self._versions = None  # the server changed under us: find the versions again
        return _Answer(response.status, document, errors, text)

    def _why(self, answer: _Answer) -> str:
        parts = [f"HTTP {answer.status}"]
        if answer.status in (401, 403):
            parts.append("the token was refused (expired, or minted with another key or for another user)")
        if answer.errors:
            parts.append("; ".join(answer.errors))
        elif answer.document is None and answer.text.strip():
            parts.append(_one_line(answer.text, 200))
        return _one_line(": ".join(parts))

    def _transient(self, answer: _Answer) -> bool:
        if answer.status in _TRANSIENT_STATUS:
            return True
        text = " ".join(answer.errors).lower()
        return any(marker in text for marker in TRANSIENT)


def _summary(errors: Sequence[str]) -> str:
    first = _one_line(errors[0])
    return first if len(errors) == 1 else f"{first} (and {len(errors) - 1} more)"


def _one_line(text: str, limit: int = 400) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
