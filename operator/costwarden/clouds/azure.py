"""Azure: the virtual machines of SkyPilot clusters in one subscription, through azure-mgmt-compute's
``ComputeManagementClient`` (azure-identity's ``DefaultAzureCredential`` unless one is given).

What SkyPilot does on Azure, read in skypilot-org/skypilot (SkyPilot 0.14 era: the stored file
versions nearest 0.14, at the commits named; ``sky/__init__.py`` @ 00cc1b29 says 0.14.0rc1):

* Tags (``sky/provision/azure/instance.py`` @ a2f08cfd, ``_create_instances``): every VM gets
  ``ray-cluster-name`` and ``skypilot-cluster-name`` = the cluster's name on cloud, the worker
  tags ``ray-node-type`` = ``worker``, ``skypilot-head-node`` = ``0`` (``sky/provision/constants.py``
  @ 06f47324), the head re-tagged ``head`` / ``1`` by ``_create_instance_tag``, and
  ``skypilot-vm-id``; ``sky/templates/azure-ray.yml.j2`` @ a245a6f9 adds ``skypilot-user``. VM
  names are ``<cluster>-<4 hex>-<n>``.
* Resource group: one per cluster, ``<cluster name on cloud>-<region>`` (``sky/clouds/azure.py`` @
  a76589f0, ``make_deploy_resources_variables``), unless the user configured ``resource_group_vm``.
* Listing (``_filter_instances``): ``virtual_machines.list(resource_group)``, tags matched in
  Python; the power state from a per-VM ``instance_view`` (``_get_instance_status``).
* States (``AzureInstanceStatus``): PowerState starting pending; running; stopping and
  deallocating stopping; stopped and deallocated stopped; provisioning state Deleting = deleting
  (gone); Creating/Updating/Failed/Migrating pending when no power state is known.
* Stop (``stop_instances``): ``virtual_machines.begin_deallocate`` (not power-off), not awaited.
  Terminate (``terminate_instances``): the whole resource group deleted
  (``resource_groups.begin_delete``), or with a user's resource group the VM (``.result()``
  awaited) and its NIC, public IP, vnet, NSG and identity (``delete_vm_and_attached_resources``).
* Spot: ``priority: Spot`` in the VM (``azure-ray.yml.j2``); ``sky/clouds/azure.py`` marks STOP
  unsupported for spot clusters.
* The longest cluster name on cloud: 42 (``_MAX_CLUSTER_NAME_LEN_LIMIT``, ``sky/clouds/azure.py``).

This adapter lists the subscription (``list_all``, tags matched here) and reads power states with
one more paged call, ``list_all(status_only="true")`` (the status-only list carries no tags, so
both are needed: Azure/azure-sdk-for-go#18565): two list calls per poll however many VMs, and one
when no VM is SkyPilot's, where SkyPilot's way costs a call per VM. ``expand="instanceView"`` on the
list is documented only with a scale-set ``$filter`` (Azure/azure-rest-api-specs#42411). A VM
listed but missing from the status list (made between the two) gets its own ``instance_view``.
Spot VMs are deallocated like the others (Azure allows it; SkyPilot only declines to offer it).

One departure from SkyPilot's table: PowerState ``stopped`` (powered off, still allocated) is
billed as running ("You are still charged for this virtual machine", the SDK's ``begin_power_off``),
so it maps to running here, and ``stop`` deallocates it.

Stop is ``begin_deallocate``, terminate ``begin_delete`` of the VM alone (its OS disk goes with it:
SkyPilot sets the disk's ``deleteOption`` to Delete; the NIC, public IP and network stay in the
cluster's resource group until ``sky down``); neither waits past Azure's acceptance (202).

Permissions (an Azure role's actions): ``Microsoft.Compute/virtualMachines/read`` (the lists and
``get``), ``Microsoft.Compute/virtualMachines/instanceView/read`` (the fallback ``instance_view``),
``Microsoft.Compute/virtualMachines/deallocate/action`` and ``Microsoft.Compute/virtualMachines/delete``.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Final

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.mgmt.compute import ComputeManagementClient

from costwarden.clouds.base import Discovery, VMActionResult
from costwarden.clouds.guard import refusal
from costwarden.engine.vms import (
    CLUSTER_TAGS,
    PENDING,
    RUNNING,
    STOPPED,
    STOPPING,
    TERMINATED,
    VMRecord,
)

CLOUD: Final = "azure"
API_LIST: Final = "virtualMachines.listAll"
API_STATUS: Final = "virtualMachines.listAll(statusOnly)"
API_VIEW: Final = "virtualMachines.instanceView"
API_GET: Final = "virtualMachines.get"
API_DEALLOCATE: Final = "virtualMachines.deallocate"
API_DELETE: Final = "virtualMachines.delete"

# PowerState/<x> -> normalised state. "stopped" is powered off but allocated: billed (see above).
POWER_STATES: Final = {
    "starting": PENDING,
    "running": RUNNING,
    "stopping": STOPPING,
    "stopped": RUNNING,
    "deallocating": STOPPING,
    "deallocated": STOPPED,
}
# Provisioning state when no power state is known (SkyPilot's provisioning_state_map).
PROVISIONING_STATES: Final = {
    "creating": PENDING,
    "updating": PENDING,
    "failed": PENDING,
    "migrating": PENDING,
    "deleting": TERMINATED,
    "succeeded": RUNNING,
}
SPOT_PRIORITIES: Final = frozenset({"spot", "low"})  # "Low" is the old name of Spot

_VM_ID: Final = re.compile(
    r"/subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)"
    r"/providers/microsoft\.compute/virtualmachines/(?P<name>[^/]+)",
    re.IGNORECASE,
)


def _default_client(subscription: str, credential: Any) -> ComputeManagementClient:
    """Bounded timeouts and three retries of throttling and server errors (azure-core's policy
    honours Retry-After); the SDK's defaults are ten retries and five-minute timeouts."""
    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    return ComputeManagementClient(
        credential,
        subscription,
        retry_total=3,
        retry_backoff_max=30,
        connection_timeout=10,
        read_timeout=60,
    )


