"""The demo's chart: spend against limit per budget over simulated time, actions marked.

``History`` collects samples as the demo runs (Decimal in, floats only for drawing);
``render_chart`` draws one panel per budget with matplotlib's Agg backend into a PNG. A budget
whose cloud VMs (``status.vmSpend``) or Slurm jobs (``status.slurmSpend``) spent anything gets
its spend split in thinner curves, one per part that spent: on pods, on VMs, on Slurm jobs; a
budget whose whole spend is one such part (Slurm jobs only) gets its spend curve labelled so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib  # at import, so a missing 'demo' extra shows before the demo runs, not at its end

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_ACTION_COLOURS = {"Notify": "tab:blue", "Scale": "tab:orange", "Suspend": "tab:purple", "Kill": "tab:red"}
_LABEL_HEIGHTS = (0.96, 0.80, 0.64, 0.48)


@dataclass(frozen=True, slots=True)
class Mark:
    """A vertical marker: an enforcement action, or a scenario event when ``action`` is empty."""

    hours: float
    label: str
    action: str = ""


@dataclass(slots=True)
class BudgetSeries:
    limit: Decimal
    thresholds: list[tuple[Decimal, str]] = field(default_factory=list)  # (percent, action)
    samples: list[tuple[float, Decimal]] = field(default_factory=list)  # (hours, spend)
    vm_samples: list[tuple[float, Decimal]] = field(default_factory=list)  # (hours, of which VMs)
    slurm_samples: list[tuple[float, Decimal]] = field(default_factory=list)  # (hours, of which Slurm)
    marks: dict[str, Mark] = field(default_factory=dict)  # by action id (or event title)
    from_zero: bool = True  # the curve starts at (0, 0): spend began when the chart did


class History:
    """Spend samples and marks per budget key ``namespace/name``, in insertion order."""

    def __init__(self, from_zero: bool = True) -> None:
        self.budgets: dict[str, BudgetSeries] = {}
        self.from_zero = from_zero

    def series(self, key: str, limit: Decimal, thresholds: list[tuple[Decimal, str]]) -> BudgetSeries:
        found = self.budgets.get(key)
        if found is None:
            found = self.budgets[key] = BudgetSeries(limit, thresholds, from_zero=self.from_zero)
        found.limit = limit
        return found

    def sample(
        self,
        key: str,
        hours: float,
        spend: Decimal,
        vm_spend: Decimal | None = None,
        slurm_spend: Decimal | None = None,
    ) -> None:
        """Add a sample (and what of it VMs and Slurm jobs spent, when known); a later figure for
        the same time replaces it, an earlier one is dropped.

        Zero figures before the first real one are dropped: they come from evaluations before the
        operator had priced the pods.
        """
        series = self.budgets[key]
        samples = series.samples
        if not samples and not spend:
            return
        if samples and samples[-1][0] > hours:
            return
        same = bool(samples) and samples[-1][0] == hours
        if same:
            samples[-1] = (hours, spend)
        else:
            samples.append((hours, spend))
        for part, value in ((series.vm_samples, vm_spend), (series.slurm_samples, slurm_spend)):
            if value is None:
                continue
            if same and part and part[-1][0] == hours:
                part[-1] = (hours, value)
            else:
                part.append((hours, value))

    def mark(self, key: str, mark_id: str, mark: Mark) -> bool:
        """Remember or update the mark of ``mark_id`` (a result may change); True when it is new."""
        marks = self.budgets[key].marks
        new = mark_id not in marks
        marks[mark_id] = mark
        return new


def _spend_at(samples: list[tuple[float, Decimal]], hours: float) -> float | None:
    """What the curve shows at ``hours``: between two samples the straight line joining them
    (a steep curve, VMs at 110 USD/h, moves far between two samples); past the last, the last."""
    before = [(at, spend) for at, spend in samples if at <= hours]
    if not before:
        return None
    after = next(((at, spend) for at, spend in samples if at > hours), None)
    (x0, y0) = before[-1]
    if after is None or after[0] == x0:
        return float(y0)
    (x1, y1) = after
    return float(y0) + (float(y1) - float(y0)) * (hours - x0) / (x1 - x0)


@dataclass(frozen=True, slots=True)
class ChartStyle:
    title: str
    x_label: str = "simulated hours since start"
    x_per_hour: float = 1.0  # 60 draws the x axis in minutes


def render_chart(history: History, path: Path, style: ChartStyle) -> Path:
    """Draw every budget's panel into ``path`` (PNG); returns the path."""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(history.budgets)
    columns = 2 if len(keys) > 1 else 1
    rows = max(1, math.ceil(len(keys) / columns))
    figure, grid = plt.subplots(rows, columns, figsize=(7.5 * columns, 4.6 * rows), squeeze=False)
    end = max((s[-1][0] for b in history.budgets.values() if (s := b.samples)), default=1.0)
    for index, axes in enumerate(grid.flat):
        if index >= len(keys):
            axes.set_visible(False)
            continue
        _panel(axes, (keys[index], history.budgets[keys[index]]), end * style.x_per_hour, style)
        axes.set_xlim(0, end * style.x_per_hour * 1.02)
    figure.suptitle(style.title, fontsize=13)
    figure.tight_layout(rect=(0, 0, 1, 0.96))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _panel(axes: Axes, budget: tuple[str, BudgetSeries], end: float, style: ChartStyle) -> None:
    key, series = budget
    scale = style.x_per_hour
    limit = float(series.limit)
    points = [(at * scale, float(value)) for at, value in series.samples]
    if series.from_zero:
        points.insert(0, (0.0, 0.0))
    marker = "o" if len(points) == 1 else None  # a lone sample is a dot, not an invisible line
    xs, ys = [x for x, _ in points], [y for _, y in points]
    axes.plot(xs, ys, color="black", linewidth=2, marker=marker, label=_spend_label(series))
    split = _split(axes, series, scale)
    axes.axhline(limit, color="tab:red", linestyle="--", linewidth=1.5, label=f"limit {limit:,.2f} USD")
    for percent, action in series.thresholds:
        if percent != 100:
            level = limit * float(percent) / 100
            axes.axhline(level, color="grey", linestyle=":", linewidth=1)
            axes.text(
                0.01 * end,
                level,
                f"{percent}% {action}",
                va="bottom",
                fontsize=7.5,
                color="grey",
            )
    _marks(axes, series, scale)
    axes.set_ylim(0, max([limit, *(y for _, y in points)]) * 1.12)
    axes.set_title(key, fontsize=11, loc="left")
    axes.set_xlabel(style.x_label)
    axes.set_ylabel("spend (USD)")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower right", fontsize=8, ncols=2 if split else 1)  # a split panel's is longer


