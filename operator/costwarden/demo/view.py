"""What the demo shows: a rich live view, plain progress lines, and the closing summary."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from costwarden.engine.slurm import ENDED, SlurmJob
from costwarden.engine.slurm import RUNNING as JOB_RUNNING
from costwarden.engine.vms import RUNNING, TERMINATED, VMRecord
from costwarden.records import parse_time
from costwarden.top import (
    ActionRow,
    BudgetRow,
    Snapshot,
    budget_rows,
    budgets_table,
    group_pods,
    groups_table,
    latest_actions,
    per_hour,
    usd,
    usd_or_dash,
)


@dataclass(frozen=True, slots=True)
class Frame:
    """One moment of the demo, as the views need it."""

    start: datetime  # simulated start (hours are counted from it)
    hours: float  # simulated hours now
    speed: float
    wall_elapsed: float
    duration: float
    snapshot: Snapshot
    log: Sequence[str]  # the latest happenings, oldest first
    simulated: bool = True
    vms: Sequence[VMRecord] = ()  # the simulated cloud's VMs (simulated mode only)
    slurm_jobs: Sequence[SlurmJob] = ()  # the simulated Slurm cluster's jobs (simulated mode only)


def hours_text(hours: float) -> str:
    return f"+{hours:.2f}h"


def action_hours(row: ActionRow, start: datetime) -> float | None:
    at = parse_time(row.time)
    return (at - start).total_seconds() / 3600 if at is not None else None


def action_label(action_id: str, action: str, result: str) -> str:
    """Short chart/log label from a status.actions record id (``threshold/80/...`` etc.)."""
    parts = action_id.split("/")
    if parts[0] == "threshold" and len(parts) > 1:
        what = f"{parts[1]}% {action}"
    elif parts[:2] == ["anomaly", "idleGpu"]:
        what = f"idle GPU {action}"
    elif parts[:2] == ["anomaly", "burnRate"]:
        what = f"burn rate {action}"
    else:
        what = action
    return f"{what} · {result}" if result else what


def _header(frame: Frame) -> Panel:
    mode = f"simulated, {frame.speed:g}x speed" if frame.simulated else "live cluster, real time"
    text = Text.assemble(
        ("costwarden demo", "bold"),
        f"  ·  {mode}  ·  sim time {hours_text(frame.hours)}",
        f"  ·  wall {frame.wall_elapsed:4.1f}/{frame.duration:g}s",
    )
    return Panel(text, expand=False)


def _actions_table(rows: Iterable[ActionRow], start: datetime) -> Table:
    table = Table(title="Latest actions (status.actions)", title_justify="left")
    for name in ("AT", "BUDGET", "ACTION", "RESULT", "TRIGGER"):
        table.add_column(name, no_wrap=name != "TRIGGER", max_width=70 if name == "TRIGGER" else None)
    styles = {"Done": "green", "DryRun": "cyan", "Pending": "yellow", "Skipped": "dim", "Failed": "red"}
    for row in rows:
        at = action_hours(row, start)
        style = styles.get(row.result, "")
        table.add_row(
            hours_text(at) if at is not None else row.time,
            f"{row.namespace}/{row.budget}",
            row.action,
            f"[{style}]{row.result}[/]" if style else row.result,
            row.trigger,
        )
    return table


def vm_role(vm: VMRecord) -> str:
    return "head" if vm.is_head else "worker"


def vms_table(vms: Iterable[VMRecord], start: datetime, title: str = "Cloud VMs") -> Table:
    """The VMs of the simulated cloud region: whose they are, what they are, and their state."""
    table = Table(title=title, title_justify="left")
    for name in ("VM", "SKYPILOT CLUSTER", "ROLE", "TYPE", "CAPACITY", "STATE", "LAUNCHED"):
        table.add_column(name, no_wrap=True)
    styles = {RUNNING: "green", TERMINATED: "red"}
    for vm in vms:
        launched = (vm.launched - start).total_seconds() / 3600 if vm.launched is not None else None
        style = styles.get(vm.state, "yellow")
        table.add_row(
            vm.vm_id,
            vm.cluster or "-",
            vm_role(vm),
            vm.instance_type,
            vm.capacity_type,
            f"[{style}]{vm.state}[/]",
            hours_text(launched) if launched is not None else "-",
        )
    return table


def job_allocation(job: SlurmJob) -> str:
    """``16 h100 GPUs, 128 CPUs, 1024 GiB``; a pending job is allocated nothing yet."""
    if not job.cpus and not job.gpus:
        return "-"
    gpus = f"{job.gpus} {job.gpu_type} GPUs" if job.gpu_type else f"{job.gpus} GPUs"
    return f"{gpus}, {job.cpus} CPUs, {job.memory_gib.normalize():f} GiB"


def slurm_table(jobs: Iterable[SlurmJob], start: datetime, title: str = "Slurm jobs") -> Table:
    """The jobs of the simulated Slurm cluster: whose they are, what they hold, and their state."""
    table = Table(title=title, title_justify="left")
    for name in ("JOB", "NAME", "USER", "ACCOUNT", "PARTITION", "ALLOCATED", "NODES", "STATE", "STARTED"):
        table.add_column(name, no_wrap=True)
    for job in jobs:
        started = (job.started - start).total_seconds() / 3600 if job.started is not None else None
        style = {JOB_RUNNING: "green", ENDED: "red"}.get(job.state, "yellow")
        table.add_row(
            f"{job.cluster}:{job.job_id}",
            job.name,
            job.user,
            job.account or "-",
            job.partition,
            job_allocation(job),
            ",".join(job.nodes) or "-",
            f"[{style}]{job.slurm_state}[/]",
            hours_text(started) if started is not None else "-",
        )
    return table


def render_live(frame: Frame) -> Group:
    parts: list[Panel | Table] = [_header(frame), budgets_table(budget_rows(frame.snapshot.budgets))]
    actions = latest_actions(frame.snapshot.budgets, limit=6)
    if actions:
        parts.append(_actions_table(actions, frame.start))
    parts.append(groups_table(group_pods(frame.snapshot.pods, "pod", 7), "pod", "Most expensive pods"))
    if frame.vms:
        parts.append(vms_table(frame.vms, frame.start, "Cloud VMs (the simulated AWS region)"))
    if frame.slurm_jobs:
        parts.append(slurm_table(frame.slurm_jobs, frame.start, "Slurm jobs (the simulated cluster)"))
    if frame.log:
        parts.append(
            Panel("\n".join(frame.log[-6:]), title="what happened", title_align="left", expand=False)
        )
    return Group(*parts)


def status_line(frame: Frame) -> str:
    """One plain line: every budget's spend (and what of it VMs and Slurm jobs spent), limit,
    use and phase."""
    figures = []
    for row in budget_rows(frame.snapshot.budgets):
        outside = (("VMs", row.vm_spend), ("Slurm", row.slurm_spend))
        parts = [f"{kind} {usd(value)}" for kind, value in outside if value]
        note = f" ({', '.join(parts)})" if parts else ""
        figures.append(
            f"{row.name} {usd(row.spend)}/{row.limit.normalize():f} {row.percent:.0f}% {row.phase}{note}"
        )
    return f"[{hours_text(frame.hours)}] " + " | ".join(figures)


def pod_spend(row: BudgetRow) -> Decimal:
    """What a budget's pods spent: its spend less what VMs and Slurm jobs spent."""
    return row.spend - (row.vm_spend or Decimal(0)) - (row.slurm_spend or Decimal(0))


def summary_table(rows: Sequence[BudgetRow], actions: Sequence[ActionRow]) -> Table:
    table = Table(title="Summary", title_justify="left")
    numeric = ("SPEND", "POD SPEND", "VM SPEND", "SLURM SPEND", "LIMIT", "USED", "RATE")
    for name in ("BUDGET", *numeric, "PHASE", "ACTIONS"):
        table.add_column(name, justify="right" if name in numeric else "left")
    for row in rows:
        done = [a for a in actions if (a.namespace, a.budget) == (row.namespace, row.name)]
        ordered = sorted(done, key=lambda a: a.time)
        listed = "\n".join(action_label(a.id, a.action, a.result) for a in ordered) or "-"
        table.add_row(
            f"{row.namespace}/{row.name}",
            usd(row.spend),
            usd(pod_spend(row)),
            usd_or_dash(row.vm_spend),
            usd_or_dash(row.slurm_spend),
            usd(row.limit),
            f"{row.percent:.0f}%",
            per_hour(row.rate),
            row.phase,
            listed,
        )
    return table