class AzureInventory:
    """One Azure subscription. ``client`` (or one made on first use, in the calling thread, from
    ``credential`` or DefaultAzureCredential) brings its own retry policy."""

    cloud = CLOUD

    def __init__(
        self,
        subscription: str,
        credential: Any = None,
        client: ComputeManagementClient | None = None,
    ) -> None:
        self.subscription = subscription.lower()
        self._credential = credential
        self._client = client
        self._lock = threading.Lock()

    @property
    def scope(self) -> str:
        return f"{CLOUD}:{self.subscription}"

    def __repr__(self) -> str:
        return f"AzureInventory({self.subscription!r})"

    def _compute(self) -> ComputeManagementClient:
        with self._lock:
            if self._client is None:
                self._client = _default_client(self.subscription, self._credential)
            return self._client

    # --- reading -------------------------------------------------------------------------------

    def discover(self) -> Discovery:
        api = API_LIST
        found: list[VMRecord] = []
        try:
            machines = self._compute().virtual_machines
            tagged = [vm for vm in machines.list_all() if _cluster_tagged(vm.tags)]
            if not tagged:
                return Discovery((), True)
            api = API_STATUS
            views = {
                str(vm.id).lower(): vm.instance_view
                for vm in machines.list_all(status_only="true")
                if vm.id and vm.instance_view is not None
            }
            api = API_VIEW
            for vm in tagged:
                view = views.get(str(vm.id).lower())
                if view is None:
                    located = self._locate_id(str(vm.id))
                    if located is None:
                        continue
                    try:
                        view = machines.instance_view(*located)
                    except ResourceNotFoundError:
                        found.append(dataclasses.replace(self.record(vm, None), state=TERMINATED))
                        continue
                found.append(self.record(vm, view))
        except Exception as exc:
            return Discovery(tuple(found), False, self._error(api, exc), _retry_after(exc))
        return Discovery(tuple(found), True)

    def describe(self, vms: Sequence[VMRecord]) -> Discovery:
        found: list[VMRecord] = []
        errors: list[str] = []
        retry_after: float | None = None
        for vm in vms:
            located = self._locate(vm)
            if located is None:
                errors.append(
                    f"{self.scope} {API_GET}: {vm.vm_id} is not a VM of this subscription: not read"
                )
                continue
            try:
                found.append(self._read(*located)[0])
            except ResourceNotFoundError:
                found.append(dataclasses.replace(vm, state=TERMINATED))
            except Exception as exc:
                errors.append(self._error(API_GET, exc))
                retry_after = retry_after or _retry_after(exc)
        if not errors:
            return Discovery(tuple(found), True)
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return Discovery(tuple(found), False, errors[0] + more, retry_after)

    def record(self, vm: Any, view: Any) -> VMRecord:
        """A VMRecord of a ``VirtualMachine`` and its instance view (None: not known)."""
        resource_id = str(vm.id)
        statuses = list(getattr(view, "statuses", None) or [])
        priority = _text(vm.priority).lower()
        zones = list(vm.zones or [])
        profile = vm.hardware_profile
        return VMRecord(
            cloud=CLOUD,
            scope=self.scope,
            vm_id=resource_id.lower(),
            name=str(vm.name),
            region=str(vm.location),
            zone=str(zones[0]) if zones else None,
            instance_type=_text(profile.vm_size) if profile is not None else "",
            capacity_type="spot" if priority in SPOT_PRIORITIES else "on-demand",
            state=state_of(_text(vm.provisioning_state), statuses),
            launched=_launched(statuses, vm.time_created),
            tags=tuple(sorted((str(k), str(v)) for k, v in (vm.tags or {}).items())),
            provider_id=f"azure://{resource_id}",
        )

    def _read(self, group: str, name: str) -> tuple[VMRecord, str | None]:
        """The VM as it is now, and its PowerState (None when Azure gave none)."""
        vm = self._compute().virtual_machines.get(group, name, expand="instanceView")
        statuses = list(getattr(vm.instance_view, "statuses", None) or [])
        power = _codes(statuses, "PowerState")
        return self.record(vm, vm.instance_view), power[-1] if power else None

    # --- acting --------------------------------------------------------------------------------

    def stop(self, vms: Sequence[VMRecord]) -> list[VMActionResult]:
        """Deallocate (disks kept, compute no longer billed), as ``sky stop`` does on Azure."""
        return [self._act(vm, API_DEALLOCATE, self._deallocate, "deallocating") for vm in vms]

    def terminate(self, vms: Sequence[VMRecord]) -> list[VMActionResult]:
        """Delete the VM (not its resource group)."""
        return [self._act(vm, API_DELETE, self._delete, "deleting") for vm in vms]

    def _act(self, vm: VMRecord, api: str, call: Callable[[str, str], object], doing: str) -> VMActionResult:
        located = self._locate(vm)
        if located is None:
            return VMActionResult(vm.vm_id, False, f"not a VM of {self.scope}: left alone")
        if vm.cluster is None:
            return VMActionResult(vm.vm_id, False, "no SkyPilot cluster tag in the record: left alone")
        try:
            fresh, power = self._read(*located)
        except ResourceNotFoundError:
            return VMActionResult(vm.vm_id, True, "already deleted")
        except Exception as exc:
            line = f"could not re-read it ({self._error(API_GET, exc)}): left alone"
            return VMActionResult(vm.vm_id, False, line, _transient(exc))
        refused = refusal(fresh, vm.cluster, "tag")
        if refused is not None:
            return refused
        if fresh.state == TERMINATED:
            return VMActionResult(vm.vm_id, True, "already being deleted")
        if api == API_DEALLOCATE and power in ("deallocating", "deallocated"):
            return VMActionResult(vm.vm_id, True, f"already {power}")
        try:
            call(*located)
        except ResourceNotFoundError:
            return VMActionResult(vm.vm_id, True, "already deleted")
        except Exception as exc:
            return VMActionResult(vm.vm_id, False, self._error(api, exc), _transient(exc))
        return VMActionResult(vm.vm_id, True, doing)

    def _deallocate(self, group: str, name: str) -> object:
        # polling=False: the initial request only (202 Accepted), no poller thread.
        return self._compute().virtual_machines.begin_deallocate(group, name, polling=False)

    def _delete(self, group: str, name: str) -> object:
        return self._compute().virtual_machines.begin_delete(group, name, polling=False)

    # --- helpers -------------------------------------------------------------------------------

    def _locate(self, vm: VMRecord) -> tuple[str, str] | None:
        if vm.cloud != CLOUD:
            return None
        return self._locate_id(vm.vm_id)

    def _locate_id(self, resource_id: str) -> tuple[str, str] | None:
        """(resource group, VM name) of a VM resource id of this subscription."""
        found = _VM_ID.fullmatch(resource_id)
        if found is None or found["sub"].lower() != self.subscription:
            return None
        return found["rg"], found["name"]

    def _error(self, api: str, exc: BaseException) -> str:
        return f"{self.scope} {api}: {_describe(exc)}"


