"""PrometheusSource against a real Prometheus server (Debian's package) scraping pages printed as
dcgm-exporter and vLLM print them, for stand-in pods; and against broken answers.

Prometheus scrapes two stand-in dcgm-exporters: one plainly (its pod labels kept), one through a
target that carries its own ``pod``/``namespace`` labels with ``honor_labels: false``, so that
Prometheus itself renames the exporter's labels to ``exported_pod``/``exported_namespace``. It
also scrapes two stand-in vLLM servers, labelled with their pods as a PodMonitor would.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from costwarden.telemetry import dcgm
from costwarden.telemetry.prometheus import PrometheusSource, QueryError
from costwarden.telemetry.series import NO_POD
from tests.dcgm_pages import Gpu, page
from tests.prometheus_server import Pages, PrometheusServer

# Installing Prometheus (first test of a fresh machine) may take minutes; each wait has its own deadline.
pytestmark = pytest.mark.timeout(900)

T = TypeVar("T")
H100 = "GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52"
EXPORTER_POD = {"pod": "nvidia-dcgm-exporter-x7k2p", "namespace": "gpu-operator"}
VLLM_MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def node_a(head_util: tuple[int, int] = (97, 91)) -> list[Gpu]:
    return [
        Gpu(0, "GPU-a0", "research", "sweep-head", "ray", util=head_util[0], fb_used_mib=40000),
        Gpu(1, "GPU-a1", "research", "sweep-head", "ray", util=head_util[1], fb_used_mib=38000),
        Gpu(2, "GPU-a2", "research", "sweep-worker1", "ray", util=0, engine_active=Decimal(0)),
        Gpu(3, "GPU-a3", util=0),  # no pod uses it
        Gpu(
            4,
            H100,
            "inference",
            "vllm-0",
            "vllm",
            util=None,
            engine_active=Decimal("0.42"),
            mig_profile="3g.40gb",
            mig_instance=1,
        ),
    ]


def node_b() -> list[Gpu]:
    return [
        Gpu(0, "GPU-b0", "ml", "trainer", "main", util=55, power_w=Decimal("301.25"), hostname="gpu-node-b"),
        Gpu(1, "GPU-b1", util=0, hostname="gpu-node-b"),  # free: its pod label becomes the exporter's
    ]


class Vllm:
    """A stand-in vLLM server's counters, printed by prometheus-client as vLLM's are."""

    def __init__(self, engines: int) -> None:
        self.registry = CollectorRegistry()
        self.tokens = Counter(
            "vllm:generation_tokens",
            "Number of generation tokens processed.",
            ["engine", "model_name"],
            registry=self.registry,
        )
        self.engines = engines
        for engine in range(engines):
            self.tokens.labels(str(engine), VLLM_MODEL).inc(0)

    def generate(self, tokens: int) -> None:
        for engine in range(self.engines):
            self.tokens.labels(str(engine), VLLM_MODEL).inc(tokens)

    def page(self) -> str:
        return generate_latest(self.registry).decode()


@pytest.fixture
def stand_ins() -> Iterator[tuple[Pages, Vllm, Vllm]]:
    with Pages() as pages:
        pages.set("/node-a/metrics", page(node_a()))
        pages.set("/node-b/metrics", page(node_b()))
        vllm_a, vllm_b = Vllm(engines=2), Vllm(engines=1)
        vllm_a.generate(600)
        vllm_b.generate(250)
        pages.set("/vllm-a/metrics", vllm_a.page())
        pages.set("/vllm-b/metrics", vllm_b.page())
        yield pages, vllm_a, vllm_b


@pytest.fixture
def prometheus(
    prometheus_path: str, stand_ins: tuple[Pages, Vllm, Vllm], tmp_path: Path
) -> Iterator[PrometheusServer]:
    pages = stand_ins[0]

    def job(name: str, path: str, labels: dict[str, str] | None = None, **options: Any) -> dict[str, Any]:
        target: dict[str, Any] = {"targets": [pages.address]}
        if labels:
            target["labels"] = labels
        return {"job_name": name, "metrics_path": path, "static_configs": [target], **options}

    server = PrometheusServer(
        prometheus_path,
        tmp_path,
        [
            job("dcgm-node-a", "/node-a/metrics", honor_labels=True),
            job("dcgm-node-b", "/node-b/metrics", EXPORTER_POD),
            job("vllm-a", "/vllm-a/metrics", {"pod": "vllm-a-5d9f", "namespace": "inference"}),
            job("vllm-b", "/vllm-b/metrics", {"pod": "vllm-b-77c1", "namespace": "inference"}),
        ],
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def eventually(
    read: Callable[[], Awaitable[T]], holds: Callable[[T], bool], within: float, what: str
) -> T:
    """Read until ``holds``; fail naming ``what`` and the last value after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await read()
        if holds(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}; last: {value!r}")
        await asyncio.sleep(0.2)


