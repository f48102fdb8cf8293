"""The demo's cluster: priced GPU nodes, SkyPilot-style pods, an inference service, budgets.

Objects are shaped as EKS, GKE and SkyPilot make them (REFERENCE.md). The story, in simulated
hours from ``DEMO_START``:

- ``lr-sweep``: a 4-replica hyperparameter sweep (one SkyPilot cluster, 2 H100s per replica on
  an on-demand p5.48xlarge); worker 3 is stuck at 0 % GPU. Budget 250 USD: Notify at 50 % and
  80 %, Kill at 100 %; an idle-GPU rule kills a replica idle for 30 minutes.
- ``finetune-llama``: a SkyPilot managed job on a spot g4dn.xlarge; at 2 h the spot node is
  reclaimed and the job recovers on on-demand capacity, so its burn rate more than doubles.
- ``llm-serving``: a Deployment-owned inference pod on a GKE a3-highgpu-8g; weekly budget that
  scales it to 0 at 100 %.
- ``research-monthly``: the research team's monthly budget over the whole namespace.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from costwarden.models import GROUP, KIND, VERSION
from costwarden.records import ANNOTATION_GPU_UTIL, ANNOTATION_NODE_PRICE, format_time

# A Thursday mid-month: no weekly or monthly period boundary falls inside the demo.
DEMO_START = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
DEMO_HOURS = 7.5  # the simulated span the timeline is written for
FAILOVER_AT = timedelta(hours=2)

RESEARCH = "research"
SERVING = "serving"
BUDGET_API = f"{GROUP}/{VERSION}"

P5_NODE = "ip-10-0-1-10.ec2.internal"
SPOT_T4_NODE = "ip-10-0-2-20.ec2.internal"
ONDEMAND_T4_NODE = "ip-10-0-2-30.ec2.internal"
A3_NODE = "gke-ml-a3-ondemand-5d2e9f01-h7kp"
# The bundled catalog has on-demand rows for g4dn.xlarge only; spot prices move hourly, so the
# demo pins an illustrative spot price (about 40 % of on-demand) with the node price annotation.
SPOT_T4_PRICE = "0.2104"

SWEEP = ("lr-sweep", "lr-sweep-7c1e")  # (name the user typed, name on cloud)
FINETUNE = ("finetune-llama", "finetune-llama-3b1d")


class Cluster(Protocol):
    """What seeding needs from the stand-in (``ThreadedSimCluster`` provides it)."""

    def create(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    def patch(  # noqa: PLR0917 -- mirrors ThreadedSimCluster.patch
        self,
        api_version: str,
        plural: str,
        name: str,
        patch: Mapping[str, Any],
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> dict[str, Any]: ...

    def delete(self, api_version: str, plural: str, name: str, namespace: str | None = None) -> None: ...

    def list(self, api_version: str, plural: str, namespace: str | None = None) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class Step:
    """Something that happens to the cluster at a simulated time."""

    at: timedelta
    title: str
    apply: Callable[[Cluster, datetime], None] = field(compare=False)
    budgets: tuple[str, ...] = ()  # "namespace/name" of the budgets whose chart marks it
    mark: str = ""  # its short label on the chart


# ---- nodes


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


def gke_a3_node(name: str = A3_NODE) -> dict[str, Any]:
    capacity = {"cpu": "208", "memory": "1872Gi", "nvidia.com/gpu": "8", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "node.kubernetes.io/instance-type": "a3-highgpu-8g",
                "topology.kubernetes.io/region": "us-central1",
                "topology.kubernetes.io/zone": "us-central1-a",
                "cloud.google.com/gke-accelerator": "nvidia-h100-80gb",
                "cloud.google.com/gke-accelerator-count": "8",
                "cloud.google.com/gke-nodepool": "a3-ondemand",
            },
        },
        "spec": {"providerID": f"gce://ml-project/us-central1-a/{name}"},
        "status": {"capacity": capacity, "allocatable": capacity},
    }


def nodes() -> list[dict[str, Any]]:
    p5 = eks_node(P5_NODE, "p5.48xlarge", spot=False, gpus=8, cpu="192", memory="2048Gi")
    p5["metadata"]["labels"]["nvidia.com/gpu.product"] = "NVIDIA-H100-80GB-HBM3"
    spot = eks_node(SPOT_T4_NODE, "g4dn.xlarge", spot=True, gpus=1, cpu="4", memory="16Gi")
    spot["metadata"]["annotations"] = {ANNOTATION_NODE_PRICE: SPOT_T4_PRICE}
    on_demand = eks_node(ONDEMAND_T4_NODE, "g4dn.xlarge", spot=False, gpus=1, cpu="4", memory="16Gi")
    for node in (spot, on_demand):
        node["metadata"]["labels"]["nvidia.com/gpu.product"] = "Tesla-T4"
    return [p5, spot, on_demand, gke_a3_node()]


# ---- pods


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
                "team": spec.namespace,
            },
            "annotations": {
                "skypilot-cluster-name": typed,
                "skypilot-user": spec.user,
                ANNOTATION_GPU_UTIL: spec.gpu_utilization,
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


def sweep_pods() -> list[dict[str, Any]]:
    pods = []
    for index in range(4):
        spec = SkyPod(
            SWEEP,
            RESEARCH,
            P5_NODE,
            user="alice",
            gpus=2,
            cpu="44",
            memory="480Gi",
            role="head" if index == 0 else "worker",
            index=index,
            gpu_utilization="0" if index == 3 else str(95 + index),
        )
        pods.append(skypilot_pod(spec))
    return pods


def finetune_pod(node: str, spot: bool) -> dict[str, Any]:
    job = (("skypilot-managed-job-id", "42"), ("skypilot-managed-job-name", FINETUNE[0]))
    selector = (("karpenter.sh/capacity-type", "spot"),) if spot else ()
    spec = SkyPod(
        FINETUNE,
        RESEARCH,
        node,
        user="bob",
        gpus=1,
        cpu="3",
        memory="12Gi",
        gpu_utilization="91",
        extra_annotations=job,
        node_selector=selector,
    )
    return skypilot_pod(spec)


def inference_objects() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Deployment, ReplicaSet and pod of the inference service (owner references added at seeding)."""
    labels = {"app": "llm-serving", "tier": "production"}
    container = {
        "name": "vllm",
        "image": "vllm/vllm-openai:v0.6.3",
        "resources": {
            "requests": {"cpu": "96", "memory": "640Gi", "nvidia.com/gpu": "8"},
            "limits": {"nvidia.com/gpu": "8"},
        },
    }
    template = {"metadata": {"labels": labels}, "spec": {"containers": [container]}}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "llm-serving", "namespace": SERVING, "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": template},
    }
    rs_labels = {**labels, "pod-template-hash": "6d9f7c8b5"}
    replicaset = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "llm-serving-6d9f7c8b5", "namespace": SERVING, "labels": rs_labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": rs_labels},
            "template": {**template, "metadata": {"labels": rs_labels}},
        },
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "llm-serving-6d9f7c8b5-x2k8q",
            "namespace": SERVING,
            "labels": rs_labels,
            "annotations": {ANNOTATION_GPU_UTIL: "63"},
        },
        "spec": {"nodeName": A3_NODE, "containers": [container]},
    }
    return deployment, replicaset, pod


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


