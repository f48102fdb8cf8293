"""Cloud VMs of SkyPilot clusters: the record every cloud adapter returns, and what the engine
makes of it (which budget covers a VM, its price facts, its accrual, the targets of an action).

SkyPilot tags every VM it launches on AWS, GCP (as labels) and Azure with the same keys as its
Kubernetes pods (``sky/provision/constants.py``): ``skypilot-cluster-name`` and
``ray-cluster-name`` = the cluster's name on cloud, ``skypilot-head-node`` = ``1`` / ``0`` and
``ray-node-type`` = ``head`` / ``worker``. docs/cloud-vms.md lists the facts per cloud and the
files they come from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final

from costwarden.engine.ledger import PodAccrual
from costwarden.engine.money import MONEY_CONTEXT, ZERO, cost_between
from costwarden.engine.outside import Mark, OutsideFence, OutsideView, condition_state
from costwarden.engine.selection import cloud_name_test
from costwarden.models import CostBudgetSpec
from costwarden.records import NodeRecord

TAG_SKYPILOT_CLUSTER: Final = "skypilot-cluster-name"
TAG_RAY_CLUSTER: Final = "ray-cluster-name"
TAG_SKYPILOT_HEAD: Final = "skypilot-head-node"
TAG_RAY_NODE_TYPE: Final = "ray-node-type"
TAG_SKYPILOT_USER: Final = "skypilot-user"
CLUSTER_TAGS: Final = (TAG_SKYPILOT_CLUSTER, TAG_RAY_CLUSTER)

# Normalised lifecycle states; each adapter maps its cloud's own states onto these.
PENDING: Final = "pending"  # being created or started: not billed for compute yet
RUNNING: Final = "running"
STOPPING: Final = "stopping"
STOPPED: Final = "stopped"  # compute not billed (disks are: they reach budgets through billing)
TERMINATED: Final = "terminated"  # terminating, terminated or deleted
STATES: Final = frozenset({PENDING, RUNNING, STOPPING, STOPPED, TERMINATED})
CLOUDS: Final = ("aws", "gcp", "azure")
VM_KEY_PREFIX: Final = "vm:"  # a VM's key in a budget's ledger; pod uids never start so
# The longest cluster name on cloud per cloud: ``_MAX_CLUSTER_NAME_LEN_LIMIT`` in SkyPilot's
# sky/clouds/{aws,gcp,azure}.py (docs/cloud-vms.md); a longer typed name is cut and hashed.
NAME_LIMITS: Final = {"aws": 248, "gcp": 35, "azure": 42}
# The node labels pricing reads (pricing.classify) for a VM's shape and capacity type.
_INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
_REGION_LABEL = "topology.kubernetes.io/region"
_ZONE_LABEL = "topology.kubernetes.io/zone"
_CAPACITY_LABEL = "karpenter.sh/capacity-type"
_ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
_ACCELERATOR_COUNT_LABEL = "cloud.google.com/gke-accelerator-count"


@dataclass(frozen=True, slots=True)
class VMRecord:
    """One VM as a cloud adapter saw it: only what pricing, selection and actions need.

    ``vm_id`` is the cloud's own id, unique within ``cloud``: the EC2 instance id, the GCE
    ``project/zone/name``, the Azure VM resource id (lowercase). ``scope`` is the adapter's scope
    it was found in (an AWS region, a GCP project, an Azure subscription).
    """

    cloud: str  # aws | gcp | azure
    scope: str
    vm_id: str
    name: str
    region: str
    zone: str | None
    instance_type: str
    capacity_type: str  # on-demand | spot
    state: str  # one of STATES
    launched: datetime | None  # when it last started running (AWS LaunchTime, GCE lastStartTimestamp, ...)
    tags: tuple[tuple[str, str], ...] = ()
    provider_id: str = ""  # as a Kubernetes node on this VM would carry it (pricing and billing keys)
    # GPUs attached apart from the machine type (GCE N1 ``guestAccelerators``): (type, count)
    accelerators: tuple[tuple[str, int], ...] = ()

    @property
    def key(self) -> str:
        """Its key in a budget's ledger (``status.ledger.pods``), never a pod uid."""
        return f"{VM_KEY_PREFIX}{self.cloud}:{self.vm_id}"

    @property
    def tag_map(self) -> dict[str, str]:
        return dict(self.tags)

    @property
    def cluster(self) -> str | None:
        """The SkyPilot cluster's name on cloud, from its tags; None for a VM SkyPilot did not tag."""
        tags = self.tag_map
        for key in CLUSTER_TAGS:
            value = tags.get(key)
            if value:
                return value
        return None

    @property
    def is_head(self) -> bool:
        tags = self.tag_map
        return tags.get(TAG_SKYPILOT_HEAD) == "1" or tags.get(TAG_RAY_NODE_TYPE) == "head"

    @property
    def is_terminal(self) -> bool:
        return self.state == TERMINATED

    @property
    def user(self) -> str | None:
        return self.tag_map.get(TAG_SKYPILOT_USER)

    # The ledger's view of a VM's life (budget_ledger reads pods and VMs alike).
    @property
    def uid(self) -> str:
        return self.key

    @property
    def started(self) -> datetime | None:
        return self.launched

    @property
    def created(self) -> datetime | None:
        return self.launched

    @property
    def finished(self) -> datetime | None:
        return None


