"""Slurm's job JSON as ``SlurmJob`` records: pure, and never raises.

``parse_squeue`` reads what ``squeue --json`` prints and what slurmrestd's ``GET
/slurm/<version>/jobs`` answers (the same data_parser dump); ``parse_sacct`` reads ``sacct --json``
and ``GET /slurmdb/<version>/job/<id>``. Each returns ``(jobs, errors)``: a job whose record
cannot be read is left out and named in one error string (its id, or its index in ``jobs`` when
it has no id, and the field); an answer that is not JSON, or whose envelope carries Slurm's own
errors, gives errors too. The caller decides what an error means (the sources mark their
listing incomplete).

Supported, every shape with a recorded or traced sample in tests/data/slurm (see its README):

=========  ============  ==========================================================================
Slurm      data_parser   shape
=========  ============  ==========================================================================
22.05      v0.0.38       recorded from a real 22.05.8 (squeue, sacct, slurmrestd): ``job_state`` and
                         ``state.current`` strings, counts and times plain integers (0 = unset),
                         ``array_task_id`` null or an integer, sacct's pending array record has
                         its tasks as a hex bit mask (``array.task = "0x6"``)
23.02      v0.0.39       counts are ``{"set", "infinite", "number"}`` objects (``UINT32_NO_VAL``),
                         states and squeue times still strings and integers
23.11      v0.0.40       ``job_state`` / ``state.current`` are lists (base state and flags), squeue
24.05      v0.0.41       times are ``{"set", "infinite", "number"}`` objects (``TIMESTAMP_NO_VAL``)
24.11      v0.0.42       as 23.11
=========  ============  ==========================================================================

The shapes from 23.02 on come from SchedMD/slurm's ``src/plugins/data_parser/v0.0.3x|4x/parsers.c``
(the commits are named in tests/data/slurm/README.md). Any count or time may be either form (a
plain integer or a ``{"set", "number"}`` object), and either a string or a list of states is read,
so a field that changed form in a version between those traced is read all the same; the data
parser's "complex" mode (``null`` for unset, ``"Infinity"``) reads as unset.

What a record becomes:

* **id**: ``job_id``; an array task is ``<array job id>_<task id>``; the pending record of an
  array keeps Slurm's own form ``<array job id>_[<tasks>]`` (``6_[1-2%1]``, as ``squeue`` prints
  it; sacct's hex mask is turned into that form).
* **state**: Slurm's base state and flags -> one of the engine's four. A flag that keeps the
  nodes allocated (COMPLETING, CONFIGURING, POWER_UP_NODE, SIGNALING, STOPPED, RESIZING) makes it
  *running*: a completing job still holds its nodes (its epilog runs on them, nobody else can have
  them), so it is billed until Slurm frees them. Else a flag of a job going back to the queue
  (REQUEUED, REQUEUE_HOLD, REQUEUE_FED, SPECIAL_EXIT, RESV_DEL_HOLD, RECONFIG_FAIL, EXPEDITING,
  LAUNCH_FAILED) makes it *pending*; else the base state: PENDING -> pending, RUNNING -> running,
  SUSPENDED -> suspended, COMPLETED, CANCELLED, FAILED, TIMEOUT, NODE_FAIL, PREEMPTED, BOOT_FAIL,
  DEADLINE, OUT_OF_MEMORY -> ended (REVOKED and STAGE_OUT alone too: the nodes are free). An
  unknown state is an error, never a guess.
* **allocation**: from what Slurm allocated, never what was asked: squeue's ``tres_alloc_str``
  (``cpu=4,mem=16G,node=1,billing=4,gres/gpu=1``; memory with Slurm's unit suffix K/M/G/T/P,
  MiB without one) or sacct's ``tres.allocated`` (``{"type": "mem", "count": <MiB>}``,
  ``{"type": "gres", "name": "gpu" | "gpu:<type>", "count": n}``). Memory is exact GiB
  (``Decimal``). ``gres/gpu=n`` is the GPU count; ``gres/gpu:<type>=n`` entries (present when
  ``AccountingStorageTRES`` names typed GPUs) give the type, else squeue's ``gres_detail``
  (``gpu:h100:1(IDX:0)``) does. A pending job has no allocation whatever the record says.
* **times**: epoch seconds, aware UTC; 0 or unset is None. A pending job has neither start nor
  end (squeue gives the expected ones there), a running or suspended one no end (squeue gives
  its time limit's end); an ended job must have its end time (else it could not be closed at
  it: an error), and one that never got nodes (cancelled while pending) has no start.
* sacct's placeholder: until slurmctld's start record reaches slurmdbd, a job that started and
  ended within moments shows as ``name: "allocation"`` with no partition; such a record is an
  error ("read it again later"), not a job.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from costwarden.engine.slurm import ENDED, PENDING, RUNNING, SUSPENDED, SlurmJob
from costwarden.pricing.slurm import expand_hosts

# Slurm's base states (JOB_STATE_BASES, slurm/slurm.h) -> the engine's four.
BASE_STATES: Final[Mapping[str, str]] = {
    "PENDING": PENDING,
    "RUNNING": RUNNING,
    "SUSPENDED": SUSPENDED,
    "COMPLETED": ENDED,
    "CANCELLED": ENDED,
    "FAILED": ENDED,
    "TIMEOUT": ENDED,
    "NODE_FAIL": ENDED,
    "PREEMPTED": ENDED,
    "BOOT_FAIL": ENDED,
    "DEADLINE": ENDED,
    "OUT_OF_MEMORY": ENDED,
}
# Flags (JOB_STATE_FLAGS) of a job that holds its nodes: billed whatever its base state says.
ALLOCATED_FLAGS: Final = frozenset(
    {"COMPLETING", "CONFIGURING", "POWER_UP_NODE", "SIGNALING", "STOPPED", "RESIZING"}
)
# Flags of a job on its way back to the queue.
QUEUED_FLAGS: Final = frozenset(
    {
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "SPECIAL_EXIT",
        "RESV_DEL_HOLD",
        "RECONFIG_FAIL",
        "EXPEDITING",
        "LAUNCH_FAILED",
    }
)
# Flags that end a job when no base state comes with them (22.05 prints one name only).
ENDED_FLAGS: Final = frozenset({"REVOKED", "STAGE_OUT"})
# Flags that say nothing of the state by themselves.
NEUTRAL_FLAGS: Final = frozenset({"UPDATE_DB", "CRON_ENTRY"})

NOTHING_FOUND: Final = 9003  # ESLURM_REST_EMPTY_RESULT: "Nothing found with query" (an empty answer)
# Slurm's memory unit suffix -> powers of 1024 from GiB (a bare figure is MiB).
_GIB_POWER: Final[Mapping[str, int]] = {"K": -2, "": -1, "M": -1, "G": 0, "T": 1, "P": 2}
_MEMORY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([KMGTP]?)$")
_COUNT = re.compile(r"^[0-9]+$")
_HEX_MASK = re.compile(r"^0[xX][0-9a-fA-F]+$")
_NO_NODES: Final = frozenset({"", "None assigned", "(null)"})


@dataclass(frozen=True, slots=True)
class Entry:
    """One record as parsed: the job, and what acting on it needs beside it.

    ``raw_id`` is the record's own Slurm job id (an array task's own id, 8 for ``6_0``; the
    array's id for its pending record). ``action_id`` is the id to name it by in ``scancel`` and
    ``scontrol``: ``job.job_id``, or for an array's pending record ``<array>_[<tasks>]`` without
    the ``%<limit>`` that only ``squeue`` prints. ``held`` is squeue's ``priority`` 0 (a held job).
    """

    job: SlurmJob
    raw_id: int
    action_id: str
    held: bool = False


class _Fault(Exception):
    """One unreadable field; caught per record and turned into an error string."""


def parse_squeue(text: str | bytes, cluster: str) -> tuple[list[SlurmJob], list[str]]:
    """``squeue --json`` (or slurmrestd's jobs answer) as jobs, and what could not be read."""
    entries, errors = squeue_entries(text, cluster)
    return [entry.job for entry in entries], errors


def parse_sacct(text: str | bytes, cluster: str) -> tuple[list[SlurmJob], list[str]]:
    """``sacct --json`` (or slurmrestd's slurmdb job answer) as jobs, and what could not be read."""
    entries, errors = sacct_entries(text, cluster)
    return [entry.job for entry in entries], errors


def squeue_entries(text: str | bytes | Mapping[str, Any], cluster: str) -> tuple[list[Entry], list[str]]:
    """``parse_squeue`` with each job's raw id and the id to act on it by."""
    return _entries(text, cluster, _squeue_entry)


def sacct_entries(text: str | bytes | Mapping[str, Any], cluster: str) -> tuple[list[Entry], list[str]]:
    """``parse_sacct`` with each job's raw id and the id to act on it by."""
    return _entries(text, cluster, _sacct_entry)


def load_document(text: str | bytes | Mapping[str, Any]) -> tuple[Mapping[str, Any] | None, str | None]:
    """The JSON object in ``text``, or None and why not."""
    if isinstance(text, Mapping):
        return text, None
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, f"answer is not UTF-8 text ({exc.reason} at byte {exc.start})"
    if not isinstance(text, str):
        return None, f"answer is a {type(text).__name__}, not JSON text"
    if not text.strip():
        return None, "answer is empty, not JSON"
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return None, f"answer is not JSON ({_one_line(str(exc))}): {_excerpt(text)}"
    if not isinstance(document, dict):
        return None, f"answer is {_a(document)} in JSON, not an object with 'jobs'"
    return document, None


def envelope_errors(document: Mapping[str, Any]) -> list[str]:
    """Slurm's own ``errors`` in an answer, one line each; "Nothing found" is an empty answer,
    not an error."""
    raw = document.get("errors")
    if raw is None:
        return []
    if not isinstance(raw, list):
        return [f"errors is {_a(raw)}, not a list"]
    found = []
    for item in raw:
        if isinstance(item, Mapping):
            if item.get("error_number") == NOTHING_FOUND:
                continue
            parts = [str(item[key]) for key in ("source", "description", "error") if item.get(key)]
            text = ": ".join(dict.fromkeys(parts)) or "(an error without a description)"
            number = item.get("error_number", item.get("errno"))
            found.append(_one_line(f"slurm error {number}: {text}" if number else f"slurm error: {text}"))
        else:
            found.append(_one_line(f"slurm error: {item}"))
    return found


_JOB_ID = re.compile(r"^([1-9][0-9]*)(?:_([0-9]+)|_\[([0-9][0-9,\-]*)(?:%[0-9]+)?\])?$")


def action_id(job_id: str) -> str | None:
    """The id to name ``job_id`` by in ``scancel`` / ``scontrol``: the id itself, or for an
    array's pending record ``<array>_[<tasks>]`` without squeue's ``%<limit>``; None when
    ``job_id`` is not a Slurm job id (never passed to a command: it could read as an option)."""
    match = _JOB_ID.match(job_id)
    if match is None:
        return None
    array, _task, tasks = match.groups()
    if tasks is not None:
        return f"{array}_[{tasks}]"
    return job_id


def array_of(job_id: str) -> str | None:
    """The array's id of an array task or pending array record (``6`` for ``6_0`` and
    ``6_[1-2%1]``), None for a plain job or a malformed id."""
    match = _JOB_ID.match(job_id)
    if match is None or (match.group(2) is None and match.group(3) is None):
        return None
    return match.group(1)


def _entries(text: str | bytes | Mapping[str, Any], cluster: str, read: Any) -> tuple[list[Entry], list[str]]:
    try:
        document, why = load_document(text)
        if document is None:
            return [], [why or "unreadable answer"]
        errors = envelope_errors(document)
        raw_jobs = document.get("jobs")
        if raw_jobs is None:
            if not errors:
                errors.append("answer has no 'jobs' list")
            return [], errors
        if not isinstance(raw_jobs, list):
            return [], [*errors, f"jobs is {_a(raw_jobs)}, not a list"]
        entries: list[Entry] = []
        for index, raw in enumerate(raw_jobs):
            label = f"jobs[{index}]"
            try:
                if not isinstance(raw, Mapping):
                    raise _Fault(f"is {_a(raw)}, not an object")
                label = _label(raw, index)
                entries.append(read(raw, cluster))
            except _Fault as fault:
                errors.append(f"{label}: {fault}")
            except Exception as exc:  # a shape nobody foresaw: still never raise
                errors.append(f"{label}: unreadable ({type(exc).__name__}: {_one_line(str(exc))})")
        return entries, errors
    except Exception as exc:  # pragma: no cover - the guard of the guard
        return [], [f"unreadable answer ({type(exc).__name__}: {_one_line(str(exc))})"]


def _label(raw: Mapping[str, Any], index: int) -> str:
    job_id = raw.get("job_id")
    if isinstance(job_id, int) and not isinstance(job_id, bool):
        return f"job {job_id}"
    if isinstance(job_id, str) and job_id and len(job_id) < 40:
        return f"job {job_id}"
    return f"jobs[{index}]"


# -- squeue -------------------------------------------------------------------------------------


def _squeue_entry(raw: Mapping[str, Any], cluster: str) -> Entry:
    raw_id = _job_id(raw.get("job_id"))
    array_job = _id_part(raw.get("array_job_id"), "array_job_id") or 0
    task = _id_part(raw.get("array_task_id"), "array_task_id")
    tasks = _text(raw.get("array_task_string"), "array_task_string")
    job_id, action_id = _ids(raw_id, array_job, task, tasks)
    names = _states(raw.get("job_state"), "job_state")
    state, slurm_state = _state(names, "job_state")
    user = _text(raw.get("user_name"), "user_name")
    if not user and raw.get("user_id") is not None:
        user = str(_count(raw.get("user_id"), "user_id"))
    gpus = cpus = 0
    memory = Decimal(0)
    gpu_type: str | None = None
    nodes: tuple[str, ...] = ()
    if state != PENDING:
        gpus, cpus, memory, gpu_type = _tres_string(raw.get("tres_alloc_str"), "tres_alloc_str")
        if gpus and gpu_type is None:
            gpu_type = _detail_gpu_type(raw.get("gres_detail"))
        nodes = _nodes(raw.get("nodes"), "nodes")
    submitted = _time(raw.get("submit_time"), "submit_time")
    started, ended = _span(
        state,
        slurm_state,
        _time(raw.get("start_time"), "start_time"),
        _time(raw.get("end_time"), "end_time"),
        nodes=nodes,
        end_field="end_time",
    )
    priority = raw.get("priority")
    held = _count(priority, "priority") == 0 if priority is not None else False
    job = SlurmJob(
        cluster=cluster,
        job_id=job_id,
        name=_text(raw.get("name"), "name"),
        user=user,
        account=_text(raw.get("account"), "account") or None,
        partition=_text(raw.get("partition"), "partition"),
        state=state,
        slurm_state=slurm_state,
        nodes=nodes,
        gpus=gpus,
        cpus=cpus,
        memory_gib=memory,
        gpu_type=gpu_type,
        submitted=submitted,
        started=started,
        ended=ended,
    )
    return Entry(job, raw_id, action_id, held and state == PENDING)


def _detail_gpu_type(value: object) -> str | None:
    """The GPU type in squeue's ``gres_detail`` (``["gpu:h100:1(IDX:0)"]``, one string a node)."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise _Fault(f"gres_detail is {_a(value)}, not a list of strings")
    for node in value:
        if not isinstance(node, str):
            raise _Fault(f"gres_detail holds {_a(node)}, not a string")
        for item in node.split(","):
            parts = item.split("(", 1)[0].split(":")
            if len(parts) >= 3 and parts[0] == "gpu" and not _COUNT.match(parts[1]):
                return parts[1]
    return None


def _tres_string(value: object, field: str) -> tuple[int, int, Decimal, str | None]:
    """``cpu=4,mem=16G,node=1,billing=4,gres/gpu=1[,gres/gpu:h100=1]`` -> GPUs, CPUs, GiB, type."""
    if value is None:
        return 0, 0, Decimal(0), None
    if not isinstance(value, str):
        raise _Fault(f"{field} is {_a(value)}, not a TRES string")
    pairs: list[tuple[str, str, str]] = []
    for item in value.split(","):
        if not item.strip():
            continue
        key, sep, amount = item.strip().partition("=")
        if not sep:
            raise _Fault(f"{field}: {item!r} is not name=count")
        tres_type, _, name = key.partition("/")
        pairs.append((tres_type, name, amount))
    cpus = 0
    memory = Decimal(0)
    gpus: int | None = None
    typed: dict[str, int] = {}
    for tres_type, name, amount in pairs:
        if tres_type == "cpu":
            cpus = _tres_count(amount, f"{field} cpu")
        elif tres_type == "mem":
            memory = _memory_gib(amount, f"{field} mem")
        elif tres_type == "gres" and (name == "gpu" or name.startswith("gpu:")):
            count = _tres_count(amount, f"{field} gres/{name}")
            if name == "gpu":
                gpus = count
            else:
                typed[name.split(":", 1)[1]] = count
    return _gpus(gpus, typed, cpus, memory)


def _gpus(
    gpus: int | None, typed: Mapping[str, int], cpus: int, memory: Decimal
) -> tuple[int, int, Decimal, str | None]:
    total = gpus if gpus is not None else sum(typed.values())
    gpu_type = next((kind for kind, count in typed.items() if count > 0), None)
    return total, cpus, memory, gpu_type


def _tres_count(amount: str, field: str) -> int:
    if not _COUNT.match(amount):
        raise _Fault(f"{field} is {amount!r}, not a count")
    return int(amount)


def _memory_gib(amount: str, field: str) -> Decimal:
    match = _MEMORY.match(amount)
    if match is None:
        raise _Fault(f"{field} is {amount!r}, not a size (a number of MiB, or with K/M/G/T/P)")
    try:
        size = Decimal(match.group(1))
    except InvalidOperation:  # pragma: no cover - the pattern only lets digits through
        raise _Fault(f"{field} is {amount!r}, not a size") from None
    power = _GIB_POWER[match.group(2)]
    scale = Decimal(1024) ** abs(power)
    return size * scale if power >= 0 else size / scale


# -- sacct --------------------------------------------------------------------------------------


def _sacct_entry(raw: Mapping[str, Any], cluster: str) -> Entry:
    raw_id = _job_id(raw.get("job_id"))
    array = _object(raw.get("array"), "array")
    array_job = _id_part(array.get("job_id"), "array.job_id") or 0
    task = _id_part(array.get("task_id"), "array.task_id")
    tasks = _array_tasks(array.get("task"), "array.task")
    limits = _object(array.get("limits"), "array.limits")
    limit = _count(
        _object(
            _object(limits.get("max"), "array.limits.max").get("running"), "array.limits.max.running"
        ).get("tasks"),
        "array.limits.max.running.tasks",
    )
    if tasks and limit:
        tasks = f"{tasks}%{limit}"
    job_id, action_id = _ids(raw_id, array_job, task, tasks)
    state_object = _object(raw.get("state"), "state")
    names = _states(state_object.get("current"), "state.current")
    state, slurm_state = _state(names, "state.current")
    name = _text(raw.get("name"), "name")
    partition = _text(raw.get("partition"), "partition")
    if name == "allocation" and not partition:
        raise _Fault(
            "accounting holds only slurmctld's placeholder record (named 'allocation', no partition) "
            "until the job's start record reaches slurmdbd: read it again later"
        )
    gpus = cpus = 0
    memory = Decimal(0)
    gpu_type: str | None = None
    nodes: tuple[str, ...] = ()
    if state != PENDING:
        tres = _object(raw.get("tres"), "tres")
        gpus, cpus, memory, gpu_type = _tres_list(tres.get("allocated"), "tres.allocated")
        nodes = _nodes(raw.get("nodes"), "nodes")
    times = _object(raw.get("time"), "time")
    started, ended = _span(
        state,
        slurm_state,
        _time(times.get("start"), "time.start"),
        _time(times.get("end"), "time.end"),
        nodes=nodes,
        end_field="time.end",
    )
    job = SlurmJob(
        cluster=cluster,
        job_id=job_id,
        name=name,
        user=_text(raw.get("user"), "user"),
        account=_text(raw.get("account"), "account") or None,
        partition=partition,
        state=state,
        slurm_state=slurm_state,
        nodes=nodes,
        gpus=gpus,
        cpus=cpus,
        memory_gib=memory,
        gpu_type=gpu_type,
        submitted=_time(times.get("submission"), "time.submission"),
        started=started,
        ended=ended,
    )
    return Entry(job, raw_id, action_id)


def _tres_list(value: object, field: str) -> tuple[int, int, Decimal, str | None]:
    """sacct's ``[{"type": "cpu", "count": 4}, {"type": "mem", "count": 16384}, {"type": "gres",
    "name": "gpu", "count": 1}]`` -> GPUs, CPUs, GiB (from MiB), type."""
    if value is None:
        return 0, 0, Decimal(0), None
    if not isinstance(value, list):
        raise _Fault(f"{field} is {_a(value)}, not a list")
    cpus = 0
    memory = Decimal(0)
    gpus: int | None = None
    typed: dict[str, int] = {}
    for index, item in enumerate(value):
        where = f"{field}[{index}]"
        if not isinstance(item, Mapping):
            raise _Fault(f"{where} is {_a(item)}, not an object")
        tres_type = _text(item.get("type"), f"{where}.type")
        name = _text(item.get("name"), f"{where}.name")
        if tres_type == "cpu":
            cpus = _required_count(item.get("count"), f"{where} (cpu) count")
        elif tres_type == "mem":
            memory = Decimal(_required_count(item.get("count"), f"{where} (mem) count")) / 1024
        elif tres_type == "gres" and (name == "gpu" or name.startswith("gpu:")):
            count = _required_count(item.get("count"), f"{where} (gres/{name}) count")
            if name == "gpu":
                gpus = count
            else:
                typed[name.split(":", 1)[1]] = count
    return _gpus(gpus, typed, cpus, memory)


def _array_tasks(value: object, field: str) -> str:
    """sacct's ``array.task``: 22.05 gives the pending tasks as a hex bit mask (``0x6``), the
    data parsers after it a string; either way the ranges squeue prints (``1-2``)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Fault(f"{field} is {_a(value)}, not a string")
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if not _HEX_MASK.match(text):
        return text
    if len(text) > 2 + 2**20:
        raise _Fault(f"{field} is a bit mask of {len(text) - 2} hex digits, more than Slurm's arrays hold")
    mask = int(text, 16)
    return _ranges(index for index in range(mask.bit_length()) if mask >> index & 1)


