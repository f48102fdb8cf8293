"""Small frozen snapshots of cluster objects: the only shape the pure core ever sees.

The operator's kopf indexes hold these records instead of whole bodies, so memory stays
proportional to the handful of fields the engine needs (cost tools that cache full objects grow
to gigabytes on big clusters). They are built from raw Kubernetes dicts by ``from_body``
functions that never raise on odd input: a missing or unparsable field becomes a neutral value.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from typing import Any

# Contract names (docs/design.md, Contract): never rename.
ANNOTATION_SPEND = "costwarden.dev/spend"
ANNOTATION_RATE = "costwarden.dev/rate"
ANNOTATION_SPEND_AT = "costwarden.dev/spend-at"
ANNOTATION_BUDGETS = "costwarden.dev/budgets"
ANNOTATION_NODE_PRICE = "costwarden.dev/hourly-price"
# GKE writes the VM's numeric id here; GCP billing's resource.global_name ends in it
GKE_INSTANCE_ID_ANNOTATION = "container.googleapis.com/instance_id"
ANNOTATION_GPU_UTIL = "costwarden.dev/gpu-utilization"  # written by the operator, for people
ANNOTATION_GPU_UTIL_AT = "costwarden.dev/gpu-utilization-at"

SKYPILOT_CLUSTER_LABEL = "skypilot-cluster-name"
SKYPILOT_CLUSTER_ANNOTATION = "skypilot-cluster-name"
SKYPILOT_USER_ANNOTATION = "skypilot-user"
SKYPILOT_PARENT_LABEL = "parent"

GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu", "google.com/tpu")

_ZERO = Decimal(0)
_GIB = Decimal(1024**3)
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")
_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


# Figures beyond these magnitudes are no amount, count or size anybody means; they are taken as
# malformed, like text. Exact arithmetic on them downstream would be slow or out of range: money
# is charged through integer ratios (engine.money), and "1e-999999999" as one is a billion digits.
_QUANTITY_LIMIT = Decimal(2**63)  # Kubernetes keeps quantities in an int64
_QUANTITY_FLOOR = Decimal("1e-9")  # Kubernetes' smallest, "1n"
_DECIMAL_LIMIT = Decimal("1e15")  # USD figures, rates and percentages in our annotations
_DECIMAL_FLOOR = Decimal("1e-15")


def _within(value: Decimal, floor: Decimal, limit: Decimal) -> Decimal | None:
    if not value.is_finite():
        return None
    if not value:
        return _ZERO  # 0E-999999999 included
    return value if floor <= value.copy_abs() < limit else None


def parse_quantity(value: object) -> Decimal | None:
    """A Kubernetes resource quantity ("500m", "16Gi", "2") as a Decimal, or None if unparsable
    (NaN, infinite, or beyond what Kubernetes holds: 2^63, or below a nano)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float | Decimal):
            return _within(Decimal(str(value)), _QUANTITY_FLOOR, _QUANTITY_LIMIT)
        match = _QUANTITY.match(str(value).strip())
        if not match or match.group(2) not in _SUFFIXES:
            return None
        quantity = _EXACT.multiply(Decimal(match.group(1)), _SUFFIXES[match.group(2)])
    except ArithmeticError:
        return None
    return _within(quantity, _QUANTITY_FLOOR, _QUANTITY_LIMIT)


