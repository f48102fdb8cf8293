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
_TERMINAL = frozenset({"Succeeded", "Failed"})


def pod_rate(pod: PodRecord, price: UnitPrices | None) -> PodRate:
    """The pod's USD/hour on its node; zero when unscheduled, terminal, or the node is unpriced.

    CPU and RAM are billed on max(request, usage); usage is not observed yet, so on the request.
    """
    if price is None or not pod.node_name or pod.phase in _TERMINAL:
        return ZERO_RATE
    gpu = price.per_gpu * pod.gpus if pod.gpus > 0 else ZERO
    cpu = price.per_vcpu * pod.cpu_request if pod.cpu_request > ZERO else ZERO
    ram = price.per_gib * pod.memory_request_gib if pod.memory_request_gib > ZERO else ZERO
    return PodRate(gpu + cpu + ram, gpu, cpu, ram)
