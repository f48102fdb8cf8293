"""The demo's simulated cloud: one AWS region of VMs in memory, as a ``VMInventory``.

The operator polls it, prices its VMs and stops or terminates them exactly as it does a real
region through ``clouds.aws.AwsInventory`` (the demo hands it to ``OperatorThread`` as it hands
over the simulated DCGM). Like the real adapters, ``discover`` lists only VMs that carry a
SkyPilot cluster tag, and ``stop`` / ``terminate`` re-read each VM and act only while it still
carries the tag of the cluster the record claims: an untagged VM, another cluster's VM or
another scope's record is left alone, with the reason as the answer. It exists only in the demo
(the ``demo`` extra); nothing here talks to a cloud.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from costwarden.clouds.base import Discovery, VMActionResult
from costwarden.engine.vms import (
    CLUSTER_TAGS,
    RUNNING,
    STOPPED,
    STOPPING,
    TAG_RAY_CLUSTER,
    TAG_RAY_NODE_TYPE,
    TAG_SKYPILOT_CLUSTER,
    TAG_SKYPILOT_HEAD,
    TAG_SKYPILOT_USER,
    TERMINATED,
    VMRecord,
)

CLOUD = "aws"
ON_DEMAND = "on-demand"
SPOT = "spot"


def skypilot_tags(cluster_on_cloud: str, *, head: bool, user: str) -> tuple[tuple[str, str], ...]:
    """The tags SkyPilot's AWS provisioner leaves on an instance (``sky/provision/aws/instance.py``
    ``_create_instances`` + ``_create_node_tag``; ``skypilot-user`` from ``aws-ray.yml.j2``): the
    cluster's name on cloud under both cluster keys, head or worker, the user, and ``Name``
    ``sky-<cluster>-head`` / ``sky-<cluster>-worker``."""
    role = "head" if head else "worker"
    return (
        ("Name", f"sky-{cluster_on_cloud}-{role}"),
        (TAG_RAY_CLUSTER, cluster_on_cloud),
        (TAG_RAY_NODE_TYPE, role),
        (TAG_SKYPILOT_CLUSTER, cluster_on_cloud),
        (TAG_SKYPILOT_HEAD, "1" if head else "0"),
        (TAG_SKYPILOT_USER, user),
    )


@dataclass(frozen=True, slots=True)
class CloudCall:
    """One VM's answer to a stop or terminate the operator asked for (what the demo reports)."""

    verb: str  # stop | terminate
    vm_id: str
    ok: bool
    message: str


