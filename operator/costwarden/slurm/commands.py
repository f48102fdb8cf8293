"""One Slurm cluster through its client commands on ``PATH`` (``squeue``, ``sacct``, ``scancel``,
``scontrol``), as a ``JobSource``.

The commands find their cluster as they always do: ``SLURM_CONF`` (or the default slurm.conf) and
munge, from the environment the operator runs in, which each subprocess inherits; nothing here
reads the environment. With ``clusters_flag`` every command gets ``--clusters <cluster>`` (a
multi-cluster setup through slurmdbd, where the ``--slurm`` name is Slurm's cluster name).

What runs (an argument list, never a shell; each with a timeout; text output):

* ``jobs``: ``squeue --json --all --states=all``: every job slurmctld holds, hidden partitions
  and jobs that ended within ``MinJobAge`` included (22.05 ignores squeue's filters with
  ``--json`` and prints all of them anyway).
* ``history``: ``sacct --json --allusers --starttime=now-<history_days>days --jobs=<ids>``; sacct
  selects jobs that ran after ``--starttime``, so a job that ended after it is found however long
  ago it started. An array task is asked for by its own id (``6_0``), an array's pending record
  (``6_[1-2%1]``) by the array's (``6``: sacct refuses ``6_[1-2]``); only the asked ids come back.
* ``signal``: ``scancel --verbose --signal=<SIG> --full <id>`` (the batch script too, as SkyPilot's own
  teardown does) for a running job only: a pending job has nothing to signal, and scancel waits
  on a suspended one until it is resumed (22.05: past any sensible timeout).
* ``cancel``: ``scancel --verbose <id>``. scancel exits 0 whatever became of the job (22.05:
  one already ended, or unknown); ``--verbose`` makes it print the error it ignored, which is read.
* ``suspend``: ``scontrol suspend <id>`` for a running job, ``scontrol hold <id>`` for a pending
  one (the job's state as last read; a pending job that started meanwhile keeps running, held
  for a requeue, and the next read shows it running).

Always by job id (array tasks ``6_0``, an array's pending tasks ``6_[1-2]``), never by name: as
root, ``scancel --name`` reaches every user's job of that name. An id that is not a Slurm job id
is never passed to a command.

Nothing raises. A command that is missing, fails, times out or prints what cannot be parsed
gives ``JobListing(..., complete=False, error="<cluster> squeue: <one line>")`` or a failed
``JobActionResult``; ``transient`` where a retry may help (the controller or the database not
answering, a timeout). Acting on a job that has already ended is ``ok=True`` and says so.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from costwarden.engine.slurm import ENDED, PENDING, RUNNING, SUSPENDED, SlurmJob
from costwarden.slurm.base import JobActionResult, JobListing
from costwarden.slurm.parse import action_id, array_of, sacct_entries, squeue_entries

Runner = Callable[[Sequence[str], float], subprocess.CompletedProcess[str]]

DEFAULT_TIMEOUT: Final = 30.0  # squeue takes ~9 s to give up on a stopped slurmctld (22.05)
DEFAULT_HISTORY_DAYS: Final = 62  # a month's budget period, and a month's slack

# What the commands print when the controller or the database did not answer: worth a retry.
TRANSIENT: Final = (
    "unable to contact slurm controller",
    "socket timed out",
    "connection refused",
    "connection timed out",
    "connection reset",
    "zero bytes were transmitted",
    "resource temporarily unavailable",
    "slurm_persist_conn",
    "problem talking to the database",
    "standby mode",
    "try again",
    "unexpected message received",  # 22.05's scontrol while slurmctld is down
    "job is pending execution",  # scontrol suspend: the job went back to the queue since the read
    "job is no longer pending",
)
# What they print about a job that has already ended (or been forgotten after MinJobAge).
ALREADY_ENDED: Final = (
    "already completing or completed",
    "job has already finished",
    "invalid job id specified",
)
_SIGNAL = re.compile(r"^(?:SIG)?[A-Z][A-Z0-9+]{0,15}$|^[0-9]{1,2}$")


def run_command(args: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """``subprocess.run`` the argument list (no shell), output as text, within ``timeout`` seconds;
    the environment (``SLURM_CONF`` and the rest) is inherited."""
    return subprocess.run(
        list(args), capture_output=True, text=True, errors="replace", timeout=timeout, check=False
    )


@dataclass(frozen=True, slots=True)
class _Failure:
    message: str
    transient: bool


@dataclass(frozen=True, slots=True)
class _Output:
    stdout: str
    stderr: str


class CommandSource:
    """A Slurm cluster read and acted on through its client commands."""

    def __init__(
        self,
        cluster: str,
        *,
        clusters_flag: bool = False,
        run: Runner = run_command,
        timeout: float = DEFAULT_TIMEOUT,
        history_days: int = DEFAULT_HISTORY_DAYS,
    ) -> None:
        self._cluster = cluster
        self._clusters = ("--clusters", cluster) if clusters_flag else ()
        self._run = run
        self._timeout = timeout
        self._history_days = history_days

    @property
    def cluster(self) -> str:
        return self._cluster

    def __repr__(self) -> str:
        return f"CommandSource({self._cluster!r}, clusters_flag={bool(self._clusters)})"

    # -- reading --------------------------------------------------------------------------------

    def jobs(self) -> JobListing:
        output = self._call(["squeue", "--json", "--all", "--states=all", *self._clusters])
        if isinstance(output, _Failure):
            return JobListing((), False, f"{self._cluster} squeue: {output.message}")
        entries, errors = squeue_entries(output.stdout, self._cluster)
        jobs = tuple(entry.job for entry in entries)
        if errors:
            return JobListing(jobs, False, f"{self._cluster} squeue: {_summary(errors)}")
        return JobListing(jobs, True)

    def history(self, job_ids: Sequence[str]) -> JobListing:
        wanted = list(dict.fromkeys(job_ids))
        problems: list[str] = []
        asked: set[str] = set()
        for job_id in wanted:
            if action_id(job_id) is None:
                problems.append(f"not a Slurm job id: {job_id!r}")
            else:  # an array's pending record by the array's id: sacct refuses 6_[1-2]
                asked.add((array_of(job_id) or job_id) if "[" in job_id else job_id)
        query = sorted(asked, key=_id_order)
        jobs: tuple[SlurmJob, ...] = ()
        if query:
            output = self._call(
                [
                    "sacct",
                    "--json",
                    "--allusers",
                    f"--starttime=now-{self._history_days}days",
                    f"--jobs={','.join(query)}",
                    *self._clusters,
                ]
            )
            if isinstance(output, _Failure):
                return JobListing((), False, f"{self._cluster} sacct: {output.message}")
            entries, errors = sacct_entries(output.stdout, self._cluster)
            found = set(wanted)
            jobs = tuple(entry.job for entry in entries if entry.job.job_id in found)
            problems += errors
        if problems:
            return JobListing(jobs, False, f"{self._cluster} sacct: {_summary(problems)}")
        return JobListing(jobs, True)

    # -- acting ---------------------------------------------------------------------------------

    def signal(self, jobs: Sequence[SlurmJob], signal: str) -> list[JobActionResult]:
        results = []
        for job in jobs:
            target, early = self._target(job)
            if early is not None:
                results.append(early)
            elif not _SIGNAL.match(signal):
                results.append(JobActionResult(job.job_id, False, f"not a signal name: {signal!r}"))
            elif job.state != RUNNING:
                results.append(
                    JobActionResult(
                        job.job_id, False, f"{job.state}, not running: nothing to signal (cancel ends it)"
                    )
                )
            else:
                args = ["scancel", "--verbose", f"--signal={signal}", "--full", *self._clusters, target]
                results.append(self._act(job, args, f"signalled {signal}"))
        return results

    def cancel(self, jobs: Sequence[SlurmJob]) -> list[JobActionResult]:
        results = []
        for job in jobs:
            target, early = self._target(job)
            if early is not None:
                results.append(early)
            else:
                results.append(self._act(job, ["scancel", "--verbose", *self._clusters, target], "cancelled"))
        return results

    def suspend(self, jobs: Sequence[SlurmJob]) -> list[JobActionResult]:
        results = []
        for job in jobs:
            target, early = self._target(job)
            if early is not None:
                results.append(early)
            elif job.state == SUSPENDED:
                results.append(JobActionResult(job.job_id, True, "already suspended"))
            elif job.state == PENDING:
                results.append(self._act(job, ["scontrol", *self._clusters, "hold", target], "held"))
            else:
                results.append(self._act(job, ["scontrol", *self._clusters, "suspend", target], "suspended"))
        return results

    def _target(self, job: SlurmJob) -> tuple[str, JobActionResult | None]:
        target = action_id(job.job_id)
        if target is None:
            return "", JobActionResult(job.job_id, False, f"not a Slurm job id: {job.job_id!r}: left alone")
        if job.cluster != self._cluster:
            return "", JobActionResult(
                job.job_id, False, f"a job of cluster {job.cluster!r}, not {self._cluster!r}: left alone"
            )
        if job.state == ENDED:
            return target, JobActionResult(job.job_id, True, f"already ended ({job.slurm_state})")
        return target, None

    def _act(self, job: SlurmJob, args: list[str], done: str) -> JobActionResult:
        output = self._call(args)
        if isinstance(output, _Output):
            # scancel exits 0 whatever became of the job; --verbose makes it say (on stderr)
            said = _error_lines(output.stderr, args[0])
            if not said:
                return JobActionResult(job.job_id, True, done)
            output = _Failure(said, any(text in said.lower() for text in TRANSIENT))
        lowered = output.message.lower()
        if any(text in lowered for text in ALREADY_ENDED):
            return JobActionResult(job.job_id, True, f"already ended: {output.message}")
        return JobActionResult(job.job_id, False, f"{args[0]}: {output.message}", output.transient)

    # -- running a command ------------------------------------------------------------------------

    def _call(self, args: list[str]) -> _Output | _Failure:
        """The command's output, or why there is none."""
        command = args[0]
        try:
            done = self._run(args, self._timeout)
        except subprocess.TimeoutExpired as exc:
            said = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
            why = _stderr_line(said, command)
            return _Failure(f"no answer within {self._timeout:g} s" + (f": {why}" if why else ""), True)
        except FileNotFoundError:
            return _Failure(f"{command} is not on PATH (install the Slurm client commands)", False)
        except OSError as exc:
            return _Failure(f"could not run {command}: {exc.strerror or exc}", False)
        except Exception as exc:  # a runner that raised something else: still never raise
            return _Failure(f"could not run {command}: {type(exc).__name__}: {exc}", False)
        if done.returncode != 0:
            message = _stderr_line(done.stderr or "", command) or _stderr_line(done.stdout or "", command)
            message = f"exit {done.returncode}: {message}" if message else f"exit {done.returncode}"
            lowered = message.lower()
            return _Failure(message, any(text in lowered for text in TRANSIENT))
        return _Output(done.stdout or "", done.stderr or "")


def _error_lines(text: str, command: str) -> str:
    """The error lines of a command that exited 0, as one line ("" when there are none)."""
    lines = [line.strip() for line in text.splitlines() if "error" in line.lower() or "fatal" in line.lower()]
    return _one_line(" | ".join(dict.fromkeys(line.removeprefix(f"{command}: ") for line in lines)))


def _stderr_line(text: str, command: str) -> str:
    """The lines that say what went wrong, as one line: errors and fatals first, else the last."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    chosen = [line for line in lines if "error" in line.lower() or "fatal" in line.lower()] or lines[-2:]
    cleaned = [line.removeprefix(f"{command}: ") for line in chosen]
    return _one_line(" | ".join(dict.fromkeys(cleaned)))


def _summary(errors: Sequence[str]) -> str:
    first = _one_line(errors[0])
    return first if len(errors) == 1 else f"{first} (and {len(errors) - 1} more)"


def _one_line(text: str, limit: int = 400) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _id_order(job_id: str) -> tuple[int, str]:
    head = job_id.split("_", 1)[0]
    return (int(head) if head.isdigit() else 0, job_id)
