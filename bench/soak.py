"""Soak (issue 12): the real operator for ten minutes at 10,000 pods / 1,000 nodes / 1,000 budgets
while pods churn and budgets cross their limits; what it holds, spends and writes, minute by minute.

The processes and the cluster are ``operator_bench``'s (its stand-in, seeding, probes and
measurements are reused from there): the stand-in (``costwarden sim serve``), this process (it
seeds, then churns the cluster through the HTTP API and watches Events), and the operator's own
process (``OperatorThread`` with ``costwarden run``'s collector settings and heap freeze, a probe
on its event loop, its registry polled every 50 ms). Once both first passes are complete:

- **Churn**, every ``CHURN_EVERY_S`` (10 s): the next ``CHURN_SHARE`` (1 %) of the seeded pods are
  deleted (grace period 0) and replaced by pods of the same shape under new names (new uids),
  started at their creation; at 10,000 pods, 600 pods a minute, 6,000 over ten minutes.
- **Crossings**, every ``COHORT_EVERY_S`` (20 s): a cohort of ``budgets / 200`` one-GPU pods in
  namespace ``crossings``, each under a budget of its own (Notify at 80 %, Kill at 100 %, grace
  0) whose limit its spend reaches 40-80 s after the pod started, so both crossing instants are
  known (``tests/churn.py``). A cohort's budgets are read (both records Done, one attempt) and
  deleted once their Kills are a few passes old: budgets churn too.

Measured per minute (``SAMPLE_S``): operator RSS and Python's allocated blocks, CPU per pass
(``costwarden_pass_cpu_seconds``, median and max), API writes by kind, event-loop blocks (how
late the probe woke, and how much CPU the loop's thread itself used meanwhile: a late wake with
little of it is the thread waiting for a core, not the operator's work), the entries of every
table the operator holds (``costwarden_tracked_objects``: the informer's records and label
index, the spend book's per-pod tables, budget states and ledgers, queued work), the operator's,
the stand-in's and everything else's CPU on the machine (the load). After the warm-up minutes
and at the end, one full collection each (its pause filed apart) and the memory still in use.
At the end: the RSS slope after warm-up, and for every crossing the latency from the crossing instant
and from the pass that recorded it (its start, the pass's ``now``) to its side effect: the pod's
DELETE as the stand-in's access log times it (Kill), the ``ThresholdCrossed`` Event as a watch
in this process sees it (Notify); and whether each crossing was acted on exactly once (one Event
per threshold of every budget, one DELETE per crossing pod, each record Done at its first attempt).

    make soak                                              # 10 minutes at full size, JSON
    PYTHONPATH=. .venv/bin/python bench/soak.py [--duration SECONDS]
    COSTWARDEN_BENCH_PODS=1000 COSTWARDEN_BENCH_NODES=100 COSTWARDEN_BENCH_BUDGETS=100 \\
        COSTWARDEN_SOAK_DURATION=180 COSTWARDEN_SOAK_SAMPLE=30 ...   # small, for development

Other settings: ``COSTWARDEN_SOAK_CHURN`` (share per step), ``COSTWARDEN_SOAK_CHURN_EVERY``,
``COSTWARDEN_SOAK_INTERVAL`` (the evaluation interval; the chart's 10 s by default) and
``operator_bench``'s ``COSTWARDEN_BENCH_WRITE_RATE``. Diagnosis: ``COSTWARDEN_SOAK_TRACEMALLOC=N``
traces allocations (N frames) and names what grew between the two full collections (slow: do
not record those figures). The operator's WARNING and ERROR log lines
are counted (and the first ones kept), not printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import json
import logging
import multiprocessing
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import operator_bench as ob
from tests import churn, shapes

from costwarden.cli import TRIM_HEAP_EVERY

DURATION_S = float(os.environ.get("COSTWARDEN_SOAK_DURATION", "600"))
SAMPLE_S = float(os.environ.get("COSTWARDEN_SOAK_SAMPLE", "60"))
CHURN_SHARE = float(os.environ.get("COSTWARDEN_SOAK_CHURN", "0.01"))
CHURN_EVERY_S = float(os.environ.get("COSTWARDEN_SOAK_CHURN_EVERY", "10"))
# malloc_trim every this many seconds, as `costwarden run` (0: never, to compare)
TRIM_HEAP_S = float(os.environ.get("COSTWARDEN_SOAK_TRIM_HEAP", str(TRIM_HEAP_EVERY)))
INTERVAL_S = float(os.environ.get("COSTWARDEN_SOAK_INTERVAL", "10"))
COHORT_EVERY_S = 20.0
CROSS_AFTER_S = (40.0, 80.0)  # a crossing pod's Kill comes this long after it started
WARMUP_MINUTES = 3  # the RSS slope is taken over the samples after these
CHURN_CONCURRENCY = 8
MAX_DESTRUCTIVE_PER_MINUTE = 60  # above the crossings' Kills a minute (15 at full size)


# ---- the operator's process


class LogCount(logging.Handler):
    """WARNING and above from every logger: counted by logger and level, the first few kept."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[f"{record.levelname} {record.name}"] += 1
        if len(self.first) < 20:
            self.first.append(f"{record.levelname} {record.name}: {record.getMessage()[:300]}")


