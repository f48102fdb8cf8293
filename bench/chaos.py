"""``make chaos``: the chaos scenario (tests/chaos/scenario.py) under every fault profile.

The real operator against the stand-in, a fixed workload and a scripted ManualClock timeline,
first fault-free, then under each profile; each run is compared with the fault-free one: final
spend per budget within 0.5 %, the same action records with the same results, every notification
acknowledged exactly once, no traceback logged, the operator alive. Prints a Markdown table (for
bench/RESULTS.md) and the figures as JSON; exits 1 if a profile did not converge like the
fault-free run. About 15 s a profile on a 2-vCPU machine, three minutes in all.

    python bench/chaos.py [PROFILE ...] [--repeat N]   # default: every profile, once
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.chaos import scenario


def row(
    profile: scenario.Profile, result: scenario.RunResult, problems: list[str], baseline: scenario.RunResult
) -> dict[str, Any]:
    faulted = sum(n for kind, n in result.faults.items() if kind != "requests")
    return {
        "profile": profile.name,
        "faults": profile.about,
        "converged": not problems,
        "problems": problems,
        "spend_deviation_percent": float(scenario.spend_deviation(baseline, result)),
        "spend": {key: str(value) for key, value in result.spend.items()},
        "actions": sum(len(records) for records in result.actions.values()),
        "actions_as_fault_free": result.actions == baseline.actions,
        "notifications_acknowledged": sum(result.deliveries.values()),
        "notifications": len(baseline.deliveries),
        "deliveries_received": result.received,
        "deliveries_forced": result.forced,
        "requests": result.faults.get("requests", 0),
        "requests_faulted": faulted,
        "faults_by_kind": {k: v for k, v in result.faults.items() if k != "requests"},
        "faulted": result.faulted,
        "seconds_to_converge": [seconds for _, seconds in result.steps],
        "slowest_step_s": result.slowest_step_s,
        "wall_s": result.wall_s,
        "tracebacks": result.tracebacks,
        "warnings_logged": result.warnings,
        "errors_logged": result.errors,
        "errors": [line for line in result.logged if line.startswith(("ERROR", "CRITICAL"))],
        "prometheus_queries": result.prometheus_queries,
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| profile | spend deviation | actions as fault-free | notifications once | requests faulted "
        "| slowest step / all steps | result |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        faulted = f"{r['requests_faulted']} of {r['requests']}" if r["requests"] else "-"
        if r["deliveries_forced"]:
            held = f"{r['deliveries_forced']} receiver deliveries failed or held"
            faulted = f"{faulted}; {held}" if r["requests"] else held
        if r["prometheus_queries"]:
            faulted = f"{r['prometheus_queries']} Prometheus answers, all garbage"
        steps = f"{r['slowest_step_s']:.1f} s / {sum(r['seconds_to_converge']):.1f} s"
        lines.append(
            f"| {r['profile']} | {r['spend_deviation_percent']:.2f} % | "
            f"{'yes' if r['actions_as_fault_free'] else 'NO'} ({r['actions']}) | "
            f"{r['notifications_acknowledged']} of {r['notifications']} | {faulted} | {steps} | "
            f"{'converged' if r['converged'] else 'DIFFERS'} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("profiles", nargs="*", help=f"of: {', '.join(scenario.PROFILES)}")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each profile")
    args = parser.parse_args()
    unknown = [name for name in args.profiles if name not in scenario.PROFILES]
    if unknown:
        parser.error(f"unknown profiles {unknown}; choose from {', '.join(scenario.PROFILES)}")
    names = [n for n in (args.profiles or list(scenario.PROFILES)) if n != "fault-free"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="chaos-") as scratch:
        base_dir = Path(scratch) / "fault-free"
        base_dir.mkdir()
        baseline = scenario.run(scenario.PROFILES["fault-free"], base_dir)
        base_problems = [f"did not converge: {reason}" for reason in baseline.unconverged]
        rows.append(row(scenario.PROFILES["fault-free"], baseline, base_problems, baseline))
        print(f"fault-free: {baseline.wall_s} s", file=sys.stderr, flush=True)
        for name in names:
            for attempt in range(args.repeat):
                workdir = Path(scratch) / f"{name}-{attempt}"
                workdir.mkdir()
                result = scenario.run(scenario.PROFILES[name], workdir)
                problems = scenario.compare(baseline, result)
                rows.append(row(scenario.PROFILES[name], result, problems, baseline))
                state = "converged" if not problems else f"DIFFERS: {problems}"
                print(f"{name}: {result.wall_s} s, {state}", file=sys.stderr, flush=True)
    header = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip() + f", {os.cpu_count()} CPUs",
        "python": platform.python_version(),
    }
    print(table(rows))
    print()
    print(json.dumps({**header, "runs": rows}, indent=2, default=str))
    return 0 if all(r["converged"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
