"""Run every benchmark and print their JSON figures (record them in bench/RESULTS.md).

About 15 minutes: the engine pass (seconds), the real operator at 10,000 pods (about 5 minutes,
``operator_bench``), enforcement latency at 1,000 budgets (about 3 minutes), billing ingest,
reconciliation and accuracy (about 4 minutes, ``billing_bench``). The informer's own sync bench
(``informer_bench.py``) runs on its own.

    python bench/run.py [engine] [operator_scale] [enforcement] [billing]   # default: all
"""

from __future__ import annotations

import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import billing_bench
import enforcement_bench
import engine_bench
import operator_bench

BENCHES = {
    "engine": engine_bench.main,
    "operator_scale": operator_bench.main,
    "enforcement": enforcement_bench.main,
    "billing": billing_bench.main,
}


def main() -> None:
    names = sys.argv[1:] or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        sys.exit(f"unknown benchmarks {unknown}; choose from {', '.join(BENCHES)}")
    header = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
    }
    results = {name: BENCHES[name]() for name in names}
    print(json.dumps({**header, **results}, indent=2, default=str))


if __name__ == "__main__":
    main()
