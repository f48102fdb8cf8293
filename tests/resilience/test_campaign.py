"""The long runs of issue 12, points 2 and 3: opt-in, `make crash` (RESILIENCE_CAMPAIGN=1).

- Crash/restart: the uninterrupted run, then one run per named kill point (scenario.POINTS,
  ten of them) with one more kill at a random mutating request and one at a random moment, then
  three runs of random kills only (three requests, three moments each): more than 40 SIGKILLs,
  each run compared with the uninterrupted one (test_crash_restart.check_against).
- Two replicas: kill, pause and partition the leader at each of six points of the Kill and the
  Notify (failover.FAILOVER_POINTS), 18 runs, each checked as in test_two_replicas.

The seed is RESILIENCE_SEED (default 12). Figures go to RESILIENCE_OUT (default
out/resilience.json) and to the terminal (`make crash` runs pytest -s): they are what
bench/RESULTS.md reports.
"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.resilience.failover import CHART_LEASE, FailoverResult, run_failover
from tests.resilience.scenario import POINTS, EndState, Plan, run
from tests.resilience.test_crash_restart import check_against
from tests.resilience.test_two_replicas import TAKEOVER_BOUND, check_failover

pytestmark = pytest.mark.skipif(
    not os.environ.get("RESILIENCE_CAMPAIGN"), reason="the long runs: RESILIENCE_CAMPAIGN=1 (make crash)"
)
SEED = int(os.environ.get("RESILIENCE_SEED", "12"))
OUT = Path(os.environ.get("RESILIENCE_OUT", "out/resilience.json"))
FAILOVER_POINTS = (
    "notify-decided-stored",
    "kill-decided-unstored",
    "kill-pending-stored",
    "before-first-delete",
    "between-deletes",
    "deleted-unrecorded",
)


def _record(section: str, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    found = json.loads(OUT.read_text()) if OUT.exists() else {}
    found[section] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}, "
        f"Python {platform.python_version()}",
        "seed": SEED,
        "summary": summary,
        "runs": rows,
    }
    OUT.write_text(json.dumps(found, indent=1, default=str))
    print(f"\n{section}: {json.dumps(summary, default=str)}")


def _crash_row(name: str, state: EndState, baseline: EndState) -> dict[str, Any]:
    deviation = abs(state.spend - baseline.spend) / baseline.spend
    return {
        "run": name,
        "kills": [k.how for k in state.kills],
        "starts": state.starts,
        "seconds": round(state.seconds, 1),
        "same_records": state.actions == baseline.actions,
        "deletes": state.deletes,
        "deliveries": dict(state.deliveries),
        "windows": state.windows,
        "spend": str(state.spend),
        "spend_deviation": float(deviation),
        "messages": state.messages,
    }


@pytest.mark.timeout(1800)
def test_crash_campaign(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    baseline = run(tmp_path / "uninterrupted", Plan())
    plans = [(name, Plan.random(rng, points=(name,))) for name in POINTS]
    plans += [(f"random-{index}", Plan.random(rng, requests=3, timed=3)) for index in range(3)]
    results: list[tuple[str, EndState]] = []
    for index, (name, plan) in enumerate(plans):
        results.append((name, run(tmp_path / f"{index}-{name}", plan)))
    rows = [_crash_row(name, state, baseline) for name, state in results]
    kills = sum(len(state.kills) for _, state in results)
    resends = sum(count - 1 for _, state in results for count in state.deliveries.values())
    _record(
        "crash",
        rows,
        {
            "runs": len(results),
            "kills": kills,
            "restarts": sum(state.starts - 1 for _, state in results),
            "same_records": sum(row["same_records"] for row in rows),
            "max_spend_deviation": max(row["spend_deviation"] for row in rows),
            "pods_deleted_twice": sum(
                answers.count(200) > 1 for _, state in results for answers in state.deletes.values()
            ),
            "notifications_resent": resends,
            "kills_in_a_notification_window": sum(sum(state.windows.values()) for _, state in results),
            "baseline_spend": str(baseline.spend),
            "baseline_seconds": round(baseline.seconds, 1),
        },
    )
    assert kills >= 20
    for _, state in results:
        check_against(state, baseline)


@pytest.mark.timeout(1800)
def test_failover_campaign(tmp_path: Path) -> None:
    results: list[FailoverResult] = []
    for disruption in ("kill", "pause", "partition"):
        for point in FAILOVER_POINTS:
            results.append(run_failover(tmp_path / f"{disruption}-{point}", disruption, point))
    rows = [
        {
            "disruption": r.disruption,
            "point": r.point,
            "takeover_s": round(r.takeover_s, 3),
            "acting_s": round(r.acting_s, 3),
            "after_fence": r.after_fence,
            "late": r.late,
            "stale_s": r.stale_s,
            "deletes": r.deletes,
            "deliveries": dict(r.deliveries),
            "spend": str(r.spend),
            "relaunched_alive": r.relaunched_alive,
        }
        for r in results
    ]
    takeovers = [r.takeover_s for r in results]
    summary: dict[str, Any] = {
        "runs": len(results),
        "takeover_s": {
            "min": round(min(takeovers), 2),
            "median": round(statistics.median(takeovers), 2),
            "max": round(max(takeovers), 2),
            "bound": TAKEOVER_BOUND,
        },
        "old_leader_writes_after_fence": sum(len(r.after_fence) for r in results),
        "late_writes_accepted": sum(
            1 for r in results for _, _, status, _ in r.late if status is not None and status < 300
        ),
        "late_writes_refused": sum(
            1 for r in results for _, _, status, _ in r.late if status is not None and status >= 400
        ),
        "stale_status_s_max": max((s for r in results for s in r.stale_s), default=0.0),
    }
    for disruption in ("kill", "pause", "partition"):
        times = [r.takeover_s for r in results if r.disruption == disruption]
        summary[f"takeover_s_{disruption}"] = [round(min(times), 2), round(max(times), 2)]
    _record("failover", rows, summary)
    for result in results:
        check_failover(result)


@pytest.mark.timeout(600)
def test_takeover_with_the_charts_lease_settings(tmp_path: Path) -> None:
    """Lease duration 15 s, renew deadline 10 s, retry period 2 s: the leader killed right after
    storing its Pending Kill; the standby must hold the Lease within 15 + 2 x 2 s (+ 0.5 s)."""
    result = run_failover(tmp_path, "kill", "kill-pending-stored", times=CHART_LEASE)
    _record(
        "failover_chart_lease",
        [{"takeover_s": round(result.takeover_s, 3), "acting_s": round(result.acting_s, 3)}],
        {"takeover_s": round(result.takeover_s, 2), "bound": CHART_LEASE.takeover_bound},
    )
    check_failover(result, CHART_LEASE)
