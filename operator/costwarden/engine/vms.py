"""Cloud VMs of SkyPilot clusters: the record every cloud adapter returns, and what the engine
makes of it (which budget covers a VM, its price facts, its accrual, the targets of an action).

SkyPilot tags every VM it launches on AWS, GCP (as labels) and Azure with the same keys as its
Kubernetes pods (``sky/provision/constants.py``): ``skypilot-cluster-name`` and
``ray-cluster-name`` = the cluster's name on cloud, ``skypilot-head-node`` = ``1`` / ``0`` and
``ray-node-type`` = ``head`` / ``worker``. docs/cloud-vms.md lists the facts per cloud and the
files they come from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

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

    @property
    def key(self) -> str:
        """Its key in a budget's ledger (``status.ledger.pods``), never a pod uid."""
        return f"vm:{self.cloud}:{self.vm_id}"

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