def operator_process(kubeconfig: str, expected: dict[str, int], stop: Any, results: Any) -> None:
    """The child: run the operator and put ("started", ...), ("sample", ...) per minute and
    ("end", ...) on ``results`` until ``stop`` is set."""
    try:
        _observe(Path(kubeconfig), expected, stop, results)
    except BaseException as exc:
        results.put(("error", repr(exc)))
        raise


def _timed_evaluation_passes() -> list[float]:
    """Note the wall-clock start of every evaluation pass (its ``now``: the instant that decides
    what it records) by wrapping the pass the operator's handlers call."""
    from costwarden.operator import handlers

    starts: list[float] = []
    original = handlers.evaluate_all

    async def evaluate_all(runtime: Any, view: Any) -> Any:
        starts.append(time.time())
        return await original(runtime, view)

    handlers.evaluate_all = evaluate_all  # type: ignore[assignment]
    return starts


def _observe(kubeconfig: Path, expected: dict[str, int], stop: Any, results: Any) -> None:
    from costwarden.operator.app import OperatorThread

    frames = int(os.environ.get("COSTWARDEN_SOAK_TRACEMALLOC", "0"))
    if frames:  # diagnosis only (slow): what the memory that grows was allocated by
        tracemalloc.start(frames)
    errors = LogCount()
    logging.getLogger().addHandler(errors)
    pass_starts = _timed_evaluation_passes()
    settings = ob.operator_settings(
        kubeconfig,
        interval=INTERVAL_S,
        max_destructive_per_minute=MAX_DESTRUCTIVE_PER_MINUTE,
        freeze_heap_when_synced=True,  # as `costwarden run`
        trim_heap_every=TRIM_HEAP_S,
    )
    ob.tune_gc()
    t0 = time.monotonic()
    operator = OperatorThread(settings)
    probe = ob.LoopProbe(t0=t0, keep=0)  # counts only: nothing of the bench's grows in the process
    probing = asyncio.run_coroutine_threadsafe(probe.run(), operator._loop)
    operator.start(timeout=120)
    runtime = operator.runtime
    watch = ob.PassWatch(runtime, expected, t0)
    try:
        deadline = time.monotonic() + ob.FIRST_PASS_TIMEOUT_S
        while len(watch.firsts) < 2 and time.monotonic() < deadline:
            time.sleep(ob.POLL_S)  # a benchmark's observation window, not synchronisation
            watch.poll()
        results.put(
            (
                "started",
                {
                    **{f"first_{k}_pass_s": round(v, 1) for k, v in watch.firsts.items()},
                    "rss_mib": round(ob._rss_mib(), 1),
                    "tracked": dict(runtime.metrics.tracked),
                },
            )
        )
        minute = 0
        collected = {}
        while not stop.is_set():
            minute += 1
            results.put(("sample", _minute(runtime, watch, probe, stop, minute)))
            if minute == WARMUP_MINUTES:
                collected["after_warmup"] = _collected(probe, minute)
        collected["end"] = _collected(probe, minute)
        results.put(
            (
                "end",
                {
                    "after_full_collection": collected,
                    "evaluation_pass_starts": pass_starts,
                    "log_warnings_and_errors": dict(errors.counts),
                    "log_first": errors.first,
                    "peak_rss_mib": round(_peak_rss_mib(), 1),
                    "operator_error": repr(operator.error) if operator.error else None,
                    "heap_trims": {
                        "every_s": TRIM_HEAP_S,
                        "calls": runtime.heap.trims,
                        "released": runtime.heap.released,
                    },
                },
            )
        )
    finally:
        probe.stop = True
        operator.stop(timeout=60)
        probing.cancel()