def now() -> datetime:
    return datetime.now(UTC)


EXPECTED_PODS = {
    ("research", "sweep-head"),
    ("research", "sweep-worker1"),
    ("inference", "vllm-0"),
    ("ml", "trainer"),
}


async def test_gpu_usage_per_pod_reads_back_through_a_real_prometheus(
    prometheus: PrometheusServer, stand_ins: tuple[Pages, Vllm, Vllm]
) -> None:
    pages = stand_ins[0]
    source = PrometheusSource(prometheus.url, timeout_s=5)
    started = now()
    reading = await eventually(
        lambda: source.sample(now()), lambda r: set(r.pods) == EXPECTED_PODS, 30, "every stand-in pod"
    )
    assert reading.error is None
    assert reading.source == f"prometheus {prometheus.url}"
    head = reading.pods[("research", "sweep-head")]
    assert (head.utilization, head.gpus, head.memory_used_bytes) == (Decimal(94), 2, 78000 * 1024 * 1024)
    assert reading.pods[("research", "sweep-worker1")].utilization == 0
    mig = reading.pods[("inference", "vllm-0")]
    assert (mig.utilization, mig.gpus) == (Decimal(42), 1)  # engine activity 0.42, MIG instance 1
    trainer = reading.pods[("ml", "trainer")]  # named by exported_pod/exported_namespace
    assert (trainer.utilization, trainer.power_watts) == (Decimal(55), Decimal("301.25"))
    # the free GPUs: node-a's without a pod, node-b's carrying the exporter's own pod label
    assert reading.skipped[NO_POD] >= 3 and reading.skipped[dcgm.TARGET_POD] >= 3
    assert ("gpu-operator", "nvidia-dcgm-exporter-x7k2p") not in reading.pods
    # each figure carries the time Prometheus scraped it, not the time of the query
    for usage in reading.pods.values():
        assert started - timedelta(seconds=5) <= usage.at <= now()

    pages.set("/node-a/metrics", page(node_a(head_util=(3, 5))))
    after = await eventually(
        lambda: source.sample(now()),
        lambda r: (
            ("research", "sweep-head") in r.pods and r.pods[("research", "sweep-head")].utilization == 4
        ),
        30,
        "the head's new utilisation",
    )
    assert after.pods[("research", "sweep-head")].at > head.at


async def test_a_stopped_prometheus_gives_error_readings_never_an_exception(
    prometheus: PrometheusServer,
) -> None:
    source = PrometheusSource(prometheus.url, timeout_s=2)
    await eventually(lambda: source.sample(now()), lambda r: bool(r.pods), 30, "a first reading")

    prometheus.stop()

    at = now()
    reading = await source.sample(at)
    assert (reading.pods, reading.at, reading.source) == ({}, at, source.name)
    assert reading.error is not None
    assert reading.error.startswith(f"prometheus {prometheus.url}: cannot query: ClientConnectorError")
    counters = await source.counters("vllm:generation_tokens_total", at)
    assert counters.values == {} and counters.error is not None and "cannot query" in counters.error


