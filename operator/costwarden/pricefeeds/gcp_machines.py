"""GCE GPU machine types: what a VM is made of, since the Cloud Billing Catalog prices parts.

Compute Engine bills an accelerator VM as vCPUs x the family's "Core" SKU + GiB x its "Ram" SKU
+ GPUs x the GPU SKU; there is no SKU per machine type. The shapes below are from
https://cloud.google.com/compute/docs/accelerator-optimized-machines (A2, A3, G2) and
https://cloud.google.com/compute/docs/gpus (N1 with attached T4, V100, P100, P4); N1 shapes
follow the N1 rule (https://cloud.google.com/compute/docs/general-purpose-machines#n1_machines):
standard 3.75 GB, highmem 6.5 GB, highcpu 0.9 GB per vCPU (GCE's "GB" is GiB, which is the unit
the RAM SKUs are priced in, ``GiBy.h``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class Accelerator:
    model: str  # the GPU model as the catalog names it
    sku_phrases: tuple[str, ...]  # how its SKU descriptions name it ("Nvidia Tesla T4 GPU running in ...")


@dataclass(frozen=True, slots=True)
class MachineShape:
    family: str  # the SKU description prefix of its Core and Ram SKUs, e.g. "A2 Instance"
    vcpus: int
    memory_gib: Decimal
    gpus: int
    accelerator: str | None  # a key of ACCELERATORS


# GKE's accelerator names (the node label cloud.google.com/gke-accelerator) -> SKU names.
# " A100 GPU" is not part of " A100 80GB GPU", nor " H100 80GB GPU" of the Mega ones.
ACCELERATORS: Mapping[str, Accelerator] = MappingProxyType(
    {
        "nvidia-tesla-t4": Accelerator("T4", (" T4 GPU",)),
        "nvidia-tesla-v100": Accelerator("V100", (" V100 GPU",)),
        "nvidia-tesla-p100": Accelerator("P100", (" P100 GPU",)),
        "nvidia-tesla-p4": Accelerator("P4", (" P4 GPU",)),
        "nvidia-l4": Accelerator("L4", (" L4 GPU",)),
        "nvidia-tesla-a100": Accelerator("A100", (" A100 GPU",)),
        "nvidia-a100-80gb": Accelerator("A100-80GB", (" A100 80GB GPU",)),
        "nvidia-h100-80gb": Accelerator("H100", (" H100 80GB GPU",)),
        "nvidia-h100-mega-80gb": Accelerator(
            "H100-MEGA", (" H100 80GB Mega GPU", " H100 Mega 80GB GPU", " H100 80GB Plus GPU")
        ),
    }
)
N1_ACCELERATORS = ("nvidia-tesla-t4", "nvidia-tesla-v100", "nvidia-tesla-p100", "nvidia-tesla-p4")


def _shapes(
    family: str, accelerator: str, rows: tuple[tuple[str, int, int, int], ...]
) -> dict[str, MachineShape]:
    return {
        name: MachineShape(family, cpus, Decimal(gib), gpus, accelerator) for name, cpus, gib, gpus in rows
    }


MACHINES: Mapping[str, MachineShape] = MappingProxyType(
    _shapes(
        "A2 Instance",
        "nvidia-tesla-a100",
        (
            ("a2-highgpu-1g", 12, 85, 1),
            ("a2-highgpu-2g", 24, 170, 2),
            ("a2-highgpu-4g", 48, 340, 4),
            ("a2-highgpu-8g", 96, 680, 8),
            ("a2-megagpu-16g", 96, 1360, 16),
        ),
    )
    | _shapes(
        "A2 Instance",
        "nvidia-a100-80gb",
        (
            ("a2-ultragpu-1g", 12, 170, 1),
            ("a2-ultragpu-2g", 24, 340, 2),
            ("a2-ultragpu-4g", 48, 680, 4),
            ("a2-ultragpu-8g", 96, 1360, 8),
        ),
    )
    | _shapes(
        "A3 Instance",
        "nvidia-h100-80gb",
        (
            ("a3-highgpu-1g", 26, 234, 1),
            ("a3-highgpu-2g", 52, 468, 2),
            ("a3-highgpu-4g", 104, 936, 4),
            ("a3-highgpu-8g", 208, 1872, 8),
        ),
    )
    | _shapes("A3 Instance", "nvidia-h100-mega-80gb", (("a3-megagpu-8g", 208, 1872, 8),))
    | _shapes(
        "G2 Instance",
        "nvidia-l4",
        (
            ("g2-standard-4", 4, 16, 1),
            ("g2-standard-8", 8, 32, 1),
            ("g2-standard-12", 12, 48, 1),
            ("g2-standard-16", 16, 64, 1),
            ("g2-standard-24", 24, 96, 2),
            ("g2-standard-32", 32, 128, 1),
            ("g2-standard-48", 48, 192, 4),
            ("g2-standard-96", 96, 384, 8),
        ),
    )
)
_N1 = re.compile(r"^n1-(standard|highmem|highcpu)-(\d+)$")
_N1_GIB_PER_VCPU = MappingProxyType(
    {"standard": Decimal("3.75"), "highmem": Decimal("6.5"), "highcpu": Decimal("0.9")}
)
_ATTACHED = re.compile(r"^(?P<machine>[a-z0-9-]+)\+(?P<accelerator>[a-z0-9-]+)x(?P<count>\d+)$")


def normalise_accelerator(gpu_model: str | None) -> str | None:
    """GKE's accelerator name for an N1-attachable GPU, from any of the names a node may carry
    (``nvidia-tesla-t4`` from GKE, ``Tesla-T4`` from NVIDIA GPU Feature Discovery, ``T4``)."""
    if not gpu_model:
        return None
    name = gpu_model.strip().lower().replace(" ", "-")
    for prefix in ("nvidia-", "tesla-"):
        name = name.removeprefix(prefix)
    for accelerator in N1_ACCELERATORS:
        short = accelerator.removeprefix("nvidia-tesla-")
        if name == short or name.startswith(f"{short}-"):
            return accelerator
    return None


def instance_key(machine_type: str, gpu_model: str | None, gpu_count: int) -> str:
    """The catalog's key: an N1 VM with GPUs is ``<type>+<accelerator>x<count>``, others their type."""
    accelerator = normalise_accelerator(gpu_model) if gpu_count > 0 else None
    if _N1.match(machine_type.lower()) and accelerator is not None:
        return f"{machine_type.lower()}+{accelerator}x{gpu_count}"
    return machine_type


def machine_shape(key: str) -> MachineShape | None:
    """The shape of a machine type or an ``n1-...+<accelerator>x<n>`` key; None when unknown."""
    key = key.lower()
    attached = _ATTACHED.match(key)
    machine, accelerator, gpus = key, None, 0
    if attached is not None:
        machine, accelerator = attached["machine"], attached["accelerator"]
        gpus = int(attached["count"])
        if accelerator not in N1_ACCELERATORS or gpus <= 0:
            return None
    n1 = _N1.match(machine)
    if n1 is not None:
        vcpus = int(n1[2])
        return MachineShape(
            "N1 Predefined Instance", vcpus, _N1_GIB_PER_VCPU[n1[1]] * vcpus, gpus, accelerator
        )
    return MACHINES.get(machine) if attached is None else None
