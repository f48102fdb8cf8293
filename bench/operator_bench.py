"""The real operator at scale: 10,000 pods on 1,000 nodes, 1,000 CostBudgets, on the stand-in.

Three processes, so that every figure is the operator's own:

- the stand-in API server, ``costwarden sim serve`` (pure Python, one core at most);
- this process, which seeds the stand-in through its HTTP API (aiohttp, in batches) and then
  only waits for the figures;
- the operator's process: ``OperatorThread`` (the real operator: kopf, the informer, the Lease-
  less acting replica, the two passes, the background queues), garbage collection tuned as
  ``costwarden run`` tunes it, plus a probe task on the operator's event loop that asks to wake
  every 10 ms and notes how late it woke (the longest event-loop block), and a thread that polls
  the operator's Prometheus registry every 50 ms.

Measured, each against the target of issue 7 point 4 (``bench/RESULTS.md`` has the runs):

- seconds from the operator's start to its first complete accrual pass (every pod priced) and
  its first complete evaluation pass (every budget evaluated); target: within 30 s;
- CPU time of each pass's own steps (``costwarden_pass_cpu_seconds``) and the longest step of
  a pass (``costwarden_pass_longest_step_seconds``); target: ≤ 300 ms CPU per pass;
- the longest event-loop block seen by the probe, during startup and in steady state; target:
  ≤ 100 ms;
- the operator process's RSS after warm-up; target: ≤ 300 MB;
- API writes per minute in steady state, by kind (pod annotations, statuses, Events), and
  annotation writes per pod per minute (target ≤ 1, the earlier 2,000-pod write bench's).

The cluster: 100 namespaces (80 teams of ~122 pods, 20 small ones of 10); per team namespace,
groups of 4 pods: 3 in 5 a SkyPilot cluster (head + 3 workers, 1 GPU each), the others an
``app`` group (CPU only). Nodes: 900 EKS p5.48xlarge (a third spot), 100 GKE a3 spot, 10 pods
each. Budgets: 350 ``matchLabels`` over an ``app`` group (every 7th with two labels, ``team`` and
``tier``, over several groups), 400 ``matchLabels`` over a SkyPilot cluster's label, 230
``skypilotCluster``, 20 empty selectors over a small namespace. Every 25th budget's limit is set
so that, if it covers GPU pods, it crosses its 80 % Notify threshold during the run (an Event).

    PYTHONPATH=. .venv/bin/python bench/operator_bench.py      # prints JSON
    COSTWARDEN_BENCH_PODS=2000 COSTWARDEN_BENCH_NODES=200 COSTWARDEN_BENCH_BUDGETS=200 ...  # smaller
    COSTWARDEN_BENCH_BILLING_STORE=1 ...  # with --billing-store (estimates recorded and flushed)

Settings: the chart's defaults (interval, accrual interval and status interval 10 s, annotation
interval 60 s), except the annotation write rate, 50/s (the chart's 20/s would take 500 s to
write a first figure onto 10,000 pods; set ``COSTWARDEN_BENCH_WRITE_RATE`` to compare).
"""

from __future__ import annotations

import asyncio
import gc
import json
import multiprocessing
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PODS = int(os.environ.get("COSTWARDEN_BENCH_PODS", "10000"))
NODES = int(os.environ.get("COSTWARDEN_BENCH_NODES", "1000"))
BUDGETS = int(os.environ.get("COSTWARDEN_BENCH_BUDGETS", "1000"))
WRITE_RATE = float(os.environ.get("COSTWARDEN_BENCH_WRITE_RATE", "50"))
# With a DuckDB billing store (--billing-store): the leader also records node-hour and
# budget-hour estimates every pass and flushes them to the store (issue 9's cost on the passes).
BILLING_STORE = os.environ.get("COSTWARDEN_BENCH_BILLING_STORE", "") not in ("", "0")
WARMUP_S = float(os.environ.get("COSTWARDEN_BENCH_WARMUP", "60"))  # after both first passes
MEASURE_S = float(os.environ.get("COSTWARDEN_BENCH_MEASURE", "180"))  # the steady-state window
FIRST_PASS_TIMEOUT_S = 300.0
TEAM_NAMESPACES, SMALL_NAMESPACES, SMALL_NAMESPACE_PODS = 80, 20, 10
GROUP = 4  # pods per SkyPilot cluster or app group
SEED_CONCURRENCY = 32
PROBE_INTERVAL_S = 0.010
POLL_S = 0.05
STARTED_BEFORE = timedelta(hours=1)  # every pod started an hour before the seeding
CRD_DIR = ROOT / "crds"