def _ranges(indexes: Iterable[int]) -> str:
    spans: list[list[int]] = []
    for index in indexes:
        if spans and spans[-1][1] == index - 1:
            spans[-1][1] = index
        else:
            spans.append([index, index])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


# -- shared fields ------------------------------------------------------------------------------


def _ids(raw_id: int, array_job: int, task: int | None, tasks: str) -> tuple[str, str]:
    """(the job's id, the id to act on it by)."""
    if array_job and task is not None:
        job_id = f"{array_job}_{task}"
        return job_id, job_id
    if array_job and tasks:
        return f"{array_job}_[{tasks}]", f"{array_job}_[{tasks.split('%', 1)[0]}]"
    return str(raw_id), str(raw_id)


def _id_part(value: object, field: str) -> int | None:
    """An array's job id or a task id: a count, never negative (it would make an id such as
    ``-1_0``, which is no job id)."""
    number = _count(value, field)
    if number is not None and number < 0:
        raise _Fault(f"{field} is {number}, not a job or task id")
    return number


def _job_id(value: object) -> int:
    if value is None:
        raise _Fault("no job_id")
    if isinstance(value, str) and _COUNT.match(value):
        value = int(value)
    job_id = _count(value, "job_id")
    if job_id is None or job_id <= 0:
        raise _Fault(f"job_id is {value!r}, not a job id")
    return job_id