CLOUD_UNAVAILABLE: Final = "CloudUnavailable"


def cloud_condition(spec: CostBudgetSpec, view: OutsideView) -> tuple[str, str, str] | None:
    """``(status, reason, message)`` of the CloudUnavailable condition, for budgets that name a
    SkyPilot cluster (the others cover no VM); None for the rest."""
    if not spec.skypilot_cluster:
        return None
    return condition_state(view.problems, "--cloud scope", view.refused)


def vm_node(vm: VMRecord) -> NodeRecord:
    """The VM as the node record pricing resolves (the same resolution as Kubernetes nodes):
    its instance type, region, zone and capacity type as the labels a node would carry, and its
    provider id (which also names it in billing)."""
    labels = [(_INSTANCE_TYPE_LABEL, vm.instance_type), (_REGION_LABEL, vm.region)]
    if vm.zone:
        labels.append((_ZONE_LABEL, vm.zone))
    labels.append((_CAPACITY_LABEL, vm.capacity_type))
    gpus = 0
    if vm.accelerators:  # priced as GKE labels a node with attached GPUs (catalog: host+GPU rows)
        accelerator, gpus = vm.accelerators[0]
        labels += [(_ACCELERATOR_LABEL, accelerator), (_ACCELERATOR_COUNT_LABEL, str(gpus))]
    return NodeRecord(name=vm.key, labels=tuple(sorted(labels)), provider_id=vm.provider_id, gpus=gpus)


def covered_vms(spec: CostBudgetSpec, vms: Iterable[VMRecord]) -> list[VMRecord]:
    """The VMs of the SkyPilot cluster the budget's ``skypilotCluster`` names, wherever they
    run; a budget without one covers no VM (VMs are in no namespace)."""
    typed_name = spec.skypilot_cluster
    if not typed_name:
        return []
    tests = {cloud: cloud_name_test(typed_name, limit) for cloud, limit in NAME_LIMITS.items()}
    chosen = []
    for vm in vms:
        cluster, test = vm.cluster, tests.get(vm.cloud)
        if cluster is not None and test is not None and test(cluster):
            chosen.append(vm)
    return chosen


def budget_vms(
    spec: CostBudgetSpec, namespace: str, vms: Iterable[VMRecord], fence: OutsideFence
) -> tuple[list[VMRecord], str | None]:
    """The VMs a budget in ``namespace`` covers, and why none when its namespace is outside the
    fence (``--outside-namespace``): ``covered_vms`` behind the namespace allow-list."""
    if not spec.skypilot_cluster:
        return [], None
    refused = fence.refusal(namespace, "cloud VMs")
    if refused is not None:
        return [], refused
    return covered_vms(spec, vms), None


def accrue_vm(
    vm: VMRecord, rate: Decimal, now: datetime, previous: PodAccrual | None, mark: Mark | None
) -> PodAccrual:
    """The VM's spend at ``now``: compute is charged while it runs, at ``rate`` USD/hour.

    - ``previous`` (the in-memory figure): its spend plus its rate over ``previous.at -> now``
      (a VM that stopped since is charged up to now: at most one poll interval too much).
    - else ``mark`` (after a restart): the mark's spend, plus ``rate`` since the mark if the VM
      runs now (it is assumed to have run while the operator was down; billing trues it up).
    - else a running VM seen for the first time accrued ``rate`` since it was launched.

    Stopped, stopping, pending and terminated VMs accrue nothing from now on (rate 0).
    """
    next_rate = rate if vm.state == RUNNING and rate > ZERO else ZERO
    if previous is not None:
        spend = MONEY_CONTEXT.add(previous.spend, cost_between(previous.rate, previous.at, now))
        return PodAccrual(spend, next_rate, now if now > previous.at else previous.at)
    if mark is not None:
        spend = MONEY_CONTEXT.add(mark.spend, cost_between(next_rate, mark.at, now))
        return PodAccrual(spend, next_rate, max(now, mark.at))
    if vm.launched is not None and next_rate > ZERO:
        return PodAccrual(cost_between(next_rate, vm.launched, now), next_rate, now)
    return PodAccrual(ZERO, next_rate, now)


def kill_order(vms: Iterable[VMRecord]) -> list[VMRecord]:
    """Workers before heads (as ``sky down`` tears a cluster down), then by cloud and id."""
    return sorted(vms, key=lambda vm: (vm.is_head, vm.cloud, vm.vm_id))