def _text(value: Any) -> str:
    """A model's string or string enum as its wire value (str() of an enum is its Python name)."""
    if value is None:
        return ""
    return str(value.value) if isinstance(value, Enum) else str(value)


def _cluster_tagged(tags: dict[str, str] | None) -> bool:
    return any((tags or {}).get(key) for key in CLUSTER_TAGS)


def _codes(statuses: Iterable[Any], prefix: str) -> list[str]:
    codes = (_text(s.code) for s in statuses)
    return [code.split("/", 1)[1].lower() for code in codes if code.startswith(prefix + "/")]


def state_of(provisioning: str | None, statuses: Sequence[Any]) -> str:
    """The normalised state of a VM from its provisioning state and instance view statuses."""
    provisioned = [*_codes(statuses, "ProvisioningState"), str(provisioning or "").lower()]
    if "deleting" in provisioned:
        return TERMINATED
    power = _codes(statuses, "PowerState")
    if power:
        return POWER_STATES.get(power[-1], RUNNING)
    known = next((p for p in provisioned if p), "")
    return PROVISIONING_STATES.get(known.split("/", 1)[0], RUNNING)


def _launched(statuses: Sequence[Any], created: datetime | None) -> datetime | None:
    """When the VM's last provisioning operation (a start among them) succeeded, else its creation."""
    for status in statuses:
        if _text(status.code).lower() == "provisioningstate/succeeded" and status.time is not None:
            return _utc(status.time)
    return _utc(created) if created is not None else None


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, HttpResponseError):
        error = getattr(exc, "error", None)
        code = getattr(error, "code", None)
        message = getattr(error, "message", None) or exc.reason or str(exc)
        status = exc.status_code
        text = f"HTTP {status} {code}: {message}" if code else f"HTTP {status}: {message}"
        if isinstance(exc, ClientAuthenticationError) and status is None:
            text = f"credentials: {exc.message}"
        return " ".join(str(text).split())
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _transient(exc: BaseException) -> bool:
    """Throttled, the API failing or out of reach: worth trying again later."""
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return True
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        return exc.status_code == 429 or exc.status_code >= 500
    return False


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
