"""ScrapeSource: dcgm-exporter pages and node-agent pages fetched straight from stand-in pods;
a failing target is named in the reading while the others still count."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from costwarden.records import PodRecord
from costwarden.telemetry import agent_metrics
from costwarden.telemetry.factory import sources_from_settings
from costwarden.telemetry.samples import uid_key
from costwarden.telemetry.scrape import ScrapeSource
from costwarden.telemetry.series import NO_POD
from tests.dcgm_pages import Gpu, page
from tests.prometheus_server import Pages, free_port

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def pages() -> Iterator[Pages]:
    with Pages() as served:
        yield served


def dcgm_source(urls: list[str], timeout_s: float = 2) -> ScrapeSource:
    return ScrapeSource.dcgm_exporters(lambda: urls, "app=nvidia-dcgm-exporter", timeout_s=timeout_s)


async def test_dcgm_exporter_pages_give_usage_per_pod(pages: Pages) -> None:
    pages.set("/a", page([Gpu(0, "GPU-a0", "research", "head", util=97), Gpu(1, "GPU-a1", util=0)]))
    pages.set(
        "/b", page([Gpu(0, "GPU-b0", "research", "head", util=91), Gpu(1, "GPU-b1", "ml", "w", util=3)])
    )
    reading = await dcgm_source([pages.url("/a"), pages.url("/b")]).sample(NOW)
    assert reading.error is None
    assert reading.source == "dcgm-exporter pods app=nvidia-dcgm-exporter"
    assert {key: (u.utilization, u.gpus, u.at) for key, u in reading.pods.items()} == {
        ("research", "head"): (Decimal(94), 2, NOW),  # a pod's GPUs on two nodes' exporters fold together
        ("ml", "w"): (Decimal(3), 1, NOW),
    }
    assert reading.skipped == {NO_POD: 3}


async def test_failing_targets_are_named_and_the_others_still_count(pages: Pages) -> None:
    pages.set("/good", page([Gpu(0, "GPU-0", "research", "head", util=50)]))
    pages.set("/down", "", status=503)
    pages.set("/garbage", 'DCGM_FI_DEV_GPU_UTIL{gpu="0" oops\n')
    pages.set("/slow", page([Gpu(0, "GPU-9", "research", "other", util=1)]), delay=2.0)
    closed = f"http://127.0.0.1:{free_port()}/metrics"
    urls = [pages.url("/good"), pages.url("/down"), pages.url("/garbage"), pages.url("/slow"), closed]
    reading = await dcgm_source(urls, timeout_s=0.5).sample(NOW)
    assert set(reading.pods) == {("research", "head")}
    assert reading.error is not None
    assert reading.error.startswith("dcgm-exporter pods app=nvidia-dcgm-exporter: 4 of 5 targets failed: ")
    for part in (
        f"{pages.url('/down')}: HTTP 503",
        f"{pages.url('/garbage')}: unparsable exposition",
        f"{pages.url('/slow')}: no answer within 0.5s",
        f"{closed}: ClientConnectorError",
    ):
        assert part in reading.error


async def test_no_targets_or_failing_target_lists_are_errors_not_exceptions() -> None:
    empty = await dcgm_source([]).sample(NOW)
    assert (empty.pods, empty.error) == ({}, "dcgm-exporter pods app=nvidia-dcgm-exporter: no targets")

    def broken() -> list[str]:
        raise RuntimeError("index not ready")

    failing = await ScrapeSource.agents(broken, "app=costwarden-agent").sample(NOW)
    assert (
        failing.error
        == "costwarden agents app=costwarden-agent: cannot list targets: RuntimeError: index not ready"
    )


async def test_many_failures_are_counted_beyond_the_first_few(pages: Pages) -> None:
    urls = [pages.url(f"/missing-{i}") for i in range(8)]
    reading = await dcgm_source(urls).sample(NOW)
    assert reading.error is not None
    assert reading.error.count("HTTP 404") == 5 and reading.error.endswith("; and 3 more")


def agent_page(last_pass: datetime) -> str:
    registry = CollectorRegistry()
    labels = ["namespace", "pod", "pod_uid", "gpu"]
    util = Gauge(agent_metrics.UTILIZATION, "GPU utilisation", labels, registry=registry)
    memory = Gauge(agent_metrics.MEMORY_USED, "memory", labels, registry=registry)
    power = Gauge(agent_metrics.POWER, "power", labels, registry=registry)
    for gpu, pod, value in (("GPU-0", "trial-0", 0.0), ("GPU-1", "trial-1", 88.0), ("GPU-2", "", 0.0)):
        names = ["sweep" if pod else "", pod, f"uid-{pod}" if pod else "", gpu]
        util.labels(*names).set(value)
        memory.labels(*names).set(2**30)
        power.labels(*names).set(80.5)
    Gauge(agent_metrics.LAST_SAMPLE, "last pass", registry=registry).set(last_pass.timestamp())
    return generate_latest(registry).decode()


async def test_agents_found_through_the_pod_index_are_scraped(pages: Pages) -> None:
    last_pass = NOW - timedelta(seconds=7)
    pages.set("/metrics", agent_page(last_pass))
    host, port = pages.address.split(":")
    agent = PodRecord.from_body(
        {
            "metadata": {
                "name": "costwarden-agent-q8z2",
                "labels": {"app.kubernetes.io/name": "costwarden-agent"},
            },
            "status": {"phase": "Running", "podIP": host},
        }
    )
    (source,) = sources_from_settings(
        agent_selector="app.kubernetes.io/name=costwarden-agent", pods=lambda: [agent], agent_port=int(port)
    )
    reading = await source.sample(NOW)
    assert reading.error is None
    assert {
        key: (u.utilization, u.at, u.memory_used_bytes, u.power_watts) for key, u in reading.pods.items()
    } == {
        uid_key("uid-trial-0"): (Decimal(0), last_pass, 2**30, Decimal("80.5")),
        uid_key("uid-trial-1"): (Decimal(88), last_pass, 2**30, Decimal("80.5")),
    }  # keyed by the pod uid the agent read from each process's cgroup


async def test_a_page_past_the_size_bound_is_a_failed_target_not_memory(pages: Pages) -> None:
    big = page([Gpu(i, f"GPU-{i}", "research", f"pod-{i}", util=50) for i in range(40)])
    pages.set("/big", big)
    pages.set("/small", page([Gpu(0, "GPU-s", "research", "head", util=7)]))
    urls = [pages.url("/big"), pages.url("/small")]
    source = ScrapeSource.dcgm_exporters(lambda: urls, "app=dcgm", timeout_s=2, max_page_bytes=len(big) // 2)
    reading = await source.sample(datetime.now(UTC))
    assert reading.error is not None and "page larger than" in reading.error and "/big" in reading.error
    assert set(reading.pods) == {("research", "head")}