def _states(value: object, field: str) -> list[str]:
    if isinstance(value, str):
        names = [value]
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        names = list(value)
    elif value is None:
        raise _Fault(f"no {field}")
    else:
        raise _Fault(f"{field} is {_a(value)}, not a state name or a list of them")
    names = [name.strip().upper() for name in names if name.strip()]
    if not names:
        raise _Fault(f"{field} is empty")
    return names


def _state(names: Sequence[str], field: str) -> tuple[str, str]:
    """(the engine's state, Slurm's base state, or the flag 22.05 printed in its place)."""
    unknown = [
        name
        for name in names
        if name not in BASE_STATES
        and name not in ALLOCATED_FLAGS
        and name not in QUEUED_FLAGS
        and name not in ENDED_FLAGS
        and name not in NEUTRAL_FLAGS
    ]
    if unknown:
        raise _Fault(f"{field} {'+'.join(names)}: {', '.join(unknown)} is not a Slurm job state")
    base = next((name for name in names if name in BASE_STATES), None)
    flags = [name for name in names if name not in BASE_STATES]
    slurm_state = base or flags[0]
    if any(flag in ALLOCATED_FLAGS for flag in flags):
        return RUNNING, slurm_state
    if any(flag in QUEUED_FLAGS for flag in flags):
        return PENDING, slurm_state
    if base is not None:
        return BASE_STATES[base], slurm_state
    if any(flag in ENDED_FLAGS for flag in flags):
        return ENDED, slurm_state
    raise _Fault(f"{field} {'+'.join(names)} names no base state (pending, running, ...)")


