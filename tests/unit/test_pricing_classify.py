"""Node classification from labels and spec.providerID, on node bodies shaped like real clusters'."""

from __future__ import annotations

from typing import Any

import pytest

from costwarden.pricing import NodeFacts, classify_node, load_bundled_catalog
from costwarden.records import NodeRecord


def node_body(
    name: str, labels: dict[str, str], provider_id: str | None, capacity: dict[str, str]
) -> dict[str, Any]:
    spec = {"providerID": provider_id} if provider_id else {}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/os": "linux", **labels}},
        "spec": spec,
        "status": {"capacity": capacity, "allocatable": capacity},
    }


EKS_P5_ON_DEMAND = node_body(
    "ip-10-0-12-34.ec2.internal",
    {
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": "ip-10-0-12-34.ec2.internal",
        "node.kubernetes.io/instance-type": "p5.48xlarge",
        "beta.kubernetes.io/instance-type": "p5.48xlarge",
        "topology.kubernetes.io/region": "us-east-1",
        "topology.kubernetes.io/zone": "us-east-1a",
        "failure-domain.beta.kubernetes.io/region": "us-east-1",
        "failure-domain.beta.kubernetes.io/zone": "us-east-1a",
        "eks.amazonaws.com/capacityType": "ON_DEMAND",
        "eks.amazonaws.com/nodegroup": "gpu-p5",
        "eks.amazonaws.com/nodegroup-image": "ami-0c1d2e3f4a5b6c7d8",
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
        "nvidia.com/gpu.count": "8",
    },
    "aws:///us-east-1a/i-0fea4fd46592d050b",
    {"cpu": "192", "memory": "2097152Mi", "nvidia.com/gpu": "8", "pods": "737"},
)

EKS_KARPENTER_SPOT = node_body(
    "ip-10-0-77-8.ec2.internal",
    {
        "node.kubernetes.io/instance-type": "g6.12xlarge",
        "topology.kubernetes.io/region": "us-east-1",
        "topology.kubernetes.io/zone": "us-east-1b",
        "karpenter.sh/capacity-type": "spot",
        "karpenter.sh/nodepool": "gpu-spot",
        "karpenter.k8s.aws/instance-family": "g6",
        "karpenter.k8s.aws/instance-gpu-name": "l4",
        "karpenter.k8s.aws/instance-gpu-count": "4",
        "karpenter.k8s.aws/instance-gpu-manufacturer": "nvidia",
    },
    "aws:///us-east-1b/i-0a1b2c3d4e5f60718",
    {"cpu": "48", "memory": "196608Mi", "nvidia.com/gpu": "4"},
)

GKE_A3_SPOT = node_body(
    "gke-train-a3-spot-5f2c9e1a-x7k2",
    {
        "cloud.google.com/gke-nodepool": "a3-spot",
        "cloud.google.com/gke-spot": "true",
        "cloud.google.com/gke-provisioning": "spot",
        "cloud.google.com/gke-accelerator": "nvidia-h100-80gb",
        "cloud.google.com/machine-family": "a3",
        "node.kubernetes.io/instance-type": "a3-highgpu-8g",
        "topology.kubernetes.io/region": "us-central1",
        "topology.kubernetes.io/zone": "us-central1-a",
    },
    "gce://ml-prod-4711/us-central1-a/gke-train-a3-spot-5f2c9e1a-x7k2",
    {"cpu": "208", "memory": "1917728768Ki", "nvidia.com/gpu": "8"},
)

GKE_N1_T4_PREEMPTIBLE = node_body(
    "gke-infer-t4-pool-0b1c2d3e-abcd",
    {
        "cloud.google.com/gke-nodepool": "t4-pool",
        "cloud.google.com/gke-preemptible": "true",
        "cloud.google.com/gke-accelerator": "nvidia-tesla-t4",
        "node.kubernetes.io/instance-type": "n1-standard-8",
        "topology.kubernetes.io/region": "us-central1",
        "topology.kubernetes.io/zone": "us-central1-b",
    },
    "gce://ml-prod-4711/us-central1-b/gke-infer-t4-pool-0b1c2d3e-abcd",
    {"cpu": "8", "memory": "30817232Ki", "nvidia.com/gpu": "1"},
)

