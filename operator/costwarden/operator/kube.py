"""The one module that talks to the Kubernetes API (besides kopf's own watching and patching).

Blocking client calls run in threads so handlers never block the event loop. In dry-run mode
every write is logged and skipped here, so no caller can forget to honour it; reads always run
(a dry run still resolves owners and replica counts, so its "would ..." lines are accurate).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException
from urllib3.util import Retry

from costwarden.models import GROUP, PLURAL, VERSION
from costwarden.records import format_time

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
JOBSET_GROUP = "jobset.x-k8s.io"
JOBSET_VERSION = "v1alpha2"
JOBSET_PLURAL = "jobsets"
SCALABLE_KINDS = ("Deployment", "StatefulSet", "ReplicaSet")
READABLE_KINDS = (*SCALABLE_KINDS, "Job", "JobSet")

Permission = tuple[str, str, str]  # (apiGroup, resource, verb), as a ClusterRole rule names them

METHOD_PERMISSIONS: Mapping[str, tuple[Permission, ...]] = {
    "patch_pod_annotations": (("", "pods", "patch"),),
    "post_event": (("", "events", "create"),),
    "read_secret_key": (("", "secrets", "get"),),
    "delete_pod": (("", "pods", "delete"),),
    "get_owner": (
        ("apps", "deployments", "get"),
        ("apps", "replicasets", "get"),
        ("apps", "statefulsets", "get"),
        ("batch", "jobs", "get"),
        (JOBSET_GROUP, JOBSET_PLURAL, "get"),
    ),
    "scale": (
        ("apps", "deployments", "patch"),
        ("apps", "replicasets", "patch"),
        ("apps", "statefulsets", "patch"),
    ),
    "suspend_job": (("batch", "jobs", "patch"),),
    "suspend_jobset": ((JOBSET_GROUP, JOBSET_PLURAL, "patch"),),
    "annotate_budget": ((GROUP, PLURAL, "patch"),),
    "patch_budget_status": ((GROUP, f"{PLURAL}/status", "patch"),),
}
"""What each ``KubeClient`` method calls (checked against recorded traffic by the tests)."""

KOPF_PERMISSIONS: tuple[Permission, ...] = (
    ("", "pods", "list"),  # indexes
    ("", "pods", "watch"),
    ("", "nodes", "list"),
    ("", "nodes", "watch"),
    (GROUP, PLURAL, "list"),  # timers and event handlers
    (GROUP, PLURAL, "watch"),
    (GROUP, PLURAL, "patch"),  # progress annotations, finalizer
    (GROUP, f"{PLURAL}/status", "patch"),
    ("", "events", "create"),  # kopf's own handler events
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),  # resource discovery
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    ("", "namespaces", "list"),  # --namespace patterns
    ("", "namespaces", "watch"),
    ("kopf.dev", "clusterkopfpeerings", "list"),  # --peering, cluster-wide
    ("kopf.dev", "clusterkopfpeerings", "watch"),
    ("kopf.dev", "clusterkopfpeerings", "patch"),
    ("kopf.dev", "kopfpeerings", "list"),  # --peering with --namespace
    ("kopf.dev", "kopfpeerings", "watch"),
    ("kopf.dev", "kopfpeerings", "patch"),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations", "create"),  # managed webhook
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations", "patch"),
)
"""What kopf itself requests for our handlers (indexes, timers, peering, the admission guard)."""

REQUIRED_PERMISSIONS: tuple[Permission, ...] = tuple(
    sorted(set(itertools.chain(KOPF_PERMISSIONS, *METHOD_PERMISSIONS.values())))
)
"""Every (apiGroup, resource, verb) the operator uses: the Helm chart's ClusterRole must match."""


class WriteResult(Enum):
    DONE = "done"
    DRY_RUN = "dry-run"
    GONE = "gone"  # the object (or its resource type) no longer exists
    CONFLICT = "conflict"  # a resourceVersion precondition failed
    THROTTLED = "throttled"  # 429 from the API server (Retry-After honoured by the caller)
    FORBIDDEN = "forbidden"  # 401/403: RBAC or credentials; retrying will not help
    FAILED = "failed"