def parse_decimal(value: object) -> Decimal | None:
    """A plain decimal string (as in our annotations), or None if absent or malformed (NaN,
    infinite, or of a magnitude no USD figure or percentage has: 10^15 and more, or below 10^-15)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value).strip())
    except ArithmeticError:
        return None
    return _within(result, _DECIMAL_FLOOR, _DECIMAL_LIMIT)


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 timestamp as an aware UTC datetime, or None."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # not a time, or one that leaves datetime's range in UTC
        return None


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with a Z suffix, second precision (what kubectl users expect to read)."""
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _frozen(mapping: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(mapping, Mapping):
        return ()
    return tuple(sorted((sys.intern(str(k)), sys.intern(str(v))) for k, v in mapping.items()))


def _shared(value: object) -> str | None:
    """A string that many records repeat (a namespace, a node, a phase, a label, a SkyPilot
    cluster): one object for all of them. Without it a record kept what its body's decoder made:
    a list page shares its objects' keys, a watch event (one decode per pod) shares nothing, so a
    pod's record grew from ~2.0 to ~2.3 KiB the first time a watch event replaced it, which the
    soak (``bench/soak.py``) saw as memory rising with pod churn; shared, it is ~1.3-1.4 KiB
    either way."""
    return sys.intern(str(value)) if isinstance(value, str) else None


def _map(value: object) -> Mapping[str, Any]:
    """A field that should hold an object: itself, else empty (a missing or mistyped field)."""
    return value if isinstance(value, Mapping) else {}


def _maps(value: object) -> list[Mapping[str, Any]]:
    """A field that should hold a list of objects: its objects, else none."""
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _count(value: object) -> int:
    """A resource quantity as a whole count (GPUs): 0 when unparsable or not above zero."""
    quantity = parse_quantity(value)
    return int(quantity) if quantity is not None and quantity > 0 else 0


def _amount(value: object) -> Decimal:
    """A resource quantity (cores, bytes): 0 when unparsable or not above zero."""
    quantity = parse_quantity(value)
    return quantity if quantity is not None and quantity > 0 else _ZERO


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """What pricing needs to know about a node."""

    name: str
    labels: tuple[tuple[str, str], ...] = ()
    provider_id: str = ""
    cpu_cores: Decimal = _ZERO
    memory_gib: Decimal = _ZERO
    gpus: int = 0
    price_override: Decimal | None = None  # annotation costwarden.dev/hourly-price
    price_override_error: str | None = None  # annotation present but malformed
    instance_id: str | None = None  # the cloud's own VM id where providerID lacks it (GKE)

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> NodeRecord:
        meta = _map(body.get("metadata"))
        status = _map(body.get("status"))
        resources = _map(status.get("capacity")) or _map(status.get("allocatable"))
        gpus = 0
        for key in GPU_RESOURCES:
            gpus = _count(resources.get(key))
            if gpus:
                break
        annotations = _map(meta.get("annotations"))
        raw_price = annotations.get(ANNOTATION_NODE_PRICE)
        instance_id = annotations.get(GKE_INSTANCE_ID_ANNOTATION)
        price = parse_decimal(raw_price) if raw_price is not None else None
        error = None
        if raw_price is not None and (price is None or price < 0):
            name = meta.get("name")
            error = f"node {name}: annotation {ANNOTATION_NODE_PRICE}={raw_price!r} is not a USD amount"
            price = None
        return cls(
            name=_str(meta.get("name")) or "",
            labels=_frozen(meta.get("labels")),
            provider_id=_str(_map(body.get("spec")).get("providerID")) or "",
            cpu_cores=_amount(resources.get("cpu")),
            memory_gib=_amount(resources.get("memory")) / _GIB,
            gpus=gpus,
            price_override=price,
            price_override_error=error,
            instance_id=str(instance_id) if instance_id else None,
        )


@dataclass(frozen=True, slots=True)
class PodSpendMark:
    """The spend a pod carried in its annotations when last written (our restart memory)."""

    spend: Decimal
    rate: Decimal
    at: datetime


@dataclass(frozen=True, slots=True)
class PodRecord:
    """What pricing, attribution and the ledger need to know about a pod."""

    namespace: str
    name: str
    uid: str
    node_name: str | None = None
    phase: str = "Pending"  # Pending | Running | Succeeded | Failed | Unknown
    labels: tuple[tuple[str, str], ...] = ()
    gpus: int = 0
    cpu_request: Decimal = _ZERO  # cores, summed over containers (max with init containers)
    memory_request_gib: Decimal = _ZERO
    created: datetime | None = None
    started: datetime | None = None  # status.startTime
    finished: datetime | None = None  # latest container termination when Succeeded/Failed
    deleting: bool = False
    skypilot_cluster: str | None = None  # the name the user typed (annotation), else the label value
    skypilot_user: str | None = None
    spend_mark: PodSpendMark | None = None  # from costwarden.dev/spend + spend-at (+ rate)
    budgets_annotation: str | None = None
    gpu_utilization: Decimal | None = None  # what the operator last wrote on the pod (display only)
    owner_kind: str | None = None
    owner_name: str | None = None
    pod_ip: str | None = None  # status.podIP: where a metrics exporter in the pod is scraped

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def is_skypilot(self) -> bool:
        labels = self.label_map
        return labels.get(SKYPILOT_PARENT_LABEL) == "skypilot" or SKYPILOT_CLUSTER_LABEL in labels

    @property
    def is_terminal(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> PodRecord:
        meta = _map(body.get("metadata"))
        spec = _map(body.get("spec"))
        status = _map(body.get("status"))
        labels = _map(meta.get("labels"))
        annotations = _map(meta.get("annotations"))
        gpus, cpu, memory = _pod_requests(spec)
        owners = _maps(meta.get("ownerReferences"))
        owner = next((o for o in owners if o.get("controller")), owners[0] if owners else None)
        return cls(
            namespace=_shared(meta.get("namespace")) or "",
            name=_str(meta.get("name")) or "",
            uid=_str(meta.get("uid")) or "",
            node_name=_shared(spec.get("nodeName")),
            phase=_shared(status.get("phase")) or "Pending",
            labels=_frozen(labels),
            gpus=gpus,
            cpu_request=cpu,
            memory_request_gib=memory / _GIB,
            created=parse_time(meta.get("creationTimestamp")),
            started=parse_time(status.get("startTime")),
            finished=_finished_at(status),
            deleting=bool(meta.get("deletionTimestamp")),
            skypilot_cluster=(
                _shared(annotations.get(SKYPILOT_CLUSTER_ANNOTATION))
                or _shared(labels.get(SKYPILOT_CLUSTER_LABEL))
            ),
            skypilot_user=(
                _shared(annotations.get(SKYPILOT_USER_ANNOTATION)) or _shared(labels.get("skypilot-user"))
            ),
            spend_mark=_spend_mark(annotations),
            budgets_annotation=_shared(annotations.get(ANNOTATION_BUDGETS)),
            gpu_utilization=parse_decimal(annotations.get(ANNOTATION_GPU_UTIL)),
            owner_kind=_shared(owner.get("kind")) if owner else None,
            owner_name=_shared(owner.get("name")) if owner else None,
            pod_ip=str(status["podIP"]) if status.get("podIP") else None,
        )


def _container_requests(container: Mapping[str, Any]) -> tuple[int, Decimal, Decimal]:
    resources = _map(container.get("resources"))
    requests = _map(resources.get("requests"))
    limits = _map(resources.get("limits"))
    gpus = 0
    for key in GPU_RESOURCES:
        gpus += _count(requests.get(key, limits.get(key)))
    cpu = _amount(requests.get("cpu", limits.get("cpu")))
    memory = _amount(requests.get("memory", limits.get("memory")))
    return gpus, cpu, memory


def _pod_requests(spec: Mapping[str, Any]) -> tuple[int, Decimal, Decimal]:
    """Effective pod requests: sum over containers, at least the largest init container."""
    gpus, cpu, memory = 0, _ZERO, _ZERO
    for container in _maps(spec.get("containers")):
        g, c, m = _container_requests(container)
        gpus, cpu, memory = gpus + g, cpu + c, memory + m
    for container in _maps(spec.get("initContainers")):
        g, c, m = _container_requests(container)
        gpus, cpu, memory = max(gpus, g), max(cpu, c), max(memory, m)
    return gpus, cpu, memory


def _finished_at(status: Mapping[str, Any]) -> datetime | None:
    if status.get("phase") not in ("Succeeded", "Failed"):
        return None
    times = []
    for cs in _maps(status.get("containerStatuses")):
        terminated = _map(_map(cs.get("state")).get("terminated"))
        finished = parse_time(terminated.get("finishedAt"))
        if finished:
            times.append(finished)
    return max(times) if times else None


def _spend_mark(annotations: Mapping[str, Any]) -> PodSpendMark | None:
    spend = parse_decimal(annotations.get(ANNOTATION_SPEND))
    at = parse_time(annotations.get(ANNOTATION_SPEND_AT))
    if spend is None or at is None or spend < 0:
        return None
    rate = parse_decimal(annotations.get(ANNOTATION_RATE))
    return PodSpendMark(spend=spend, rate=rate if rate is not None and rate >= 0 else _ZERO, at=at)


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    """Everything the engine reads in one pass; built by the shell from its indexes."""

    nodes: Mapping[str, NodeRecord] = field(default_factory=dict)
    pods: tuple[PodRecord, ...] = ()