AKS_A100_SPOT = node_body(
    "aks-gpuspot-12345678-vmss000000",
    {
        "agentpool": "gpuspot",
        "kubernetes.azure.com/agentpool": "gpuspot",
        "kubernetes.azure.com/cluster": "MC_ml-rg_ml-aks_eastus",
        "kubernetes.azure.com/scalesetpriority": "spot",
        "kubernetes.azure.com/accelerator": "nvidia",
        "node.kubernetes.io/instance-type": "Standard_NC24ads_A100_v4",
        "topology.kubernetes.io/region": "eastus",
        "topology.kubernetes.io/zone": "eastus-1",
    },
    "azure:///subscriptions/0b1c2d3e-0000-4000-8000-123456789abc/resourceGroups/mc_ml-rg_ml-aks_eastus"
    "/providers/Microsoft.Compute/virtualMachineScaleSets/aks-gpuspot-12345678-vmss/virtualMachines/0",
    {"cpu": "24", "memory": "226553664Ki", "nvidia.com/gpu": "1"},
)

ON_PREM_DGX = node_body(
    "dgx-a100-01",
    {
        "kubernetes.io/hostname": "dgx-a100-01",
        "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB",
        "nvidia.com/gpu.count": "8",
    },
    None,
    {"cpu": "256", "memory": "2113638400Ki", "nvidia.com/gpu": "8"},
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            EKS_P5_ON_DEMAND,
            NodeFacts(
                "aws", "us-east-1", "us-east-1a", "p5.48xlarge", "on-demand", 8, "NVIDIA-H100-80GB-HBM3"
            ),
            id="eks-p5-on-demand",
        ),
        pytest.param(
            EKS_KARPENTER_SPOT,
            NodeFacts("aws", "us-east-1", "us-east-1b", "g6.12xlarge", "spot", 4, "l4"),
            id="eks-karpenter-spot",
        ),
        pytest.param(
            GKE_A3_SPOT,
            NodeFacts("gcp", "us-central1", "us-central1-a", "a3-highgpu-8g", "spot", 8, "nvidia-h100-80gb"),
            id="gke-a3-spot",
        ),
        pytest.param(
            GKE_N1_T4_PREEMPTIBLE,
            NodeFacts("gcp", "us-central1", "us-central1-b", "n1-standard-8", "spot", 1, "nvidia-tesla-t4"),
            id="gke-preemptible",
        ),
        pytest.param(
            AKS_A100_SPOT,
            NodeFacts("azure", "eastus", "eastus-1", "Standard_NC24ads_A100_v4", "spot", 1, None),
            id="aks-spot",
        ),
        pytest.param(
            ON_PREM_DGX,
            NodeFacts("unknown", None, None, None, "on-demand", 8, "NVIDIA-A100-SXM4-80GB"),
            id="on-prem",
        ),
    ],
)
def test_classify_real_node_bodies(body: dict[str, Any], expected: NodeFacts) -> None:
    assert classify_node(NodeRecord.from_body(body)) == expected


def labelled(labels: dict[str, str], provider_id: str = "", gpus: str | None = None) -> NodeRecord:
    capacity = {"cpu": "8", "memory": "32Gi"} | ({"nvidia.com/gpu": gpus} if gpus else {})
    return NodeRecord.from_body(node_body("n", labels, provider_id or None, capacity))


@pytest.mark.parametrize(
    ("labels", "capacity_type"),
    [
        ({"eks.amazonaws.com/capacityType": "SPOT"}, "spot"),
        ({"eks.amazonaws.com/capacityType": "ON_DEMAND"}, "on-demand"),
        ({"eks.amazonaws.com/capacityType": "CAPACITY_BLOCK"}, "reserved"),
        ({"karpenter.sh/capacity-type": "reserved"}, "reserved"),
        ({"karpenter.sh/capacity-type": "on-demand"}, "on-demand"),
        ({"cloud.google.com/gke-spot": "true"}, "spot"),
        ({"cloud.google.com/gke-spot": "false"}, "on-demand"),
        ({"cloud.google.com/gke-preemptible": "true"}, "spot"),
        ({"kubernetes.azure.com/scalesetpriority": "spot"}, "spot"),
        ({"kubernetes.azure.com/scalesetpriority": "regular"}, "on-demand"),
        ({"lifecycle": "EC2Spot"}, "spot"),
        ({}, "on-demand"),
    ],
)
def test_capacity_type_labels(labels: dict[str, str], capacity_type: str) -> None:
    assert classify_node(labelled(labels)).capacity_type == capacity_type