async def test_counters_per_pod_from_stand_in_vllm_servers(
    prometheus: PrometheusServer, stand_ins: tuple[Pages, Vllm, Vllm]
) -> None:
    pages, _, vllm_b = stand_ins
    source = PrometheusSource(prometheus.url)
    expected = {("inference", "vllm-a-5d9f"): Decimal(1200), ("inference", "vllm-b-77c1"): Decimal(250)}
    reading = await eventually(
        lambda: source.counters("vllm:generation_tokens_total", now()),
        lambda r: dict(r.values) == expected,
        30,
        "both vLLM pods' token counters (vllm-a summed over its two engines)",
    )
    assert reading.error is None and reading.source == source.name

    vllm_b.generate(50)
    pages.set("/vllm-b/metrics", vllm_b.page())
    await eventually(
        lambda: source.counters("vllm:generation_tokens_total", now()),
        lambda r: r.values.get(("inference", "vllm-b-77c1")) == Decimal(300),
        30,
        "vllm-b's counter to grow",
    )

    missing = await source.counters("vllm:request_success_total", now())
    assert (missing.values, missing.error) == ({}, None)
    bad = await source.counters('x"} or vector(1) #', now())
    assert bad.error is not None and "not a Prometheus metric name" in bad.error


async def test_a_query_prometheus_refuses_is_an_error_with_its_reason(prometheus: PrometheusServer) -> None:
    source = PrometheusSource(prometheus.url)
    with pytest.raises(QueryError, match=r"^HTTP 400: bad_data: "):
        await source.query("sum(")


# --- answers that are not what the API documents (no Prometheus needed) ----------------------


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (
            {"text": '{"status":"error","errorType":"unavailable","error":"TSDB not ready"}', "status": 503},
            "HTTP 503: unavailable: TSDB not ready",
        ),
        ({"text": "<html>Bad Gateway</html>", "status": 502}, "HTTP 502: '<html>Bad Gateway</html>'"),
        ({"text": "<html>sign in</html>"}, "answer is not JSON: '<html>sign in</html>'"),
        (
            {"text": '{"status":"error","errorType":"timeout","error":"query timed out"}'},
            "query failed: timeout: ",
        ),
        ({"text": '{"status":"success","data":{"resultType":"matrix"}}'}, "answer has no data.result list"),
        ({"text": "[1, 2]"}, "query failed: '[1, 2]'"),
        ({"text": "", "delay": 2.0}, "no answer within 0.5s"),
    ],
)
async def test_broken_answers_are_error_readings(answer: dict[str, Any], error: str) -> None:
    with Pages() as pages:
        pages.set("/prom/api/v1/query", content_type="application/json", **answer)
        source = PrometheusSource(pages.url("/prom/"), timeout_s=0.5)
        reading = await source.sample(now())
        counters = await source.counters("vllm:generation_tokens_total", now())
    assert reading.pods == {} and counters.values == {}
    assert reading.error is not None and reading.error.startswith(f"prometheus {pages.url('/prom')}: {error}")
    assert counters.error == reading.error


async def test_malformed_result_entries_are_counted_and_the_rest_read() -> None:
    good = {
        "metric": {"__name__": dcgm.GPU_UTIL, "UUID": "GPU-a", "pod": "p", "namespace": "n"},
        "values": [[1764590400, "10"], [1764590401.5, "30"]],
    }
    entries = [
        good,
        {"metric": "x"},
        {"metric": {}, "value": [1, 2, 3]},
        {"metric": {}, "value": ["t", "1"]},
        7,
    ]
    text = '{"status":"success","data":{"resultType":"matrix","result":' + json.dumps(entries) + "}}"
    with Pages() as pages:
        pages.set("/api/v1/query", text)
        reading = await PrometheusSource(pages.url("")).sample(now())
    assert reading.error is None
    usage = reading.pods[("n", "p")]
    assert (usage.utilization, usage.at) == (Decimal(30), datetime(2025, 12, 1, 12, 0, 1, 500000, tzinfo=UTC))
    assert reading.skipped == {"malformed result entry": 4}


async def test_an_unreachable_host_is_an_error_reading() -> None:
    source = PrometheusSource("http://127.0.0.1:9", timeout_s=1)
    reading = await source.sample(now())
    assert reading.error is not None and reading.error.startswith(
        "prometheus http://127.0.0.1:9: cannot query"
    )