def _collected(probe: ob.LoopProbe, minute: int) -> dict[str, Any]:
    """A full collection, then what is left: the memory in use, without the garbage that waits
    for the collector (its thresholds are high: a young collection every 50,000 net allocations).
    The probe files the pause under its own phase, not the minute's."""
    phase, probe.phase = probe.phase, f"forced-gc-{minute}"
    t = time.perf_counter()
    unreachable = gc.collect()
    took = time.perf_counter() - t
    time.sleep(0.05)  # the probe wakes (late) within this phase
    probe.phase = phase
    figures = {
        "after_minute": minute,
        "allocated_blocks": sys.getallocatedblocks(),
        "malloc_mib": _malloc(),
        "rss_mib": round(ob._rss_mib(), 1),
        "collected_objects": unreachable,
        "collection_ms": round(took * 1000, 1),
    }
    if tracemalloc.is_tracing():
        snapshot = tracemalloc.take_snapshot()
        if _SNAPSHOTS:
            for grouping in ("filename", "traceback"):
                stats = snapshot.compare_to(_SNAPSHOTS[-1], grouping)[:TRACEMALLOC_TOP]
                figures[f"grown_since_last_by_{grouping}"] = [
                    {
                        "kib": round(s.size_diff / 1024, 1),
                        "blocks": s.count_diff,
                        "where": s.traceback.format(),
                    }
                    for s in stats
                ]
        _SNAPSHOTS.append(snapshot)
    return figures


_SNAPSHOTS: list[tracemalloc.Snapshot] = []
TRACEMALLOC_TOP = 12


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _malloc() -> dict[str, float] | None:
    """glibc's own account (``mallinfo2``, all arenas): MiB in use in chunks malloc handed out
    (objects over pymalloc's 512 bytes: big dicts, lists, strings, buffers; ``in_use``) and MiB
    free but kept in its arenas (``free_kept``: what RSS holds beyond the live memory). pymalloc's
    own arenas are apart: ``allocated_blocks`` counts their live blocks. None without glibc."""
    try:
        call = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    call.restype = _MallInfo2
    info = call()
    mib = 1024 * 1024
    return {
        "in_use": round((info.uordblks + info.hblkhd) / mib, 1),
        "free_kept": round(info.fordblks / mib, 1),
    }


