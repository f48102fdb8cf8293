"""AWS: the EC2 instances of SkyPilot clusters in one region; discovery, stop and terminate.

What SkyPilot does on EC2 (read in skypilot-org/skypilot at commit
005261080a6b8102f3d95ff2147a855250f40272, the newest stored snapshot, whose code is of the 0.14
line; the stored ``sky/__init__.py`` of that line says ``__version__ = '0.14.0rc1'``):

* Tags (``sky/provision/aws/instance.py``, ``_create_instances`` and ``run_instances``): every
  instance is launched with ``Name``, ``ray-cluster-name`` and ``skypilot-cluster-name``, all three
  = the cluster's name on cloud, plus the task's tags; then ``_create_node_tag`` adds
  ``ray-node-type`` = ``head`` / ``worker`` and ``skypilot-head-node`` = ``1`` / ``0``
  (``sky/provision/constants.py``) and renames it ``Name`` = ``sky-<name on cloud>-head`` /
  ``sky-<name on cloud>-worker``. ``sky/templates/aws-ray.yml.j2`` adds ``skypilot-user`` = the
  user and the user's ``instance_tags`` through ``TagSpecifications`` (merged by
  ``_merge_tag_specs``, user values win on a clash).
* Filters: SkyPilot finds a cluster's instances with ``describe_instances`` /
  ``ec2.instances.filter`` on ``tag:ray-cluster-name`` = the name on cloud
  (``_cluster_name_filter``), plus ``instance-state-name`` per purpose: launch and terminate look at
  pending, running, stopping, stopped; stop at pending, running; ``query_instances`` looks at all
  and treats shutting-down and terminated as gone.
* Stop (``stop_instances``): stops every pending / running instance of the cluster (``worker_only``
  adds ``tag:ray-node-type`` = ``worker``) in one ``instances.stop()`` call, and does not wait.
  Terminate (``terminate_instances``): terminates every pending / running / stopping / stopped
  instance, head and workers together in one ``instances.terminate()`` call (workers only with
  ``worker_only``); when SkyPilot made a per-cluster security group it first moves the instances
  to the default group, or waits for termination, so that it can delete the group later.
* Spot: ``use_spot`` puts ``InstanceMarketOptions: {MarketType: spot}`` (no SpotOptions, so a
  one-time request) into the node config of head and workers alike; EC2's ``describe_instances``
  then says ``InstanceLifecycle: spot``. ``sky/clouds/aws.py`` marks STOP unsupported for spot
  clusters on AWS (EC2 refuses to stop an instance of a one-time spot request).
* Names: ``sky/clouds/aws.py`` ``_MAX_CLUSTER_NAME_LEN_LIMIT = 248`` at that commit ("256 - 8",
  for the ``-worker`` suffix); older releases (``ray`` prefixed ``ray-``) had 244.

This adapter finds instances by the tag keys alone (``tag-key`` in ``skypilot-cluster-name``,
``ray-cluster-name``), in every state; it re-reads instances right before acting and stops or
terminates only those that still carry the cluster tag of the record it was given. It never
touches security groups: after a terminate, ``sky down`` (or SkyPilot's status refresh) cleans
up what SkyPilot made. Spot instances are not stopped (as SkyPilot does not): stop answers that
they were left running, terminate works.

The client is boto3's, made lazily with the default credential chain (environment, shared
config, web identity such as EKS IRSA, instance profile); boto3 honours ``AWS_ENDPOINT_URL`` /
``AWS_ENDPOINT_URL_EC2`` itself. Throttling and server errors are retried by botocore's standard
retry mode, nothing here retries. IAM: ``ec2:DescribeInstances``, ``ec2:StopInstances``,
``ec2:TerminateInstances`` (the last two may be limited to instances with the tag key
``skypilot-cluster-name`` through ``aws:ResourceTag`` / ``ec2:ResourceTag`` conditions).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final

from botocore.exceptions import ConnectionError as BotoConnectionError  # type: ignore[import-untyped]
from botocore.exceptions import HTTPClientError

from costwarden.clouds.base import Discovery, VMActionResult
from costwarden.engine.vms import (
    CLUSTER_TAGS,
    PENDING,
    RUNNING,
    STOPPED,
    STOPPING,
    TERMINATED,
    VMRecord,
)

CLOUD: Final = "aws"
SPOT: Final = "spot"
ON_DEMAND: Final = "on-demand"

# EC2's instance states (describe_instances State.Name) onto the normalised ones.
EC2_STATES: Final = {
    "pending": PENDING,
    "running": RUNNING,
    "stopping": STOPPING,
    "stopped": STOPPED,
    "shutting-down": TERMINATED,
    "terminated": TERMINATED,
}

# Error codes worth trying again later: EC2's throttling and server-side codes.
TRANSIENT_CODES: Final = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "InternalError",
        "InternalFailure",
        "ServerInternal",
        "ServiceUnavailable",
        "Unavailable",
        "RequestTimeout",
    }
)
BATCH: Final = 200  # ids per describe filter / stop / terminate call (EC2 caps filter values at 200)


def _default_client(region: str) -> Any:
    """An EC2 client from its own boto3 session (sessions are not thread-safe), bounded timeouts
    and botocore's standard retry mode (throttling and 5xx retried with backoff)."""
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    config = Config(connect_timeout=10, read_timeout=60, retries={"mode": "standard", "max_attempts": 5})
    return boto3.session.Session().client("ec2", region_name=region, config=config)


