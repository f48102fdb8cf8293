"""``/metrics`` pages printed the way NVIDIA dcgm-exporter prints them, for stand-in pods.

Shape copied from the real A10G capture in tests/data/dcgm (driver 550.144.03): ``# HELP`` and
``# TYPE`` once per field, with the help text of dcgm-exporter's etc/default-counters.csv; labels
in the exporter's order (``gpu``, ``UUID``, ``device``, ``modelName``, ``GPU_I_PROFILE`` and
``GPU_I_ID`` for a MIG instance as in internal/pkg/rendermetrics/render_metrics.go, ``Hostname``,
label-type fields such as ``DCGM_FI_DRIVER_VERSION``, then ``container``, ``namespace``, ``pod``);
integer fields printed as integers, floating-point fields with six decimals (``8.969000``). A GPU
no pod uses carries ``container=""``, ``namespace=""``, ``pod=""`` (dcgm-exporter README).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

HELP = {
    "DCGM_FI_DEV_GPU_UTIL": "GPU utilization (in %).",
    "DCGM_FI_DEV_FB_USED": "Framebuffer memory used (in MiB).",
    "DCGM_FI_DEV_POWER_USAGE": "Power draw (in W).",
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE": "Ratio of time the graphics engine is active.",
    "DCGM_FI_DEV_SM_CLOCK": "SM clock frequency (in MHz).",
}
INTEGER_FIELDS = frozenset({"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_SM_CLOCK"})


@dataclass
class Gpu:
    """One GPU (or MIG instance) on a stand-in node, and the pod that holds it ("" for none)."""

    index: int
    uuid: str
    namespace: str = ""
    pod: str = ""
    container: str = ""
    util: int | None = 0  # DCGM_FI_DEV_GPU_UTIL, percent
    engine_active: Decimal | None = None  # DCGM_FI_PROF_GR_ENGINE_ACTIVE, ratio
    fb_used_mib: int | None = 1024
    power_w: Decimal | None = Decimal("61.5")
    mig_profile: str | None = None
    mig_instance: int | None = None
    model: str = "NVIDIA H100 80GB HBM3"
    hostname: str = "gpu-node-a"


def _labels(gpu: Gpu) -> str:
    pairs = [
        ("gpu", str(gpu.index)),
        ("UUID", gpu.uuid),
        ("device", f"nvidia{gpu.index}"),
        ("modelName", gpu.model),
    ]
    if gpu.mig_instance is not None:
        pairs += [("GPU_I_PROFILE", gpu.mig_profile or ""), ("GPU_I_ID", str(gpu.mig_instance))]
    pairs += [
        ("Hostname", gpu.hostname),
        ("DCGM_FI_DRIVER_VERSION", "550.144.03"),
        ("container", gpu.container),
        ("namespace", gpu.namespace),
        ("pod", gpu.pod),
    ]
    return ",".join(f'{name}="{value}"' for name, value in pairs)


def _value(field: str, value: int | Decimal) -> str:
    return str(int(value)) if field in INTEGER_FIELDS else f"{float(value):f}"


def page(gpus: list[Gpu]) -> str:
    """The page dcgm-exporter would serve for ``gpus``."""
    values: dict[str, Callable[[Gpu], int | Decimal | None]] = {
        "DCGM_FI_DEV_SM_CLOCK": lambda g: 1980,
        "DCGM_FI_DEV_GPU_UTIL": lambda g: g.util,
        "DCGM_FI_DEV_FB_USED": lambda g: g.fb_used_mib,
        "DCGM_FI_DEV_POWER_USAGE": lambda g: g.power_w,
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE": lambda g: g.engine_active,
    }
    lines: list[str] = []
    for field, read in values.items():
        rows = [(gpu, value) for gpu in gpus if (value := read(gpu)) is not None]
        if not rows:
            continue
        lines += [f"# HELP {field} {HELP[field]}", f"# TYPE {field} gauge"]
        lines += [f"{field}{{{_labels(gpu)}}} {_value(field, value)}" for gpu, value in rows]
    return "\n".join(lines) + "\n"