def _peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _minute(runtime: Any, watch: ob.PassWatch, probe: ob.LoopProbe, stop: Any, minute: int) -> dict[str, Any]:
    """One sample window (``SAMPLE_S``, cut short by ``stop``) of the operator's figures."""
    phase = f"m{minute}"
    probe.phase = phase
    t_start, cpu0 = time.monotonic(), time.process_time()
    writes0 = ob._writes(runtime.metrics)
    collections0 = [s["collections"] for s in gc.get_stats()]
    seen = {loop: len(passes) for loop, passes in watch.per_pass.items()}
    while time.monotonic() - t_start < SAMPLE_S and not stop.is_set():
        time.sleep(ob.POLL_S)  # a benchmark's observation window, not synchronisation
        watch.poll()
    seconds = time.monotonic() - t_start
    done, failed = ob.writes_between(writes0, ob._writes(runtime.metrics))
    passes = {loop: watch.per_pass[loop][seen[loop] :] for loop in watch.per_pass}
    return {
        "minute": minute,
        "seconds": round(seconds, 1),
        "rss_mib": round(ob._rss_mib(), 1),
        "allocated_blocks": sys.getallocatedblocks(),
        "malloc_mib": _malloc(),
        "cpu_percent_of_one_core": round(100 * (time.process_time() - cpu0) / seconds, 1),
        "pass_cpu_ms": {loop: ob._stats([cpu for _, cpu, _ in ps]) for loop, ps in passes.items()},
        "longest_step_ms_max": {
            loop: round(max((lg for _, _, lg in ps), default=0.0) * 1000, 1) for loop, ps in passes.items()
        },
        "writes_per_minute": {k: round(v * 60 / seconds, 1) for k, v in sorted(done.items())},
        "writes_failed_or_deferred_per_minute": {
            k: round(v * 60 / seconds, 1) for k, v in sorted(failed.items())
        },
        "loop_block_worst_ms": round(probe.worst.get(phase, 0.0) * 1000, 1),
        "loop_blocks_over_100ms": probe.over_100ms.get(phase, 0),
        "loop_busy_worst_ms": round(probe.busy_worst.get(phase, 0.0) * 1000, 1),
        "loop_busy_over_100ms": probe.busy_over_100ms.get(phase, 0),
        "gc_collections": [s["collections"] - c for s, c in zip(gc.get_stats(), collections0, strict=True)],
        "gc_count": list(gc.get_count()),
        "tracked": dict(runtime.metrics.tracked),
    }


# ---- this process: churn, crossings, Events


@dataclass
class Crossing:
    budget: str
    pod: str
    started: float  # Unix time the pod started (its creation second)
    notify_at: float  # Unix time its spend reaches 80 %
    kill_at: float  # and 100 %
    records: dict[str, Any] = field(default_factory=dict)  # threshold -> (result, attempts) as read


@dataclass
class Drive:
    """What this process did and saw while the operator ran."""

    churned: int = 0
    churn_steps: int = 0
    churn_seconds_max: float = 0.0  # longest churn step (the stand-in's pace)
    budgets_deleted: int = 0
    crossings: list[Crossing] = field(default_factory=list)
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # (seen at, Event)
    minutes: list[dict[str, Any]] = field(default_factory=list)
    watch_errors: list[str] = field(default_factory=list)