class AwsInventory:
    """The SkyPilot instances of one AWS region. ``client`` is a boto3 EC2 client; when None one
    is made on first use, in the calling thread, from the default credential chain."""

    cloud = CLOUD

    def __init__(
        self, region: str, client: Any = None, *, make_client: Callable[[str], Any] | None = None
    ) -> None:
        self.region = region
        self._client = client
        self._make_client = make_client or _default_client
        self._lock = threading.Lock()

    @property
    def scope(self) -> str:
        return f"{CLOUD}:{self.region}"

    def __repr__(self) -> str:
        return f"AwsInventory({self.region!r})"

    # -- reading ---------------------------------------------------------------------------------

    def discover(self) -> Discovery:
        found: list[VMRecord] = []
        try:
            pages = (
                self._ec2()
                .get_paginator("describe_instances")
                .paginate(Filters=[{"Name": "tag-key", "Values": list(CLUSTER_TAGS)}])
            )
            for page in pages:
                found += [vm for vm in self._records(page) if vm.cluster]  # an empty tag value is none
        except Exception as exc:  # the SDK's or the transport's; what was read still counts
            return self._incomplete(found, "DescribeInstances", exc)
        return Discovery(tuple(found), complete=True)

    def describe(self, vms: Sequence[VMRecord]) -> Discovery:
        """These instances as EC2 has them now; an id EC2 no longer knows comes back terminated."""
        mine = [vm for vm in vms if self._owns(vm)]
        fresh, exc = self._reread(mine)
        if exc is not None:
            return self._incomplete(list(fresh.values()), "DescribeInstances", exc)
        ids = dict.fromkeys(vm.vm_id for vm in mine)
        gone = {vm.vm_id: replace(vm, state=TERMINATED) for vm in mine}
        records = tuple(fresh.get(vm_id) or gone[vm_id] for vm_id in ids)
        if len(mine) < len(vms):
            others = len(vms) - len(mine)
            error = f"{self.scope} DescribeInstances: {others} record(s) of another cloud or scope not read"
            return Discovery(records, complete=False, error=error)
        return Discovery(records, complete=True)

    def _reread(self, vms: Sequence[VMRecord]) -> tuple[dict[str, VMRecord], Exception | None]:
        """The instances of these records that EC2 still knows, by id; on an error, those read
        before it and the error."""
        ids = list(dict.fromkeys(vm.vm_id for vm in vms))
        fresh: dict[str, VMRecord] = {}
        try:
            for chunk in _chunks(ids):
                fresh.update((vm.vm_id, vm) for vm in self._read_ids(chunk))
        except Exception as exc:  # the SDK's or the transport's
            return fresh, exc
        return fresh, None

    # -- acting ----------------------------------------------------------------------------------

    def stop(self, vms: Sequence[VMRecord]) -> list[VMActionResult]:
        """Stop (EBS volumes kept), as ``sky stop``; spot instances are left running."""
        return self._act(vms, "StopInstances", "stop_instances", "StoppingInstances", _stop_verdict)

    def terminate(self, vms: Sequence[VMRecord]) -> list[VMActionResult]:
        """Terminate, as ``sky down`` does to the instances (security groups are SkyPilot's)."""
        return self._act(
            vms, "TerminateInstances", "terminate_instances", "TerminatingInstances", _terminate_verdict
        )

    def _act(
        self,
        vms: Sequence[VMRecord],
        api: str,
        method: str,
        answer_key: str,
        verdict: Callable[[VMRecord], VMActionResult | None],
    ) -> list[VMActionResult]:
        answers: list[VMActionResult | None] = [None] * len(vms)
        checked: list[int] = []
        for n, vm in enumerate(vms):
            if not self._owns(vm):
                answers[n] = VMActionResult(vm.vm_id, False, f"{vm.scope}, not {self.scope}: left alone")
            elif vm.cluster is None:
                answers[n] = VMActionResult(vm.vm_id, False, "no SkyPilot cluster tag: left alone")
            else:
                checked.append(n)
        live, exc = self._reread([vms[n] for n in checked]) if checked else ({}, None)
        if exc is not None:
            line = f"could not re-read it ({self.scope} DescribeInstances: {_one_line(exc)}): left alone"
            for n in checked:
                answers[n] = VMActionResult(vms[n].vm_id, False, line, _is_transient(exc))
            checked = []
        todo: dict[str, None] = {}
        for n in checked:
            vm = vms[n]
            now = live.get(vm.vm_id)
            if now is None:
                answers[n] = VMActionResult(vm.vm_id, True, "already terminated (EC2 no longer knows it)")
            elif found := _verdict_on_tags(now, vm.cluster) or verdict(now):
                answers[n] = found
            else:
                todo[vm.vm_id] = None
        done = self._call(api, method, answer_key, list(todo))
        return [answer or done[vm.vm_id] for answer, vm in zip(answers, vms, strict=True)]

    def _call(self, api: str, method: str, answer_key: str, ids: list[str]) -> dict[str, VMActionResult]:
        """One call per chunk of ids; if a chunk fails for a reason other than throttling or a
        server error (one instance in a state EC2 refuses), each of its ids is tried alone."""
        results: dict[str, VMActionResult] = {}
        for chunk in _chunks(ids):
            try:
                results.update(
                    self._answered(chunk, answer_key, getattr(self._ec2(), method)(InstanceIds=chunk))
                )
            except Exception as exc:  # the SDK's or the transport's
                if _is_transient(exc) or len(chunk) == 1:
                    results.update(self._failed(chunk, api, exc))
                    continue
                for vm_id in chunk:
                    try:
                        answer = getattr(self._ec2(), method)(InstanceIds=[vm_id])
                        results.update(self._answered([vm_id], answer_key, answer))
                    except Exception as alone:  # as above, for this one id
                        results.update(self._failed([vm_id], api, alone))
        return results

    def _answered(self, ids: list[str], key: str, answer: Mapping[str, Any]) -> dict[str, VMActionResult]:
        states = {
            str(item.get("InstanceId")): str(item.get("CurrentState", {}).get("Name", "?"))
            for item in answer.get(key, [])
        }
        return {
            vm_id: VMActionResult(vm_id, True, states[vm_id])
            if vm_id in states
            else VMActionResult(vm_id, False, "not in EC2's answer", transient=True)
            for vm_id in ids
        }

    def _failed(self, ids: Iterable[str], api: str, exc: Exception) -> dict[str, VMActionResult]:
        line = f"{self.scope} {api}: {_one_line(exc)}"
        transient = _is_transient(exc)
        return {vm_id: VMActionResult(vm_id, False, line, transient) for vm_id in ids}

    # -- helpers ---------------------------------------------------------------------------------

    def _ec2(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._make_client(self.region)
            return self._client

    def _owns(self, vm: VMRecord) -> bool:
        return vm.cloud == CLOUD and vm.scope == self.scope

    def _read_ids(self, ids: list[str]) -> Iterator[VMRecord]:
        # A filter on instance-id, not InstanceIds=: EC2 answers InvalidInstanceID.NotFound for the
        # whole request when any one id is unknown (terminated over an hour ago), a filter omits it.
        pages = (
            self._ec2()
            .get_paginator("describe_instances")
            .paginate(Filters=[{"Name": "instance-id", "Values": ids}])
        )
        for page in pages:
            yield from self._records(page)

    def _records(self, page: Mapping[str, Any]) -> list[VMRecord]:
        records = []
        for reservation in page.get("Reservations", []):
            for instance in reservation.get("Instances", []):
                record = self._record(instance)
                if record is not None:
                    records.append(record)
        return records

    def _record(self, instance: Mapping[str, Any]) -> VMRecord | None:
        vm_id = instance.get("InstanceId")
        if not vm_id:
            return None
        tags = tuple(
            sorted((str(t.get("Key", "")), str(t.get("Value", ""))) for t in instance.get("Tags") or [])
        )
        zone = instance.get("Placement", {}).get("AvailabilityZone") or None
        zone = zone if isinstance(zone, str) else None  # pricing reads it as a zone name
        launched = instance.get("LaunchTime")
        return VMRecord(
            cloud=CLOUD,
            scope=self.scope,
            vm_id=str(vm_id),
            name=dict(tags).get("Name") or str(vm_id),
            region=self.region,
            zone=zone,
            instance_type=str(instance.get("InstanceType", "")),
            capacity_type=SPOT if instance.get("InstanceLifecycle") == SPOT else ON_DEMAND,
            # EC2 has exactly the six states mapped; anything new is taken as billed.
            state=EC2_STATES.get(str(instance.get("State", {}).get("Name", "")), RUNNING),
            launched=_utc(launched),
            tags=tags,
            provider_id=f"aws:///{zone or self.region}/{vm_id}",
        )

    def _incomplete(self, found: list[VMRecord], api: str, exc: Exception) -> Discovery:
        return Discovery(
            tuple(found),
            complete=False,
            error=f"{self.scope} {api}: {_one_line(exc)}",
            retry_after=_retry_after(exc),
        )


def _utc(moment: object) -> datetime | None:
    """LaunchTime as an aware datetime: boto3 gives one in UTC; a naive one is taken as UTC."""
    if not isinstance(moment, datetime):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _verdict_on_tags(live: VMRecord, claimed: str | None) -> VMActionResult | None:
    """None when the instance still carries SkyPilot's tag of the claimed cluster (and no other)."""
    values = {value for key, value in live.tags if key in CLUSTER_TAGS and value}
    if not values:
        return VMActionResult(live.vm_id, False, "no SkyPilot cluster tag on the instance: left alone")
    if values != {claimed}:
        names = ", ".join(sorted(values))
        return VMActionResult(live.vm_id, False, f"tagged for cluster {names}, not {claimed}: left alone")
    return None


def _stop_verdict(live: VMRecord) -> VMActionResult | None:
    if live.state in (STOPPED, STOPPING, TERMINATED):
        return VMActionResult(live.vm_id, True, f"already {live.state}")
    if live.capacity_type == SPOT:
        return VMActionResult(
            live.vm_id,
            False,
            "spot: EC2 does not stop one-time spot instances (nor does SkyPilot): left running",
        )
    return None


def _terminate_verdict(live: VMRecord) -> VMActionResult | None:
    if live.state == TERMINATED:
        return VMActionResult(live.vm_id, True, "already terminated")
    return None


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), BATCH):
        yield ids[start : start + BATCH]


