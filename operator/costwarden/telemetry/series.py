"""The shape both sources read series into, and the label rules DCGM and agent series share. Pure.

A ``Series`` is one labelled value at one time, as read from the Prometheus HTTP API or parsed
from a ``/metrics`` page. Which pod a series belongs to is read from its labels, in every naming
seen in practice:

- ``pod``/``namespace``: NVIDIA dcgm-exporter with ``--kubernetes`` (internal/pkg/transformation/
  const.go), and the target labels Prometheus's Kubernetes discovery usually sets
  (prometheus-operator's ServiceMonitor and PodMonitor set ``pod``, ``namespace``, ``container``).
- ``pod_name``/``pod_namespace``: dcgm-exporter with ``--use-old-namespace``.
- ``exported_pod``/``exported_namespace``: the exporter's own labels, renamed by Prometheus at
  scrape time because the target carries the same label names and ``honor_labels`` is false
  (Prometheus docs, scrape_config ``honor_labels``).

The exporter's own labels win over the target's: ``exported_*`` first (Prometheus renamed the
exporter's label, and the plain label now names the scraped pod, the exporter itself), then the
old ``pod_*`` names (which dcgm-exporter emits and Kubernetes discovery does not), then the plain
names. Each of pod and namespace is resolved on its own, as Prometheus renames each label on its
own. An empty value counts as absent (Prometheus drops empty labels).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

from costwarden.telemetry.samples import GpuSample

POD_LABELS = ("exported_pod", "pod_name", "pod")
NAMESPACE_LABELS = ("exported_namespace", "pod_namespace", "namespace")
EXPORTER_POD_LABELS = ("exported_pod", "pod_name")
"""Labels that can only come from the exporter: when one is present, a plain ``pod`` label on
the same series is the scrape target's."""
UUID_LABELS = ("UUID", "uuid")
"""dcgm-exporter names the UUID label ``UUID`` by default, ``uuid`` with ``--use-old-namespace``."""
INDEX_LABEL = "gpu"
MIG_INSTANCE_LABEL = "GPU_I_ID"
MIG_PROFILE_LABEL = "GPU_I_PROFILE"
NO_POD = "no pod (GPU not allocated to a pod)"


@dataclass(frozen=True, slots=True)
class Series:
    """One sample of one series: metric name, labels, the value as read, and its time if known."""

    name: str
    labels: Mapping[str, str]
    value: object
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Parsed:
    """Samples read from series, and how many series were left out, by reason."""

    samples: tuple[GpuSample, ...] = ()
    skipped: Mapping[str, int] = field(default_factory=dict)


def first_label(labels: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = labels.get(name)
        if value:
            return str(value)
    return None


def pod_of(labels: Mapping[str, str]) -> tuple[str, str] | str:
    """(namespace, pod) from a series' labels, or why there is none."""
    pod = first_label(labels, POD_LABELS)
    if pod is None:
        return NO_POD
    namespace = first_label(labels, NAMESPACE_LABELS)
    if namespace is None:
        return "pod label without a namespace label"
    return (namespace, pod)


def gpu_of(labels: Mapping[str, str]) -> str | None:
    """The GPU's UUID (else its index), with ``/<GPU_I_ID>`` for a MIG instance."""
    gpu = first_label(labels, UUID_LABELS) or first_label(labels, (INDEX_LABEL,))
    if gpu is None:
        return None
    instance = first_label(labels, (MIG_INSTANCE_LABEL,))
    return f"{gpu}/{instance}" if instance is not None else gpu


def number(value: object) -> Decimal | None:
    """A finite Decimal from a float, int or string as exporters print them; None otherwise."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Decimal | int | str):
        text = str(value).strip()
    elif isinstance(value, float):
        text = repr(value)
    else:
        return None
    try:
        result = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    return result if result.is_finite() else None


class Tally:
    """Counts of series left out, by reason."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def skip(self, reason: str) -> None:
        self._counts[reason] += 1

    def counts(self) -> dict[str, int]:
        return dict(sorted(self._counts.items()))