def _rss_of(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _unix(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class Machine:
    """CPU of the three processes and of everything else on the machine, between samples."""

    def __init__(self, stand_in: int, operator: int) -> None:
        self.pids = {"stand_in": stand_in, "operator": operator, "bench": os.getpid()}
        self._last = self._read()

    @staticmethod
    def _busy() -> float:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

    def _read(self) -> tuple[float, float, dict[str, float]]:
        ours = {}
        for name, pid in self.pids.items():
            try:
                ours[name] = ob._process_cpu(pid)
            except OSError:  # ended
                ours[name] = 0.0
        return time.monotonic(), self._busy(), ours

    def sample(self) -> dict[str, float]:
        """Percent of one core each used since the last sample; ``others``: the rest of the machine."""
        t0, busy0, ours0 = self._last
        self._last = t1, busy1, ours1 = self._read()
        wall = max(t1 - t0, 1e-9)
        out = {f"{name}_cpu_percent": round(100 * (ours1[name] - ours0[name]) / wall, 1) for name in ours1}
        mine = sum(ours1[name] - ours0[name] for name in ours1)
        out["others_cpu_percent"] = round(max(0.0, 100 * (busy1 - busy0 - mine) / wall), 1)
        out["stand_in_rss_mib"] = round(_rss_of(self.pids["stand_in"]), 1)
        out["load_average_1m"] = round(os.getloadavg()[0], 2)
        return out


async def drive(url: str, cluster: ob.Shape, machine: Machine, duration: float) -> Drive:
    """Churn pods, open and retire crossing cohorts, watch Events, for ``duration`` seconds."""
    out = Drive()
    nodes = {node["metadata"]["name"]: node for node in cluster.nodes}
    node_names = list(nodes)
    generations = [0] * len(cluster.pods)
    async with ob.session(url) as http:
        api = ob.Client(http)
        events = asyncio.create_task(_watch_events(http, out))
        t0 = time.monotonic()
        end = t0 + duration
        last_cohort = t0 + duration - (CROSS_AFTER_S[1] + 2 * INTERVAL_S + 15)
        next_churn = next_cohort = t0
        next_sample = t0 + SAMPLE_S
        open_cohorts: list[list[Crossing]] = []
        step = cohort = 0
        try:
            while True:
                now = time.monotonic()
                if now >= next_sample:
                    next_sample += SAMPLE_S
                    out.minutes.append({"t_s": round(now - t0), "churned": out.churned, **machine.sample()})
                if now >= end:
                    break
                if now >= next_cohort and now <= last_cohort:
                    next_cohort += COHORT_EVERY_S
                    open_cohorts.append(await _open_cohort(api, cohort, cluster, nodes, node_names, out))
                    cohort += 1
                if now >= next_churn:
                    next_churn += CHURN_EVERY_S
                    t = time.perf_counter()
                    await _churn(api, cluster, generations, step)
                    out.churn_seconds_max = max(out.churn_seconds_max, time.perf_counter() - t)
                    out.churned += len(churn.churn_slots(step, len(cluster.pods), CHURN_SHARE))
                    out.churn_steps += 1
                    step += 1
                while open_cohorts and _retirable(open_cohorts[0]):
                    await _retire(api, open_cohorts.pop(0), out)
                wake = min(next_churn, next_sample, end, next_cohort if next_cohort <= last_cohort else end)
                await asyncio.sleep(max(0.0, wake - time.monotonic()))
            await asyncio.sleep(2 * INTERVAL_S)  # the last Kills' statuses
            for crossings in open_cohorts:
                await _read_records(api, crossings)
            out.minutes.append(
                {"t_s": round(time.monotonic() - t0), "churned": out.churned, **machine.sample()}
            )
        finally:
            events.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await events
    return out


async def _churn(api: ob.Client, cluster: ob.Shape, generations: list[int], step: int) -> None:
    """Replace this step's slots: delete each pod, create its successor (a new name and uid)."""

    async def replace(slot: int) -> None:
        body = cluster.pods[slot]
        old = churn.replacement(body, generations[slot])
        generations[slot] += 1
        meta = old["metadata"]
        await api.delete(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}")
        await api.create_pod(churn.replacement(body, generations[slot]))

    slots = churn.churn_slots(step, len(cluster.pods), CHURN_SHARE)
    await ob.bounded((replace(slot) for slot in slots), CHURN_CONCURRENCY)


async def _open_cohort(
    api: ob.Client,
    cohort: int,
    cluster: ob.Shape,
    nodes: dict[str, dict[str, Any]],
    node_names: list[str],
    out: Drive,
) -> list[Crossing]:
    size = max(2, len(cluster.budgets) // 200)
    crossings = []
    for k in range(size):
        i = cohort * size + k
        node = node_names[i % len(node_names)]
        pod = churn.crossing_pod(i, node)
        started = _unix(await api.create_pod(pod))
        # Spread over the interval so the crossings fall at every phase of the passes.
        after = CROSS_AFTER_S[0] + (CROSS_AFTER_S[1] - CROSS_AFTER_S[0]) * ((k + 0.37 * cohort) % size) / size
        rate = churn.hourly_rate(pod, nodes[node])
        budget = churn.crossing_budget(i, churn.crossing_limit(rate, after))
        await api.send("POST", ob.budget_path(budget), budget)
        crossings.append(
            Crossing(
                budget=budget["metadata"]["name"],
                pod=pod["metadata"]["name"],
                started=started,
                notify_at=started + after * churn.NOTIFY_PERCENT / churn.KILL_PERCENT,
                kill_at=started + after,
            )
        )
    out.crossings.extend(crossings)
    return crossings


def _retirable(crossings: list[Crossing]) -> bool:
    return time.time() > max(c.kill_at for c in crossings) + 2 * INTERVAL_S + 10


async def _read_records(api: ob.Client, crossings: list[Crossing]) -> None:
    path = f"/apis/costwarden.dev/v1alpha1/namespaces/{churn.CROSSING_NAMESPACE}/costbudgets"
    for crossing in crossings:
        body = await api.send("GET", f"{path}/{crossing.budget}", read=True)
        for record in (body.get("status") or {}).get("actions") or []:
            percent = record["id"].split("/")[1]
            crossing.records[percent] = (record.get("result"), record.get("attempts"))


async def _retire(api: ob.Client, crossings: list[Crossing], out: Drive) -> None:
    """Read the cohort's records, then delete its budgets (budgets churn too)."""
    await _read_records(api, crossings)
    path = f"/apis/costwarden.dev/v1alpha1/namespaces/{churn.CROSSING_NAMESPACE}/costbudgets"
    for crossing in crossings:
        await api.delete(f"{path}/{crossing.budget}")
        out.budgets_deleted += 1


async def _watch_events(http: Any, out: Drive) -> None:
    """Every Event as it is created: a watch from the list's resourceVersion, resumed where it
    ended (listed again after an error; Events created meanwhile are then missed: the figures
    name each error)."""
    import aiohttp

    forever = aiohttp.ClientTimeout(total=None, sock_read=None)
    version: str | None = None
    while True:
        try:
            if version is None:
                async with http.get("/api/v1/events") as r:
                    version = str((await r.json())["metadata"]["resourceVersion"])
            params = {"watch": "true", "resourceVersion": version, "allowWatchBookmarks": "true"}
            async with http.get("/api/v1/events", params=params, timeout=forever) as r:
                if r.status != 200:
                    raise RuntimeError(f"watch of Events: {r.status} {(await r.text())[:200]}")
                async for line in r.content:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        raise RuntimeError(f"watch of Events: {obj.get('code')} {obj.get('message')}")
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if event.get("type") == "ADDED":
                        out.events.append((time.time(), obj))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # list again and go on; say so in the figures
            out.watch_errors.append(repr(exc)[:200])
            version = None
            await asyncio.sleep(0.5)


# ---- the figures


_ACCESS = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+ aiohttp\.access: .*\"DELETE /api/v1/namespaces/"
    r"([^/\s]+)/pods/([^?\s]+)\S* HTTP/[\d.]+\" (\d{3})"
)


def pod_deletes(log: Path, namespace: str) -> dict[str, list[tuple[float, int]]]:
    """Pod name -> (Unix time, HTTP status) of each DELETE of a pod in ``namespace``, as the
    stand-in's access log times it (local time, when the answer was sent)."""
    found: dict[str, list[tuple[float, int]]] = {}
    with log.open(errors="replace") as lines:
        for line in lines:
            match = _ACCESS.match(line)
            if match is None or match[2] != namespace:
                continue
            at = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            found.setdefault(match[3], []).append((at, int(match[4])))
    return found


def _percentiles(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "p50_s": round(statistics.median(ordered), 3),
        "p99_s": round(ordered[int(0.99 * (len(ordered) - 1))], 3),
        "max_s": round(ordered[-1], 3),
        "min_s": round(ordered[0], 3),
    }


def _recording_pass(starts: list[float], crossed: float) -> float | None:
    """The start of the first evaluation pass at or after the crossing: the pass that records it."""
    return next((s for s in starts if s >= crossed), None)


def latencies(
    drive: Drive, deletes: dict[str, list[tuple[float, int]]], starts: list[float]
) -> dict[str, Any]:
    """Crossing -> side effect and recording pass -> side effect, for Notify and Kill; and
    whether each crossing was acted on exactly once."""
    seen: dict[tuple[str, int], float] = {}
    for at, event in drive.events:
        for key in churn.threshold_events([event]):
            if key[0] == churn.CROSSING_NAMESPACE:
                seen.setdefault((key[1], key[2]), at)
    crossed: dict[str, list[float]] = {"notify": [], "kill": []}
    recorded: dict[str, list[float]] = {"notify": [], "kill": []}
    missing: list[str] = []
    for crossing in drive.crossings:
        done = deletes.get(crossing.pod, [])
        kill = next((at for at, status in done if status < 300), None)
        effects = [("notify", crossing.notify_at, seen.get((crossing.budget, churn.NOTIFY_PERCENT)))]
        effects.append(("kill", crossing.kill_at, kill))
        for what, instant, effect in effects:
            if effect is None:
                missing.append(f"{crossing.budget} {what}")
                continue
            crossed[what].append(effect - instant)
            pass_start = _recording_pass(starts, instant)
            if pass_start is not None:
                recorded[what].append(effect - pass_start)
    counts = churn.threshold_events(event for _, event in drive.events)
    repeated = {f"{ns}/{name} {percent}%": n for (ns, name, percent), n in counts.items() if n > 1}
    deletes_per_pod = Counter(len([s for _, s in deletes.get(c.pod, []) if s < 300]) for c in drive.crossings)
    records = Counter(
        f"{percent}%: {result} after {attempts} attempt(s)"
        for c in drive.crossings
        for percent, (result, attempts) in sorted(c.records.items())
    )
    return {
        "crossing_budgets": len(drive.crossings),
        "crossing_to_effect": {what: _percentiles(values) for what, values in crossed.items()},
        "recording_pass_to_effect": {what: _percentiles(values) for what, values in recorded.items()},
        "not_acted_on": missing[:20],
        "not_acted_on_count": len(missing),
        "threshold_events_more_than_once": repeated,
        "threshold_events_total": sum(counts.values()),
        "crossing_pods_by_deletes": {str(k): v for k, v in sorted(deletes_per_pod.items())},
        "crossing_records": dict(sorted(records.items())),
    }


def _slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (x, y)."""
    if len(points) < 2:
        return None
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else None


def summary(samples: list[dict[str, Any]], started: dict[str, Any]) -> dict[str, Any]:
    """Across the minutes: memory after warm-up, pass CPU, writes, blocks, tracked tables."""
    warm = [s for s in samples if s["minute"] > WARMUP_MINUTES] or samples
    t_min = [(s["minute"] * SAMPLE_S / 60, s) for s in warm]
    rss_slope = _slope([(t, s["rss_mib"]) for t, s in t_min])
    blocks_slope = _slope([(t, s["allocated_blocks"] / 1000) for t, s in t_min])
    medians = {
        loop: [s["pass_cpu_ms"][loop]["median_ms"] for s in warm if s["pass_cpu_ms"][loop].get("passes")]
        for loop in ("accrual", "budget")
    }
    maxima = {
        loop: max((s["pass_cpu_ms"][loop].get("max_ms", 0.0) for s in samples), default=0.0)
        for loop in ("accrual", "budget")
    }
    kinds = sorted({k for s in warm for k in s["writes_per_minute"]})
    first, last = (warm[0]["tracked"], warm[-1]["tracked"]) if warm else ({}, {})
    return {
        "rss_mib_after_warmup_first_last": [warm[0]["rss_mib"], warm[-1]["rss_mib"]] if warm else None,
        "rss_slope_mib_per_minute_after_warmup": round(rss_slope, 2) if rss_slope is not None else None,
        "malloc_mib_after_warmup_first_last": [warm[0].get("malloc_mib"), warm[-1].get("malloc_mib")]
        if warm
        else None,
        "allocated_kblocks_slope_per_minute_after_warmup": round(blocks_slope, 1)
        if blocks_slope is not None
        else None,
        "pass_cpu_ms_median_of_minute_medians": {
            loop: round(statistics.median(values), 1) if values else None for loop, values in medians.items()
        },
        "pass_cpu_ms_max": maxima,
        "writes_per_minute_mean": {
            kind: round(statistics.fmean(s["writes_per_minute"].get(kind, 0.0) for s in warm), 1)
            for kind in kinds
        },
        "loop_block_worst_ms": max((s["loop_block_worst_ms"] for s in samples), default=0.0),
        "loop_blocks_over_100ms": sum(s["loop_blocks_over_100ms"] for s in samples),
        "loop_busy_worst_ms": max((s["loop_busy_worst_ms"] for s in samples), default=0.0),
        "loop_busy_over_100ms": sum(s["loop_busy_over_100ms"] for s in samples),
        "tracked_after_first_passes": started.get("tracked"),
        "tracked_first_last_after_warmup": {
            table: [first.get(table), last.get(table)] for table in sorted(set(first) | set(last))
        },
    }


def main(duration: float = DURATION_S) -> dict[str, Any]:
    cluster = ob.shape()
    expected = {"pods": len(cluster.pods), "budgets": len(cluster.budgets)}
    header = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "load_average_before": [round(v, 2) for v in os.getloadavg()],
        "pods": len(cluster.pods),
        "nodes": len(cluster.nodes),
        "budgets": len(cluster.budgets),
        "duration_s": duration,
        "churn": {"share_per_step": CHURN_SHARE, "every_s": CHURN_EVERY_S},
        "interval_s": INTERVAL_S,
        "write_rate": ob.WRITE_RATE,
    }
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        stand_in = ob.StandIn(Path(tmp))
        try:
            t = time.perf_counter()
            seeded = asyncio.run(ob.seed(stand_in.url, cluster))
            asyncio.run(_create_namespace(stand_in.url))
            seed_s = time.perf_counter() - t
            context = multiprocessing.get_context("spawn")
            results, stop = context.Queue(), context.Event()
            child = context.Process(
                target=operator_process, args=(str(stand_in.kubeconfig), expected, stop, results), daemon=True
            )
            child.start()
            kind, started = results.get(timeout=ob.FIRST_PASS_TIMEOUT_S + 180)
            if kind != "started":
                raise RuntimeError(f"the operator did not start: {started}")
            assert child.pid is not None
            machine = Machine(stand_in.process.pid, child.pid)
            driven = asyncio.run(drive(stand_in.url, cluster, machine, duration))
            stop.set()
            samples, end = _collect(results, duration)
            child.join(60)
        finally:
            stand_in.stop()
        deletes = pod_deletes(Path(tmp) / "sim.log", churn.CROSSING_NAMESPACE)
    for sample, machine_minute in zip(samples, driven.minutes, strict=False):
        sample["machine"] = machine_minute
    return {
        **header,
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "seed_s": round(seed_s, 1),
        "seed_s_by_kind": seeded,
        "started": {k: v for k, v in started.items() if k != "tracked"},
        "churned_pods": driven.churned,
        "churn_steps": driven.churn_steps,
        "churn_step_longest_s": round(driven.churn_seconds_max, 1),
        "budgets_deleted": driven.budgets_deleted,
        "summary": summary(samples, started),
        "crossings": latencies(driven, deletes, end.get("evaluation_pass_starts", [])),
        "operator_log_warnings_and_errors": end.get("log_warnings_and_errors"),
        "operator_log_first": end.get("log_first"),
        "operator_error": end.get("operator_error"),
        "operator_peak_rss_mib": end.get("peak_rss_mib"),
        "operator_heap_trims": end.get("heap_trims"),
        "operator_after_full_collection": end.get("after_full_collection"),
        "event_watch_errors": driven.watch_errors[:5],
        "minutes": samples,
    }


async def _create_namespace(url: str) -> None:
    async with ob.session(url) as http:
        await ob.Client(http).send("POST", "/api/v1/namespaces", shapes.namespace(churn.CROSSING_NAMESPACE))


def _collect(results: Any, duration: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    samples: list[dict[str, Any]] = []
    deadline = time.monotonic() + SAMPLE_S + 120
    while time.monotonic() < deadline:
        kind, value = results.get(timeout=max(1.0, deadline - time.monotonic()))
        if kind == "sample":
            samples.append(value)
        elif kind == "end":
            return samples, value
        else:
            raise RuntimeError(f"the operator's process failed: {value}")
    raise TimeoutError(f"no end from the operator's process after {duration} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=DURATION_S, help="seconds of churn (default 600)")
    print(json.dumps(main(parser.parse_args().duration), indent=2, default=str))
