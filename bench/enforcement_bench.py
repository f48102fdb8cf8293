"""Seconds from a threshold crossing (by the ledger's clock) to the DELETE reaching the API server.

1,000 budgets, one SkyPilot pod each, a Kill at 100 %, a 1 s evaluation interval. Each budget's
limit is set so that its spend crosses 100 % at a known instant spread over the run; the
stand-in runs in its own process and notes when each pod's DELETE first reaches it (10 ms polling).
Prints JSON; ``bench/run.py`` records it.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kmock
from tests import churn, shapes

from costwarden.crd import load_crd
from costwarden.operator.app import OperatorThread
from costwarden.operator.settings import OperatorSettings
from costwarden.records import format_time
from costwarden.sim.testing import ThreadedSimCluster

BUDGETS = int(os.environ.get("COSTWARDEN_BENCH_BUDGETS", "1000"))
STATUS_INTERVAL_S = float(os.environ.get("COSTWARDEN_BENCH_STATUS_INTERVAL", "10"))
NAMESPACES = 50
PODS_PER_NODE = 8
LEAD_S = 3600.0  # each pod started an hour before the run
FIRST_CROSS_S, LAST_CROSS_S = 30.0, 90.0
END_S = LAST_CROSS_S + 20.0


def pod_body(i: int) -> dict[str, Any]:
    body = shapes.skypilot_pod(
        f"job{i}-beef",
        f"job{i}",
        namespace=f"team-{i % NAMESPACES}",
        node=f"node-{i // PODS_PER_NODE}",
        gpus=1,
        cpu="24",
        memory="256Gi",
    )
    body["metadata"]["labels"]["budget"] = f"b{i}"
    return body


def seed(cluster: ThreadedSimCluster, t0: datetime) -> dict[str, datetime]:
    """Create everything; returns pod name -> the instant its budget crosses 100 %."""
    cluster.create(load_crd())
    for n in range(NAMESPACES):
        cluster.create(shapes.namespace(f"team-{n}"))
    crossings = {}
    for n in range((BUDGETS + PODS_PER_NODE - 1) // PODS_PER_NODE):
        cluster.create(shapes.eks_p5_node(f"node-{n}"))
    started = t0 - timedelta(seconds=LEAD_S)
    for i in range(BUDGETS):
        body = pod_body(i)
        ns = body["metadata"]["namespace"]
        name = cluster.create(body)["metadata"]["name"]
        status = {"status": shapes.running_status(started)}
        created = cluster.patch("v1", "pods", name, status, namespace=ns, subresource="status")
        rate = churn.hourly_rate(created, cluster.get("v1", "nodes", body["spec"]["nodeName"]) or {})
        cross_after = FIRST_CROSS_S + (LAST_CROSS_S - FIRST_CROSS_S) * i / BUDGETS
        limit = churn.crossing_limit(rate, LEAD_S + cross_after)
        crossings[name] = t0 + timedelta(seconds=cross_after)
        cluster.create(
            {
                "apiVersion": "costwarden.dev/v1alpha1",
                "kind": "CostBudget",
                "metadata": {"name": f"b{i}", "namespace": ns},
                "spec": {
                    "limit": float(limit),
                    "selector": {"matchLabels": {"budget": f"b{i}"}},
                    "thresholds": [{"percent": 100, "action": "Kill"}],
                    "enforcement": {"gracePeriodSeconds": 0},
                },
            }
        )
    return crossings


def serve_cluster(kubeconfig: str, t0: datetime, results: Any, stop: Any) -> None:
    """The stand-in in its own process (as a real API server is): seed, then note each DELETE."""
    with ThreadedSimCluster(Path(kubeconfig)) as cluster:
        crossings = seed(cluster, t0)
        results.put(("seeded", None))
        seen: dict[str, datetime] = {}
        while not stop.is_set():
            now = datetime.now(UTC)
            # Requests are logged as they complete, concurrent ones out of order: match by name.
            for request in list(cluster.cluster.emulator["delete", kmock.resource("", "v1", "pods")]):
                seen.setdefault(str(request.name), now)
            stop.wait(0.01)
        left = sum(len(cluster.list("v1", "pods", namespace=f"team-{n}")) for n in range(NAMESPACES))
        missed = sorted((crossings[name] - t0).total_seconds() for name in crossings if name not in seen)
        results.put(("done", ({name: (crossings[name], at) for name, at in seen.items()}, missed, left)))


def main() -> dict[str, Any]:
    context = multiprocessing.get_context("fork")
    results, stop = context.Queue(), context.Event()
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = str(Path(tmp) / "kubeconfig")
        t_seed = time.monotonic()
        # Whole seconds: pod start times are stored with second precision (RFC 3339 as written).
        t0 = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=60)
        server = context.Process(target=serve_cluster, args=(kubeconfig, t0, results, stop), daemon=True)
        server.start()
        assert results.get(timeout=120)[0] == "seeded"
        seed_s = time.monotonic() - t_seed
        settings = OperatorSettings(
            kubeconfig=Path(kubeconfig),
            interval=1.0,
            accrual_interval=5.0,
            status_interval=STATUS_INTERVAL_S,
            metrics_port=0,
            max_destructive_per_minute=10_000,
        )
        with OperatorThread(settings) as operator:
            while datetime.now(UTC) < t0 + timedelta(seconds=FIRST_CROSS_S):
                time.sleep(0.5)  # a benchmark's observation window, not synchronisation
            passes_before, at_before = evaluations(operator), time.monotonic()
            while datetime.now(UTC) < t0 + timedelta(seconds=END_S):
                time.sleep(0.5)
            throughput = (evaluations(operator) - passes_before) / (time.monotonic() - at_before)
        stop.set()
        _, (seen, missed, pods_left) = results.get(timeout=60)
        server.join(10)
    latencies = sorted((at - crossed).total_seconds() for crossed, at in seen.values())
    early = sum(1 for value in latencies if value < 0)
    p99 = latencies[int(0.99 * (len(latencies) - 1))] if latencies else None
    return {
        "budgets": BUDGETS,
        "interval_s": 1.0,
        "status_interval_s": STATUS_INTERVAL_S,
        "seed_seconds": round(seed_s, 1),
        "killed": len(latencies),
        "killed_before_crossing": early,
        "not_killed": len(missed),
        "pods_left_at_end": pods_left,
        "not_killed_crossing_offsets_s": [round(m, 1) for m in missed[:10]],
        "median_s": round(statistics.median(latencies), 3) if latencies else None,
        "p99_s": round(p99, 3) if p99 is not None else None,
        "max_s": round(latencies[-1], 3) if latencies else None,
        "min_s": round(latencies[0], 3) if latencies else None,
        "first_crossing": format_time(t0 + timedelta(seconds=FIRST_CROSS_S)),
        "budget_evaluations_per_s": round(throughput, 1),
        "needed_per_s": BUDGETS / 1.0,
    }


def evaluations(operator: OperatorThread) -> float:
    for metric in operator.runtime.metrics.evaluations.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                return sample.value
    return 0.0


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
