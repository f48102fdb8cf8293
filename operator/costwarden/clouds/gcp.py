"""GCP: the Compute Engine VMs of SkyPilot clusters in one project, through google-cloud-compute's
``InstancesClient`` (REST; Application Default Credentials unless a client is given).

What SkyPilot does on GCP, read in skypilot-org/skypilot (SkyPilot 0.14 era: the stored file
versions nearest 0.14, at the commits named; ``sky/__init__.py`` @ 00cc1b29 says 0.14.0rc1):

* Labels (``sky/provision/gcp/instance_utils.py`` @ b205166f, ``GCPComputeInstance.create_instances``;
  keys in ``sky/provision/constants.py`` @ 06f47324): every VM gets ``ray-cluster-name`` and
  ``skypilot-cluster-name`` = the cluster's name on cloud; ``create_node_tag`` sets
  ``ray-node-type`` = ``head``/``worker`` and ``skypilot-head-node`` = ``1``/``0``;
  ``sky/templates/gcp-ray.yml.j2`` @ aae6ae5c adds ``skypilot-user``. VM names are
  ``<cluster>-head-<8>-compute`` / ``<cluster>-worker-<8>-compute``.
* Listing (``GCPComputeInstance.filter``): ``instances.list`` in the cluster's one zone with the
  filter ``(labels.ray-cluster-name = <name>)``. We list every zone at once with
  ``instances.aggregatedList`` and the documented has-key form ``labels.<key>:*``, and check the
  labels again here. A zone the API could not read comes back in ``unreachables`` or as a scope
  with an ``UNREACHABLE`` warning: either makes the discovery incomplete (this SDK's request has
  no ``returnPartialSuccess``).
* States (``GCPComputeInstance``): PROVISIONING, STAGING, REPAIRING pending; RUNNING; STOPPING,
  SUSPENDING stopping; TERMINATED, SUSPENDED stopped (GCE's TERMINATED is a stopped VM, its disks
  kept); a deleted VM is gone (``instances.get`` answers 404).
* Stop (``sky/provision/gcp/instance.py`` @ a2f08cfd, ``stop_instances``): ``instances.stop`` with
  ``discardLocalSsd=False``; terminate (``terminate_instances``): ``instances.delete``; neither
  waits here for more than the API's acceptance (an Operation).
* Spot (``gcp-ray.yml.j2``): ``scheduling.provisioningModel: SPOT`` with ``preemptible: true`` and
  ``instanceTerminationAction: DELETE`` (a preempted SkyPilot spot VM is deleted, not stopped).
* GPUs: A2/A3/G2 machine types carry theirs; T4/V100/P100/P4 come as ``guestAccelerators`` on an
  N1 machine type (``gcp-ray.yml.j2``), billed apart from it. VMRecord has no field for them yet,
  so such a VM is priced as its N1 machine type alone until one is added.
* The longest cluster name on cloud: 35 (``_MAX_CLUSTER_NAME_LEN_LIMIT``, ``sky/clouds/gcp.py`` @
  a790cb61).

Permissions: ``compute.instances.list`` (discover), ``compute.instances.get`` (describe and the
re-read before acting), ``compute.instances.stop``, ``compute.instances.delete``.

Calls retry throttling, 500/503 and connection errors for at most 30 s (``DEFAULT_RETRY``; the
SDK's own default retries 503 for ten minutes); after that the operator's next poll is the retry,
and a 429's ``Retry-After`` is handed back. Nothing here raises.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Final

import requests
from google.api_core import exceptions as api_exceptions
from google.api_core import retry as retries
from google.auth import exceptions as auth_exceptions
from google.cloud import compute_v1

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

API_LIST: Final = "compute.instances.aggregatedList"
API_GET: Final = "compute.instances.get"
API_STOP: Final = "compute.instances.stop"
API_DELETE: Final = "compute.instances.delete"
# Either SkyPilot cluster label present, in the API's has-key form (AIP-160 style filter).
CLUSTER_FILTER: Final = " OR ".join(f"(labels.{key}:*)" for key in CLUSTER_TAGS)

# Bounded: a poll that cannot finish in about a minute is better reported incomplete.
DEFAULT_RETRY: Final = retries.Retry(
    predicate=retries.if_transient_error, initial=1.0, maximum=10.0, multiplier=2.0, timeout=30.0
)

# GCE instance status -> normalised state. An unknown status counts as running: priced, not ignored.
STATES: Final = {
    "PENDING": PENDING,
    "PROVISIONING": PENDING,
    "STAGING": PENDING,
    "REPAIRING": PENDING,
    "RUNNING": RUNNING,
    "STOPPING": STOPPING,
    "SUSPENDING": STOPPING,
    "PENDING_STOP": STOPPING,
    "DEPROVISIONING": STOPPING,
    "STOPPED": STOPPED,
    "SUSPENDED": STOPPED,
    "TERMINATED": STOPPED,  # GCE's word for a stopped VM
}


class GcpInventory:
    """One GCP project. ``client`` is made on first use (in the calling thread) when not given;
    ``retry`` applies to every call (None: one attempt)."""

    def __init__(
        self,
        project: str,
        client: compute_v1.InstancesClient | None = None,
        *,
        retry: retries.Retry | None = DEFAULT_RETRY,
        timeout: float = 60.0,
    ) -> None:
        self.project = project
        self._client = client
        self._retry = retry
        self._timeout = timeout
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"GcpInventory({self.project!r})"

    @property
    def cloud(self) -> str:
        return "gcp"

    @property
    def scope(self) -> str:
        return f"gcp:{self.project}"

    def _instances(self) -> compute_v1.InstancesClient:
        with self._lock:
            if self._client is None:
                self._client = compute_v1.InstancesClient()
            return self._client

    # --- reading -------------------------------------------------------------------------------

    def discover(self) -> Discovery:
        found: list[VMRecord] = []
        unreachable: set[str] = set()
        try:
            request = compute_v1.AggregatedListInstancesRequest(project=self.project, filter=CLUSTER_FILTER)
            pager = self._instances().aggregated_list(
                request=request, retry=self._retry, timeout=self._timeout
            )
            for page in pager.pages:
                unreachable.update(page.unreachables)
                for where, scoped in page.items.items():
                    # (getattr: the generated annotation of ``warning`` reads as the builtin Warning)
                    if getattr(scoped.warning, "code", "") == "UNREACHABLE":
                        unreachable.add(where)
                    for instance in scoped.instances:
                        record = self.record(instance)
                        if record.cluster is not None:
                            found.append(record)
        except Exception as exc:
            return Discovery(tuple(found), False, self._error(API_LIST, exc), _retry_after(exc))
        if unreachable:
            error = f"{self.scope} {API_LIST}: unreachable: {', '.join(sorted(unreachable))}"
            return Discovery(tuple(found), False, error)
        return Discovery(tuple(found), True)

    def describe(self, vms: Sequence[VMRecord]) -> Discovery:
        found: list[VMRecord] = []
        errors: list[str] = []
        retry_after: float | None = None
        for vm in vms:
            where = self._locate(vm)
            if where is None:
                errors.append(f"{self.scope} {API_GET}: {vm.vm_id} is not a VM of this project: not read")
                continue
            try:
                found.append(self.record(self._get(*where)))
            except api_exceptions.NotFound:
                found.append(dataclasses.replace(vm, state=TERMINATED))
            except Exception as exc:
                errors.append(self._error(API_GET, exc))
                retry_after = retry_after or _retry_after(exc)
        return _summed(found, errors, retry_after)

    def record(self, instance: compute_v1.Instance) -> VMRecord:
        """A VMRecord of one ``Instance`` as the API returned it."""
        zone = _last(instance.zone)
        scheduling = instance.scheduling
        spot = scheduling.provisioning_model == "SPOT" or scheduling.preemptible
        return VMRecord(
            cloud=self.cloud,
            scope=self.scope,
            vm_id=f"{self.project}/{zone}/{instance.name}",
            name=instance.name,
            region=zone.rsplit("-", 1)[0],
            zone=zone,
            instance_type=_last(instance.machine_type),
            capacity_type="spot" if spot else "on-demand",
            state=STATES.get(instance.status, RUNNING),
            launched=_timestamp(instance.last_start_timestamp or instance.creation_timestamp),
            tags=tuple(sorted(instance.labels.items())),
            provider_id=f"gce://{self.project}/{zone}/{instance.name}",
            accelerators=tuple(
                (_last(card.accelerator_type), int(card.accelerator_count))
                for card in instance.guest_accelerators
                if card.accelerator_count
            ),
        )

    # --- acting --------------------------------------------------------------------------------

    def stop(self, vms: Sequence[VMRecord]) -> list[VMActionResult]:
        return [self._act(vm, API_STOP, self._stop_one, "stopping") for vm in vms]

    def terminate(self, vms: Sequence[VMRecord]) -> list[VMActionResult]:
        return [self._act(vm, API_DELETE, self._delete_one, "deleting") for vm in vms]

    def _act(
        self,
        vm: VMRecord,
        api: str,
        call: Callable[[str, str], compute_v1.Operation],
        doing: str,
    ) -> VMActionResult:
        where = self._locate(vm)
        if where is None:
            return VMActionResult(vm.vm_id, False, f"not a VM of {self.scope}: left alone")
        if vm.cluster is None:
            return VMActionResult(vm.vm_id, False, "no SkyPilot cluster label in the record: left alone")
        try:
            fresh = self.record(self._get(*where))
        except api_exceptions.NotFound:
            return VMActionResult(vm.vm_id, True, "already deleted")
        except Exception as exc:
            return _failed(vm, f"could not re-read it ({self._error(API_GET, exc)}): left alone", exc)
        refused = refusal(fresh, vm.cluster, "label")
        if refused is not None:
            return refused
        if api == API_STOP and fresh.state in (STOPPED, STOPPING):
            return VMActionResult(vm.vm_id, True, f"already {fresh.state}")
        try:
            operation = call(*where)
        except api_exceptions.NotFound:
            return VMActionResult(vm.vm_id, True, "already deleted")
        except Exception as exc:
            return _failed(vm, self._error(api, exc), exc)
        if operation.error.errors:
            detail = "; ".join(f"{e.code}: {e.message}" for e in operation.error.errors)
            return VMActionResult(vm.vm_id, False, f"{self.scope} {api}: {_line(detail)}")
        return VMActionResult(vm.vm_id, True, doing)

    def _get(self, zone: str, name: str) -> compute_v1.Instance:
        return self._instances().get(
            project=self.project, zone=zone, instance=name, retry=self._retry, timeout=self._timeout
        )

    def _stop_one(self, zone: str, name: str) -> compute_v1.Operation:
        # As sky stop: keep local SSD contents (a2-highgpu-8g and others have local SSDs by default).
        request = compute_v1.StopInstanceRequest(
            project=self.project, zone=zone, instance=name, discard_local_ssd=False
        )
        return self._instances().stop_unary(request=request, retry=self._retry, timeout=self._timeout)

    def _delete_one(self, zone: str, name: str) -> compute_v1.Operation:
        return self._instances().delete_unary(
            project=self.project, zone=zone, instance=name, retry=self._retry, timeout=self._timeout
        )

    def _locate(self, vm: VMRecord) -> tuple[str, str] | None:
        """(zone, name) of a record of this project, from its ``project/zone/name`` id."""
        parts = vm.vm_id.split("/")
        if vm.cloud != self.cloud or len(parts) != 3 or parts[0] != self.project or not all(parts):
            return None
        return parts[1], parts[2]

    def _error(self, api: str, exc: BaseException) -> str:
        return f"{self.scope} {api}: {_describe(exc)}"


# --- helpers ------------------------------------------------------------------------------------


_REQUEST_PREFIX: Final = re.compile(r"^(GET|POST|PUT|PATCH|DELETE) \S+: ")


def _last(link: str) -> str:
    """The last path segment of a resource URL (``…/zones/us-central1-a`` -> ``us-central1-a``)."""
    return link.rstrip("/").rsplit("/", 1)[-1]


def _timestamp(text: str) -> datetime | None:
    """An RFC 3339 timestamp as GCE writes it (``2026-11-30T08:15:02.123-08:00``), in UTC."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return None


