"""``costwarden demo``: run the scenario on the stand-in with the real operator, then chart it.

Simulated mode (the default) starts the Kubernetes API stand-in in-process, seeds
``scenario``'s nodes, pods and budgets, and runs the real operator (kopf) on an accelerated
clock shared by all three. With ``--kubeconfig`` it runs the operator against that cluster in
real time instead and only watches: nothing is seeded.

The view reads the cluster through the API like ``costwarden top`` does, so it shows whatever
the operator recorded: budget status (with the VMs and VM spend of budgets that follow a SkyPilot
cluster onto cloud VMs, and the Slurm jobs and Slurm spend of budgets over Slurm jobs),
``status.actions`` (Done, DryRun, Skipped, Pending...), pod annotations, and pods disappearing
when an action removes them. In simulated mode it also reads the demo's simulated cloud region
(``demo.cloud``) and Slurm cluster (``demo.slurm``) directly: the VMs launched, stopped or
terminated there, and the jobs submitted, started, signalled and cancelled.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from costwarden.demo import scenario
from costwarden.demo.chart import ChartStyle, History, Mark, render_chart
from costwarden.demo.clock import AcceleratedClock
from costwarden.demo.cloud import CloudCall, SimulatedCloud
from costwarden.demo.slurm import SimulatedSlurm, SlurmCall
from costwarden.demo.view import (
    Frame,
    action_hours,
    action_label,
    hours_text,
    job_allocation,
    render_live,
    slurm_table,
    status_line,
    summary_table,
    vm_role,
    vms_table,
)
from costwarden.engine.slurm import RUNNING as JOB_RUNNING
from costwarden.engine.slurm import SlurmJob
from costwarden.engine.vms import VMRecord
from costwarden.records import format_time, parse_decimal, parse_time
from costwarden.top import (
    ActionRow,
    BudgetRow,
    ClusterReader,
    Snapshot,
    budget_rows,
    latest_actions,
    per_hour,
    usd,
)

log = logging.getLogger(__name__)

SIM_STEP = timedelta(minutes=5)  # simulated time between operator passes, speed permitting


@dataclass(frozen=True, slots=True)
class DemoOptions:
    speed: float = 600.0  # simulated seconds per wall second
    duration: float = 45.0  # wall seconds
    out: Path = Path("out/demo")
    kubeconfig: Path | None = None  # a real cluster: no simulation, no seeding
    live: bool = True  # rich live view; False prints plain lines
    tick: float = 0.25  # wall seconds between reads of the cluster


@dataclass(slots=True)
class DemoResult:
    budgets: list[BudgetRow]
    actions: list[ActionRow]
    chart: Path
    annotated_pods: set[str] = field(default_factory=set)  # "ns/name" seen with a spend annotation
    gone_pods: list[str] = field(default_factory=list)  # "ns/name" of pods that disappeared
    log: list[str] = field(default_factory=list)
    vms: list[VMRecord] = field(default_factory=list)  # the simulated cloud's VMs at the end
    cloud_calls: list[CloudCall] = field(default_factory=list)  # stops/terminates the operator asked for
    slurm_jobs: list[SlurmJob] = field(default_factory=list)  # the simulated Slurm's jobs at the end
    slurm_calls: list[SlurmCall] = field(default_factory=list)  # signals/cancels/suspends asked for


class Tracker:
    """Turns successive snapshots into chart samples, marks and a log of what happened."""

    def __init__(self, clock: AcceleratedClock, from_zero: bool = True) -> None:
        self.clock = clock
        self.history = History(from_zero=from_zero)
        self.log: list[str] = []
        self.annotated: set[str] = set()
        self.gone: list[str] = []
        self._pods: dict[str, str] = {}  # "ns/name/uid" -> node, as last seen
        self._seen_any = False
        self._action_results: dict[str, str] = {}
        self._vm_states: dict[str, str] = {}  # VM id -> state, as last seen
        self._budget_vms: dict[str, int] = {}  # budget key -> status.vms, as last seen
        self._job_states: dict[str, str] = {}  # Slurm job key -> Slurm state, as last seen
        self._slurm_calls = 0  # calls to the simulated Slurm already logged
        self._budget_jobs: dict[str, int] = {}  # budget key -> status.slurmJobs, as last seen
        self._printed = 0

    def event(self, step: scenario.Step, now: datetime) -> None:
        hours = self.clock.hours(now)
        self.log.append(f"{hours_text(hours)} ⚡ {step.title}")
        for key in step.budgets:
            if key in self.history.budgets:
                self.history.mark(key, f"event/{step.title}", Mark(hours, step.mark or step.title))

    def unprinted(self) -> list[str]:
        """Log lines not handed out before."""
        fresh = self.log[self._printed :]
        self._printed = len(self.log)
        return fresh

    def observe(self, snapshot: Snapshot) -> None:
        """Record a snapshot: samples, action marks, and pods that came or went."""
        now_hours = self.clock.hours()
        for body in snapshot.budgets:
            self._sample(body, now_hours)
        for row in sorted(latest_actions(snapshot.budgets, limit=None), key=lambda r: r.time):
            self._action(row)
        current = {}
        for pod in snapshot.pods:
            name = f"{pod.namespace}/{pod.name}"
            current[f"{name}/{pod.uid}"] = pod.node_name or "?"
            if pod.spend_mark is not None:
                self.annotated.add(name)
        stamp = hours_text(now_hours)
        for gone in sorted(set(self._pods) - set(current)):
            name = gone.rsplit("/", 1)[0]
            self.gone.append(name)
            self.log.append(f"{stamp} ✗ pod {name} is gone")
        if self._seen_any:
            for new in sorted(set(current) - set(self._pods)):
                self.log.append(f"{stamp} ✚ pod {new.rsplit('/', 1)[0]} started on {current[new]}")
        self._pods = current
        self._seen_any = self._seen_any or bool(current)

    def observe_vms(self, vms: Sequence[VMRecord]) -> None:
        """Log VMs launched in the simulated cloud, and VMs whose state changed (stopped, terminated)."""
        stamp = hours_text(self.clock.hours())
        for vm in vms:
            before = self._vm_states.get(vm.vm_id)
            what = f"{vm.cluster or 'untagged'} {vm_role(vm)}, {vm.capacity_type} {vm.instance_type}"
            if before is None:
                self.log.append(f"{stamp} ✚ VM {vm.vm_id} ({what}) running in {vm.scope}")
            elif before != vm.state:
                self.log.append(f"{stamp} ✗ VM {vm.vm_id} ({what}) {vm.state}")
            self._vm_states[vm.vm_id] = vm.state

    def observe_slurm(self, jobs: Sequence[SlurmJob], calls: Sequence[SlurmCall]) -> None:
        """Log Slurm jobs submitted, jobs whose state changed (started, suspended, cancelled) and
        the operator's signals and cancels (each job's answer)."""
        stamp = hours_text(self.clock.hours())
        for call in calls[self._slurm_calls :]:
            what = f"{call.verb} {call.signal}" if call.signal else call.verb
            mark = "⚑" if call.ok else "⚠"
            self.log.append(f"{stamp} {mark} Slurm: {what} job {call.job_id}: {call.message}")
        self._slurm_calls = len(calls)
        for job in jobs:
            before = self._job_states.get(job.key)
            who = f"{job.name}, {job.user}/{job.account or '-'}"
            if before is None:
                held = f" on {','.join(job.nodes)}" if job.nodes else " in the queue"
                self.log.append(
                    f"{stamp} ✚ Slurm job {job.cluster}:{job.job_id} ({who}) {job.slurm_state}{held}"
                )
            elif before != job.slurm_state:
                mark = "✗" if job.is_terminal else "▷"
                alloc = f": {job_allocation(job)}" if job.state == JOB_RUNNING else ""
                self.log.append(
                    f"{stamp} {mark} Slurm job {job.cluster}:{job.job_id} ({who}) {job.slurm_state}{alloc}"
                )
            self._job_states[job.key] = job.slurm_state

    def _sample(self, body: Mapping[str, Any], now_hours: float) -> None:
        meta, spec, status = body.get("metadata") or {}, body.get("spec") or {}, body.get("status") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        thresholds = [
            (parse_decimal(t.get("percent")) or Decimal(0), str(t.get("action", "")))
            for t in spec.get("thresholds") or []
        ]
        self.history.series(key, parse_decimal(spec.get("limit")) or Decimal(0), thresholds)
        spend = parse_decimal(status.get("spend"))
        if spend is None:
            return
        evaluated = parse_time(status.get("lastEvaluated"))  # whole seconds
        fresh = evaluated is not None and evaluated >= self.clock.start
        hours = self.clock.hours(evaluated) if evaluated is not None and fresh else now_hours
        vm_spend = parse_decimal(status.get("vmSpend"))
        slurm_spend = parse_decimal(status.get("slurmSpend"))
        self.history.sample(key, hours, spend, vm_spend, slurm_spend)
        self._follow_vms(key, status, hours)
        self._follow_jobs(key, status, hours)

    def _follow_vms(self, key: str, status: Mapping[str, Any], hours: float) -> None:
        """Log when the number of VMs a budget covers changes (it followed its cluster onto VMs)."""
        count = status.get("vms")
        if not isinstance(count, int) or count == self._budget_vms.get(key, 0):
            return
        self._budget_vms[key] = count
        vm_spend = parse_decimal(status.get("vmSpend")) or Decimal(0)
        pods = (parse_decimal(status.get("spend")) or Decimal(0)) - vm_spend
        rate = per_hour(parse_decimal(status.get("hourlyRate")) or Decimal(0))
        self.log.append(
            f"{hours_text(hours)} ☁ {key}: {count} live VM{'s' if count != 1 else ''}, "
            f"spend {usd(vm_spend)} on VMs + {usd(pods)} on pods, rate {rate}"
        )

    def _follow_jobs(self, key: str, status: Mapping[str, Any], hours: float) -> None:
        """Log when the number of live Slurm jobs a budget covers changes."""
        count = status.get("slurmJobs")
        if not isinstance(count, int) or count == self._budget_jobs.get(key, 0):
            return
        self._budget_jobs[key] = count
        jobs = parse_decimal(status.get("slurmSpend")) or Decimal(0)
        spend = parse_decimal(status.get("spend")) or Decimal(0)
        rate = per_hour(parse_decimal(status.get("hourlyRate")) or Decimal(0))
        self.log.append(
            f"{hours_text(hours)} ⚙ {key}: {count} live Slurm job{'s' if count != 1 else ''}, "
            f"spend {usd(jobs)} on Slurm jobs of {usd(spend)}, rate {rate}"
        )

    def _action(self, row: ActionRow) -> None:
        key = f"{row.namespace}/{row.budget}"
        hours = action_hours(row, self.clock.start)
        if key not in self.history.budgets or hours is None:
            return
        label = action_label(row.id, row.action, row.result)
        self.history.mark(key, row.id, Mark(hours, label, row.action))
        record = f"{key}/{row.id}"
        if self._action_results.get(record) != row.result:
            self._action_results[record] = row.result
            shown = ", ".join(row.targets[:3]) + (
                f" +{len(row.targets) - 3} more" if len(row.targets) > 3 else ""
            )
            targets = f" → {shown}" if row.targets else ""
            self.log.append(
                f"{hours_text(hours)} ▶ {key}: {row.action} {row.result} ({row.trigger}){targets}"
            )


def _interval(speed: float) -> float:
    """Wall seconds between operator passes: ``SIM_STEP`` of simulated time, within [0.2, 1]."""
    return min(1.0, max(0.2, SIM_STEP.total_seconds() / speed))


class _Loop:
    """Reads the cluster every tick, applies due scenario steps, updates the view."""

    def __init__(
        self,
        options: DemoOptions,
        console: Console,
        clock: AcceleratedClock,
        cloud: SimulatedCloud | None = None,
        slurm: SimulatedSlurm | None = None,
    ) -> None:
        self.options = options
        self.console = console
        self.clock = clock
        self.cloud = cloud
        self.slurm = slurm
        # A real cluster's budgets had spend before the demo began: no curve from (0, 0) there.
        self.tracker = Tracker(clock, from_zero=options.kubeconfig is None)
        self.snapshot = Snapshot(budgets=(), pods=())

    def run(
        self,
        reader: ClusterReader,
        cluster: scenario.Cluster | None,
        steps: Sequence[scenario.Step] = (),
    ) -> None:
        pending = sorted(steps, key=lambda s: s.at)
        started = time.monotonic()
        last_line = float("-inf")
        every = max(2.0, self.options.duration / 15)
        with self._live() as live:
            while True:
                elapsed = time.monotonic() - started
                now = self.clock()
                while pending and now - self.clock.start >= pending[0].at and cluster is not None:
                    step = pending.pop(0)
                    step.apply(cluster, now)
                    self.tracker.event(step, now)
                if cluster is not None:
                    scenario.scale_down_pods(cluster)
                self.snapshot = reader.snapshot()
                self.tracker.observe(self.snapshot)
                if self.cloud is not None:
                    self.tracker.observe_vms(self.cloud.vms())
                if self.slurm is not None:
                    self.tracker.observe_slurm(self.slurm.all_jobs(), self.slurm.calls())
                fresh = self.tracker.unprinted()
                frame = self._frame(elapsed)
                if live is not None:
                    live.update(render_live(frame), refresh=True)
                else:
                    for line in fresh:
                        self.console.print(line, highlight=False)
                    if elapsed - last_line >= every:
                        last_line = elapsed
                        self.console.print(status_line(frame), highlight=False)
                if elapsed >= self.options.duration:
                    return
                time.sleep(self._tick)

    @property
    def _tick(self) -> float:
        """A real cluster is listed every 2 s at most: its pod list may be long."""
        return self.options.tick if self.options.kubeconfig is None else max(self.options.tick, 2.0)

    def _frame(self, elapsed: float) -> Frame:
        return Frame(
            start=self.clock.start,
            hours=self.clock.hours(),
            speed=self.clock.speed,
            wall_elapsed=elapsed,
            duration=self.options.duration,
            snapshot=self.snapshot,
            log=self.tracker.log,
            simulated=self.options.kubeconfig is None,
            vms=tuple(self.cloud.vms()) if self.cloud is not None else (),
            slurm_jobs=tuple(self.slurm.all_jobs()) if self.slurm is not None else (),
        )

    @contextlib.contextmanager
    def _live(self) -> Iterator[Live | None]:
        if not self.options.live:
            yield None
            return
        with Live(console=self.console, auto_refresh=False, transient=False) as live:
            yield live


def _simulated(options: DemoOptions, console: Console) -> _Loop:
    from costwarden.crd import load_crd
    from costwarden.demo.telemetry import SimulatedDcgm
    from costwarden.operator.app import OperatorThread
    from costwarden.operator.settings import OperatorSettings
    from costwarden.sim.testing import ThreadedSimCluster

    clock = AcceleratedClock(scenario.DEMO_START, options.speed)
    interval = _interval(options.speed)
    cloud = SimulatedCloud()
    slurm = SimulatedSlurm(scenario.HPC, clock)
    with ThreadedSimCluster(options.out / "sim.kubeconfig", clock=clock) as sim:
        sim.create(load_crd())
        scenario.seed(sim, clock.start)  # pods run from the start, however long startup takes
        scenario.seed_cloud(cloud, clock.start)
        scenario.seed_slurm(slurm, clock.start)
        settings = OperatorSettings(
            kubeconfig=sim.kubeconfig,
            interval=interval,
            accrual_interval=interval,
            status_interval=interval,
            metrics_port=0,
            annotation_interval=2 * interval,
            telemetry_interval=interval,
            cloud_interval=interval,
            cloud_stale_after=max(2.0, 5 * interval),  # a busy machine's late poll is not an outage
            slurm_interval=interval,
            slurm_stale_after=max(2.0, 5 * interval),
        )
        loop = _Loop(options, console, clock, cloud, slurm)
        reader = ClusterReader(sim.kubeconfig)
        dcgm = SimulatedDcgm(lambda: sim.list("v1", "pods"))
        try:
            with OperatorThread(
                settings, clock=clock, gpu_sources=(dcgm,), vm_inventories=(cloud,), job_sources=(slurm,)
            ):
                loop.run(reader, sim, scenario.timeline(cloud, slurm))
            loop.snapshot = reader.snapshot()
        finally:
            reader.close()
    return loop


def _real(options: DemoOptions, console: Console) -> _Loop:
    from costwarden.operator.app import OperatorThread
    from costwarden.operator.settings import OperatorSettings

    clock = AcceleratedClock(datetime.now(UTC), 1.0)
    settings = OperatorSettings(
        kubeconfig=options.kubeconfig,
        interval=2.0,
        accrual_interval=2.0,
        metrics_port=0,
        annotation_interval=10.0,
    )
    loop = _Loop(options, console, clock)
    reader = ClusterReader(options.kubeconfig)
    try:
        with OperatorThread(settings, clock=clock):
            loop.run(reader, None)
        loop.snapshot = reader.snapshot()
    finally:
        reader.close()
    return loop


def run_demo(options: DemoOptions, console: Console) -> DemoResult:
    """Run the demo to its end; print the summary and the chart's path; return what was seen."""
    options.out.mkdir(parents=True, exist_ok=True)
    loop = (_real if options.kubeconfig is not None else _simulated)(options, console)
    tracker = loop.tracker
    tracker.observe(loop.snapshot)
    vms = loop.cloud.vms() if loop.cloud is not None else []
    tracker.observe_vms(vms)
    jobs = loop.slurm.all_jobs() if loop.slurm is not None else []
    slurm_calls = loop.slurm.calls() if loop.slurm is not None else []
    tracker.observe_slurm(jobs, slurm_calls)
    rows = budget_rows(loop.snapshot.budgets)
    actions = latest_actions(loop.snapshot.budgets, limit=None)
    hours = loop.clock.hours()
    if options.kubeconfig is None:
        span = f"{hours:.1f} simulated hours, {loop.clock.speed:g}x speed"
        style = ChartStyle(f"costwarden demo: spend against limit per budget ({span})")
    else:
        span = f"{hours * 60:.1f} minutes from {format_time(loop.clock.start)}"
        style = ChartStyle(
            f"costwarden demo: spend against limit per budget ({span})", "minutes since start", 60
        )
    chart = render_chart(tracker.history, options.out / "spend.png", style)
    console.print(summary_table(rows, actions))
    if loop.cloud is not None:
        console.print(vms_table(vms, loop.clock.start, f"Cloud VMs (simulated {loop.cloud.scope})"))
    if loop.slurm is not None:
        console.print(
            slurm_table(jobs, loop.clock.start, f"Slurm jobs (simulated cluster {loop.slurm.cluster})")
        )
    console.print(f"Chart: {chart.resolve()}", highlight=False)
    return DemoResult(
        budgets=rows,
        actions=actions,
        chart=chart,
        annotated_pods=set(tracker.annotated),
        gone_pods=list(tracker.gone),
        log=list(tracker.log),
        vms=vms,
        cloud_calls=loop.cloud.calls() if loop.cloud is not None else [],
        slurm_jobs=jobs,
        slurm_calls=slurm_calls,
    )


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def add_subparser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="the guardrail demo on an embedded stand-in cluster",
        description=(
            "Starts the Kubernetes API stand-in in this process, creates priced GPU nodes, SkyPilot-style "
            "pods, CostBudgets, a simulated AWS region for SkyPilot's VMs and a simulated Slurm cluster, and "
            "runs the real operator on "
            "an accelerated clock; ends with a summary "
            "and a PNG chart of spend against limit. With --kubeconfig it runs the operator against that "
            "cluster in real time instead (it seeds nothing, but the operator acts on the budgets it finds "
            "there: do not run it beside an installed operator; use `costwarden top` to only watch)."
        ),
    )
    demo.add_argument(
        "--speed", type=_positive, default=600.0, help="simulated seconds per wall second (default 600)"
    )
    demo.add_argument("--duration", type=_positive, default=45.0, help="wall seconds to run (default 45)")
    demo.add_argument("--out", type=Path, default=Path("out/demo"), help="where the chart and logs go")
    demo.add_argument(
        "--kubeconfig",
        type=Path,
        help="run the operator against this real cluster in real time instead (no simulation, no seeding)",
    )
    demo.add_argument("--no-live", action="store_true", help="plain lines instead of the live view")


def _log_to_file(path: Path) -> Callable[[], None]:
    """Send log records to ``path`` while the live view owns the terminal; returns the undo."""
    root = logging.getLogger()
    saved = root.handlers[:]
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers = [handler]

    def undo() -> None:
        root.handlers = saved
        handler.close()

    return undo


def run(args: argparse.Namespace, console: Console | None = None) -> int:
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=140)
    options = DemoOptions(
        speed=args.speed,
        duration=args.duration,
        out=args.out,
        kubeconfig=args.kubeconfig,
        live=not args.no_live and console.is_terminal,
    )
    undo = _log_to_file(options.out / "operator.log")
    console.print(f"Operator log: {(options.out / 'operator.log').resolve()}", highlight=False)
    if options.kubeconfig is None:
        watch = f"costwarden top --kubeconfig {options.out / 'sim.kubeconfig'}"
        console.print(f"While it runs, another terminal can watch it: {watch}", highlight=False)
    try:
        run_demo(options, console)
    except KeyboardInterrupt:
        return 130
    finally:
        undo()
    return 0