class SimulatedCloud:
    """The VMs of one simulated AWS region; safe to call from any thread (the operator calls it
    from worker threads, the demo's loop launches and reads VMs)."""

    cloud = CLOUD

    def __init__(self, region: str = "us-east-1") -> None:
        self.region = region
        self.scope = f"{CLOUD}:{region}"
        self._lock = threading.Lock()
        self._vms: dict[str, VMRecord] = {}  # by id, in launch order
        self._calls: list[CloudCall] = []

    def __repr__(self) -> str:
        return f"SimulatedCloud({self.region!r})"

    # -- the scenario's side ---------------------------------------------------------------------

    def launch(
        self,
        instance_type: str,
        tags: Sequence[tuple[str, str]],
        at: datetime,
        *,
        zone: str | None = None,
        capacity_type: str = ON_DEMAND,
    ) -> VMRecord:
        """A VM running from ``at`` (the demo clock's time), as EC2 would list it."""
        zone = zone or f"{self.region}a"
        with self._lock:
            seed = f"{self.region}/{len(self._vms)}/{dict(tags).get('Name', '')}"
            vm_id = f"i-0{zlib.crc32(seed.encode()):08x}{len(self._vms):08x}"
            vm = VMRecord(
                cloud=CLOUD,
                scope=self.scope,
                vm_id=vm_id,
                name=dict(tags).get("Name") or vm_id,
                region=self.region,
                zone=zone,
                instance_type=instance_type,
                capacity_type=capacity_type,
                state=RUNNING,
                launched=at,
                tags=tuple(sorted(tags)),
                provider_id=f"aws:///{zone}/{vm_id}",
            )
            self._vms[vm_id] = vm
        return vm

    def vms(self) -> list[VMRecord]:
        """Every VM of the region, tagged or not, in launch order (the demo's own view)."""
        with self._lock:
            return list(self._vms.values())

    def calls(self) -> list[CloudCall]:
        """Each VM's answer to every stop or terminate asked so far, in order."""
        with self._lock:
            return list(self._calls)

    # -- the VMInventory the operator polls ------------------------------------------------------

    def discover(self) -> Discovery:
        """Every VM with a SkyPilot cluster tag, terminated ones included (EC2 lists those for an hour)."""
        with self._lock:
            return Discovery(tuple(vm for vm in self._vms.values() if vm.cluster), complete=True)

    def describe(self, vms: Sequence[VMRecord]) -> Discovery:
        """These VMs as they are now; an id this region does not know comes back terminated."""
        with self._lock:
            mine = [vm for vm in vms if self._owns(vm)]
            records = tuple(self._vms.get(vm.vm_id) or replace(vm, state=TERMINATED) for vm in mine)
        if len(mine) < len(vms):
            error = f"{self.scope}: {len(vms) - len(mine)} record(s) of another cloud or scope not read"
            return Discovery(records, complete=False, error=error)
        return Discovery(records, complete=True)

    def stop(self, vms: Sequence[VMRecord]) -> list[VMActionResult]:
        """Stop, disks kept, as ``sky stop``; spot VMs are left running (EC2 does not stop them)."""
        return self._act("stop", vms)

    def terminate(self, vms: Sequence[VMRecord]) -> list[VMActionResult]:
        """Terminate, as ``sky down``."""
        return self._act("terminate", vms)

    def _act(self, verb: str, vms: Sequence[VMRecord]) -> list[VMActionResult]:
        answers = []
        with self._lock:
            for vm in vms:
                answer = self._act_on(verb, vm)
                self._calls.append(CloudCall(verb, vm.vm_id, answer.ok, answer.message))
                answers.append(answer)
        return answers

    def _act_on(self, verb: str, vm: VMRecord) -> VMActionResult:
        """One VM, under the lock: re-read it and act only while it carries the claimed cluster's tag."""
        if not self._owns(vm):
            return VMActionResult(vm.vm_id, False, f"{vm.scope}, not {self.scope}: left alone")
        claimed = vm.cluster
        if claimed is None:
            return VMActionResult(vm.vm_id, False, "no SkyPilot cluster tag: left alone")
        live = self._vms.get(vm.vm_id)
        if live is None:
            return VMActionResult(vm.vm_id, True, "already terminated (the region no longer knows it)")
        values = {value for key, value in live.tags if key in CLUSTER_TAGS and value}
        if not values:
            return VMActionResult(vm.vm_id, False, "no SkyPilot cluster tag on the instance: left alone")
        if values != {claimed}:
            names = ", ".join(sorted(values))
            return VMActionResult(vm.vm_id, False, f"tagged for cluster {names}, not {claimed}: left alone")
        if live.state == TERMINATED:
            return VMActionResult(vm.vm_id, True, "already terminated")
        if verb == "terminate":
            self._vms[vm.vm_id] = replace(live, state=TERMINATED)
            return VMActionResult(vm.vm_id, True, "terminated")
        if live.state in (STOPPED, STOPPING):
            return VMActionResult(vm.vm_id, True, f"already {live.state}")
        if live.capacity_type == SPOT:
            return VMActionResult(
                vm.vm_id, False, "spot: EC2 does not stop one-time spot instances: left running"
            )
        self._vms[vm.vm_id] = replace(live, state=STOPPED)
        return VMActionResult(vm.vm_id, True, "stopped")

    def _owns(self, vm: VMRecord) -> bool:
        return vm.cloud == CLOUD and vm.scope == self.scope
