"""The real operator against the stand-in with 2,000 SkyPilot-style pods: API writes per minute.

The operator's clock runs ``SPEED`` times faster than the wall so the steady state (one spend
write per pod per annotation interval at most) is reached in a few minutes of real time.
Prints JSON; ``bench/run.py`` records it.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml
from tests import shapes

from costwarden.operator.app import OperatorThread
from costwarden.operator.settings import OperatorSettings
from costwarden.sim.testing import ThreadedSimCluster

PODS = 2000
PODS_PER_NODE = 8
SPEED = 2.0
WARMUP_S = 120.0
MEASURE_S = 120.0


class SpeedClock:
    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.start = datetime.now(UTC)
        self.m0 = time.monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self.m0) * self.speed)


def seed(cluster: ThreadedSimCluster, now: datetime) -> None:
    root = Path(__file__).resolve().parents[1]
    cluster.create(yaml.safe_load((root / "crds" / "costbudget.yaml").read_text()))
    namespaces = [f"team-{i}" for i in range(20)]
    for ns in namespaces:
        cluster.create(shapes.namespace(ns))
    for n in range(PODS // PODS_PER_NODE):
        cluster.create(shapes.eks_p5_node(f"node-{n}"))
    for p in range(PODS):
        ns = namespaces[p % len(namespaces)]
        body = shapes.skypilot_pod(
            f"job-{p // 4}-beef",
            f"job-{p // 4}",
            namespace=ns,
            node=f"node-{p // PODS_PER_NODE}",
            role="head" if p % 4 == 0 else "worker",
            index=p % 4,
            gpus=1,
            cpu="24",
            memory="256Gi",
        )
        name = cluster.create(body)["metadata"]["name"]
        cluster.patch(
            "v1", "pods", name, {"status": shapes.running_status(now)}, namespace=ns, subresource="status"
        )
    for i, ns in enumerate(namespaces):
        cluster.create(
            {
                "apiVersion": "costwarden.dev/v1alpha1",
                "kind": "CostBudget",
                "metadata": {"name": f"budget-{i}", "namespace": ns},
                "spec": {
                    "limit": 100000,
                    "period": "Monthly",
                    "thresholds": [{"percent": 80, "action": "Notify"}],
                },
            }
        )


def writes(operator: OperatorThread) -> float:
    total = 0.0
    for metric in operator.runtime.metrics.api_writes.collect():
        for sample in metric.samples:
            if (
                sample.name.endswith("_total")
                and sample.labels.get("kind") == "pod_annotation"
                and sample.labels.get("result") == "done"
            ):
                total += sample.value
    return total


def main() -> dict[str, Any]:
    clock = SpeedClock(SPEED)
    with ThreadedSimCluster() as cluster:
        t_seed = time.monotonic()
        seed(cluster, clock())
        seed_s = time.monotonic() - t_seed
        settings = OperatorSettings(
            kubeconfig=cluster.kubeconfig,
            interval=10,
            accrual_interval=10,
            metrics_port=0,
            annotation_interval=60,
            write_rate=50,
            write_burst=200,
        )
        with OperatorThread(settings, clock=clock) as operator:
            time.sleep(WARMUP_S)  # a benchmark's fixed observation window, not synchronisation
            before, t0, c0 = writes(operator), time.monotonic(), clock()
            time.sleep(MEASURE_S)
            after, t1, c1 = writes(operator), time.monotonic(), clock()
    simulated_minutes = (c1 - c0).total_seconds() / 60
    per_pod_per_min = (after - before) / PODS / simulated_minutes
    return {
        "pods": PODS,
        "speed": SPEED,
        "seed_seconds": round(seed_s, 1),
        "measured_real_seconds": round(t1 - t0, 1),
        "simulated_minutes": round(simulated_minutes, 2),
        "annotation_writes": after - before,
        "writes_per_pod_per_simulated_minute": round(per_pod_per_min, 3),
        "writes_per_real_minute": round((after - before) / ((t1 - t0) / 60), 1),
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
