"""Kubernetes objects shaped as EKS, GKE and SkyPilot make them (docs/pricing.md), for the demo."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from costwarden.demo.telemetry import SIMULATED_GPU_UTIL
from costwarden.models import GROUP, KIND, VERSION
from costwarden.records import format_time

BUDGET_API = f"{GROUP}/{VERSION}"


def eks_node(
    name: str, instance_type: str, *, spot: bool, gpus: int, cpu: str, memory: str
) -> dict[str, Any]:
    labels = {
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": instance_type,
        "topology.kubernetes.io/region": "us-east-1",
        "topology.kubernetes.io/zone": "us-east-1a",
        "eks.amazonaws.com/capacityType": "SPOT" if spot else "ON_DEMAND",
        "eks.amazonaws.com/nodegroup": f"gpu-{instance_type.partition('.')[0]}{'-spot' if spot else ''}",
        "nvidia.com/gpu.count": str(gpus),
    }
    capacity = {"cpu": cpu, "memory": memory, "nvidia.com/gpu": str(gpus), "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"providerID": f"aws:///us-east-1a/i-0{zlib.crc32(name.encode()):08x}{len(name):08x}"},
        "status": {"capacity": capacity, "allocatable": capacity},
    }


def gke_a3_node(name: str, *, spot: bool = False) -> dict[str, Any]:
    capacity = {"cpu": "208", "memory": "1872Gi", "nvidia.com/gpu": "8", "pods": "110"}
    labels = {
        "node.kubernetes.io/instance-type": "a3-highgpu-8g",
        "topology.kubernetes.io/region": "us-central1",
        "topology.kubernetes.io/zone": "us-central1-a",
        "cloud.google.com/gke-accelerator": "nvidia-h100-80gb",
        "cloud.google.com/gke-accelerator-count": "8",
        "cloud.google.com/gke-nodepool": "a3-spot" if spot else "a3-ondemand",
    }
    if spot:
        labels["cloud.google.com/gke-spot"] = "true"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"providerID": f"gce://ml-project/us-central1-a/{name}"},
        "status": {"capacity": capacity, "allocatable": capacity},
    }


@dataclass(frozen=True, slots=True)
class SkyPod:
    cluster: tuple[str, str]
    namespace: str
    node: str
    user: str
    gpus: int
    cpu: str
    memory: str
    role: str = "head"
    index: int = 0
    gpu_utilization: str = "97"
    extra_annotations: tuple[tuple[str, str], ...] = ()
    extra_labels: tuple[tuple[str, str], ...] = ()  # e.g. from the task's config.kubernetes.pod_config
    node_selector: tuple[tuple[str, str], ...] = ()


def skypilot_pod(spec: SkyPod) -> dict[str, Any]:
    """A SkyPilot head or worker pod: labels and annotations as sky/provision/kubernetes writes them."""
    typed, on_cloud = spec.cluster
    head = spec.role == "head"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{on_cloud}-head" if head else f"{on_cloud}-worker{spec.index}",
            "namespace": spec.namespace,
            "labels": {
                "skypilot-cluster-name": on_cloud,
                "ray-cluster-name": on_cloud,
                "skypilot-cluster": on_cloud,
                "parent": "skypilot",
                "skypilot-user": spec.user,
                "skypilot-binpack": "gpu",
                "ray-node-type": spec.role,
                "skypilot-head-node": "1" if head else "0",
                **dict(spec.extra_labels),
            },
            "annotations": {
                "skypilot-cluster-name": typed,
                "skypilot-user": spec.user,
                SIMULATED_GPU_UTIL: spec.gpu_utilization,
                **dict(spec.extra_annotations),
            },
        },
        "spec": {
            "nodeName": spec.node,
            "nodeSelector": dict(spec.node_selector),
            "containers": [
                {
                    "name": "ray-node",
                    "image": "us-docker.pkg.dev/sky-dev-465/skypilotk8s/skypilot-gpu:latest",
                    "resources": {
                        "requests": {
                            "cpu": spec.cpu,
                            "memory": spec.memory,
                            "nvidia.com/gpu": str(spec.gpus),
                        },
                        "limits": {"nvidia.com/gpu": str(spec.gpus)},
                    },
                }
            ],
        },
    }


def running_status(started: datetime, container: str) -> dict[str, Any]:
    at = format_time(started)
    return {
        "phase": "Running",
        "startTime": at,
        "containerStatuses": [{"name": container, "ready": True, "state": {"running": {"startedAt": at}}}],
    }


def owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def budget(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": BUDGET_API,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