def _line(text: str) -> str:
    return " ".join(text.split())


def _describe(exc: BaseException) -> str:
    if isinstance(exc, api_exceptions.RetryError) and exc.cause is not None:
        return _line(f"{exc.message}; last: {_describe(exc.cause)}")
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        # The REST transport prefixes "GET https://…?filter=…: "; the URL is noise in one line.
        return _line(f"HTTP {exc.code} {_REQUEST_PREFIX.sub('', exc.message, count=1)}")
    if isinstance(exc, auth_exceptions.GoogleAuthError):
        return _line(f"credentials: {type(exc).__name__}: {exc}")
    return _line(f"{type(exc).__name__}: {exc}")


def _transient(exc: BaseException) -> bool:
    """Throttled, the API failing or out of reach: worth trying again later."""
    if isinstance(exc, api_exceptions.RetryError) and exc.cause is not None:
        return _transient(exc.cause)
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        code = exc.code
        return code is not None and (int(code) == 429 or int(code) >= 500)
    return isinstance(
        exc,
        (
            auth_exceptions.TransportError,  # the token endpoint out of reach
            api_exceptions.RetryError,
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            ConnectionError,
            TimeoutError,
        ),
    )


def _retry_after(exc: BaseException) -> float | None:
    if isinstance(exc, api_exceptions.RetryError) and exc.cause is not None:
        return _retry_after(exc.cause)
    response = getattr(exc, "response", None)
    value = getattr(response, "headers", {}).get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _failed(vm: VMRecord, error: str, exc: BaseException) -> VMActionResult:
    return VMActionResult(vm.vm_id, False, error, transient=_transient(exc))


def _summed(found: list[VMRecord], errors: list[str], retry_after: float | None) -> Discovery:
    if not errors:
        return Discovery(tuple(found), True)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return Discovery(tuple(found), False, errors[0] + more, retry_after)
