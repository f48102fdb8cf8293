"""The demo's cluster: priced GPU nodes, SkyPilot-style pods, an inference service, budgets.

Objects are shaped as EKS, GKE and SkyPilot make them (docs/pricing.md). The story, in simulated
hours from ``DEMO_START``:

- ``lr-sweep``: a hyperparameter sweep of 4 trials, each a SkyPilot managed job (its own
  SkyPilot cluster) with 2 H100s on an on-demand p5.48xlarge, all labelled ``sweep: lr-sweep``
  through the task's ``pod_config``; trial 3 is stuck at 0 % GPU. Budget 250 USD: Notify at 50 %
  and 80 %, Kill at 100 %; an idle-GPU rule kills a trial idle for 30 minutes (a SkyPilot
  cluster is killed as a whole, so only the stuck trial goes).
- ``finetune-llama``: a SkyPilot managed job on a spot g4dn.xlarge; at 2 h the spot node is
  reclaimed and the job recovers on on-demand capacity, so its burn rate more than doubles.
- ``llm-serving``: a Deployment-owned inference pod on a GKE a3-highgpu-8g; weekly budget that
  scales it to 0 at 100 %.
- ``research-monthly``: the research team's monthly budget over the whole namespace.
- ``llama-pretrain``: a SkyPilot managed job (head and worker, 8 H100s each) on two EKS spot
  p5.48xlarge nodes. At 3 h both nodes are reclaimed (nodes and pods gone); at 3¼ h SkyPilot's
  recovery relaunches the cluster on AWS itself, as two on-demand p5.48xlarge VMs: 2.5 times the
  burn, and no pod left for a pod-only guardrail to see. Its budget names the cluster
  (``skypilotCluster``), so it follows it onto the VMs of the demo's simulated AWS region
  (``demo.cloud``): status.vms and vmSpend rise, a burn-rate Notify, 80 % Notify, and Kill at
  100 % terminates the VMs, workers first. ``eval-harness``, another cluster's VM in the same
  region, keeps running.
- ``research-hpc``: the research team's budget over its jobs on ``hpc``, the demo's simulated
  Slurm cluster (``demo.slurm``), selected by Slurm account (``spec.slurm``). ``pretrain-7b``
  (16 H100s on two nodes) runs from the start; ``eval-sweep`` (4 H100s) waits in the queue and
  starts at 1 h; ``md-sim``, a chemistry job of another account on the same partition, runs
  throughout. No overrides file is passed, so the jobs are priced at the default per-GPU, vCPU
  and GiB rates from their allocations. status.slurmJobs and slurmSpend rise, 80 % Notify, and
  Kill at 100 % sends TERM to the two covered jobs, waits the budget's 1 s grace period and
  cancels them by id; ``md-sim`` keeps running.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from costwarden.demo.cloud import SimulatedCloud, skypilot_tags
from costwarden.demo.shapes import (
    SkyPod,
    budget,
    eks_node,
    gke_a3_node,
    owner_reference,
    running_status,
    skypilot_pod,
)
from costwarden.demo.slurm import SimulatedSlurm
from costwarden.demo.telemetry import SIMULATED_GPU_UTIL
from costwarden.records import ANNOTATION_NODE_PRICE

# A Thursday mid-month: no weekly or monthly period boundary falls inside the demo.
DEMO_START = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
DEMO_HOURS = 7.5  # the simulated span the timeline is written for
FAILOVER_AT = timedelta(hours=2)

RESEARCH = "research"
SERVING = "serving"
TRAINING = "training"
SLURM = "slurm"  # the namespace of budgets over Slurm jobs only: no pod runs there

P5_NODE = "ip-10-0-1-10.ec2.internal"
SPOT_T4_NODE = "ip-10-0-2-20.ec2.internal"
ONDEMAND_T4_NODE = "ip-10-0-2-30.ec2.internal"
A3_NODE = "gke-ml-a3-ondemand-5d2e9f01-h7kp"
# Spot prices move hourly (the bundled catalog's g4dn.xlarge spot row is a dated snapshot), so the
# demo pins an illustrative spot price (about 40 % of on-demand) with the node price annotation.
SPOT_T4_PRICE = "0.2104"
# The pretraining job's spot nodes, pinned likewise (40 % of the p5.48xlarge on-demand 55.04).
SPOT_P5_NODES = ("ip-10-0-3-40.ec2.internal", "ip-10-0-3-41.ec2.internal")
SPOT_P5_PRICE = "22.016"
RECLAIM_AT = timedelta(hours=3)
RELAUNCH_AT = timedelta(hours=3, minutes=15)  # SkyPilot's recovery provisions the VMs
VM_TYPE = "p5.48xlarge"

SWEEP = "lr-sweep"
# Each trial's SkyPilot cluster: (name the user typed, name on cloud).
TRIALS = tuple(
    (f"{SWEEP}-trial-{i}", f"{SWEEP}-trial-{i}-{suffix}")
    for i, suffix in enumerate(("2ea4", "7c1e", "91bd", "c03f"))
)
IDLE_TRIAL = 3
FINETUNE = ("finetune-llama", "finetune-llama-3b1d")
PRETRAIN = ("llama-pretrain", "llama-pretrain-5f2a")
DECOY = ("eval-harness", "eval-harness-9a0c")  # another SkyPilot cluster's VM: no budget names it

# The simulated Slurm cluster (``--slurm hpc``) and its jobs: (name, user, account).
HPC = "hpc"
HPC_ACCOUNT = "nlp-research"
HPC_PRETRAIN = ("pretrain-7b", "alice", HPC_ACCOUNT)
HPC_EVAL = ("eval-sweep", "bob", HPC_ACCOUNT)
HPC_DECOY = ("md-sim", "dave", "chem-sim")  # another account's job on the same partition
HPC_EVAL_STARTS = timedelta(hours=1)  # pending until then


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


# ---- the story


def nodes() -> list[dict[str, Any]]:
    p5 = eks_node(P5_NODE, "p5.48xlarge", spot=False, gpus=8, cpu="192", memory="2048Gi")
    p5["metadata"]["labels"]["nvidia.com/gpu.product"] = "NVIDIA-H100-80GB-HBM3"
    spot = eks_node(SPOT_T4_NODE, "g4dn.xlarge", spot=True, gpus=1, cpu="4", memory="16Gi")
    spot["metadata"]["annotations"] = {ANNOTATION_NODE_PRICE: SPOT_T4_PRICE}
    on_demand = eks_node(ONDEMAND_T4_NODE, "g4dn.xlarge", spot=False, gpus=1, cpu="4", memory="16Gi")
    for node in (spot, on_demand):
        node["metadata"]["labels"]["nvidia.com/gpu.product"] = "Tesla-T4"
    spot_p5 = []
    for name in SPOT_P5_NODES:
        node = eks_node(name, "p5.48xlarge", spot=True, gpus=8, cpu="192", memory="2048Gi")
        node["metadata"]["labels"]["nvidia.com/gpu.product"] = "NVIDIA-H100-80GB-HBM3"
        node["metadata"]["annotations"] = {ANNOTATION_NODE_PRICE: SPOT_P5_PRICE}
        spot_p5.append(node)
    return [p5, spot, on_demand, gke_a3_node(A3_NODE), *spot_p5]


def sweep_pods() -> list[dict[str, Any]]:
    pods = []
    for index, cluster in enumerate(TRIALS):
        job = (("skypilot-managed-job-id", str(101 + index)), ("skypilot-managed-job-name", cluster[0]))
        spec = SkyPod(
            cluster,
            RESEARCH,
            P5_NODE,
            user="alice",
            gpus=2,
            cpu="44",
            memory="480Gi",
            gpu_utilization="0" if index == IDLE_TRIAL else str(94 + index),
            extra_annotations=job,
            extra_labels=(("team", RESEARCH), ("sweep", SWEEP)),
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
        extra_labels=(("team", RESEARCH),),
        node_selector=selector,
    )
    return skypilot_pod(spec)


def pretrain_pods() -> list[dict[str, Any]]:
    """The pretraining cluster's head and worker, one per spot p5 node (all 8 GPUs each)."""
    job = (("skypilot-managed-job-id", "77"), ("skypilot-managed-job-name", PRETRAIN[0]))
    selector = (("karpenter.sh/capacity-type", "spot"),)
    pods = []
    for index, node in enumerate(SPOT_P5_NODES):
        spec = SkyPod(
            PRETRAIN,
            TRAINING,
            node,
            user="carol",
            gpus=8,
            cpu="180",
            memory="1800Gi",
            role="head" if index == 0 else "worker",
            index=index,
            gpu_utilization=str(96 - index),
            extra_annotations=job,
            extra_labels=(("team", TRAINING),),
            node_selector=selector,
        )
        pods.append(skypilot_pod(spec))
    return pods


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
            "annotations": {SIMULATED_GPU_UTIL: "63"},
        },
        "spec": {"nodeName": A3_NODE, "containers": [container]},
    }
    return deployment, replicaset, pod


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
                "selector": {"matchLabels": {"sweep": SWEEP}},
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
        budget(
            TRAINING,
            "llama-pretrain",
            {
                "limit": 350,
                "period": "Lifetime",
                "skypilotCluster": PRETRAIN[0],  # its pods here, and its VMs on any cloud
                "selector": {},
                "expectedHourlyRate": 44,  # two spot p5.48xlarge
                "thresholds": [{"percent": 80, "action": "Notify"}, {"percent": 100, "action": "Kill"}],
                "anomalies": {"burnRate": {"multiplier": 2, "action": "Notify"}},
            },
        ),
        budget(
            SLURM,
            "research-hpc",
            {
                "limit": 120,
                "period": "Lifetime",
                "slurm": {"cluster": HPC, "account": HPC_ACCOUNT},  # the team's jobs, whoever runs them
                "thresholds": [{"percent": 80, "action": "Notify"}, {"percent": 100, "action": "Kill"}],
                "enforcement": {"gracePeriodSeconds": 1},  # TERM, 1 s (wall) to checkpoint, scancel
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
    for name in (RESEARCH, SERVING, TRAINING, SLURM):
        cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    for node in nodes():
        cluster.create(node)
    for pod in [*sweep_pods(), finetune_pod(SPOT_T4_NODE, spot=True), *pretrain_pods()]:
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


def seed_cloud(cloud: SimulatedCloud, now: datetime) -> None:
    """What runs in the simulated AWS region from the start: another team's evaluation cluster."""
    cloud.launch("g5.12xlarge", skypilot_tags(DECOY[1], head=True, user="dave"), now, zone="us-east-1b")


def seed_slurm(slurm: SimulatedSlurm, now: datetime) -> None:
    """The Slurm cluster's queue at the start: the team's pretraining running on two 8-GPU nodes,
    its evaluation sweep waiting for one, another account's simulation running on a third."""
    name, user, account = HPC_PRETRAIN
    slurm.submit(
        name,
        user=user,
        account=account,
        partition="gpu",
        gpus=16,
        cpus=128,
        memory_gib=1024,
        gpu_type="h100",
        at=now,
        nodes=("gpu-01", "gpu-02"),
    )
    name, user, account = HPC_EVAL
    slurm.submit(
        name,
        user=user,
        account=account,
        partition="gpu",
        gpus=4,
        cpus=32,
        memory_gib=256,
        gpu_type="h100",
        at=now,
    )
    name, user, account = HPC_DECOY
    slurm.submit(
        name,
        user=user,
        account=account,
        partition="gpu",
        gpus=8,
        cpus=64,
        memory_gib=512,
        gpu_type="h100",
        at=now,
        nodes=("gpu-03",),
    )


def start_eval(slurm: SimulatedSlurm) -> Callable[[Cluster, datetime], None]:
    """The scheduler starts the pending evaluation sweep on a freed node."""

    def apply(_cluster: Cluster, now: datetime) -> None:
        pending = next(job for job in slurm.all_jobs() if job.name == HPC_EVAL[0])
        slurm.start(pending.job_id, ("gpu-04",), now)

    return apply


def spot_reclaim(cluster: Cluster, now: datetime) -> None:
    """Both spot p5 nodes are reclaimed: the nodes and the pretraining pods on them are gone."""
    for pod in pretrain_pods():
        cluster.delete("v1", "pods", pod["metadata"]["name"], namespace=TRAINING)
    for name in SPOT_P5_NODES:
        cluster.delete("v1", "nodes", name)


def relaunch_on_vms(cloud: SimulatedCloud) -> Callable[[Cluster, datetime], None]:
    """SkyPilot's recovery relaunches the cluster on AWS as on-demand VMs (no spot capacity left):
    a head and a worker, tagged as its AWS provisioner tags them, running from ``now``."""

    def apply(_cluster: Cluster, now: datetime) -> None:
        for head in (True, False):
            cloud.launch(VM_TYPE, skypilot_tags(PRETRAIN[1], head=head, user="carol"), now, zone="us-east-1d")

    return apply


def timeline(cloud: SimulatedCloud, slurm: SimulatedSlurm) -> list[Step]:
    pretrain = (f"{TRAINING}/{PRETRAIN[0]}",)
    return [
        Step(
            FAILOVER_AT,
            "spot g4dn.xlarge reclaimed: finetune-llama recovers on on-demand",
            spot_failover,
            budgets=(f"{RESEARCH}/{FINETUNE[0]}",),
            mark="spot reclaimed → on-demand",
        ),
        Step(
            RECLAIM_AT,
            "spot p5.48xlarge nodes reclaimed: llama-pretrain's pods are gone",
            spot_reclaim,
            budgets=pretrain,
            mark="spot nodes reclaimed",
        ),
        Step(
            RELAUNCH_AT,
            f"SkyPilot relaunches llama-pretrain on AWS: 2 on-demand {VM_TYPE} VMs ({cloud.scope})",
            relaunch_on_vms(cloud),
            budgets=pretrain,
            mark="relaunched on AWS VMs",
        ),
        Step(
            HPC_EVAL_STARTS,
            f"Slurm {slurm.cluster} starts {HPC_EVAL[0]} (4 H100s), pending until now",
            start_eval(slurm),
            budgets=(f"{SLURM}/research-hpc",),
            mark=f"{HPC_EVAL[0]} starts",
        ),
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
