"""The destructive actions on workloads: kill pods, scale to zero (and back), suspend Jobs.

Each executor returns one ``TargetResult`` per object it acted on and never raises for an API
failure: the shell records the results in ``status.actions`` as they are. Dry-run is honoured by
the ``KubeClient`` (reads still run, so a "would ..." message names the real object and count).

An API failure is classified by what it says about a retry: Throttled (a 429: "not now"),
Transient (``TRANSIENT_STATUSES``, or the API server not reached: "maybe next time"), or Failed
(a refusal or an invalid request: retrying the same request will not help). The shell retries
the first two on every pass without counting them towards Failed (``operator.enforce``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from costwarden.operator.kube import SCALABLE_KINDS, TRANSIENT_STATUSES, KubeClient, KubeError, WriteResult

ANNOTATION_REPLICAS_BEFORE = "costwarden.dev/replicas-before"
SUSPENDABLE_KINDS = ("Job", "JobSet")
_CONFLICT_RETRIES = 3


class Outcome(StrEnum):
    DONE = "Done"
    DRY_RUN = "DryRun"
    GONE = "Gone"  # the object no longer exists: nothing left to stop
    SKIPPED = "Skipped"  # nothing to do, or not something this action can act on
    THROTTLED = "Throttled"  # 429: worth retrying after the API server's Retry-After
    TRANSIENT = "Transient"  # 408/5xx or the API server not reached: worth retrying next pass
    FAILED = "Failed"  # refused or invalid: retrying the same request will not help


@dataclass(frozen=True, slots=True)
class TargetResult:
    target: str  # "Kind namespace/name", e.g. "Deployment research/trainer"
    result: str  # an Outcome value
    message: str


def describe(kind: str, namespace: str, name: str) -> str:
    return f"{kind} {namespace}/{name}"


async def kill_pods(
    kube: KubeClient,
    namespace: str,
    pod_names: Sequence[str],
    grace_period_seconds: int,
    *,
    uids: Mapping[str, str] | None = None,
    acting: Callable[[], bool] = lambda: True,
) -> list[TargetResult]:
    """One graceful delete per pod, in the given order (a SkyPilot plan puts the head last).

    ``uids`` (name to uid) makes each delete one of exactly the pod decided on: a pod of that
    name created since (a relaunched SkyPilot cluster) is left alone, by the API server's
    precondition. ``acting`` is the leader fence, checked before every delete: a replica that
    lost its Lease midway (paused, cut off from the API server) deletes nothing more.
    """
    results = []
    for name in pod_names:
        if not acting():
            break
        uid = (uids or {}).get(name) or None
        write = await kube.delete_pod(namespace, name, grace_period_seconds, uid=uid)
        target = describe("Pod", namespace, name)
        if write is WriteResult.CONFLICT and uid is not None:
            results.append(_gone(target, f" as uid {uid} (a new pod has the name; it is left alone)"))
            continue
        grace = f"with grace period {grace_period_seconds}s"
        results.append(_result(kube, target, write, done=f"deleted {grace}", would=f"delete {grace}"))
    return results


async def scale_to_zero(kube: KubeClient, namespace: str, kind: str, name: str) -> TargetResult:
    """Scale to 0, remembering the replica count in ``costwarden.dev/replicas-before``.

    A ReplicaSet owned by a Deployment is scaled through the Deployment, or the Deployment
    controller would scale it straight back. Scaling an object already at 0 writes nothing and
    keeps the count remembered earlier (it is idempotent across retries and restarts).
    """
    if kind not in SCALABLE_KINDS:
        return TargetResult(describe(kind, namespace, name), Outcome.SKIPPED, f"a {kind} cannot be scaled")
    for _ in range(_CONFLICT_RETRIES):
        try:
            found = await _scale_target(kube, namespace, kind, name)
        except KubeError as exc:
            return TargetResult(describe(kind, namespace, name), _read_outcome(exc), str(exc))
        if found is None:
            return _gone(describe(kind, namespace, name))
        target, obj, via = found
        replicas = _replicas(obj)
        remembered = _annotations(obj).get(ANNOTATION_REPLICAS_BEFORE)
        if replicas == 0:
            kept = f" ({ANNOTATION_REPLICAS_BEFORE}={remembered} kept)" if remembered is not None else ""
            return _unchanged(kube, target.text, f"already at 0 replicas{kept}{via}")
        write = await kube.scale(
            namespace,
            target.kind,
            target.name,
            0,
            {ANNOTATION_REPLICAS_BEFORE: str(replicas)},
            resource_version=_resource_version(obj),
        )
        if write is not WriteResult.CONFLICT:
            change = f"from {replicas} to 0 replicas{via}; {ANNOTATION_REPLICAS_BEFORE}={replicas}"
            return _result(kube, target.text, write, done=f"scaled {change}", would=f"scale {change}")
    return TargetResult(
        describe(kind, namespace, name), Outcome.FAILED, "kept changing while being scaled; retry"
    )


async def resume_scaled(kube: KubeClient, namespace: str, kind: str, name: str) -> TargetResult:
    """Restore the replica count kept in ``costwarden.dev/replicas-before`` and remove it.

    If someone scaled the object up by hand meanwhile, their count stays; only the note goes.
    """
    if kind not in SCALABLE_KINDS:
        return TargetResult(describe(kind, namespace, name), Outcome.SKIPPED, f"a {kind} cannot be scaled")
    for _ in range(_CONFLICT_RETRIES):
        try:
            found = await _scale_target(kube, namespace, kind, name)
        except KubeError as exc:
            return TargetResult(describe(kind, namespace, name), _read_outcome(exc), str(exc))
        if found is None:
            return _gone(describe(kind, namespace, name))
        target, obj, via = found
        remembered = _annotations(obj).get(ANNOTATION_REPLICAS_BEFORE)
        if remembered is None:
            return TargetResult(
                target.text,
                Outcome.SKIPPED,
                f"no {ANNOTATION_REPLICAS_BEFORE} annotation: not scaled down by costwarden",
            )
        before = _count(remembered)
        if before is None:
            return TargetResult(
                target.text,
                Outcome.FAILED,
                f"{ANNOTATION_REPLICAS_BEFORE}={remembered!r} is not a replica count",
            )
        replicas = _replicas(obj)
        restore = before if replicas == 0 else replicas
        write = await kube.scale(
            namespace,
            target.kind,
            target.name,
            restore,
            {ANNOTATION_REPLICAS_BEFORE: None},
            resource_version=_resource_version(obj),
        )
        if write is not WriteResult.CONFLICT:
            change = (
                f"restore {restore} replicas{via}"
                if replicas == 0
                else f"keep {replicas} replicas set meanwhile (not {before}){via}; remove the note"
            )
            done = f"restored {restore} replicas{via}" if replicas == 0 else f"kept {replicas} replicas{via}"
            return _result(kube, target.text, write, done=done, would=change)
    return TargetResult(
        describe(kind, namespace, name), Outcome.FAILED, "kept changing while being resumed; retry"
    )


async def suspend(kube: KubeClient, namespace: str, kind: str, name: str) -> TargetResult:
    """``spec.suspend: true`` on a batch/v1 Job or a JobSet (its controller stops the pods)."""
    target = describe(kind, namespace, name)
    if kind == "Job":
        write = await kube.suspend_job(namespace, name)
    elif kind == "JobSet":
        write = await kube.suspend_jobset(namespace, name)
        if write is WriteResult.GONE:
            return _gone(target, " (or the JobSet CRD jobset.x-k8s.io/v1alpha2 is not installed)")
    else:
        return TargetResult(target, Outcome.SKIPPED, f"a {kind} cannot be suspended")
    return _result(kube, target, write, done="suspended", would="suspend")


async def resume_suspended(kube: KubeClient, namespace: str, kind: str, name: str) -> TargetResult:
    """``spec.suspend: false`` on a Job or JobSet that costwarden suspended."""
    target = describe(kind, namespace, name)
    if kind == "Job":
        write = await kube.suspend_job(namespace, name, suspend=False)
    elif kind == "JobSet":
        write = await kube.suspend_jobset(namespace, name, suspend=False)
    else:
        return TargetResult(target, Outcome.SKIPPED, f"a {kind} cannot be resumed")
    return _result(kube, target, write, done="resumed", would="resume")


@dataclass(frozen=True, slots=True)
class _Ref:
    kind: str
    namespace: str
    name: str

    @property
    def text(self) -> str:
        return describe(self.kind, self.namespace, self.name)


async def _scale_target(
    kube: KubeClient, namespace: str, kind: str, name: str
) -> tuple[_Ref, dict[str, Any], str] | None:
    """The object to scale, its body, and a note when a ReplicaSet was resolved to its Deployment."""
    obj = await kube.get_owner(namespace, kind, name)
    if obj is None:
        return None
    if kind == "ReplicaSet":
        owner = _controller(obj, "Deployment")
        if owner is not None:
            deployment = await kube.get_owner(namespace, "Deployment", owner)
            if deployment is not None:
                via = f" (owner of ReplicaSet {namespace}/{name})"
                return _Ref("Deployment", namespace, owner), deployment, via
    return _Ref(kind, namespace, name), obj, ""


def _controller(obj: Mapping[str, Any], kind: str) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if (
            ref.get("kind") == kind
            and ref.get("controller")
            and str(ref.get("apiVersion", "")).startswith("apps/")
        ):
            return str(ref["name"])
    return None


def _annotations(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def _resource_version(obj: Mapping[str, Any]) -> str | None:
    value = (obj.get("metadata") or {}).get("resourceVersion")
    return str(value) if value else None


def _replicas(obj: Mapping[str, Any]) -> int:
    """``spec.replicas``; the API server's default of 1 where it is unset."""
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def _count(text: str) -> int | None:
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value >= 0 else None


