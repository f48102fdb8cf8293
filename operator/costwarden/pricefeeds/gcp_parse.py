"""A GCE VM's price from Cloud Billing Catalog SKUs (pure).

A GPU VM's price is vCPUs x its family's Core SKU + GiB x its Ram SKU + GPUs x the GPU SKU
(https://cloud.google.com/compute/gpus-pricing, https://cloud.google.com/compute/vm-instance-pricing).
On-demand SKUs have ``category.usage_type`` "OnDemand"; Spot VMs' SKUs "Preemptible" and
descriptions such as "Spot Preemptible A2 Instance Core running in Americas" or "Nvidia Tesla
A100 GPU attached to Spot Preemptible VMs running in Americas". A SKU applies to the regions in
its ``service_regions``; of several that match, the one naming the fewest regions wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from costwarden.pricefeeds.gcp_machines import ACCELERATORS, MachineShape, machine_shape
from costwarden.pricefeeds.model import SPOT, FeedPrice, PriceWant

COMPUTE_SERVICE = "services/6F81-5844-456A"  # Compute Engine in the Cloud Billing Catalog
API = "gcp cloudbilling list_skus"
USAGE_TYPES = {"on-demand": "OnDemand", "spot": "Preemptible"}
# SKUs that share a family's or a GPU's name but are not the plain VM's list price.
_EXCLUDED = (
    "commitment",
    "reserved",
    "dws",
    "calendar",
    "flex",
    "sole tenancy",
    "custom",
    "extended",
    "premium",
    "virtual workstation",
)
_NANOS = Decimal("1e-9")
_CORE = ("CPU", "N1Standard")  # N1's Core and Ram SKUs are both in resource group N1Standard
_RAM = ("RAM", "N1Standard")


@dataclass(frozen=True, slots=True)
class SkuPrice:
    """The parts of a Catalog SKU that price a VM."""

    sku_id: str
    description: str
    resource_group: str  # CPU | RAM | GPU | N1Standard | ...
    usage_type: str  # OnDemand | Preemptible | Commit1Yr | ...
    regions: frozenset[str]
    usage_unit: str  # "h" for cores and GPUs, "GiBy.h" for RAM
    unit_price: Decimal  # USD per usage unit


def money(units: int | str, nanos: int) -> Decimal:
    """``google.type.Money`` as an exact Decimal: units + nanos x 10^-9."""
    return Decimal(int(units)) + Decimal(int(nanos)) * _NANOS


def price_wants(wants: Sequence[PriceWant], skus: Iterable[SkuPrice]) -> tuple[list[FeedPrice], list[str]]:
    """Prices of the GCP wants from these SKUs, and a note per want left unpriced."""
    table = [s for s in skus if not any(word in s.description.lower() for word in _EXCLUDED)]
    prices: list[FeedPrice] = []
    notes: list[str] = []
    for want in wants:
        if want.cloud != "gcp":
            continue
        shape = machine_shape(want.instance_type)
        if shape is None:
            notes.append(f"{want.region} {want.instance_type}: not a machine type this feed knows")
            continue
        price, missing = _assemble(want, shape, table)
        if price is None:
            notes.append(f"{want.region} {want.instance_type} {want.capacity_type}: no {missing} SKU")
        else:
            prices.append(price)
    return prices, notes


def _assemble(want: PriceWant, shape: MachineShape, table: list[SkuPrice]) -> tuple[FeedPrice | None, str]:
    usage = USAGE_TYPES[want.capacity_type]
    core = _find(
        table, region=want.region, usage=usage, groups=_CORE, phrases=(f"{shape.family} Core",), unit="h"
    )
    if core is None:
        return None, f"{shape.family} Core"
    ram = _find(
        table, region=want.region, usage=usage, groups=_RAM, phrases=(f"{shape.family} Ram",), unit="GiBy.h"
    )
    if ram is None:
        return None, f"{shape.family} Ram"
    hourly = core.unit_price * shape.vcpus + ram.unit_price * shape.memory_gib
    parts = [
        f"{shape.vcpus} vCPU x {_plain(core.unit_price)} ({core.sku_id})",
        f"{shape.memory_gib} GiB x {_plain(ram.unit_price)} ({ram.sku_id})",
    ]
    if shape.gpus and shape.accelerator is not None:
        accelerator = ACCELERATORS[shape.accelerator]
        gpu = _find(
            table, region=want.region, usage=usage, groups=("GPU",), phrases=accelerator.sku_phrases, unit="h"
        )
        if gpu is None:
            return None, f"{accelerator.model} GPU"
        hourly += gpu.unit_price * shape.gpus
        parts.append(f"{shape.gpus} {accelerator.model} x {_plain(gpu.unit_price)} ({gpu.sku_id})")
    kind = "Spot Preemptible" if want.capacity_type == SPOT else "OnDemand"
    detail = f"{kind} SKUs: " + " + ".join(parts)
    price = FeedPrice("gcp", want.region, None, want.instance_type, want.capacity_type, hourly, API, detail)
    return price, ""


def _find(
    table: list[SkuPrice],
    *,
    region: str,
    usage: str,
    groups: tuple[str, ...],
    phrases: tuple[str, ...],
    unit: str,
) -> SkuPrice | None:
    found = [
        s
        for s in table
        if s.usage_type == usage
        and s.resource_group in groups
        and region in s.regions
        and s.usage_unit == unit
        and any(phrase in s.description for phrase in phrases)
    ]
    return min(found, key=lambda s: (len(s.regions), s.sku_id), default=None)


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")
