"""Run every benchmark and print their JSON figures (record them in bench/RESULTS.md).

About 10 minutes: the engine pass (seconds), the real operator at 10,000 pods (about 5 minutes,
``operator_bench``), enforcement latency at 1,000 budgets (about 3 minutes). The informer's own
sync bench (``informer_bench.py``) runs on its own.
"""

from __future__ import annotations

import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import enforcement_bench
import engine_bench
import operator_bench


def main() -> None:
    header = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
    }
    results = {
        "engine": engine_bench.main(),
        "operator_scale": operator_bench.main(),
        "enforcement": enforcement_bench.main(),
    }
    print(json.dumps({**header, **results}, indent=2, default=str))


if __name__ == "__main__":
    main()
