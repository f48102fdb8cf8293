"""Budget-hour estimate notes (issue 12): CPU per evaluation pass of ``EstimateBuffer.note_budget``
at 1,000 budgets x 40 covered pods (10,000 pods on 1,000 p5.48xlarge nodes, each pod in four
budgets: 40,000 covered-pod entries), passes 10 s apart. Prints JSON: ms per pass for

* ``reference``: the notes as first written (``_notes_before`` in
  tests/unit/test_billing_estimate_notes.py: one pod and one parse at a time, every pass);
* ``every_pass``: the buffer noting every pass (``note_every=0``: what it did before notes were
  taken once a minute);
* ``once_a_minute``: the buffer as the operator runs it (``NOTE_EVERY``).

All three get the same inputs in the same pass, one after the other; the inputs (covered pods,
ledgers) are built outside the timing, one ledger entry per pod shared by its budgets, as the
evaluation does. CPU time (``time.process_time``, after an untimed ``gc.collect()``), so other
load on the machine counts less; the buffers are drained every 6 passes, as the billing feed
does, outside the timing. ``--passes`` passes from 09:50:03 (within one hour: mean, median and
max per pass), and on their own the passes 09:59:33 to 10:00:03 (the last: an hour's first
pass, when every budget is noted and each pod's increment split over the two hours). Checks
that the three noted the same totals per budget.

    .venv/bin/python bench/estimate_notes_bench.py [--passes 30] [--budgets 1000] [--pods 40]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import shapes  # noqa: E402
from tests.unit.test_billing_estimate_notes import _notes_before  # noqa: E402

from costwarden.engine.ledger import CoveredPod, PodAccrual  # noqa: E402
from costwarden.engine.money import cost_between  # noqa: E402
from costwarden.models import BudgetLedger, PodLedgerEntry  # noqa: E402
from costwarden.operator.estimatebuffer import EstimateBuffer  # noqa: E402
from costwarden.records import NodeRecord, PodRecord, format_time  # noqa: E402

T0 = datetime(2026, 11, 20, 9, 50, 3, tzinfo=UTC)  # 30 passes: to 09:55:03, within the hour
CROSSING = datetime(2026, 11, 20, 9, 59, 33, tzinfo=UTC)  # 09:59:33 to 10:00:03: an hour's first pass
RATE = Decimal("55.04")
Notes = dict[tuple[str, str, datetime], Decimal]
Note = Callable[
    [str, Sequence[CoveredPod], tuple[BudgetLedger, BudgetLedger], dict[str, NodeRecord], datetime], None
]


def _node(index: int) -> NodeRecord:
    body = shapes.eks_p5_node(f"n{index}")
    body["spec"]["providerID"] = f"aws:///us-east-1a/i-{index:017x}"
    return NodeRecord.from_body(body)


def _drain(buffer: EstimateBuffer, totals: dict[str, Decimal]) -> None:
    for note in buffer.drain().budgets:
        totals[note.budget] = totals.get(note.budget, Decimal(0)) + note.estimated


def _passes(
    start: datetime, passes: int, budgets: int, per_budget: int
) -> tuple[dict[str, list[float]], bool]:
    """``passes`` timed passes 10 s apart after an untimed first one at ``start``: each
    implementation's CPU seconds per pass, and whether all three noted the same totals."""
    pod_count = budgets * per_budget // 4
    nodes = {f"n{i}": _node(i) for i in range(max(pod_count // 10, 1))}
    started = start - timedelta(hours=1)
    pods = [
        PodRecord(
            "research", f"p{i}", f"uid-p{i}", node_name=f"n{i % len(nodes)}", phase="Running", started=started
        )
        for i in range(pod_count)
    ]
    members = {
        f"research/b{j}": [pods[(j * per_budget + k) % pod_count] for k in range(per_budget)]
        for j in range(budgets)
    }
    reference: Notes = {}
    every, minute = EstimateBuffer(note_every=timedelta(0)), EstimateBuffer()
    runs: dict[str, Note] = {
        "reference": lambda b, c, ledgers, n, at: _notes_before(reference, b, c, ledgers, n, at),
        "every_pass": every.note_budget,
        "once_a_minute": minute.note_budget,
    }
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    totals: dict[str, dict[str, Decimal]] = {name: {} for name in runs}
    previous = {budget: BudgetLedger() for budget in members}
    for index in range(passes + 1):
        at = start + index * timedelta(seconds=10)
        text = format_time(at)
        covered, entries = {}, {}
        for pod in pods:
            spend = cost_between(RATE, started, at)
            covered[pod.uid] = CoveredPod(pod, PodAccrual(spend, RATE, at))
            entries[pod.uid] = PodLedgerEntry(spend=spend, at=text)
        inputs = {}
        for budget, chosen in members.items():
            after = BudgetLedger(pods={p.uid: entries[p.uid] for p in chosen})
            inputs[budget] = ([covered[p.uid] for p in chosen], (previous[budget], after))
            previous[budget] = after
        for name, note in runs.items():
            gc.collect()  # each pays for the collections its own garbage brings
            clock = time.process_time()
            for budget, (items, ledgers) in inputs.items():
                note(budget, items, ledgers, nodes, at)
            if index:
                cpu[name].append(time.process_time() - clock)
        if index % 6 == 0:
            _drain(every, totals["every_pass"])
            _drain(minute, totals["once_a_minute"])
    minute.retain((), nodes)  # what was not noted yet (under a minute of each budget), noted
    _drain(every, totals["every_pass"])
    _drain(minute, totals["once_a_minute"])
    for (budget, _, _), amount in reference.items():
        totals["reference"][budget] = totals["reference"].get(budget, Decimal(0)) + amount
    return cpu, totals["reference"] == totals["every_pass"] == totals["once_a_minute"]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def run(passes: int, budgets: int, per_budget: int) -> dict[str, object]:
    steady, same = _passes(T0, passes, budgets, per_budget)
    crossing, same_crossing = _passes(CROSSING, 3, budgets, per_budget)
    figures = {
        name: {
            "mean": _ms(statistics.fmean(times)),
            "median": _ms(statistics.median(times)),
            "max": _ms(max(times)),
            "hour_first_pass": _ms(crossing[name][-1]),
        }
        for name, times in steady.items()
    }
    return {
        "budgets": budgets,
        "covered_pod_entries": budgets * per_budget,
        "passes": passes,
        "interval_s": 10,
        "cpu_ms_per_pass": figures,
        "mean_once_a_minute_vs_every_pass": round(
            figures["once_a_minute"]["mean"] / figures["every_pass"]["mean"], 3
        ),
        "same_totals": same and same_crossing,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def main() -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--passes", type=int, default=30)
    parser.add_argument("--budgets", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=40, help="covered pods per budget")
    args = parser.parse_args()
    result = run(args.passes, args.budgets, args.pods)
    print(json.dumps(result, indent=2))
    if not result["same_totals"]:
        sys.exit("the three noted different totals")
    return result


if __name__ == "__main__":
    main()
