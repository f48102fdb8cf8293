"""``costwarden top``: a kubectl-like live view of budgets and the most expensive pods.

Everything shown is read from the cluster: budget figures from each CostBudget's status (with
the count and spend of the cloud VMs of the SkyPilot cluster a budget names, under ``--cloud``,
and of the Slurm jobs a budget covers, under ``--slurm``), pod figures from the spend
annotations the operator writes on pods, node prices from the budgets' ``status.nodePrices``.
The rows are built by pure functions (``budget_rows``, ``group_pods``, ``node_prices``,
``latest_actions``) so they are tested without a cluster; reading and drawing
sit at the bottom of this module.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, get_args

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from costwarden.records import PodRecord, parse_decimal

GroupBy = Literal["cluster", "user", "namespace", "pod"]
GROUP_BY: tuple[str, ...] = get_args(GroupBy)
NONE = "<none>"
_ZERO = Decimal(0)
_CENT = Decimal("0.01")
_PLACES4 = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class BudgetRow:
    namespace: str
    name: str
    spend: Decimal
    limit: Decimal
    percent: Decimal
    rate: Decimal
    phase: str
    exhausts: str
    pods: int
    actions: int
    gpu_utilization: Decimal | None = None  # percent, GPU-weighted (status.gpuUtilization)
    wasted: Decimal = _ZERO  # status.wastedSpend
    # Cloud VMs of the budget's SkyPilot cluster (status.vms / vmSpend, part of spend); None when
    # the operator watches no cloud (--cloud) or the budget names no cluster (it covers no VM).
    vms: int | None = None
    vm_spend: Decimal | None = None
    # Slurm jobs the budget covers (status.slurmJobs / slurmSpend, part of spend); None when the
    # operator reads no Slurm (--slurm) or the budget has no spec.slurm and names no cluster.
    slurm_jobs: int | None = None
    slurm_spend: Decimal | None = None


@dataclass(frozen=True, slots=True)
class GroupRow:
    """Pods sharing one key (a SkyPilot cluster, a user, a namespace or a single pod)."""

    key: str
    namespaces: tuple[str, ...]
    pods: int
    gpus: int
    spend: Decimal
    rate: Decimal
    budgets: tuple[str, ...]
    gpu_utilization: Decimal | None = None  # GPU-weighted, from the operator's annotations


@dataclass(frozen=True, slots=True)
class NodePriceRow:
    """A node's price as the operator published it (``status.nodePrices``), once per node."""

    name: str
    rate: Decimal  # USD/hour for the whole node
    kind: str  # where the price came from: live, catalog, overrides, annotation or defaults
    factor: Decimal | None  # the effective-rate factor learned from billing, when one applies
    source: str  # the operator's full text
    budgets: tuple[str, ...]  # "namespace/name" of the budgets whose pods run on the node