class KubeError(Exception):
    """A read the caller cannot go on without; the message names the object and the reason."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SecretError(KubeError):
    """A Secret (or its key) a notifier needs is missing, forbidden or unreadable."""


@dataclass(frozen=True, slots=True)
class ObjectRef:
    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str = ""


def load_configuration(kubeconfig: Path | None) -> kubernetes.client.Configuration:
    """A client configuration of our own (never the library's global default).

    urllib3 would otherwise sleep through a 429's Retry-After and retry on its own, for DELETE
    but not PATCH, blocking a thread for minutes; a 429 is answered as THROTTLED instead and the
    caller decides (connection failures are still retried).
    """
    configuration = kubernetes.client.Configuration()
    configuration.retries = Retry(total=3, respect_retry_after_header=False)
    if kubeconfig is not None:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig), client_configuration=configuration
        )
        return configuration
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return configuration


def bearer_token(configuration: kubernetes.client.Configuration) -> str | None:
    header = configuration.get_api_key_with_prefix("BearerToken") or configuration.get_api_key_with_prefix(
        "authorization"
    )
    if not header:
        return None
    return str(header.split(" ", 1)[-1])


class KubeClient:
    """Async facade over the official client; every write goes through ``_write``."""

    def __init__(self, configuration: kubernetes.client.Configuration, *, dry_run: bool = False) -> None:
        self.configuration = configuration
        self.dry_run = dry_run
        self._api = kubernetes.client.ApiClient(configuration)
        self._core = kubernetes.client.CoreV1Api(self._api)
        self._apps = kubernetes.client.AppsV1Api(self._api)
        self._batch = kubernetes.client.BatchV1Api(self._api)
        self._custom = kubernetes.client.CustomObjectsApi(self._api)
        self.last_retry_after: float | None = None

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    # ---- reads (never blocked by dry-run)

    async def read_secret_key(self, namespace: str, name: str, key: str) -> str:
        """The decoded value of one Secret key, surrounding whitespace stripped.

        Stripping matters: ``kubectl create secret --from-file`` keeps the file's trailing
        newline, which Slack and PagerDuty reject as part of a token.
        """
        what = f"Secret {namespace}/{name}"
        try:
            secret = await self._read(what, self._core.read_namespaced_secret, name, namespace)
        except KubeError as exc:
            raise SecretError(str(exc), status=exc.status) from exc
        if secret is None:
            raise SecretError(f"{what} not found", status=404)
        encoded = (secret.get("data") or {}).get(key)
        if encoded is None:
            raise SecretError(f"{what} has no key '{key}'")
        try:
            return base64.b64decode(encoded, validate=True).decode("utf-8").strip()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise SecretError(f"{what} key '{key}' is not base64-encoded UTF-8 text") from exc

    async def get_owner(self, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
        """A workload object (a pod's owner, or an owner's owner) as a plain dict; None if absent.

        ``kind`` is one of ``READABLE_KINDS``; a JobSet reads as None where its CRD is not installed.
        """
        what = f"{kind} {namespace}/{name}"
        if kind == "JobSet":
            return await self._read(
                what,
                self._custom.get_namespaced_custom_object,
                JOBSET_GROUP,
                JOBSET_VERSION,
                namespace,
                JOBSET_PLURAL,
                name,
            )
        readers: dict[str, Any] = {
            "Deployment": self._apps.read_namespaced_deployment,
            "StatefulSet": self._apps.read_namespaced_stateful_set,
            "ReplicaSet": self._apps.read_namespaced_replica_set,
            "Job": self._batch.read_namespaced_job,
        }
        if kind not in readers:
            raise ValueError(f"cannot read a {kind}; expected one of {', '.join(READABLE_KINDS)}")
        return await self._read(what, readers[kind], name, namespace)

    # ---- writes (all through _write)

    async def patch_pod_annotations(
        self, namespace: str, name: str, annotations: Mapping[str, str | None]
    ) -> WriteResult:
        body = {"metadata": {"annotations": dict(annotations)}}
        return await self._write(
            f"annotate pod {namespace}/{name} {dict(annotations)}",
            self._core.patch_namespaced_pod,
            name,
            namespace,
            body,
        )

    async def delete_pod(self, namespace: str, name: str, grace_period_seconds: int) -> WriteResult:
        return await self._write(
            f"delete pod {namespace}/{name} (grace period {grace_period_seconds}s)",
            self._core.delete_namespaced_pod,
            name,
            namespace,
            body=kubernetes.client.V1DeleteOptions(grace_period_seconds=grace_period_seconds),
        )

    async def scale(
        self,
        namespace: str,
        kind: str,
        name: str,
        replicas: int,
        annotations: Mapping[str, str | None],
        *,
        resource_version: str | None = None,
    ) -> WriteResult:
        """Set ``spec.replicas`` and annotations in one merge patch (None removes an annotation).

        With ``resource_version`` the patch is conditional: CONFLICT if the object changed since.
        """
        patchers: dict[str, Any] = {
            "Deployment": self._apps.patch_namespaced_deployment,
            "StatefulSet": self._apps.patch_namespaced_stateful_set,
            "ReplicaSet": self._apps.patch_namespaced_replica_set,
        }
        if kind not in patchers:
            raise ValueError(f"cannot scale a {kind}; expected one of {', '.join(SCALABLE_KINDS)}")
        metadata: dict[str, Any] = {"annotations": dict(annotations)}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        return await self._write(
            f"scale {kind} {namespace}/{name} to {replicas} replicas, annotations {dict(annotations)}",
            patchers[kind],
            name,
            namespace,
            {"metadata": metadata, "spec": {"replicas": replicas}},
            _content_type=MERGE_PATCH,
        )

    async def suspend_job(self, namespace: str, name: str, suspend: bool = True) -> WriteResult:
        return await self._write(
            f"{'suspend' if suspend else 'resume'} Job {namespace}/{name}",
            self._batch.patch_namespaced_job,
            name,
            namespace,
            {"spec": {"suspend": suspend}},
            _content_type=MERGE_PATCH,
        )

    async def suspend_jobset(self, namespace: str, name: str, suspend: bool = True) -> WriteResult:
        """GONE both when the JobSet is gone and when the JobSet CRD is not installed."""
        return await self._write(
            f"{'suspend' if suspend else 'resume'} JobSet {namespace}/{name}",
            self._custom.patch_namespaced_custom_object,
            JOBSET_GROUP,
            JOBSET_VERSION,
            namespace,
            JOBSET_PLURAL,
            name,
            {"spec": {"suspend": suspend}},
            _content_type=MERGE_PATCH,
        )

    async def annotate_budget(
        self, namespace: str, name: str, annotations: Mapping[str, str | None]
    ) -> WriteResult:
        """Set (or with None remove) annotations on a CostBudget, e.g. the resume request."""
        return await self._write(
            f"annotate CostBudget {namespace}/{name} {dict(annotations)}",
            self._custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"metadata": {"annotations": dict(annotations)}},
            _content_type=MERGE_PATCH,
        )

    async def patch_budget_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> WriteResult:
        """Merge-patch a CostBudget's status now, outside kopf's end-of-handler patch.

        Enforcement writes its Pending action records this way before acting, so that a crash
        between deciding and acting retries the action instead of forgetting it.
        """
        return await self._write(
            f"patch status of CostBudget {namespace}/{name} {dict(status)}",
            self._custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"status": dict(status)},
            _content_type=MERGE_PATCH,
        )

    async def post_event(
        self, involved: ObjectRef, *, reason: str, message: str, event_type: str, now: datetime
    ) -> WriteResult:
        stamp = format_time(now)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{involved.name}.{uuid.uuid4().hex[:16]}", "namespace": involved.namespace},
            "involvedObject": {
                "apiVersion": involved.api_version,
                "kind": involved.kind,
                "name": involved.name,
                "namespace": involved.namespace,
                "uid": involved.uid,
            },
            "reason": reason,
            "message": message[:1024],
            "type": event_type,
            "source": {"component": "costwarden"},
            "reportingComponent": "costwarden",
            "reportingInstance": "costwarden",
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        return await self._write(
            f"post {event_type} event {reason} on {involved.kind} "
            f"{involved.namespace}/{involved.name}: {message}",
            self._core.create_namespaced_event,
            involved.namespace,
            body,
        )

    # ---- plumbing

    async def _read(self, what: str, call: Any, *args: Any) -> dict[str, Any] | None:
        """The object as sent (JSON), or None on 404; KubeError with a readable reason otherwise."""
        try:
            body = await asyncio.to_thread(_raw, call, *args)
            found = json.loads(body)
        except ApiException as exc:
            if exc.status == 404:
                return None
            if exc.status == 429:
                self.last_retry_after = _retry_after(exc)
            raise KubeError(f"{what}: {_read_failure(exc)}", status=exc.status) from exc
        except Exception as exc:
            raise KubeError(f"{what}: could not be read ({exc})") from exc
        if not isinstance(found, dict):
            raise KubeError(f"{what}: the API server sent {type(found).__name__}, not an object")
        return found

    async def _write(self, what: str, call: Any, *args: Any, **kwargs: Any) -> WriteResult:
        if self.dry_run:
            log.info("dry-run: would %s", what)
            return WriteResult.DRY_RUN
        try:
            await asyncio.to_thread(_raw, call, *args, **kwargs)
        except ApiException as exc:
            return self._classify(what, exc)
        except Exception as exc:  # network errors: logged, retried by the caller's next pass
            log.warning("could not %s: %s", what, exc)
            return WriteResult.FAILED
        return WriteResult.DONE

    def _classify(self, what: str, exc: ApiException) -> WriteResult:
        if exc.status == 404:
            return WriteResult.GONE
        if exc.status == 409:
            return WriteResult.CONFLICT
        if exc.status == 429:
            self.last_retry_after = _retry_after(exc)
            log.warning("API server throttled us (%s); retry after %ss", what, self.last_retry_after)
            return WriteResult.THROTTLED
        log.warning("could not %s: HTTP %s %s", what, exc.status, exc.reason)
        return WriteResult.FORBIDDEN if exc.status in (401, 403) else WriteResult.FAILED


def _raw(call: Any, *args: Any, **kwargs: Any) -> bytes:
    """The response body, undecoded: the client's typed models reject fields they do not expect
    (and would turn a write that succeeded into an error), and drop fields they do not know.
    """
    response = call(*args, _preload_content=False, **kwargs)
    return bytes(response.data)


def _read_failure(exc: ApiException) -> str:
    if exc.status == 403:
        return "forbidden (the operator's service account may not read it; see the chart's ClusterRole)"
    if exc.status == 401:
        return "unauthorized (the operator's credentials were refused)"
    if exc.status == 429:
        return "throttled by the API server"
    return f"HTTP {exc.status} {exc.reason}"


def _retry_after(exc: ApiException) -> float:
    headers = exc.headers or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else 1.0
    except ValueError:
        return 1.0