def transient(status: int | None) -> bool:
    """An answer worth retrying on the next pass: ``TRANSIENT_STATUSES``, or no answer at all
    (``None``: the connection failed or timed out)."""
    return status is None or status in TRANSIENT_STATUSES


def _read_outcome(exc: KubeError) -> Outcome:
    """A read that a 429 refused is throttled, one the API server could not serve now is
    transient (both worth retrying), any other failure failed."""
    if exc.status == 429:
        return Outcome.THROTTLED
    return Outcome.TRANSIENT if transient(exc.status) else Outcome.FAILED


def _gone(target: str, why: str = "") -> TargetResult:
    return TargetResult(target, Outcome.GONE, f"not found{why}: nothing left to stop")


def _unchanged(kube: KubeClient, target: str, message: str) -> TargetResult:
    if kube.dry_run:
        return TargetResult(target, Outcome.DRY_RUN, f"would change nothing: {message}")
    return TargetResult(target, Outcome.DONE, message)


def _result(kube: KubeClient, target: str, write: WriteResult, *, done: str, would: str) -> TargetResult:
    if write is WriteResult.DONE:
        return TargetResult(target, Outcome.DONE, done)
    if write is WriteResult.DRY_RUN:
        return TargetResult(target, Outcome.DRY_RUN, f"would {would}")
    if write is WriteResult.GONE:
        return _gone(target)
    if write is WriteResult.THROTTLED:
        wait = kube.last_retry_after if kube.last_retry_after is not None else 1.0
        return TargetResult(target, Outcome.THROTTLED, f"throttled by the API server; retry after {wait:g}s")
    if write is WriteResult.TRANSIENT:
        why = "the API server failed or did not answer in time (HTTP 408/5xx or no answer)"
        return TargetResult(target, Outcome.TRANSIENT, f"could not {would} now: {why}")
    if write is WriteResult.FORBIDDEN:
        return TargetResult(
            target, Outcome.FAILED, f"forbidden: the operator may not {would} (see the chart's ClusterRole)"
        )
    if write is WriteResult.CONFLICT:
        return TargetResult(target, Outcome.FAILED, f"could not {would}: it changed meanwhile; retry")
    return TargetResult(
        target, Outcome.FAILED, f"could not {would}: the API request failed (see the operator log)"
    )