# ---- budgets


def budget(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": BUDGET_API,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def budgets() -> list[dict[str, Any]]:
    notify_kill = [
        {"percent": 50, "action": "Notify"},
        {"percent": 80, "action": "Notify"},
        {"percent": 100, "action": "Kill"},
    ]
    return [
        budget(
            RESEARCH,
            "lr-sweep",
            {
                "limit": 250,
                "period": "Lifetime",
                "skypilotCluster": SWEEP[0],
                "selector": {"matchLabels": {"skypilot-cluster-name": SWEEP[1]}},
                "thresholds": notify_kill,
                "anomalies": {"idleGpu": {"belowPercent": 5, "forMinutes": 30, "action": "Kill"}},
                "enforcement": {"gracePeriodSeconds": 30},
            },
        ),
        budget(
            RESEARCH,
            "finetune-llama",
            {
                "limit": 5,
                "period": "Lifetime",
                "skypilotCluster": FINETUNE[0],
                "selector": {"matchLabels": {"skypilot-cluster-name": FINETUNE[1]}},
                "expectedHourlyRate": 0.22,
                "thresholds": [{"percent": 80, "action": "Notify"}, {"percent": 100, "action": "Kill"}],
                "anomalies": {"burnRate": {"multiplier": 2, "action": "Notify"}},
            },
        ),
        budget(
            SERVING,
            "llm-serving",
            {
                "limit": 160,
                "period": "Weekly",
                "selector": {"matchLabels": {"app": "llm-serving"}},
                "thresholds": [{"percent": 80, "action": "Notify"}, {"percent": 100, "action": "Scale"}],
            },
        ),
        budget(
            RESEARCH,
            "research-monthly",
            {
                "limit": 400,
                "period": "Monthly",
                "selector": {},
                "thresholds": [{"percent": 50, "action": "Notify"}, {"percent": 90, "action": "Notify"}],
            },
        ),
    ]


# ---- seeding and the timeline


def start_pod(cluster: Cluster, pod: dict[str, Any], now: datetime) -> dict[str, Any]:
    created = cluster.create(pod)
    meta = created["metadata"]
    container = pod["spec"]["containers"][0]["name"]
    cluster.patch(
        "v1",
        "pods",
        meta["name"],
        {"status": running_status(now, container)},
        namespace=meta["namespace"],
        subresource="status",
    )
    return created


def seed(cluster: Cluster, now: datetime) -> None:
    """Namespaces, nodes, running pods (inference with its owners), then the budgets."""
    for name in (RESEARCH, SERVING):
        cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    for node in nodes():
        cluster.create(node)
    for pod in [*sweep_pods(), finetune_pod(SPOT_T4_NODE, spot=True)]:
        start_pod(cluster, pod, now)
    deployment, replicaset, pod = inference_objects()
    created = cluster.create(deployment)
    replicaset["metadata"]["ownerReferences"] = [owner_reference(created)]
    created = cluster.create(replicaset)
    pod["metadata"]["ownerReferences"] = [owner_reference(created)]
    start_pod(cluster, pod, now)
    for body in budgets():
        cluster.create(body)


def spot_failover(cluster: Cluster, now: datetime) -> None:
    """The spot node is reclaimed; SkyPilot's managed-job recovery relaunches on on-demand."""
    cluster.delete("v1", "pods", f"{FINETUNE[1]}-head", namespace=RESEARCH)
    cluster.delete("v1", "nodes", SPOT_T4_NODE)
    start_pod(cluster, finetune_pod(ONDEMAND_T4_NODE, spot=False), now)


def timeline() -> list[Step]:
    return [
        Step(
            FAILOVER_AT,
            "spot g4dn.xlarge reclaimed: finetune-llama recovers on on-demand",
            spot_failover,
            budgets=(f"{RESEARCH}/{FINETUNE[0]}",),
            mark="spot reclaimed → on-demand",
        )
    ]


def scale_down_pods(cluster: Cluster) -> list[str]:
    """The stand-in has no controllers: delete pods of ReplicaSets scaled (directly or via their
    Deployment) to 0 replicas, as the ReplicaSet controller would. Returns the deleted pod names."""
    zero_deployments = {
        (d["metadata"]["namespace"], d["metadata"]["name"])
        for d in cluster.list("apps/v1", "deployments", SERVING)
        if (d.get("spec") or {}).get("replicas") == 0
    }
    zero_sets = set()
    for rs in cluster.list("apps/v1", "replicasets", SERVING):
        meta = rs["metadata"]
        owners = {(meta["namespace"], o["name"]) for o in meta.get("ownerReferences") or []}
        if (rs.get("spec") or {}).get("replicas") == 0 or owners & zero_deployments:
            zero_sets.add(meta["name"])
    deleted = []
    for pod in cluster.list("v1", "pods", SERVING):
        meta = pod["metadata"]
        if any(o.get("name") in zero_sets for o in meta.get("ownerReferences") or []):
            cluster.delete("v1", "pods", meta["name"], namespace=SERVING)
            deleted.append(meta["name"])
    return deleted
