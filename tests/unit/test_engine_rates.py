"""Pod cost rates from unit prices (OpenCost's model) and idle node cost."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from costwarden.engine.idle import idle_node_costs
from costwarden.engine.rates import ZERO_RATE, PodRate, pod_rate
from costwarden.records import PodRecord


@dataclass(frozen=True, slots=True)
class Price:
    """Shaped like costwarden.pricing.NodePrice, as far as the engine reads it."""

    hourly: Decimal
    per_gpu: Decimal
    per_vcpu: Decimal
    per_gib: Decimal


P5 = Price(Decimal("55.04"), Decimal("6.4"), Decimal("0.031611"), Decimal("0.004237"))
STARTED = datetime(2026, 11, 3, tzinfo=UTC)


def pod(
    phase: str = "Running", node: str | None = "node-a", gpus: int = 8, cpu: str = "96", gib: str = "1024"
) -> PodRecord:
    return PodRecord(
        namespace="research",
        name="p",
        uid="u",
        node_name=node,
        phase=phase,
        gpus=gpus,
        cpu_request=Decimal(cpu),
        memory_request_gib=Decimal(gib),
        started=STARTED,
    )


def test_rate_is_gpus_cpu_and_ram_at_unit_prices() -> None:
    rate = pod_rate(pod(), P5)
    assert rate.gpu == Decimal("51.2")
    assert rate.cpu == Decimal("3.034656")
    assert rate.ram == Decimal("4.338688")
    assert rate.total == Decimal("58.573344")


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(pod(phase="Pending", node=None), id="pending-without-node"),
        pytest.param(pod(phase="Succeeded"), id="succeeded"),
        pytest.param(pod(phase="Failed"), id="failed"),
        pytest.param(pod(node=""), id="empty-node-name"),
    ],
)
def test_rate_is_zero_when_not_running_on_a_node(record: PodRecord) -> None:
    assert pod_rate(record, P5) == ZERO_RATE


def test_rate_is_zero_without_a_price() -> None:
    assert pod_rate(pod(), None) == ZERO_RATE


def test_scheduled_pod_still_pending_is_charged() -> None:
    assert pod_rate(pod(phase="Pending"), P5).gpu == Decimal("51.2")


def test_cpu_only_pod() -> None:
    rate = pod_rate(pod(gpus=0, cpu="0.5", gib="2"), P5)
    assert rate == PodRate(
        total=Decimal("0.0242795"), gpu=Decimal(0), cpu=Decimal("0.0158055"), ram=Decimal("0.008474")
    )


def rate(total: str) -> PodRate:
    return PodRate(total=Decimal(total), gpu=Decimal(total), cpu=Decimal(0), ram=Decimal(0))


def test_idle_is_node_price_less_its_pods_floored_at_zero() -> None:
    prices = {"a": P5, "b": Price(Decimal("1.006"), Decimal("0.75"), Decimal(0), Decimal(0)), "c": P5}
    pods = [("a", rate("20")), ("a", rate("5.04")), ("b", rate("2")), ("unpriced", rate("7"))]
    assert idle_node_costs(prices, pods) == {"a": Decimal("30.00"), "b": Decimal(0), "c": Decimal("55.04")}


def test_idle_of_nothing() -> None:
    assert idle_node_costs({}, [("a", rate("1"))]) == {}
