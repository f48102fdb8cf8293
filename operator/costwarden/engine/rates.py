"""A pod's cost rate (USD/hour) from its node's unit prices, following OpenCost's model.

GPU hours are requested GPUs * hours; CPU and RAM are charged on max(request, usage). Usage is
not in ``PodRecord`` yet, so today the request is what is charged. A pod is charged from the
moment it is bound to a node (a scheduled pod that is still pulling its image already holds its
GPUs) until it reaches a terminal phase.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from costwarden.engine.money import ZERO
from costwarden.records import PodRecord


class UnitPrices(Protocol):
    """What the engine reads from a node price (``costwarden.pricing.NodePrice`` satisfies it)."""

    @property
    def hourly(self) -> Decimal: ...

    @property
    def per_gpu(self) -> Decimal: ...

    @property
    def per_vcpu(self) -> Decimal: ...

    @property
    def per_gib(self) -> Decimal: ...


@dataclass(frozen=True, slots=True)
class PodRate:
    """USD/hour of one pod, and its split by resource."""

    total: Decimal
    gpu: Decimal
    cpu: Decimal
    ram: Decimal


ZERO_RATE = PodRate(total=ZERO, gpu=ZERO, cpu=ZERO, ram=ZERO)


def _billable(request: Decimal, usage: Decimal | None) -> Decimal:
    amount = request if usage is None else max(request, usage)
    return max(amount, ZERO)


def pod_rate(pod: PodRecord, price: UnitPrices | None) -> PodRate:
    """The pod's USD/hour on its node; zero when unscheduled, terminal, or the node is unpriced."""
    if price is None or not pod.node_name or pod.is_terminal:
        return ZERO_RATE
    gpu = price.per_gpu * max(pod.gpus, 0)
    cpu = price.per_vcpu * _billable(pod.cpu_request, None)
    ram = price.per_gib * _billable(pod.memory_request_gib, None)
    return PodRate(total=gpu + cpu + ram, gpu=gpu, cpu=cpu, ram=ram)
