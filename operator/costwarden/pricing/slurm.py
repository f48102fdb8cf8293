"""Slurm allocations -> USD/hour: per GPU-, vCPU- and GiB-hour rates for a job's node.

Resolution, first match wins (docs/slurm.md):
  1. the overrides file's ``slurm.nodes`` entry naming the job's first allocated node (a name or
     a Slurm host list such as ``gpu-[01-04]``): its own rates, or ``instance: <key>`` to price
     the node as that cloud VM through ``PriceBook`` (the same resolution as Kubernetes nodes:
     live feed, catalog, factors) and take that price's per-GPU / vCPU / GiB split
  2. the ``slurm.partitions`` entry of the job's partition
  3. the defaults (OpenCost-style per GPU, vCPU and GiB; overridable), so a job is never free
     by omission
Units an entry leaves unset take the defaults. A multi-node job is priced at its first node's
rates (Slurm's AllocTRES gives totals, not a split per node).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import hostlist

from costwarden.pricing.overrides import UnitRates, parse_instance_key
from costwarden.pricing.resolve import PriceBook
from costwarden.records import NodeRecord

_INSTANCE_TYPE = "node.kubernetes.io/instance-type"
_REGION = "topology.kubernetes.io/region"
_CAPACITY = "karpenter.sh/capacity-type"
_PROVIDER = {"aws": "aws:///", "gcp": "gce://", "azure": "azure:///"}


@dataclass(frozen=True, slots=True)
class SlurmUnitPrice:
    gpu: Decimal  # USD per GPU-hour
    cpu: Decimal  # USD per vCPU-hour
    ram_gib: Decimal  # USD per GiB-hour
    source: str

    def hourly(self, gpus: int, cpus: int, memory_gib: Decimal) -> Decimal:
        return self.gpu * gpus + self.cpu * cpus + self.ram_gib * memory_gib


def expand_hosts(text: str) -> tuple[str, ...]:
    """A Slurm host list (``gpu-[01-03],cpu1``) as names; malformed text is taken as one name."""
    try:
        return tuple(hostlist.expand_hostlist(text))
    except hostlist.BadHostlist:
        return (text,)


def slurm_unit_price(book: PriceBook, nodes: Sequence[str], partition: str) -> SlurmUnitPrice:
    """The rates for a job on ``nodes`` (allocated, in order) in ``partition``."""
    overrides = book.overrides
    origin = overrides.origin
    defaults = overrides.defaults
    if nodes:
        for key, rates in overrides.slurm.nodes.items():
            if nodes[0] in expand_hosts(key):
                if rates.instance is not None:
                    return _as_instance(book, rates, f"overrides:{origin} slurm.nodes {key}")
                return _filled(rates, defaults.rates("on-demand"), f"overrides:{origin} slurm.nodes {key}")
    in_partition = overrides.slurm.partitions.get(partition)
    if in_partition is not None:
        source = f"overrides:{origin} slurm.partitions {partition}"
        return _filled(in_partition, defaults.rates("on-demand"), source)
    gpu, cpu, ram = defaults.rates("on-demand")
    source = f"defaults: overrides:{origin}" if overrides.defaults_changed else "defaults: opencost"
    return SlurmUnitPrice(gpu, cpu, ram, source)


def _filled(rates: UnitRates, defaults: tuple[Decimal, Decimal, Decimal], source: str) -> SlurmUnitPrice:
    gpu, cpu, ram = defaults
    return SlurmUnitPrice(
        rates.gpu if rates.gpu is not None else gpu,
        rates.cpu if rates.cpu is not None else cpu,
        rates.ram_gib if rates.ram_gib is not None else ram,
        source,
    )


def _as_instance(book: PriceBook, rates: UnitRates, source: str) -> SlurmUnitPrice:
    assert rates.instance is not None
    cloud, region, instance_type, capacity = parse_instance_key(rates.instance)
    labels = [(_INSTANCE_TYPE, instance_type), (_CAPACITY, capacity or "on-demand")]
    if region:
        labels.append((_REGION, region))
    node = NodeRecord(
        name=f"slurm:{rates.instance}",
        labels=tuple(sorted(labels)),
        provider_id=_PROVIDER.get(cloud or "", ""),
    )
    price = book.price(node)
    return SlurmUnitPrice(price.per_gpu, price.per_vcpu, price.per_gib, f"{source}: {price.source}")