def _span(
    state: str,
    slurm_state: str,
    start: datetime | None,
    end: datetime | None,
    *,
    nodes: tuple[str, ...],
    end_field: str,
) -> tuple[datetime | None, datetime | None]:
    if state == PENDING:
        return None, None  # squeue's start and end of a pending job are forecasts
    if state in (RUNNING, SUSPENDED):
        return start, None  # squeue's end of a running job is its time limit's
    if end is None:
        raise _Fault(f"ended ({slurm_state}) but {end_field} is unset: it could not be closed at its end")
    return (start if nodes else None), end


def _nodes(value: object, field: str) -> tuple[str, ...]:
    text = _text(value, field).strip()
    if text in _NO_NODES:
        return ()
    return expand_hosts(text)


def _time(value: object, field: str) -> datetime | None:
    seconds = _count(value, field)
    if seconds is None or seconds <= 0:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise _Fault(f"{field} is {seconds}, not a time in epoch seconds") from None


def _required_count(value: object, field: str) -> int:
    count = _count(value, field)
    if count is None:
        raise _Fault(f"{field} is unset")
    if count < 0:
        raise _Fault(f"{field} is {count}, not a count")
    return count


def _count(value: object, field: str) -> int | None:
    """A plain integer, or the data parser's ``{"set", "infinite", "number"}``; None when unset
    (``null``, ``set: false``, infinite, the complex mode's ``"Infinity"``)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise _Fault(f"{field} is {value!r}, not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise _Fault(f"{field} is {value!r}, not a whole number")
    if isinstance(value, Mapping):
        if value.get("infinite") is True or value.get("set") is False:
            return None
        if "number" not in value:
            raise _Fault(f"{field} is an object without 'number'")
        number = value["number"]
        if isinstance(number, Mapping):
            raise _Fault(f"{field}.number is an object, not a number")
        return _count(number, f"{field}.number")
    if value in ("Infinity", "infinity", "INFINITE"):
        return None
    shown = _excerpt(value, 40) if isinstance(value, str) else _a(value)
    raise _Fault(f"{field} is {shown}, not a number")


def _text(value: object, field: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise _Fault(f"{field} is {_a(value)}, not a string")


def _object(value: object, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return value
    raise _Fault(f"{field} is {_a(value)}, not an object")


def _a(value: object) -> str:
    if isinstance(value, Mapping):
        return "an object"
    return {
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), f"a {type(value).__name__}")


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _excerpt(text: str, limit: int = 80) -> str:
    return repr(_one_line(text, limit))