@pytest.mark.parametrize(
    ("labels", "provider_id", "cloud"),
    [
        ({}, "aws:///us-west-2c/i-1", "aws"),
        ({}, "gce://p/europe-west4-b/n", "gcp"),
        (
            {},
            "azure:///subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/v",
            "azure",
        ),
        ({"eks.amazonaws.com/nodegroup": "ng"}, "", "aws"),
        ({"karpenter.k8s.aws/instance-family": "p5"}, "", "aws"),
        ({"cloud.google.com/gke-nodepool": "pool"}, "", "gcp"),
        ({"kubernetes.azure.com/agentpool": "pool"}, "", "azure"),
        ({"lifecycle": "EC2Spot"}, "", "aws"),
        ({"karpenter.sh/capacity-type": "spot"}, "", "unknown"),  # Karpenter also runs on Azure
        ({}, "kind://docker/kind/kind-worker", "unknown"),
    ],
)
def test_cloud_from_provider_id_then_labels(labels: dict[str, str], provider_id: str, cloud: str) -> None:
    assert classify_node(labelled(labels, provider_id)).cloud == cloud


def test_older_beta_labels_are_read() -> None:
    facts = classify_node(
        labelled(
            {
                "beta.kubernetes.io/instance-type": "g4dn.xlarge",
                "failure-domain.beta.kubernetes.io/region": "us-west-2",
                "failure-domain.beta.kubernetes.io/zone": "us-west-2c",
            }
        )
    )
    assert (facts.instance_type, facts.region, facts.zone) == ("g4dn.xlarge", "us-west-2", "us-west-2c")


@pytest.mark.parametrize(
    ("provider_id", "zone", "region"),
    [
        ("aws:///us-east-2a/i-0fea4fd46592d050b", "us-east-2a", "us-east-2"),
        ("gce://my-project/us-central1-f/gke-node-1", "us-central1-f", "us-central1"),
        (
            "gce://my-project/northamerica-northeast1-a/n",
            "northamerica-northeast1-a",
            "northamerica-northeast1",
        ),
    ],
)
def test_zone_and_region_from_provider_id_when_labels_missing(
    provider_id: str, zone: str, region: str
) -> None:
    facts = classify_node(labelled({}, provider_id))
    assert (facts.zone, facts.region) == (zone, region)


def test_gpu_count_and_model_from_labels_when_capacity_has_none() -> None:
    facts = classify_node(
        labelled(
            {"cloud.google.com/gke-accelerator": "nvidia-l4", "cloud.google.com/gke-accelerator-count": "2"}
        )
    )
    assert (facts.gpu_count, facts.gpu_model) == (2, "nvidia-l4")


def test_gpu_model_label_precedence_and_skypilot_label() -> None:
    both = {"nvidia.com/gpu.product": "NVIDIA-L4", "skypilot.co/accelerator": "L4"}
    assert classify_node(labelled(both, gpus="1")).gpu_model == "NVIDIA-L4"
    assert classify_node(labelled({"skypilot.co/accelerator": "H100"}, gpus="1")).gpu_model == "H100"


def test_catalog_fills_missing_gpu_model_and_count() -> None:
    catalog = load_bundled_catalog()
    record = labelled({"node.kubernetes.io/instance-type": "p4d.24xlarge"}, "aws:///us-east-1c/i-1")
    assert classify_node(record).gpu_model is None
    facts = classify_node(record, catalog)
    assert (facts.gpu_count, facts.gpu_model) == (8, "A100")


def test_record_capacity_beats_catalog_gpu_count() -> None:
    record = labelled({"node.kubernetes.io/instance-type": "p4d.24xlarge"}, "aws:///us-east-1c/i-1", gpus="7")
    assert classify_node(record, load_bundled_catalog()).gpu_count == 7