def _error_fields(exc: Exception) -> tuple[str | None, str | None, int | None, Mapping[str, Any]]:
    """(code, message, HTTP status, headers) of a botocore ClientError; Nones for anything else."""
    response = getattr(exc, "response", None)
    if not isinstance(response, Mapping):
        return None, None, None, {}
    error = response.get("Error") or {}
    meta = response.get("ResponseMetadata") or {}
    status = meta.get("HTTPStatusCode")
    return (
        error.get("Code") or None,
        error.get("Message") or None,
        status if isinstance(status, int) else None,
        meta.get("HTTPHeaders") or {},
    )


def _one_line(exc: Exception) -> str:
    """``RequestLimitExceeded: Request limit exceeded.`` or ``EndpointConnectionError: ...`` on
    one line, at most 300 characters."""
    code, message, _, _ = _error_fields(exc)
    text = f"{code}: {message or exc}" if code else f"{type(exc).__name__}: {exc}"
    line = " ".join(text.split())
    return line if len(line) <= 300 else line[:297] + "..."


def _is_transient(exc: Exception) -> bool:
    """Throttling, a server error, or the endpoint unreachable: worth trying again later.
    Credentials missing or expired, access denied and bad requests are not."""
    code, _, status, _ = _error_fields(exc)
    if code is not None or status is not None:
        return code in TRANSIENT_CODES or (status is not None and (status >= 500 or status == 429))
    return isinstance(exc, (BotoConnectionError, HTTPClientError))


def _retry_after(exc: Exception) -> float | None:
    """Seconds from a ``Retry-After`` header of the error's response, if it carried one."""
    _, _, _, headers = _error_fields(exc)
    value = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    try:
        seconds = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return seconds if seconds is not None and seconds >= 0 else None
