"""GPU telemetry in the engine: freshness, utilisation, waste, units of work, and the
TelemetryUnavailable condition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from costwarden.engine.gpu import (
    GpuReading,
    Telemetry,
    cost_per_million,
    counter_increase,
    gpu_utilization,
    telemetry_condition,
    wasted_increase,
)
from costwarden.models import parse_spec
from costwarden.records import PodRecord
from tests.unit.budget_harness import Budget

NOW = datetime(2026, 11, 3, 10, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def gpu_pod(name: str, gpus: int = 8, utilization: str | None = None) -> PodRecord:
    annotations = {"costwarden.dev/gpu-utilization": utilization} if utilization is not None else {}
    return PodRecord.from_body(
        {
            "metadata": {
                "name": name,
                "namespace": "research",
                "uid": f"uid-{name}",
                "annotations": annotations,
            },
            "spec": {
                "nodeName": "n",
                "containers": [{"name": "c", "resources": {"requests": {"nvidia.com/gpu": str(gpus)}}}],
            },
            "status": {"phase": "Running", "startTime": "2026-11-03T00:00:00Z"},
        }
    )


def telemetry(**readings: tuple[str, datetime]) -> Telemetry:
    return Telemetry(
        readings={f"uid-{n}": GpuReading(Decimal(u), at) for n, (u, at) in readings.items()},
        stale_after=2 * MINUTE,
        configured=True,
    )


def test_a_reading_is_fresh_within_stale_after_on_either_side_of_now():
    seen = telemetry(a=("3", NOW - MINUTE), b=("3", NOW - 3 * MINUTE), c=("3", NOW + MINUTE))
    assert seen.utilization("uid-a", NOW) == Decimal(3)
    assert seen.utilization("uid-b", NOW) is None  # stale: unknown, not idle
    assert seen.utilization("uid-c", NOW) == Decimal(3)  # the source's clock runs a little ahead
    assert seen.utilization("uid-missing", NOW) is None
    assert Telemetry(readings=seen.readings).utilization("uid-a", NOW) is None  # no source configured


def test_utilisation_is_weighted_by_gpus_over_fresh_readings_only():
    pods = [gpu_pod("a", 6), gpu_pod("b", 2), gpu_pod("c", 8), gpu_pod("cpu", 0)]
    seen = telemetry(a=("0", NOW), b=("100", NOW), c=("50", NOW - 10 * MINUTE), cpu=("99", NOW))
    assert gpu_utilization(pods, seen, NOW) == Decimal(25)
    assert gpu_utilization([gpu_pod("c")], seen, NOW) is None


def test_waste_counts_only_pods_idle_now_and_seen_before():
    seen = telemetry(idle=("2", NOW), busy=("90", NOW), new=("0", NOW))
    figures = [
        (gpu_pod("idle"), Decimal("10.5"), Decimal("10")),
        (gpu_pod("busy"), Decimal("50"), Decimal("40")),
        (gpu_pod("new"), Decimal("1"), None),
    ]
    assert wasted_increase(figures, seen, Decimal(5), NOW) == Decimal("0.5")


def test_counter_increase_treats_a_drop_as_a_reset_like_prometheus():
    increase, last = counter_increase(
        {"a": Decimal(100), "b": Decimal(50)}, {"a": Decimal(160), "b": Decimal(20), "c": Decimal(7)}
    )
    assert increase == Decimal(60 + 20)  # b restarted at 0 and counted 20; c only sets its baseline
    assert last == {"a": Decimal(160), "b": Decimal(20), "c": Decimal(7)}
    assert cost_per_million(Decimal("3"), Decimal(1_500_000)) == Decimal(2)
    assert cost_per_million(Decimal("3"), Decimal(0)) is None


def test_the_condition_names_what_is_missing():
    pods = [gpu_pod("a"), gpu_pod("b")]
    assert telemetry_condition((False, None), pods, Telemetry(), NOW) is None
    assert telemetry_condition((True, None), pods, Telemetry(), NOW)[1] == "NoSource"
    failed = Telemetry(configured=True, problems=("prometheus http://p:9090: connection refused",))
    state = telemetry_condition((True, None), pods, failed, NOW)
    assert state is not None and state[:2] == ("True", "SourceFailed") and "connection refused" in state[2]
    partial = telemetry(a=("3", NOW))
    state = telemetry_condition((True, None), pods, partial, NOW)
    assert state is not None and state[1] == "NoFreshSamples" and "b" in state[2]
    fine = telemetry(a=("3", NOW), b=("90", NOW))
    assert telemetry_condition((True, None), pods, fine, NOW) == (
        "False",
        "Fresh",
        "every covered GPU pod has a fresh utilisation sample",
    )
    broken = Telemetry(
        readings=fine.readings, configured=True, counter_problems={"tok": "prom: counter tok: no such metric"}
    )
    assert telemetry_condition((True, "tok"), pods, broken, NOW)[1] == "CounterUnavailable"


def test_a_budget_keeps_its_waste_across_passes_and_restarts_and_restarts_it_each_period():
    spec = parse_spec(
        {"limit": 1000, "period": "Daily", "anomalies": {"idleGpu": {"belowPercent": 5, "forMinutes": 60}}}
    )
    budget = Budget(spec)
    budget.add(gpu_pod("idle", utilization="0"), "60")  # 60 USD/h: one dollar a minute
    budget.add(gpu_pod("busy", utilization="95"), "60")
    budget.evaluate(NOW)
    assert budget.evaluate(NOW + 10 * MINUTE).status.wasted_spend == Decimal(10)
    after_restart = budget.evaluate(NOW + 20 * MINUTE, restart=True).status
    assert after_restart.wasted_spend == Decimal(20)
    assert after_restart.gpu_utilization == Decimal("47.5")
    assert after_restart.to_k8s()["wastedSpend"] == 20.0
    next_day = budget.evaluate(datetime(2026, 11, 4, 0, 5, tzinfo=UTC)).status
    assert next_day.wasted_spend == Decimal(0)
