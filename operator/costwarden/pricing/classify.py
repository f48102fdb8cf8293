"""What a node is, read from its labels and ``spec.providerID`` (the labels: docs/pricing.md).

Pure and total: an unrecognised node is classified as cloud "unknown", on-demand, with
whatever GPU facts its record carries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from costwarden.pricing.catalog import Catalog, CatalogRow
from costwarden.records import NodeRecord

LABEL_INSTANCE_TYPE = ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type")
LABEL_REGION = ("topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region")
LABEL_ZONE = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
LABEL_GPU_COUNT = ("nvidia.com/gpu.count", "cloud.google.com/gke-accelerator-count")
LABEL_GPU_MODEL = (
    "nvidia.com/gpu.product",
    "cloud.google.com/gke-accelerator",
    "karpenter.k8s.aws/instance-gpu-name",
    "skypilot.co/accelerator",
)
LABEL_GKE_ACCELERATOR = "cloud.google.com/gke-accelerator"

_PROVIDER_PREFIXES = (("aws://", "aws"), ("gce://", "gcp"), ("azure://", "azure"))
_LABEL_PREFIXES = (
    ("eks.amazonaws.com/", "aws"),
    ("karpenter.k8s.aws/", "aws"),
    ("cloud.google.com/", "gcp"),
    ("kubernetes.azure.com/", "azure"),
)
# (label, value lowercased) -> capacity type; the first label present on the node decides.
_CAPACITY_LABELS: tuple[tuple[str, Mapping[str, str]], ...] = (
    ("karpenter.sh/capacity-type", {"spot": "spot", "on-demand": "on-demand", "reserved": "reserved"}),
    (
        "eks.amazonaws.com/capacityType",
        {"spot": "spot", "on_demand": "on-demand", "capacity_block": "reserved"},
    ),
    ("cloud.google.com/gke-spot", {"true": "spot"}),
    ("cloud.google.com/gke-preemptible", {"true": "spot"}),
    ("kubernetes.azure.com/scalesetpriority", {"spot": "spot"}),
    ("lifecycle", {"ec2spot": "spot"}),
)
_AWS_ZONE = re.compile(r"^([a-z]{2}(?:-[a-z]+)+-\d+)[a-z]$")
_GCP_ZONE = re.compile(r"^([a-z]+(?:-[a-z]+)*\d+)-[a-z]$")


@dataclass(frozen=True, slots=True)
class NodeFacts:
    cloud: str  # aws | gcp | azure | unknown
    region: str | None
    zone: str | None
    instance_type: str | None
    capacity_type: str  # on-demand | spot | reserved
    gpu_count: int
    gpu_model: str | None


def classify_node(node: NodeRecord, catalog: Catalog | None = None) -> NodeFacts:
    """Facts about ``node``; with a catalog, its row fills a GPU count or model the node lacks."""
    labels = node.label_map
    cloud = _cloud(node.provider_id, labels)
    zone = _first(labels, LABEL_ZONE) or _zone_from_provider_id(node.provider_id)
    region = _first(labels, LABEL_REGION) or _region_from_zone(cloud, zone)
    instance_type = _first(labels, LABEL_INSTANCE_TYPE)
    capacity_type = _capacity_type(labels)
    gpu_count = node.gpus or _label_int(labels, LABEL_GPU_COUNT)
    gpu_model = _first(labels, LABEL_GPU_MODEL)
    row = _catalog_row(catalog, cloud, instance_type, region) if catalog else None
    if row is not None:
        gpu_count = gpu_count or row.gpus
        gpu_model = gpu_model or row.gpu_model
    return NodeFacts(
        cloud=cloud,
        region=region,
        zone=zone,
        instance_type=instance_type,
        capacity_type=capacity_type,
        gpu_count=gpu_count,
        gpu_model=gpu_model,
    )


def _cloud(provider_id: str, labels: Mapping[str, str]) -> str:
    for prefix, cloud in _PROVIDER_PREFIXES:
        if provider_id.startswith(prefix):
            return cloud
    for label_prefix, cloud in _LABEL_PREFIXES:
        if any(key.startswith(label_prefix) for key in labels):
            return cloud
    if labels.get("lifecycle", "").lower() == "ec2spot":
        return "aws"
    return "unknown"


def _capacity_type(labels: Mapping[str, str]) -> str:
    for label, values in _CAPACITY_LABELS:
        if label in labels:
            found = values.get(labels[label].strip().lower())
            if found:
                return found
    return "on-demand"


def _zone_from_provider_id(provider_id: str) -> str | None:
    """aws:///us-east-2a/i-0fea… and gce://project/us-central1-a/name carry the zone."""
    if provider_id.startswith("aws://"):
        parts = [p for p in provider_id[len("aws://") :].split("/") if p]
        return parts[0] if len(parts) >= 2 else None
    if provider_id.startswith("gce://"):
        parts = provider_id[len("gce://") :].split("/")
        return (parts[1] or None) if len(parts) >= 3 else None
    return None


def _region_from_zone(cloud: str, zone: str | None) -> str | None:
    if not zone:
        return None
    pattern = {"aws": _AWS_ZONE, "gcp": _GCP_ZONE}.get(cloud)
    match = pattern.match(zone) if pattern else None
    return match.group(1) if match else None


def _first(labels: Mapping[str, str], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = labels.get(key, "").strip()
        if value:
            return value
    return None


def _label_int(labels: Mapping[str, str], keys: tuple[str, ...]) -> int:
    value = _first(labels, keys)
    return int(value) if value and value.isdigit() else 0


def _catalog_row(
    catalog: Catalog, cloud: str, instance_type: str | None, region: str | None
) -> CatalogRow | None:
    if not instance_type:
        return None
    return catalog.lookup(cloud, instance_type, region, "on-demand")
