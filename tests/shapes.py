"""Nodes and pods shaped exactly as EKS, GKE, AKS and SkyPilot make them (see docs/pricing.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from costwarden.demo import shapes as demo_shapes
from costwarden.models import Action, ActionRecord, ActionResult, NotificationState


def eks_p5_node(name: str = "ip-10-0-1-23.ec2.internal", *, spot: bool = False) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "p5.48xlarge",
                "beta.kubernetes.io/instance-type": "p5.48xlarge",
                "topology.kubernetes.io/region": "us-east-1",
                "topology.kubernetes.io/zone": "us-east-1a",
                "eks.amazonaws.com/capacityType": "SPOT" if spot else "ON_DEMAND",
                "eks.amazonaws.com/nodegroup": "gpu-p5",
                "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
                "nvidia.com/gpu.count": "8",
            },
        },
        "spec": {"providerID": "aws:///us-east-1a/i-0fea4fd46592d050b"},
        "status": {
            "capacity": {"cpu": "192", "memory": "2097152Mi", "nvidia.com/gpu": "8", "pods": "110"},
            "allocatable": {"cpu": "191450m", "memory": "2080000Mi", "nvidia.com/gpu": "8", "pods": "110"},
        },
    }


def gke_a3_spot_node(name: str = "gke-ml-a3-spot-7f3c2a1b-x9kq") -> dict[str, Any]:
    return demo_shapes.gke_a3_node(name, spot=True)


def aks_t4_spot_node(name: str = "aks-gpuspot-31415926-vmss000000") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "node.kubernetes.io/instance-type": "Standard_NC4as_T4_v3",
                "topology.kubernetes.io/region": "eastus",
                "topology.kubernetes.io/zone": "eastus-1",
                "kubernetes.azure.com/scalesetpriority": "spot",
                "kubernetes.azure.com/agentpool": "gpuspot",
            },
        },
        "spec": {
            "providerID": "azure:///subscriptions/0000-1111/resourceGroups/mc_rg_ml_eastus/providers/"
            "Microsoft.Compute/virtualMachineScaleSets/aks-gpuspot-31415926-vmss/virtualMachines/0"
        },
        "status": {"capacity": {"cpu": "4", "memory": "28Gi", "nvidia.com/gpu": "1", "pods": "30"}},
    }


def skypilot_pod(
    cluster_on_cloud: str,
    user_cluster: str,
    *,
    namespace: str,
    node: str,
    role: str = "head",
    index: int = 0,
    gpus: int = 8,
    cpu: str = "192",
    memory: str = "2097152Mi",
    user: str = "alice",
) -> dict[str, Any]:
    """A SkyPilot head or worker pod (labels and annotations as instance.py writes them)."""
    name = f"{cluster_on_cloud}-head" if role == "head" else f"{cluster_on_cloud}-worker{index}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "skypilot-cluster-name": cluster_on_cloud,
                "ray-cluster-name": cluster_on_cloud,
                "skypilot-cluster": cluster_on_cloud,
                "parent": "skypilot",
                "skypilot-user": user,
                "skypilot-binpack": "gpu",
                "ray-node-type": role,
                "skypilot-head-node": "1" if role == "head" else "0",
            },
            "annotations": {"skypilot-cluster-name": user_cluster, "skypilot-user": user},
        },
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": "ray-node",
                    "image": "us-docker.pkg.dev/sky-dev-465/skypilotk8s/skypilot-gpu:latest",
                    "resources": {
                        "requests": {"cpu": cpu, "memory": memory, "nvidia.com/gpu": str(gpus)},
                        "limits": {"nvidia.com/gpu": str(gpus)},
                    },
                }
            ],
        },
    }


def running_status(started: datetime) -> dict[str, Any]:
    return demo_shapes.running_status(started, "ray-node")


def plain_pod(
    name: str, *, namespace: str, node: str, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {"app": name}},
        "spec": {
            "nodeName": node,
            "containers": [
                {"name": "main", "image": "busybox", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}
            ],
        },
    }


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def action_record(
    record_id: str,
    action: Action,
    result: ActionResult,
    *,
    attempts: int = 0,
    targets: tuple[str, ...] = (),
    notification: NotificationState | None = None,
    notify_attempts: int = 0,
    resumed_at: str | None = None,
    message: str = "",
    time: str = "2026-12-01T07:00:00Z",
) -> ActionRecord:
    """One ``status.actions`` record, its trigger its id."""
    return ActionRecord(
        id=record_id,
        time=time,
        trigger=record_id,
        action=action,
        result=result,
        attempts=attempts,
        targets=targets,
        notification=notification,
        notify_attempts=notify_attempts,
        resumed_at=resumed_at,
        message=message,
    )