# ---- the cluster


@dataclass
class Shape:
    namespaces: list[dict[str, Any]] = field(default_factory=list)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)
    budgets: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class _Group:
    namespace: str
    index: int  # within its namespace
    skypilot: bool
    pods: tuple[int, ...]  # pod numbers

    @property
    def name(self) -> str:
        return f"{'sky' if self.skypilot else 'svc'}-{self.index}"

    @property
    def cloud_name(self) -> str:  # SkyPilot's name on the cloud: typed name + user hash
        return f"{self.name}-2ea4"


def _team(n: int) -> str:
    return f"team-{n:02d}"


def _small(n: int) -> str:
    return f"small-{n:02d}"


def shape(pods: int = PODS, nodes: int = NODES, budgets: int = BUDGETS) -> Shape:
    """The cluster, deterministic: namespaces, nodes, pods (bodies to create) and budgets."""
    from tests import shapes

    out = Shape()
    out.namespaces = [shapes.namespace(_team(n)) for n in range(TEAM_NAMESPACES)]
    out.namespaces += [shapes.namespace(_small(n)) for n in range(SMALL_NAMESPACES)]
    for n in range(nodes):
        node = (
            shapes.gke_a3_spot_node(f"gke-a3-{n}")
            if n % 10 == 9
            else shapes.eks_p5_node(f"p5-{n}", spot=n % 3 == 0)
        )
        out.nodes.append(node)
    node_names = [node["metadata"]["name"] for node in out.nodes]
    per_node = max(1, -(-pods // nodes))
    small_pods = min(pods // 2, SMALL_NAMESPACES * SMALL_NAMESPACE_PODS)
    team_pods = pods - small_pods
    groups: list[_Group] = []
    counters = [0] * TEAM_NAMESPACES
    for first in range(0, team_pods, GROUP):
        g = first // GROUP
        ns = g % TEAM_NAMESPACES
        members = tuple(range(first, min(first + GROUP, team_pods)))
        groups.append(_Group(_team(ns), counters[ns], g % 5 < 3, members))
        counters[ns] += 1
    for group in groups:
        for role_index, p in enumerate(group.pods):
            node = node_names[p // per_node]
            if group.skypilot:
                body = shapes.skypilot_pod(
                    group.cloud_name,
                    group.name,
                    namespace=group.namespace,
                    node=node,
                    role="head" if role_index == 0 else "worker",
                    index=role_index,
                    gpus=1,
                    cpu="8",
                    memory="64Gi",
                    user=f"user-{group.index % 17}",
                )
            else:
                labels = {
                    "app": group.name,
                    "team": f"t-{group.index % 9}",
                    "tier": ("web", "batch")[group.index % 2],
                }
                body = shapes.plain_pod(
                    f"{group.name}-{role_index}", namespace=group.namespace, node=node, labels=labels
                )
            out.pods.append(body)
    for p in range(team_pods, pods):
        ns = _small((p - team_pods) // SMALL_NAMESPACE_PODS % SMALL_NAMESPACES)
        out.pods.append(
            shapes.plain_pod(
                f"worker-{p}", namespace=ns, node=node_names[p // per_node], labels={"app": "worker"}
            )
        )
    out.budgets = _budgets(groups, budgets)
    return out


def _budgets(groups: list[_Group], count: int) -> list[dict[str, Any]]:
    """350 : 400 : 230 : 20 of matchLabels (app), matchLabels (SkyPilot), skypilotCluster, empty."""
    apps = [g for g in groups if not g.skypilot]
    skies = [g for g in groups if g.skypilot]
    empty = min(SMALL_NAMESPACES, count // 50)
    rest = count - empty
    n_apps, n_sky_labels = rest * 350 // 980, rest * 400 // 980
    n_sky_clusters = rest - n_apps - n_sky_labels
    specs: list[tuple[str, dict[str, Any]]] = []
    for i, group in enumerate(apps[:n_apps]):
        if i % 7 == 6:  # a team's web or batch tier: several groups
            labels = {"team": f"t-{group.index % 9}", "tier": ("web", "batch")[group.index % 2]}
        else:
            labels = {"app": group.name}
        specs.append((group.namespace, {"selector": {"matchLabels": labels}}))
    for group in skies[:n_sky_labels]:
        specs.append((group.namespace, {"selector": {"matchLabels": {"skypilot-cluster": group.cloud_name}}}))
    for group in skies[n_sky_labels : n_sky_labels + n_sky_clusters]:
        specs.append((group.namespace, {"skypilotCluster": group.name}))
    for n in range(empty):
        specs.append((_small(n), {}))
    budgets = []
    for i, (namespace, selection) in enumerate(specs):
        # A SkyPilot group of 4 one-GPU pods costs ~$22/h, ~$22 an hour after its start: each
        # 25th budget crosses 80 % (Notify: an Event) at some point during the run, if it covers one.
        limit = round(28 + (i // 25 % 10) * 0.3, 1) if i % 25 == 0 else 100_000
        budgets.append(
            {
                "apiVersion": "costwarden.dev/v1alpha1",
                "kind": "CostBudget",
                "metadata": {"name": f"budget-{i}", "namespace": namespace},
                "spec": {
                    "limit": limit,
                    "period": "Monthly",
                    "thresholds": [{"percent": 80, "action": "Notify"}],
                    **selection,
                },
            }
        )
    return budgets


# ---- the stand-in, in its own process


class StandIn:
    """``costwarden sim serve`` as a child process; its kubeconfig and CPU time."""

    def __init__(self, workdir: Path) -> None:
        self.kubeconfig = workdir / "kubeconfig"
        self._log = (workdir / "sim.log").open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from costwarden.cli import main; sys.exit(main())",
                *(
                    "sim",
                    "serve",
                    "--port",
                    "0",
                    "--kubeconfig",
                    str(self.kubeconfig),
                    "--crds",
                    str(CRD_DIR),
                ),
            ],
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode()  # printed once the kubeconfig is written
        if "kubeconfig" not in line:
            self.stop()
            raise RuntimeError(f"the stand-in did not start: {line!r}")
        self.url = line.split(" at ", 1)[1].split(";", 1)[0]

    def cpu_seconds(self) -> float:
        return _process_cpu(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


def _process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


class Client:
    """The stand-in's HTTP API as the bench uses it: requests retried on 429 and 5xx."""

    def __init__(self, session: Any) -> None:
        self.session = session  # an aiohttp.ClientSession on the stand-in's URL

    async def send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        content_type: str = "application/json",
        *,
        read: bool = False,
    ) -> dict[str, Any]:
        """The answer's body when ``read``, else {} (the seeding reads none)."""
        data = json.dumps(body) if body is not None else None
        for attempt in range(5):
            async with self.session.request(
                method, path, data=data, headers={"Content-Type": content_type}
            ) as r:
                if r.status < 300:
                    answer: dict[str, Any] = await r.json() if read else {}
                    return answer
                text = await r.text()
                if r.status < 500 and r.status != 429:
                    raise RuntimeError(f"{method} {path}: {r.status} {text[:300]}")
            await asyncio.sleep(0.2 * (attempt + 1))
        raise RuntimeError(f"{method} {path}: still failing")

    async def create_pod(self, body: dict[str, Any], started: str | None = None) -> str:
        """Create a pod, then make it Running since ``started`` (else since its creation second,
        so that it is charged from one known instant whichever the operator reads); that time."""
        meta = body["metadata"]
        base = f"/api/v1/namespaces/{meta['namespace']}/pods"
        created = await self.send("POST", base, body, read=started is None)
        since = started or str(created["metadata"]["creationTimestamp"])
        status = {"status": {**_running(since), "containerStatuses": _container_statuses(body, since)}}
        await self.send("PATCH", f"{base}/{meta['name']}/status", status, "application/merge-patch+json")
        return since

    async def delete(self, path: str) -> None:
        """Delete at once (grace period 0); gone already is fine."""
        async with self.session.delete(path, json={"gracePeriodSeconds": 0}) as r:
            if r.status >= 300 and r.status != 404:
                raise RuntimeError(f"DELETE {path}: {r.status} {(await r.text())[:300]}")


def _running(started: str) -> dict[str, Any]:
    return {"phase": "Running", "startTime": started}


def session(url: str) -> Any:
    """An aiohttp session on the stand-in with its token, SEED_CONCURRENCY connections."""
    import aiohttp

    headers = {"Authorization": "Bearer costwarden-sim-token"}
    connector = aiohttp.TCPConnector(limit=SEED_CONCURRENCY)
    return aiohttp.ClientSession(url, headers=headers, connector=connector)


async def bounded(jobs: Iterator[Any], limit: int = SEED_CONCURRENCY) -> None:
    """Await the coroutines of ``jobs``, at most ``limit`` at a time; the first error is raised."""
    pending: set[asyncio.Task[Any]] = set()
    for job in jobs:
        pending.add(asyncio.ensure_future(job))
        if len(pending) >= limit:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
    for result in await asyncio.gather(*pending, return_exceptions=True):
        if isinstance(result, BaseException):
            raise result


async def seed(url: str, cluster: Shape) -> dict[str, float]:
    """Create everything through the HTTP API, SEED_CONCURRENCY requests at a time; seconds per kind."""
    from costwarden.records import format_time

    started = format_time(datetime.now(UTC) - STARTED_BEFORE)
    seconds: dict[str, float] = {}
    async with session(url) as http:
        api = Client(http)

        async def in_batches(kind: str, jobs: Iterator[Any]) -> None:
            t0 = time.perf_counter()
            await bounded(jobs)
            seconds[kind] = round(time.perf_counter() - t0, 1)

        await in_batches(
            "namespaces", (api.send("POST", "/api/v1/namespaces", ns) for ns in cluster.namespaces)
        )
        await in_batches("nodes", (api.send("POST", "/api/v1/nodes", n) for n in cluster.nodes))
        await in_batches("pods", (api.create_pod(body, started) for body in cluster.pods))
        await in_batches("budgets", (api.send("POST", budget_path(b), b) for b in cluster.budgets))
    return seconds


def budget_path(body: dict[str, Any]) -> str:
    namespace = body["metadata"]["namespace"]
    return f"/apis/costwarden.dev/v1alpha1/namespaces/{namespace}/costbudgets"


def _container_statuses(body: dict[str, Any], started: str) -> list[dict[str, Any]]:
    return [
        {"name": c["name"], "ready": True, "state": {"running": {"startedAt": started}}}
        for c in body["spec"]["containers"]
    ]


# ---- the operator, in its own process


@dataclass
class LoopProbe:
    """On the operator's event loop: how late a 10 ms sleep wakes, worst per phase; and how much
    CPU the loop's thread itself used meanwhile (``busy``): a block in which it used little was
    the thread waiting for a core (or for the GIL), not the operator's own work."""

    phase: str = "startup"
    worst: dict[str, float] = field(default_factory=dict)
    over_100ms: dict[str, int] = field(default_factory=dict)
    busy_worst: dict[str, float] = field(default_factory=dict)  # the thread's CPU s between wakes
    busy_over_100ms: dict[str, int] = field(default_factory=dict)
    blocks: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, ms late)
    keep: int = 10_000  # blocks over 50 ms noted at most (0: none, so the probe's memory stays put)
    t0: float = 0.0
    stop: bool = False

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.stop:
            asked, cpu = loop.time(), time.thread_time()
            await asyncio.sleep(PROBE_INTERVAL_S)
            late = loop.time() - asked - PROBE_INTERVAL_S
            busy = time.thread_time() - cpu
            phase = self.phase
            self.worst[phase] = max(self.worst.get(phase, 0.0), late)
            self.busy_worst[phase] = max(self.busy_worst.get(phase, 0.0), busy)
            if late > 0.1:
                self.over_100ms[phase] = self.over_100ms.get(phase, 0) + 1
            if busy > 0.1:
                self.busy_over_100ms[phase] = self.busy_over_100ms.get(phase, 0) + 1
            if late > 0.05 and len(self.blocks) < self.keep:
                self.blocks.append((round(time.monotonic() - self.t0, 2), round(late * 1000, 1)))


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _samples(collector: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for metric in collector.collect():
        for sample in metric.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _writes(metrics: Any) -> dict[str, float]:
    totals: dict[str, float] = {}
    for (name, labels), value in _samples(metrics.api_writes).items():
        if name.endswith("_total"):
            label = dict(labels)
            key = f"{label['kind']}:{label['result']}"
            totals[key] = totals.get(key, 0.0) + value
    return totals


def writes_between(
    before: dict[str, float], after: dict[str, float]
) -> tuple[dict[str, float], dict[str, float]]:
    """Writes between two ``_writes`` readings: done (or dry-run) by kind, and the others
    (failed, deferred, ...) by ``kind:result``, those that happened only."""
    done = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in after}
    per_kind: dict[str, float] = {}
    for key, value in done.items():
        kind, result = key.split(":")
        if result in ("done", "dry_run"):
            per_kind[kind] = per_kind.get(kind, 0.0) + value
    failed = {key: value for key, value in done.items() if not key.endswith((":done", ":dry_run")) and value}
    return per_kind, failed


def _pass_counts(metrics: Any) -> dict[str, tuple[float, float, float]]:
    """loop -> (passes, CPU seconds in all, longest-step seconds in all)."""
    cpu, longest = _samples(metrics.pass_cpu_seconds), _samples(metrics.pass_longest_step_seconds)
    out = {}
    for loop in ("accrual", "budget"):
        key = (("loop", loop),)
        out[loop] = (
            cpu.get(("costwarden_pass_cpu_seconds_count", key), 0.0),
            cpu.get(("costwarden_pass_cpu_seconds_sum", key), 0.0),
            longest.get(("costwarden_pass_longest_step_seconds_sum", key), 0.0),
        )
    return out


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"passes": 0}
    ms = sorted(v * 1000 for v in values)
    return {
        "passes": len(ms),
        "median_ms": round(statistics.median(ms), 1),
        "max_ms": round(ms[-1], 1),
        "min_ms": round(ms[0], 1),
    }


def _trace_handles(path: Path, t0: float) -> None:
    """Diagnosis (``COSTWARDEN_BENCH_TRACE=FILE``): note every event-loop callback over 2 ms and
    every garbage collection over 2 ms, as JSON lines (seconds since start, ms, what). Costs a
    little on every callback; figures of a traced run are not the ones to record."""
    import atexit

    out = path.open("w")
    atexit.register(out.close)

    def describe(handle: asyncio.Handle) -> str:
        callback = getattr(handle, "_callback", None)
        task = getattr(callback, "__self__", None)
        if isinstance(task, asyncio.Task):
            coro = task.get_coro()
            frame = getattr(coro, "cr_frame", None)
            where = f" at {frame.f_code.co_name}:{frame.f_lineno}" if frame is not None else ""
            return f"task {task.get_name()} {getattr(coro, '__qualname__', coro)}{where}"
        return repr(callback)[:120]

    original = asyncio.Handle._run

    def run(self: asyncio.Handle) -> None:
        started = time.perf_counter()
        original(self)
        took = time.perf_counter() - started
        if took > 0.002:
            out.write(json.dumps([round(started - t0, 3), round(took * 1000, 1), describe(self)]) + "\n")

    asyncio.Handle._run = run  # type: ignore[method-assign]
    gc_started: list[float] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started[:] = [time.perf_counter()]
        elif gc_started:
            took = time.perf_counter() - gc_started[0]
            if took > 0.002:
                at = round(gc_started[0] - t0, 3)
                out.write(json.dumps([at, round(took * 1000, 1), f"gc gen{info['generation']}"]) + "\n")

    gc.callbacks.append(on_gc)


def operator_process(kubeconfig: str, expected: dict[str, int], results: Any) -> None:
    """The child: run the operator and observe it; puts one dict of figures on ``results``."""
    try:
        results.put(_observe(Path(kubeconfig), expected))
    except BaseException as exc:
        results.put({"error": repr(exc)})
        raise


def operator_settings(kubeconfig: Path, **overrides: Any) -> Any:
    """The bench's operator settings: the chart's defaults but the write rate (see the module doc)."""
    from costwarden.operator.settings import OperatorSettings

    options: dict[str, Any] = {
        "kubeconfig": kubeconfig,
        "metrics_port": 0,
        "write_rate": WRITE_RATE,
        "max_destructive_per_minute": 30,
        "billing_store": kubeconfig.parent / "billing.duckdb" if BILLING_STORE else None,
    }
    return OperatorSettings(**{**options, **overrides})


def tune_gc() -> None:
    """As ``costwarden run`` does before starting the operator."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


class PassWatch:
    """Each pass's own figures, read from the operator's registry by polling it (``poll``, every
    POLL_S): for each loop, (seconds since ``t0`` when seen, CPU s, longest step s) per pass; and
    when the first complete accrual and evaluation passes were seen (``firsts``)."""

    def __init__(self, runtime: Any, expected: dict[str, int], t0: float) -> None:
        self.runtime = runtime
        self.expected = expected
        self.t0 = t0
        self.per_pass: dict[str, list[tuple[float, float, float]]] = {"accrual": [], "budget": []}
        self.firsts: dict[str, float] = {}
        self._seen = _pass_counts(runtime.metrics)

    def poll(self) -> None:
        metrics, runtime = self.runtime.metrics, self.runtime
        now = _pass_counts(metrics)
        at = time.monotonic() - self.t0
        for loop, passes in self.per_pass.items():
            count, cpu, longest = now[loop]
            before = self._seen[loop]
            if count == before[0] + 1:  # one pass ended since the last poll: its own figures
                passes.append((at, cpu - before[1], longest - before[2]))
            elif count > before[0]:  # more than one (a slow poll): their mean
                ended = count - before[0]
                mean = ((cpu - before[1]) / ended, (longest - before[2]) / ended)
                passes.extend([(at, *mean)] * int(ended))
        self._seen = now
        if "accrual" not in self.firsts and len(metrics.pod_rows) >= self.expected["pods"]:
            self.firsts["accrual"] = at
        if (
            "budget" not in self.firsts
            and runtime.evaluated
            and len(metrics.budget_rows) >= self.expected["budgets"]
        ):
            self.firsts["budget"] = at


def _observe(kubeconfig: Path, expected: dict[str, int]) -> dict[str, Any]:
    from costwarden.operator.app import OperatorThread

    settings = operator_settings(kubeconfig)
    tune_gc()
    rss_before = _rss_mib()
    t0 = time.monotonic()
    operator = OperatorThread(settings)
    probe = LoopProbe(t0=t0)
    trace = os.environ.get("COSTWARDEN_BENCH_TRACE")
    if trace:  # diagnosis only: what ran when the loop was blocked (see _trace_handles)
        _trace_handles(Path(trace), t0)
    # Scheduled before the loop runs: the probe starts with the operator.
    probing = asyncio.run_coroutine_threadsafe(probe.run(), operator._loop)
    cpu0 = time.process_time()
    operator.start(timeout=120)
    ready_s = time.monotonic() - t0
    runtime = operator.runtime
    metrics = runtime.metrics
    watch = PassWatch(runtime, expected, t0)
    per_pass, firsts, poll = watch.per_pass, watch.firsts, watch.poll

    rss_every_30s: list[float] = []

    def wait(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(POLL_S)  # a benchmark's observation window, not synchronisation
            poll()
            if time.monotonic() - t0 >= 30 * (len(rss_every_30s) + 1):
                rss_every_30s.append(round(_rss_mib(), 1))

    try:
        deadline = time.monotonic() + FIRST_PASS_TIMEOUT_S
        while len(firsts) < 2 and time.monotonic() < deadline:
            wait(POLL_S)
        first_passes = {f"first_{k}_pass_s": round(v, 1) for k, v in firsts.items()}
        startup_cpu = time.process_time() - cpu0
        rss_started = _rss_mib()
        first_cpu = {
            loop: round(per_pass[loop][-1][1] * 1000, 1) if per_pass[loop] else None for loop in per_pass
        }
        probe.phase = "warmup"
        wait(WARMUP_S)
        gc_counts = gc.get_count()
        rss_warm = _rss_mib()
        probe.phase = "steady"
        window_start = time.monotonic() - t0
        writes0, cpu_w0, t_w0 = _writes(metrics), time.process_time(), time.monotonic()
        wait(MEASURE_S)
        writes1, cpu_w1, t_w1 = _writes(metrics), time.process_time(), time.monotonic()
        probe.phase = "end"
        rss_end = _rss_mib()
    finally:
        probe.stop = True
        operator.stop(timeout=60)
        probing.cancel()
    minutes = (t_w1 - t_w0) / 60
    steady = {loop: [cpu for at, cpu, _ in passes if at >= window_start] for loop, passes in per_pass.items()}
    steady_longest = {
        loop: [lg for at, _, lg in passes if at >= window_start] for loop, passes in per_pass.items()
    }
    per_kind, failed = writes_between(writes0, writes1)
    return {
        "operator_ready_s": round(ready_s, 1),
        **first_passes,
        "first_pass_cpu_ms": first_cpu,
        "startup_cpu_s": round(startup_cpu, 1),
        "pass_cpu_steady": {loop: _stats(values) for loop, values in steady.items()},
        "pass_longest_step_steady": {loop: _stats(values) for loop, values in steady_longest.items()},
        "pass_cpu_all": {loop: _stats([cpu for _, cpu, _ in passes]) for loop, passes in per_pass.items()},
        "loop_block_worst_ms": {phase: round(v * 1000, 1) for phase, v in probe.worst.items()},
        "loop_blocks_over_100ms": probe.over_100ms,
        "loop_blocks_over_50ms": len(probe.blocks),
        "loop_blocks_worst_ten": sorted(probe.blocks, key=lambda block: -block[1])[:10],  # (at s, ms)
        "rss_mib": {
            "before_start": round(rss_before, 1),
            "after_first_passes": round(rss_started, 1),
            "after_warmup": round(rss_warm, 1),
            "end": round(rss_end, 1),
            "peak": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "every_30s": rss_every_30s,
        },
        "gc_counts_after_warmup": list(gc_counts),
        "steady_window_s": round(t_w1 - t_w0, 1),
        "steady_cpu_percent_of_one_core": round(100 * (cpu_w1 - cpu_w0) / (t_w1 - t_w0), 1),
        "writes_per_minute": {kind: round(value / minutes, 1) for kind, value in sorted(per_kind.items())},
        "writes_failed_or_deferred_per_minute": {
            key: round(value / minutes, 1) for key, value in failed.items()
        },
        "annotation_writes_per_pod_per_minute": round(
            per_kind.get("pod_annotation", 0.0) / minutes / expected["pods"], 3
        ),
    }


# ---- a budget over 20,000 pods: stored size and a restart (the unit test's helpers)


def ledger_20k() -> dict[str, Any]:
    """The stored status of a budget over 20,000 pods, and the cost of packing it (which every
    status write and ``status_due`` check pays). Reuses ``tests/unit/test_engine_ledger_scale``."""
    from tests.unit import test_engine_ledger_scale as scale

    from costwarden.engine.ledger import PodAccrual
    from costwarden.models import CostBudgetStatus

    pods = scale._pods(scale.PODS)
    accruals: dict[str, PodAccrual] = {}
    t = time.perf_counter()
    first = scale._evaluate(CostBudgetStatus(), pods, scale.NOW, accruals)
    evaluate_s = time.perf_counter() - t
    t = time.perf_counter()
    stored = scale._stored(first)
    pack_s = time.perf_counter() - t
    t = time.perf_counter()
    restored = CostBudgetStatus.model_validate(json.loads(stored))
    load_s = time.perf_counter() - t
    later = scale.NOW + timedelta(minutes=30)
    continuous = scale._evaluate(first, pods, later, dict(accruals))
    restarted = scale._evaluate(restored, pods, later, dict(accruals))
    return {
        "pods": scale.PODS,
        "stored_status_bytes": len(stored.encode()),
        "percent_of_etcd_request_limit": round(100 * len(stored.encode()) / scale.ETCD_REQUEST_LIMIT, 1),
        "evaluate_ms": round(evaluate_s * 1000),
        "to_k8s_and_json_ms": round(pack_s * 1000),
        "load_ms": round(load_s * 1000),
        "restart_continues_exactly": restarted.spend == continuous.spend
        and restarted.ledger == continuous.ledger,
    }


# ---- main


def main() -> dict[str, Any]:
    cluster = shape()
    expected = {"pods": len(cluster.pods), "budgets": len(cluster.budgets)}
    header = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "pods": len(cluster.pods),
        "nodes": len(cluster.nodes),
        "budgets": len(cluster.budgets),
        "namespaces": len(cluster.namespaces),
        "write_rate": WRITE_RATE,
        "billing_store": BILLING_STORE,
    }
    with tempfile.TemporaryDirectory(prefix="operator-bench-") as tmp:
        stand_in = StandIn(Path(tmp))
        try:
            t = time.perf_counter()
            seeded = asyncio.run(seed(stand_in.url, cluster))
            seed_s = time.perf_counter() - t
            context = multiprocessing.get_context("spawn")
            results = context.Queue()
            child = context.Process(
                target=operator_process, args=(str(stand_in.kubeconfig), expected, results), daemon=True
            )
            sim_cpu0, t_run0 = stand_in.cpu_seconds(), time.monotonic()
            child.start()
            figures = results.get(timeout=FIRST_PASS_TIMEOUT_S + WARMUP_S + MEASURE_S + 240)
            sim_cpu = (stand_in.cpu_seconds() - sim_cpu0) / (time.monotonic() - t_run0)
            child.join(60)
        finally:
            stand_in.stop()
    return {
        **header,
        "seed_s": round(seed_s, 1),
        "seed_s_by_kind": seeded,
        **figures,
        "stand_in_cpu_percent_of_one_core": round(100 * sim_cpu, 1),
        "ledger_20000_pods": ledger_20k(),
    }


def _pretty(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2, default=str)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "ledger":
        print(_pretty(ledger_20k()))
    else:
        print(_pretty(main()))