@dataclass(frozen=True, slots=True)
class ActionRow:
    id: str
    time: str
    namespace: str
    budget: str
    action: str
    result: str
    trigger: str
    targets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one read of the cluster returned: raw CostBudget bodies and pod records."""

    budgets: tuple[Mapping[str, Any], ...]
    pods: tuple[PodRecord, ...]


def _money(value: object) -> Decimal:
    parsed = parse_decimal(value)
    return parsed if parsed is not None else _ZERO


def budget_row(body: Mapping[str, Any]) -> BudgetRow:
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    vms, vm_spend = _outside_figures(spec.get("skypilotCluster"), status.get("vms"), status.get("vmSpend"))
    slurm_jobs, slurm_spend = _outside_figures(
        spec.get("slurm") is not None or spec.get("skypilotCluster"),
        status.get("slurmJobs"),
        status.get("slurmSpend"),
    )
    return BudgetRow(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        spend=_money(status.get("spend")),
        limit=_money(spec.get("limit")),
        percent=_money(status.get("percentUsed")),
        rate=_money(status.get("hourlyRate")),
        phase=str(status.get("phase") or "-"),
        exhausts=str(status.get("exhaustsAt") or "-"),
        pods=int(status.get("pods") or 0),
        actions=len(status.get("actions") or []),
        gpu_utilization=parse_decimal(status.get("gpuUtilization")),
        wasted=_money(status.get("wastedSpend")),
        vms=vms,
        vm_spend=vm_spend,
        slurm_jobs=slurm_jobs,
        slurm_spend=slurm_spend,
    )


def _outside_figures(can_cover: object, count: object, spend: object) -> tuple[int | None, Decimal | None]:
    """A row's count and spend of VMs (``vms`` / ``vmSpend``) or of Slurm jobs (``slurmJobs`` /
    ``slurmSpend``): None where the operator wrote none (it watches no cloud / reads no Slurm),
    and where the budget cannot cover one (``can_cover`` false: no SkyPilot cluster named, for
    Slurm no ``spec.slurm`` either) and none spent anything (under ``--cloud`` or ``--slurm``
    every budget gets 0 and 0)."""
    money = parse_decimal(spend)
    if not can_cover and not count and not money:
        return None, None
    return (int(count) if isinstance(count, int | float) else None), money


def budget_rows(bodies: Iterable[Mapping[str, Any]]) -> list[BudgetRow]:
    """Budgets, the most used first."""
    rows = [budget_row(body) for body in bodies]
    return sorted(rows, key=lambda r: (-r.percent, -r.spend, r.namespace, r.name))


def group_key(pod: PodRecord, by: GroupBy) -> str:
    if by == "cluster":
        return pod.skypilot_cluster or NONE
    if by == "user":
        return pod.skypilot_user or NONE
    if by == "namespace":
        return pod.namespace
    return f"{pod.namespace}/{pod.name}"


def group_pods(pods: Iterable[PodRecord], by: GroupBy, limit: int | None = None) -> list[GroupRow]:
    """Pods the operator has priced (a spend annotation), grouped and summed, the costliest first.

    Figures are those of the annotations (as of each pod's ``spend-at``), not extrapolated.
    """
    groups: dict[str, list[PodRecord]] = {}
    for pod in pods:
        if pod.spend_mark is not None:
            groups.setdefault(group_key(pod, by), []).append(pod)
    rows = [_group_row(key, members) for key, members in groups.items()]
    rows.sort(key=lambda r: (-r.spend, -r.rate, r.key))
    return rows[:limit] if limit is not None else rows


def _group_row(key: str, members: list[PodRecord]) -> GroupRow:
    marks = [pod.spend_mark for pod in members if pod.spend_mark is not None]
    budgets = {name for pod in members for name in (pod.budgets_annotation or "").split(",") if name}
    return GroupRow(
        key=key,
        namespaces=tuple(sorted({pod.namespace for pod in members})),
        pods=len(members),
        gpus=sum(pod.gpus for pod in members),
        spend=sum((mark.spend for mark in marks), _ZERO),
        rate=sum((mark.rate for mark in marks), _ZERO),
        budgets=tuple(sorted(budgets)),
        gpu_utilization=_weighted_utilization(members),
    )


def _weighted_utilization(pods: Iterable[PodRecord]) -> Decimal | None:
    """GPU-weighted mean of the ``costwarden.dev/gpu-utilization`` the operator wrote (display only)."""
    seen = [
        (pod.gpu_utilization, pod.gpus) for pod in pods if pod.gpu_utilization is not None and pod.gpus > 0
    ]
    gpus = sum(count for _, count in seen)
    if not gpus:
        return None
    return sum((value * count for value, count in seen), _ZERO) / gpus


_KIND = re.compile(r"[a-z]+")  # the source's first word: "live: ...", "overrides:FILE key ..."
_FACTOR = re.compile(r" x (\d+(?:\.\d+)?) \(billing: ")  # pricing's "<source> x <factor> (billing: ...)"


def price_kind(source: str) -> tuple[str, Decimal | None]:
    """Where a price came from (the first word of its source) and its effective-rate factor."""
    kind = _KIND.match(source)
    factor = _FACTOR.search(source)
    return (kind.group(0) if kind else "-"), (Decimal(factor.group(1)) if factor else None)


def node_prices(bodies: Iterable[Mapping[str, Any]], limit: int | None = None) -> list[NodePriceRow]:
    """The nodes of the budgets' ``status.nodePrices``, each once, the costliest first.

    A node several budgets list is one row naming them all; where their entries differ (a budget
    evaluated before a price refresh), the most recently evaluated budget's entry is shown.
    """
    chosen: dict[str, tuple[str, Mapping[str, Any]]] = {}  # node -> (lastEvaluated, entry)
    seen_by: dict[str, set[str]] = {}
    for body in bodies:
        meta = body.get("metadata") or {}
        status = body.get("status") or {}
        evaluated = str(status.get("lastEvaluated") or "")
        for entry in status.get("nodePrices") or []:
            name = str(entry.get("name") or "") if isinstance(entry, Mapping) else ""
            if not name:
                continue
            seen_by.setdefault(name, set()).add(f"{meta.get('namespace', '')}/{meta.get('name', '')}")
            if name not in chosen or evaluated > chosen[name][0]:
                chosen[name] = (evaluated, entry)
    rows = []
    for name, (_, entry) in chosen.items():
        source = str(entry.get("source") or "")
        kind, factor = price_kind(source)
        rows.append(
            NodePriceRow(
                name=name,
                rate=_money(entry.get("hourlyRate")),
                kind=kind,
                factor=factor,
                source=source,
                budgets=tuple(sorted(seen_by[name])),
            )
        )
    rows.sort(key=lambda r: (-r.rate, r.name))
    return rows[:limit] if limit is not None else rows


def latest_actions(bodies: Iterable[Mapping[str, Any]], limit: int | None = 8) -> list[ActionRow]:
    """The budgets' recorded actions (``status.actions``), newest first."""
    rows = []
    for body in bodies:
        meta = body.get("metadata") or {}
        for record in (body.get("status") or {}).get("actions") or []:
            rows.append(
                ActionRow(
                    id=str(record.get("id", "")),
                    time=str(record.get("time") or ""),
                    namespace=str(meta.get("namespace", "")),
                    budget=str(meta.get("name", "")),
                    action=str(record.get("action", "")),
                    result=str(record.get("result", "")),
                    trigger=str(record.get("trigger", "")),
                    targets=tuple(str(t) for t in record.get("targets") or []),
                )
            )
    rows.sort(key=lambda r: (r.time, r.namespace, r.budget, r.id), reverse=True)
    return rows[:limit] if limit is not None else rows


# ---- drawing


def usd(value: Decimal) -> str:
    return f"{value.quantize(_CENT):,}"


def per_hour(value: Decimal) -> str:
    return f"{value.quantize(_CENT):,}/h"


_PHASE_STYLE = {
    "Ok": "green",
    "Warning": "yellow",
    "Exceeded": "red",
    "Enforced": "magenta",
    "Invalid": "red",
}


def node_rate(value: Decimal) -> str:
    """USD/h to at most 4 places (as the status gives it), at least 2: ``55.04/h``, ``0.0871/h``."""
    whole, _, places = f"{value.quantize(_PLACES4):,}".partition(".")
    return f"{whole}.{places.rstrip('0').ljust(2, '0')}/h"


def percent_or_dash(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def usd_or_dash(value: Decimal | None) -> str:
    return "-" if value is None else usd(value)


def count_or_dash(value: int | None) -> str:
    return "-" if value is None else str(value)


_BUDGET_COLUMNS = (
    "NAMESPACE",
    "NAME",
    "SPEND",
    "LIMIT",
    "USED",
    "RATE",
    "GPU%",
    "WASTED",
    "PHASE",
    "EXHAUSTS",
    "PODS",
    "VMS",
    "VM SPEND",
)
_SLURM_COLUMNS = ("SLURM JOBS", "SLURM SPEND")
_TEXT_COLUMNS = frozenset({"NAMESPACE", "NAME", "PHASE", "EXHAUSTS"})


def has_slurm(rows: Iterable[BudgetRow]) -> bool:
    """Whether any row has Slurm figures (the operator reads Slurm and a budget can cover jobs)."""
    return any(row.slurm_jobs is not None or row.slurm_spend is not None for row in rows)


def budgets_table(rows: Iterable[BudgetRow], title: str = "CostBudgets") -> Table:
    """One row per budget; the SLURM JOBS and SLURM SPEND columns only when some row has Slurm
    figures (where the operator reads no Slurm they would be all ``-``: the table stays as wide
    as before)."""
    rows = list(rows)
    slurm = has_slurm(rows)
    table = Table(title=title, title_justify="left", expand=False)
    for name in (*_BUDGET_COLUMNS, *(_SLURM_COLUMNS if slurm else ())):
        table.add_column(name, justify="left" if name in _TEXT_COLUMNS else "right", no_wrap=True)
    for row in rows:
        style = _PHASE_STYLE.get(row.phase, "")
        slurm_cells = (count_or_dash(row.slurm_jobs), usd_or_dash(row.slurm_spend)) if slurm else ()
        table.add_row(
            row.namespace,
            row.name,
            usd(row.spend),
            usd(row.limit),
            f"{row.percent:.0f}%",
            per_hour(row.rate),
            percent_or_dash(row.gpu_utilization),
            usd(row.wasted),
            f"[{style}]{row.phase}[/]" if style else row.phase,
            row.exhausts,
            str(row.pods),
            count_or_dash(row.vms),
            usd_or_dash(row.vm_spend),
            *slurm_cells,
        )
    return table


def groups_table(rows: Iterable[GroupRow], by: GroupBy, title: str | None = None) -> Table:
    heading = {"cluster": "SKYPILOT CLUSTER", "user": "USER", "namespace": "NAMESPACE", "pod": "POD"}[by]
    table = Table(title=title or f"Most expensive, by {by}", title_justify="left")
    grouped = by in ("cluster", "user")  # "namespace" and "pod" keys already name the namespace
    table.add_column(heading, no_wrap=True)
    if grouped:
        table.add_column("NAMESPACE", no_wrap=True)
    if by != "pod":
        table.add_column("PODS", justify="right", no_wrap=True)
    for name in ("GPUS", "GPU%", "SPEND", "RATE"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("BUDGETS")
    for row in rows:
        cells = [row.key]
        if grouped:
            cells.append(",".join(row.namespaces))
        if by != "pod":
            cells.append(str(row.pods))
        cells += [
            str(row.gpus),
            percent_or_dash(row.gpu_utilization),
            usd(row.spend),
            per_hour(row.rate),
            ",".join(row.budgets),
        ]
        table.add_row(*cells)
    return table


def actions_table(rows: Iterable[ActionRow], title: str = "Latest actions") -> Table:
    table = Table(title=title, title_justify="left")
    for name in ("TIME", "BUDGET", "ACTION", "RESULT"):
        table.add_column(name, no_wrap=True)
    table.add_column("TRIGGER", no_wrap=True, overflow="ellipsis", max_width=72)
    table.add_column("TARGETS", no_wrap=True, overflow="ellipsis", max_width=48)
    for row in rows:
        targets = ", ".join(row.targets[:3]) + (" …" if len(row.targets) > 3 else "")
        table.add_row(row.time, f"{row.namespace}/{row.budget}", row.action, row.result, row.trigger, targets)
    return table


def node_prices_table(rows: Iterable[NodePriceRow], title: str = "Node prices") -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("NODE", no_wrap=True)
    table.add_column("RATE", justify="right", no_wrap=True)
    table.add_column("FROM", no_wrap=True)
    table.add_column("FACTOR", justify="right", no_wrap=True)
    table.add_column("BUDGETS", no_wrap=True, overflow="ellipsis", max_width=48)
    table.add_column("SOURCE", no_wrap=True, overflow="ellipsis", max_width=72)
    for row in rows:
        factor = "-" if row.factor is None else f"x{row.factor}"
        table.add_row(row.name, node_rate(row.rate), row.kind, factor, ",".join(row.budgets), row.source)
    return table


def render(snapshot: Snapshot, by: GroupBy, limit: int = 10) -> Group:
    parts: list[Table] = [
        budgets_table(budget_rows(snapshot.budgets)),
        groups_table(group_pods(snapshot.pods, by, limit), by),
    ]
    nodes = node_prices(snapshot.budgets, limit)
    if nodes:
        parts.append(node_prices_table(nodes))
    actions = latest_actions(snapshot.budgets, limit=5)
    if actions:
        parts.append(actions_table(actions))
    return Group(*parts)


# ---- reading


class ClusterReader:
    """Read-only lists of CostBudgets and pods through the operator's ``KubeClient`` (raw JSON).

    Synchronous for the command line and the demo: each read runs on this reader's own event
    loop (kept between reads, so the HTTP session and its connections are reused).
    """

    def __init__(self, kubeconfig: Path | None, namespace: str | None = None) -> None:
        from costwarden.operator.kube import KubeClient, load_configuration

        self._kube = KubeClient(load_configuration(kubeconfig))
        self._runner = asyncio.Runner(loop_factory=asyncio.new_event_loop)  # leaves the thread's loop alone
        self.namespace = namespace

    def close(self) -> None:
        try:
            self._runner.run(self._kube.close())
        finally:
            self._runner.close()

    def budgets(self) -> list[dict[str, Any]]:
        return self._runner.run(self._kube.list_budgets(self.namespace))

    def pods(self) -> list[dict[str, Any]]:
        return self._runner.run(self._kube.list_pods(self.namespace))

    def snapshot(self) -> Snapshot:
        return Snapshot(
            budgets=tuple(self.budgets()), pods=tuple(PodRecord.from_body(body) for body in self.pods())
        )


# ---- command line


def add_subparser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    top = subparsers.add_parser("top", help="live view of budgets and the most expensive pods")
    top.add_argument(
        "--kubeconfig", type=Path, help="kubeconfig file (default: in-cluster, then $KUBECONFIG)"
    )
    top.add_argument("--namespace", "-n", help="only this namespace (default: all)")
    top.add_argument("--by", choices=GROUP_BY, default="cluster", help="group pods by (default: cluster)")
    top.add_argument("--limit", type=int, default=15, help="rows of pods/groups (and of nodes) to show")
    top.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    top.add_argument("--once", action="store_true", help="print one view and exit")


def run(args: argparse.Namespace, console: Console | None = None) -> int:
    if console is None:
        console = Console()
        if not console.is_terminal:  # piped: full rows, as kubectl prints them
            console = Console(width=220)
    try:
        reader = ClusterReader(args.kubeconfig, args.namespace)
    except Exception as exc:
        console.print(f"costwarden top: cannot load Kubernetes credentials: {exc}")
        return 2
    from costwarden.operator.kube import KubeError

    view: Callable[[], Group] = lambda: render(reader.snapshot(), args.by, args.limit)  # noqa: E731
    try:
        if args.once:
            console.print(view())
            return 0
        with Live(view(), console=console, auto_refresh=False, screen=False) as live:
            while True:
                time.sleep(args.interval)
                live.update(view(), refresh=True)
    except KubeError as exc:
        console.print(f"costwarden top: cannot read the cluster: {exc}")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        reader.close()
