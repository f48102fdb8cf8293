"""costwarden's node-agent metrics, as prometheus-client prints them, read back as GPU samples."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from costwarden.agent import command as agent_command
from costwarden.agent import exporter as agent_exporter
from costwarden.telemetry import agent_metrics, exposition
from costwarden.telemetry.factory import AGENT_PORT
from costwarden.telemetry.samples import GpuSample, pod_usage, uid_key
from costwarden.telemetry.series import NO_POD, Series

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PASS = datetime(2026, 11, 26, 11, 59, 50, tzinfo=UTC)
LABELS = ["namespace", "pod", "pod_uid", "gpu"]


class AgentLike:
    """A collector printing what the agent's docstring promises (names, labels, last pass)."""

    def __init__(self, rows: list[tuple[list[str], float, float, float]], last_pass: float | None) -> None:
        self.rows = rows
        self.last_pass = last_pass

    def collect(self) -> Iterator[Metric]:
        util = GaugeMetricFamily(agent_metrics.UTILIZATION, "GPU utilisation", labels=LABELS)
        memory = GaugeMetricFamily(agent_metrics.MEMORY_USED, "memory", labels=LABELS)
        power = GaugeMetricFamily(agent_metrics.POWER, "power", labels=LABELS)
        for labels, u, m, p in self.rows:
            util.add_metric(labels, u)
            memory.add_metric(labels, m)
            power.add_metric(labels, p)
        yield from (util, memory, power)
        if self.last_pass is not None:
            yield GaugeMetricFamily(agent_metrics.LAST_SAMPLE, "last pass", value=self.last_pass)


def agent_page(rows: list[tuple[list[str], float, float, float]], last_pass: float | None) -> str:
    registry = CollectorRegistry()
    registry.register(AgentLike(rows, last_pass))
    return generate_latest(registry).decode()


def read(text: str) -> agent_metrics.Parsed:
    series, error = exposition.parse(text, agent_metrics.METRICS)
    assert error is None
    return agent_metrics.gpu_samples(series, NOW)


def test_the_agents_page_reads_back_at_the_agents_last_pass() -> None:
    text = agent_page(
        [
            (["research", "sweep-head", "uid-1", "GPU-a"], 97.0, 4.0e10, 612.5),
            (["research", "sweep-head", "uid-1", "GPU-b"], 93.0, 3.9e10, 600.0),
            (["research", "sweep-worker1", "uid-2", "GPU-c"], 0.0, 1.0e9, 70.25),
            (["", "", "", "GPU-d"], 0.0, 0.0, 60.0),  # a GPU with no process in a pod
        ],
        PASS.timestamp(),
    )
    parsed = read(text)
    assert GpuSample("", "uid-2", "GPU-c", Decimal(0), PASS, 1_000_000_000, Decimal("70.25")) in (
        parsed.samples
    )
    usage = pod_usage(parsed.samples)
    head = usage[uid_key("uid-1")]  # keyed by the uid the agent read from the cgroup
    assert (head.utilization, head.gpus, head.at, head.memory_used_bytes) == (
        Decimal(95),
        2,
        PASS,
        79_000_000_000,
    )
    assert set(usage) == {uid_key("uid-1"), uid_key("uid-2")}
    assert parsed.skipped == {NO_POD: 3}


def test_a_series_without_a_uid_is_keyed_by_its_pod_labels() -> None:
    parsed = read(agent_page([(["research", "sweep-head", "", "GPU-a"], 97.0, 1.0, 1.0)], PASS.timestamp()))
    assert [(s.namespace, s.pod) for s in parsed.samples] == [("research", "sweep-head")]


def test_without_a_last_pass_the_samples_are_from_now() -> None:
    parsed = read(agent_page([(["a", "b", "u", "GPU-x"], 5.0, 1.0, 1.0)], None))
    assert [s.at for s in parsed.samples] == [NOW]


def test_garbage_agent_values_are_left_out_with_reasons() -> None:
    labels = {"namespace": "a", "pod": "b", "gpu": "GPU-x"}
    series = [
        Series(agent_metrics.UTILIZATION, labels, 140.0),
        Series(agent_metrics.UTILIZATION, {**labels, "gpu": "GPU-y"}, float("nan")),
        Series(agent_metrics.MEMORY_USED, {**labels, "gpu": "GPU-y"}, -1),
        Series(agent_metrics.POWER, {**labels, "gpu": "GPU-z"}, 50),
        Series(agent_metrics.UTILIZATION, {"namespace": "a", "pod": "b"}, 5),
        Series(agent_metrics.LAST_SAMPLE, {}, "NaN"),
    ]
    parsed = agent_metrics.gpu_samples(series, NOW)
    assert parsed.samples == ()
    assert parsed.skipped == {
        f"{agent_metrics.UTILIZATION}: above 100 %": 1,
        f"{agent_metrics.UTILIZATION}: not a finite number": 1,
        f"{agent_metrics.MEMORY_USED}: negative": 1,
        agent_metrics.NO_UTILIZATION: 1,
        "no gpu label": 1,
    }


def test_the_operator_reads_the_names_and_port_the_agent_serves() -> None:
    """The agent may not import the operator's telemetry package (a layer below it), so the
    contract is held here: same metric names, same default port."""
    assert (agent_metrics.UTILIZATION, agent_metrics.MEMORY_USED, agent_metrics.POWER) == (
        agent_exporter.UTILIZATION,
        agent_exporter.MEMORY,
        agent_exporter.POWER,
    )
    assert agent_metrics.LAST_SAMPLE == agent_exporter.LAST_SAMPLE
    assert AGENT_PORT == agent_command.DEFAULT_PORT