_PARTS = (("on pods", "tab:cyan"), ("on VMs", "tab:purple"), ("on Slurm jobs", "tab:brown"))


def _split(axes: Axes, series: BudgetSeries, scale: float) -> bool:
    """Pod spend, VM spend and Slurm spend as thinner curves (each part that spent anything),
    for a budget whose VMs or Slurm jobs spent anything; whether it drew them. A budget whose
    whole spend is one outside part draws no split: its spend curve is that part."""
    total = dict(series.samples)
    vms, jobs = dict(series.vm_samples), dict(series.slurm_samples)
    if not any(vms.values()) and not any(jobs.values()):
        return False
    zero = Decimal(0)
    times = [at for at in total if at in vms or at in jobs]
    parts = [
        [(at, total[at] - vms.get(at, zero) - jobs.get(at, zero)) for at in times],
        [(at, vms[at]) for at in times if at in vms],
        [(at, jobs[at]) for at in times if at in jobs],
    ]
    spent = [(points, part) for points, part in zip(parts, _PARTS, strict=True) if any(v for _, v in points)]
    if len(spent) < 2:
        return False
    for points, (label, colour) in spent:
        xs = [at * scale for at, _ in points]
        ys = [float(value) for _, value in points]
        if series.from_zero:
            xs.insert(0, 0.0)
            ys.insert(0, 0.0)
        axes.plot(xs, ys, color=colour, linewidth=1.3, linestyle="--", label=label)
    return True


def _spend_label(series: BudgetSeries) -> str:
    """``spend``, or ``spend (Slurm jobs)`` for a budget whose spend is all its Slurm jobs' (or VMs')."""
    last = series.samples[-1][1] if series.samples else Decimal(0)
    for part, what in ((series.slurm_samples, "Slurm jobs"), (series.vm_samples, "VMs")):
        if last and part and part[-1][1] == last:
            return f"spend ({what})"
    return "spend"


def _marks(axes: Axes, series: BudgetSeries, scale: float) -> None:
    """A vertical line per action (a dot where it meets the spend curve) or scenario event, labelled."""
    labelled: set[str] = set()
    for slot, mark in enumerate(sorted(series.marks.values(), key=lambda m: m.hours)):
        x = mark.hours * scale
        colour = _ACTION_COLOURS.get(mark.action, "tab:green")
        legend = f"action: {mark.action}" if mark.action else "scenario event"
        axes.axvline(
            x,
            color=colour,
            linestyle="-" if mark.action else "-.",
            linewidth=1.2,
            alpha=0.8,
            label=legend if legend not in labelled else None,
        )
        labelled.add(legend)
        at = _spend_at(series.samples, mark.hours)
        if at is not None and mark.action:
            axes.plot([x], [at], marker="o", color=colour, markersize=6)
        axes.annotate(
            mark.label,
            xy=(x, _LABEL_HEIGHTS[slot % len(_LABEL_HEIGHTS)]),
            xycoords=("data", "axes fraction"),
            xytext=(3, 0),
            textcoords="offset points",
            fontsize=7.5,
            color=colour,
            va="top",
            bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
        )
