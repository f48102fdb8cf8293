"""The idle-GPU guardrail end to end: dcgm-exporter pages scraped by a real Prometheus (Debian's
package), queried by the real operator. The idle replica is killed and the busy ones are not;
with Prometheus stopped nothing is killed and the budget says why; unit economics from stand-in
vLLM counters scraped by the same Prometheus.

Prometheus stamps samples with the wall clock, so the operator's clock starts at the wall clock
(and is advanced by hand past the idle rule's minutes); ``telemetry_stale_after`` is long enough
that a sample stays fresh across those jumps.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from costwarden.models import CostBudgetStatus
from costwarden.records import format_time
from tests import shapes
from tests.clock import ManualClock
from tests.component.test_enforcement import CB, idle_budget, pod_names, record
from tests.component.test_operator_spend import NS, status_of
from tests.component.test_telemetry_prometheus import Vllm
from tests.dcgm_pages import Gpu, page
from tests.prometheus_server import Pages, PrometheusServer

pytestmark = pytest.mark.timeout(900)  # the first test of a fresh machine installs Prometheus

TRIALS = ("trial0-beef-head", "trial1-beef-head", "trial2-beef-head")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        return str(answer.read().decode())


def condition(name: str, cluster: Any) -> dict[str, Any]:
    conditions = status_of(cluster, name).get("conditions", [])
    return next((c for c in conditions if c["type"] == "TelemetryUnavailable"), {})


def seed(cluster: Any, started: datetime) -> None:
    cluster.create(shapes.namespace(NS))
    for index, name in enumerate(TRIALS):
        node = f"ip-10-0-4-{index}.ec2.internal"
        cluster.create(shapes.eks_p5_node(node))
        pod = shapes.skypilot_pod(
            name.removesuffix("-head"), f"trial{index}", namespace=NS, node=node, gpus=1
        )
        pod["metadata"]["labels"]["sweep"] = "lr"
        cluster.create(pod)
        cluster.patch(
            "v1", "pods", name, {"status": shapes.running_status(started)}, namespace=NS, subresource="status"
        )
    cluster.create(shapes.eks_p5_node("ip-10-0-4-9.ec2.internal"))
    server = shapes.skypilot_pod("serve-7a1c", "serve", namespace=NS, node="ip-10-0-4-9.ec2.internal")
    server["metadata"]["name"] = "vllm-0"
    server["metadata"]["labels"]["app"] = "vllm"
    cluster.create(server)
    cluster.patch(
        "v1", "pods", "vllm-0", {"status": shapes.running_status(started)}, namespace=NS, subresource="status"
    )
    cluster.create(idle_budget(for_minutes=1))
    cluster.create(
        {
            "apiVersion": CB,
            "kind": "CostBudget",
            "metadata": {"name": "serve", "namespace": NS},
            "spec": {
                "limit": 100_000,
                "selector": {"matchLabels": {"app": "vllm"}},
                "unitEconomics": {"counter": "vllm:generation_tokens_total", "unit": "token"},
            },
        }
    )


@pytest.fixture
def stand_ins() -> Iterator[tuple[Pages, Vllm]]:
    with Pages() as pages:
        gpus = [
            Gpu(i, f"GPU-{i}", NS, name, "ray", util=0 if i == 0 else 97) for i, name in enumerate(TRIALS)
        ]
        pages.set("/dcgm/metrics", page(gpus))
        vllm = Vllm(engines=1)
        pages.set("/vllm/metrics", vllm.page())
        yield pages, vllm


def test_idle_replica_killed_busy_kept_nothing_killed_blind_and_cost_per_token(
    cluster,
    clock,
    start_operator,
    stand_ins,
    prometheus_path,
    tmp_path: Path,
):
    pages, vllm = stand_ins
    jobs = [
        {
            "job_name": "dcgm",
            "metrics_path": "/dcgm/metrics",
            "honor_labels": True,
            "static_configs": [{"targets": [pages.address]}],
        },
        {
            "job_name": "vllm",
            "metrics_path": "/vllm/metrics",
            "static_configs": [{"targets": [pages.address], "labels": {"namespace": NS, "pod": "vllm-0"}}],
        },
    ]
    prometheus = PrometheusServer(prometheus_path, tmp_path, jobs).start()
    try:
        seed(cluster, clock())
        operator = start_operator(
            prometheus_url=prometheus.url, telemetry_interval=0.5, telemetry_stale_after=600
        )
        cluster.wait_for(lambda: status_of(cluster, "sweep").get("gpuUtilization") == 64.7, timeout=30)
        assert condition("sweep", cluster)["reason"] == "Fresh"
        metrics = scrape(operator.settings.metrics_port)
        assert (
            'costwarden_budget_gpu_utilization_percent{budget="sweep",namespace="research"} 64.66' in metrics
        )
        assert (
            'costwarden_pod_gpu_utilization_percent{namespace="research",pod="trial0-beef-head"} 0.0'
            in metrics
        )
        cluster.wait_for(
            lambda: len(CostBudgetStatus.model_validate(status_of(cluster, "sweep")).ledger.idle_since) == 1,
            timeout=20,
        )

        # Prometheus goes away: the idle pod's minute passes, but nobody can see it: no kill.
        prometheus.stop()
        cluster.wait_for(lambda: condition("sweep", cluster).get("reason") == "SourceFailed", timeout=30)
        assert prometheus.url in condition("sweep", cluster)["message"]
        clock.advance(timedelta(minutes=2))
        blind = format_time(clock())
        cluster.wait_for(lambda: status_of(cluster, "sweep").get("lastEvaluated") == blind, timeout=20)
        assert pod_names(cluster) == sorted([*TRIALS, "vllm-0"])
        assert record(cluster, "anomaly/idleGpu", "sweep") == {}

        # Back: the idle pod, idle since before the outage, is killed; the busy ones are not.
        prometheus.start()
        cluster.wait_for(
            lambda: record(cluster, "anomaly/idleGpu", "sweep").get("result") == "Done", timeout=60
        )
        assert pod_names(cluster) == sorted([TRIALS[1], TRIALS[2], "vllm-0"])

        # Units of work: the first value sets the baseline, then 1,500 tokens are generated.
        cluster.wait_for(
            lambda: CostBudgetStatus.model_validate(status_of(cluster, "serve")).ledger.counters, timeout=30
        )
        assert status_of(cluster, "serve")["unitEconomics"] == {"unit": "token", "count": 0}
        vllm.generate(1500)
        pages.set("/vllm/metrics", vllm.page())
        cluster.wait_for(lambda: status_of(cluster, "serve")["unitEconomics"]["count"] == 1500, timeout=30)
        units = status_of(cluster, "serve")["unitEconomics"]
        spend = status_of(cluster, "serve")["spend"]
        assert spend > 1  # a p5 for two minutes and more
        assert units["costPerMillion"] == pytest.approx(spend / 1500 * 1_000_000, rel=1e-2)
    finally:
        prometheus.stop()
