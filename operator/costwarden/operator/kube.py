"""The one module that talks to the Kubernetes API (besides kopf's own watching and patching).

One ``kubernetes_asyncio`` client per ``KubeClient``, on the event loop that uses it: no threads,
so thousands of writes and two long watches cost sockets, not threads. The client (and its
aiohttp session) is created on first use, because the operator is built on one thread and runs
on another thread's loop (``OperatorThread``); a client serves the loop it was first used on.

In dry-run mode every write to the cluster is logged and skipped here, so no caller can forget
to honour it; reads always run (a dry run still resolves owners and replica counts, so its
"would ..." lines are accurate). Lease writes are the exception: taking or renewing the
leadership Lease changes nothing a dry run is meant to protect, and a dry-run replica still has
to know whether it is the one that acts (``LEASE_WRITES_IGNORE_DRY_RUN``).

Bodies are requested undecoded (``_preload_content=False``) and returned as the JSON the API
server sent: the client's typed models reject fields they do not expect (and would turn a write
that succeeded into an error), and drop fields they do not know.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import itertools
import json
import logging
import os
import urllib.request
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from costwarden.models import GROUP, PLURAL, VERSION
from costwarden.records import format_time

log = logging.getLogger(__name__)

T = TypeVar("T")

MERGE_PATCH = "application/merge-patch+json"
JOBSET_GROUP = "jobset.x-k8s.io"
JOBSET_VERSION = "v1alpha2"
JOBSET_PLURAL = "jobsets"
LEASE_GROUP = "coordination.k8s.io"
SCALABLE_KINDS = ("Deployment", "StatefulSet", "ReplicaSet")
READABLE_KINDS = (*SCALABLE_KINDS, "Job", "JobSet")
WATCHABLE = ("pods", "nodes", PLURAL)
"""What ``list_raw`` and ``watch_raw`` serve: the resources the informer keeps in memory."""

LEASE_WRITES_IGNORE_DRY_RUN = True
"""``create_lease``/``replace_lease`` write even with ``dry_run``: leadership is not a cluster change."""

REQUEST_TIMEOUT_S = 30.0  # one request, connect to last byte (kopf's request timeout too)
CONNECT_TIMEOUT_S = 10.0  # a watch: connecting; reading then waits up to its timeout + margin
WATCH_READ_MARGIN_S = 30.0
CONNECT_ATTEMPTS = 3  # a request that could not connect was never sent: safe to retry, any verb
PAGE_SIZE = 500
DEFAULT_KUBECONFIG = "~/.kube/config"

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
    "read_budget": ((GROUP, PLURAL, "get"),),
    "list_budgets": ((GROUP, PLURAL, "list"),),
    "list_pods": (("", "pods", "list"),),
    "list_raw": (("", "pods", "list"), ("", "nodes", "list"), (GROUP, PLURAL, "list")),  # the informer
    "watch_raw": (("", "pods", "watch"), ("", "nodes", "watch"), (GROUP, PLURAL, "watch")),
    "read_lease": ((LEASE_GROUP, "leases", "get"),),  # leader election
    "create_lease": ((LEASE_GROUP, "leases", "create"),),
    "replace_lease": ((LEASE_GROUP, "leases", "update"),),
}
"""What each ``KubeClient`` method calls (checked against recorded traffic by the tests)."""

KOPF_PERMISSIONS: tuple[Permission, ...] = (
    ("", "events", "create"),  # kopf's own events about failing handlers
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),  # resource discovery
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    ("", "namespaces", "list"),  # --namespace patterns
    ("", "namespaces", "watch"),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations", "create"),  # managed webhook
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations", "patch"),
)
"""What kopf itself requests (discovery, namespaces, the admission guard); pods, nodes and
CostBudgets are watched by our informer, and leadership is our Lease, not kopf's peering."""

REQUIRED_PERMISSIONS: tuple[Permission, ...] = tuple(
    sorted(set(itertools.chain(KOPF_PERMISSIONS, *METHOD_PERMISSIONS.values())))
)
"""Every (apiGroup, resource, verb) the operator uses: the Helm chart's ClusterRole must match."""


TRANSIENT_STATUSES = frozenset({408, 500, 502, 503, 504})
"""HTTP answers that say the API server (or etcd behind it) could not serve the request now:
a timeout, an internal error, a proxy in front of it without a backend. A 504 may even come
after a write was carried out (the client cannot tell): retrying is safe, as every destructive
write is idempotent or guarded (a pod delete carries the pod's uid; a scale, its
resourceVersion)."""


class WriteResult(Enum):
    DONE = "done"
    DRY_RUN = "dry-run"
    GONE = "gone"  # the object (or its resource type) no longer exists
    CONFLICT = "conflict"  # a resourceVersion precondition failed, or (create) it already exists
    THROTTLED = "throttled"  # 429 from the API server (Retry-After honoured by the caller)
    TRANSIENT = "transient"  # TRANSIENT_STATUSES or no answer: a later try may work (or find it done)
    FORBIDDEN = "forbidden"  # 401/403: RBAC or credentials; retrying will not help
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class StatusWrite:
    """What a status write did, and the budget's ``resourceVersion`` after it (from the answer;
    None where nothing was stored, in dry-run mode, or an answer that named none)."""

    result: WriteResult
    resource_version: str | None = None


class KubeError(Exception):
    """A read the caller cannot go on without; the message names the object and the reason.

    ``status`` is the HTTP status (None when the server was not reached or the stream broke);
    ``retry_after`` the seconds a 429 asked us to wait.
    """

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class SecretError(KubeError):
    """A Secret (or its key) a notifier needs is missing, forbidden or unreadable."""


@dataclass(frozen=True, slots=True)
class ObjectRef:
    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str = ""


# ---- configuration


def load_configuration(kubeconfig: Path | None) -> k8s.Configuration:
    """A client configuration of our own (never the library's global default).

    ``kubeconfig`` None means in-cluster credentials, then ``$KUBECONFIG`` (or ``~/.kube/config``).
    Synchronous, although kubernetes_asyncio's kubeconfig loader is a coroutine (it may run an
    exec credential plugin): the loader runs on a private event loop in a helper thread, so this
    works with or without a running loop in the caller's thread and touches neither. Tokens from
    an exec plugin that announces an expiry are renewed before requests once they expire.
    """
    configuration = k8s.Configuration()
    if kubeconfig is None:
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except k8s_config.ConfigException:
            pass  # not in a pod: the default kubeconfig
        else:
            return configuration
    paths = str(kubeconfig) if kubeconfig is not None else os.environ.get("KUBECONFIG", DEFAULT_KUBECONFIG)
    if not any(Path(p).expanduser().is_file() for p in paths.split(os.pathsep) if p):
        where = "" if kubeconfig is not None else "no in-cluster credentials and "
        raise k8s_config.ConfigException(f"{where}no kubeconfig file at {paths}")
    loader = _complete(
        k8s_config.load_kube_config(
            config_file=paths, client_configuration=configuration, persist_config=False
        )
    )
    if hasattr(loader, "exec_plugin_expiry"):
        configuration.refresh_api_key_hook = _exec_token_refresher(loader)
    return configuration


def _complete(coroutine: Coroutine[Any, Any, T]) -> T:
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kubeconfig") as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _exec_token_refresher(loader: Any) -> Callable[[k8s.Configuration], Awaitable[None]]:
    async def refresh(configuration: k8s.Configuration) -> None:
        await loader.load_from_exec_plugin()  # runs the plugin again only once its token expired
        token = getattr(loader, "token", None)
        if token:
            configuration.api_key["BearerToken"] = token

    return refresh


def bearer_token(configuration: k8s.Configuration) -> str | None:
    """The bearer token of a configuration, without its "Bearer " prefix (synchronous: kopf's
    login handler calls it; kubernetes_asyncio's own ``get_api_key_with_prefix`` is a coroutine)."""
    keys: Mapping[str, str] = configuration.api_key
    header = keys.get("BearerToken") or keys.get("authorization")
    if not header:
        return None
    return str(header).split(" ", 1)[-1]


# ---- the client


@dataclass(frozen=True, slots=True)
class _Apis:
    """The generated API groups over one ApiClient (typed Any: the generated code is untyped)."""

    client: Any
    core: Any
    apps: Any
    batch: Any
    custom: Any
    coordination: Any
    loop: asyncio.AbstractEventLoop


Call = Callable[[_Apis], Callable[..., Awaitable[Any]]]
"""Picks the generated method to call once the ApiClient exists, e.g. ``lambda a: a.core.read_node``."""


class _Failure(Exception):
    """A non-2xx answer, before it is turned into a WriteResult or a KubeError."""

    def __init__(self, status: int, reason: str, headers: Mapping[str, str], body: bytes) -> None:
        super().__init__(f"HTTP {status} {reason}")
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body


def environment_sets_http() -> bool:
    """Whether the environment sets what aiohttp reads with ``trust_env``: a proxy variable
    (``HTTPS_PROXY`` and the like, as ``urllib.request.getproxies`` finds them) or a netrc file.

    kubernetes_asyncio opens its session with ``trust_env=True``, and aiohttp then looks both up
    on a worker thread for every request: two thread hops, a file check and a scan of the
    environment per write, at ~100 writes a second at 10,000 pods (bench/RESULTS.md). Where
    neither is set that finds nothing, so the client leaves it off; where one is, it stays on."""
    netrc = os.environ.get("NETRC") or str(Path.home() / ".netrc")
    return bool(urllib.request.getproxies()) or Path(netrc).is_file()


class KubeClient:
    """Async facade over kubernetes_asyncio; every cluster write goes through ``_write``."""

    def __init__(
        self, configuration: k8s.Configuration, *, dry_run: bool = False, trust_env: bool | None = None
    ) -> None:
        self.configuration = configuration
        self.dry_run = dry_run
        self.last_retry_after: float | None = None
        self._apis_now: _Apis | None = None
        # None: as the environment has it (environment_sets_http)
        self.trust_env = environment_sets_http() if trust_env is None else trust_env

    async def close(self) -> None:
        """Close the HTTP session (on the loop it was used on); the client may be used again after."""
        apis, self._apis_now = self._apis_now, None
        if apis is None:
            return
        if asyncio.get_running_loop() is apis.loop:
            await apis.client.close()
        elif apis.loop.is_running():
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(apis.client.close(), apis.loop))
        else:
            log.debug(
                "KubeClient for %s: its event loop is gone; its session went with it", self.configuration.host
            )

    def _apis(self) -> _Apis:
        loop = asyncio.get_running_loop()
        apis = self._apis_now
        if apis is not None and apis.loop is not loop:
            raise RuntimeError(
                f"KubeClient for {self.configuration.host} was first used on another event loop; "
                "an aiohttp session serves one loop: close it there, or build one client per loop"
            )
        if apis is None:
            api = k8s.ApiClient(self.configuration)
            api.user_agent = "costwarden"
            if not self.trust_env:  # kubernetes_asyncio always asks for it (see environment_sets_http)
                api.rest_client.pool_manager._trust_env = False
            apis = _Apis(
                client=api,
                core=k8s.CoreV1Api(api),
                apps=k8s.AppsV1Api(api),
                batch=k8s.BatchV1Api(api),
                custom=k8s.CustomObjectsApi(api),
                coordination=k8s.CoordinationV1Api(api),
                loop=loop,
            )
            self._apis_now = apis
        return apis

    # ---- reads (never blocked by dry-run)

    async def read_secret_key(self, namespace: str, name: str, key: str) -> str:
        """The decoded value of one Secret key, surrounding whitespace stripped.

        Stripping matters: ``kubectl create secret --from-file`` keeps the file's trailing
        newline, which Slack and PagerDuty reject as part of a token.
        """
        what = f"Secret {namespace}/{name}"
        try:
            secret = await self._read(what, lambda a: a.core.read_namespaced_secret, name, namespace)
        except KubeError as exc:
            raise SecretError(str(exc), status=exc.status, retry_after=exc.retry_after) from exc
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
                lambda a: a.custom.get_namespaced_custom_object,
                JOBSET_GROUP,
                JOBSET_VERSION,
                namespace,
                JOBSET_PLURAL,
                name,
            )
        readers: dict[str, Call] = {
            "Deployment": lambda a: a.apps.read_namespaced_deployment,
            "StatefulSet": lambda a: a.apps.read_namespaced_stateful_set,
            "ReplicaSet": lambda a: a.apps.read_namespaced_replica_set,
            "Job": lambda a: a.batch.read_namespaced_job,
        }
        if kind not in readers:
            raise ValueError(f"cannot read a {kind}; expected one of {', '.join(READABLE_KINDS)}")
        return await self._read(what, readers[kind], name, namespace)

    async def read_budget(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A CostBudget as stored now (the status writer re-reads it after a 409); None if it is
        gone. KubeError if it cannot be read."""
        return await self._read(
            f"CostBudget {namespace}/{name}",
            lambda a: a.custom.get_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
        )

    async def list_budgets(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every CostBudget (in one namespace, or all), read page by page."""
        if namespace is None:
            return await self._list_all(
                "CostBudgets in all namespaces",
                lambda a: a.custom.list_cluster_custom_object,
                GROUP,
                VERSION,
                PLURAL,
            )
        return await self._list_all(
            f"CostBudgets in namespace {namespace}",
            lambda a: a.custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
        )

    async def list_pods(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every pod (in one namespace, or all), read page by page, as whole bodies.

        For one-off reads (``costwarden top``); the operator keeps pods through the informer.
        """
        pods: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = await self.list_raw("pods", namespace=namespace, limit=PAGE_SIZE, continue_token=token)
            pods.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue") or None
            if token is None:
                return pods

    async def list_raw(
        self,
        resource: str,
        *,
        namespace: str | None = None,
        limit: int = PAGE_SIZE,
        continue_token: str | None = None,
    ) -> dict[str, Any]:
        """One page of a list of ``pods`` (all namespaces, or ``namespace``) or ``nodes``.

        The list object as sent: ``items``, and ``metadata.resourceVersion`` (to watch from) and
        ``metadata.continue`` (the next page's token; absent or empty on the last page). A
        continue token that expired answers 410: the caller lists again from the start.
        """
        what, call, args = self._collection(resource, namespace)
        options: dict[str, Any] = {"limit": limit}
        if continue_token:
            options["_continue"] = continue_token
        found = await self._read(what, call, *args, **options)
        if found is None:
            raise KubeError(f"{what}: the API server does not serve this resource", status=404)
        return found

    async def watch_raw(
        self,
        resource: str,
        resource_version: str,
        timeout_seconds: int,
        *,
        namespace: str | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Watch events ``{"type": ..., "object": ...}`` of ``pods`` or ``nodes``, with bookmarks.

        Events come as sent, ERROR events included (an ERROR with code 410 means the
        resourceVersion is too old: list again). The stream ends when the server closes it
        (at ``timeout_seconds`` at the latest). KubeError when the watch is refused (with its
        status) or the connection breaks (status None).
        """
        what, call, args = self._collection(resource, namespace)
        what = f"watch of {what} from resourceVersion {resource_version}"
        apis = self._apis()
        try:
            response = await self._connect(
                what,
                call(apis),
                *args,
                watch="true",  # as strings: the generated client would send Python's "True"
                allow_watch_bookmarks="true",
                resource_version=resource_version,
                timeout_seconds=timeout_seconds,
                _request_timeout=(CONNECT_TIMEOUT_S, timeout_seconds + WATCH_READ_MARGIN_S),
            )
        except _Failure as exc:
            raise self._read_error(what, exc) from exc
        except Exception as exc:
            raise KubeError(f"{what}: could not connect ({exc or type(exc).__name__})") from exc
        try:
            while True:
                try:
                    line = await response.content.readline()
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    raise KubeError(f"{what}: the stream broke ({exc or type(exc).__name__})") from exc
                if not line:
                    return  # closed by the server: its timeout, or it is going away
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except ValueError as exc:
                    raise KubeError(f"{what}: the stream broke mid-event ({exc})") from exc
                if not isinstance(event, dict):
                    raise KubeError(f"{what}: the API server sent {type(event).__name__}, not an event")
                yield event
        finally:
            response.close()  # a watch is never read to its end: drop the connection, do not pool it

    async def read_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A ``coordination.k8s.io/v1`` Lease; None if there is none."""
        return await self._read(
            f"Lease {namespace}/{name}", lambda a: a.coordination.read_namespaced_lease, name, namespace
        )

    # ---- leadership writes (made even in dry-run: see LEASE_WRITES_IGNORE_DRY_RUN)

    async def create_lease(self, namespace: str, body: Mapping[str, Any]) -> WriteResult:
        """Create a Lease; CONFLICT if one with that name exists (another replica was first)."""
        name = (body.get("metadata") or {}).get("name", "")
        return await self._write(
            f"create Lease {namespace}/{name}",
            lambda a: a.coordination.create_namespaced_lease,
            namespace,
            dict(body),
            cluster_change=not LEASE_WRITES_IGNORE_DRY_RUN,
        )

    async def replace_lease(self, namespace: str, name: str, body: Mapping[str, Any]) -> WriteResult:
        """Replace a Lease (PUT); ``body`` carries the ``metadata.resourceVersion`` it was read at,
        so the write is CONFLICT if anyone renewed or took the Lease since; GONE if it vanished."""
        return await self._write(
            f"replace Lease {namespace}/{name}",
            lambda a: a.coordination.replace_namespaced_lease,
            name,
            namespace,
            dict(body),
            cluster_change=not LEASE_WRITES_IGNORE_DRY_RUN,
        )

    # ---- writes (all through _write)

    async def patch_pod_annotations(
        self, namespace: str, name: str, annotations: Mapping[str, str | None], *, uid: str | None = None
    ) -> WriteResult:
        """Merge-patch a pod's annotations; with ``uid`` only that pod's: the API server refuses
        (422, uid is immutable) to write them onto a new pod of the same name."""
        metadata: dict[str, Any] = {"annotations": dict(annotations)}
        if uid:
            metadata["uid"] = uid
        body = {"metadata": metadata}
        return await self._write(
            f"annotate pod {namespace}/{name} {dict(annotations)}",
            lambda a: a.core.patch_namespaced_pod,
            name,
            namespace,
            body,
        )

    async def delete_pod(
        self, namespace: str, name: str, grace_period_seconds: int, *, uid: str | None = None
    ) -> WriteResult:
        """A graceful delete; with ``uid`` only of that pod (a precondition): CONFLICT if the pod
        of that name is another one now."""
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": grace_period_seconds,
        }
        if uid:
            body["preconditions"] = {"uid": uid}
        return await self._write(
            f"delete pod {namespace}/{name} (grace period {grace_period_seconds}s)",
            lambda a: a.core.delete_namespaced_pod,
            name,
            namespace,
            body=body,
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
        patchers: dict[str, Call] = {
            "Deployment": lambda a: a.apps.patch_namespaced_deployment,
            "StatefulSet": lambda a: a.apps.patch_namespaced_stateful_set,
            "ReplicaSet": lambda a: a.apps.patch_namespaced_replica_set,
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
            lambda a: a.batch.patch_namespaced_job,
            name,
            namespace,
            {"spec": {"suspend": suspend}},
            _content_type=MERGE_PATCH,
        )

    async def suspend_jobset(self, namespace: str, name: str, suspend: bool = True) -> WriteResult:
        """GONE both when the JobSet is gone and when the JobSet CRD is not installed."""
        return await self._write(
            f"{'suspend' if suspend else 'resume'} JobSet {namespace}/{name}",
            lambda a: a.custom.patch_namespaced_custom_object,
            JOBSET_GROUP,
            JOBSET_VERSION,
            namespace,
            JOBSET_PLURAL,
            name,
            {"spec": {"suspend": suspend}},
            _content_type=MERGE_PATCH,
        )

    async def annotate_budget(
        self,
        namespace: str,
        name: str,
        annotations: Mapping[str, str | None],
        *,
        resource_version: str | None = None,
    ) -> WriteResult:
        """Set (or with None remove) annotations on a CostBudget, e.g. the resume request.

        With ``resource_version`` the patch is conditional: CONFLICT if the budget changed since.
        """
        metadata: dict[str, Any] = {"annotations": dict(annotations)}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        return await self._write(
            f"annotate CostBudget {namespace}/{name} {dict(annotations)}",
            lambda a: a.custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"metadata": metadata},
            _content_type=MERGE_PATCH,
        )

    async def patch_budget_status(
        self,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> StatusWrite:
        """Merge-patch a CostBudget's status (the status subresource).

        With ``resource_version`` (the budget's as the writer last knew it) the patch is
        conditional: CONFLICT if anything wrote the budget since (a status write of another
        replica, a spec or annotation change). The answer's resourceVersion comes back with DONE.
        Enforcement writes its Pending action records this way before acting, so that a crash
        between deciding and acting retries the action instead of forgetting it.
        """
        body: dict[str, Any] = {"status": dict(status)}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        result, answer = await self._write_answer(
            f"patch status of CostBudget {namespace}/{name} ({', '.join(sorted(status))})",
            lambda a: a.custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            body,
            _content_type=MERGE_PATCH,
        )
        version = (answer.get("metadata") or {}).get("resourceVersion") if answer is not None else None
        return StatusWrite(result, str(version) if version else None)

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
            lambda a: a.core.create_namespaced_event,
            involved.namespace,
            body,
        )

    # ---- plumbing

    @staticmethod
    def _collection(resource: str, namespace: str | None) -> tuple[str, Call, tuple[Any, ...]]:
        """What to call to list or watch ``resource``, and how to name it in messages."""
        if resource == "pods" and namespace is None:
            return "pods in all namespaces", lambda a: a.core.list_pod_for_all_namespaces, ()
        if resource == "pods":
            return f"pods in namespace {namespace}", lambda a: a.core.list_namespaced_pod, (namespace,)
        if resource == "nodes" and namespace is None:
            return "nodes", lambda a: a.core.list_node, ()
        if resource == "nodes":
            raise ValueError(f"nodes are cluster-scoped; got namespace {namespace!r}")
        if resource == PLURAL and namespace is None:
            call: Call = lambda a: a.custom.list_cluster_custom_object  # noqa: E731
            return "CostBudgets in all namespaces", call, (GROUP, VERSION, PLURAL)
        if resource == PLURAL:
            call = lambda a: a.custom.list_namespaced_custom_object  # noqa: E731
            return f"CostBudgets in namespace {namespace}", call, (GROUP, VERSION, namespace, PLURAL)
        raise ValueError(f"cannot list or watch {resource!r}; expected one of {', '.join(WATCHABLE)}")

    async def _list_all(self, what: str, call: Call, *args: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            options: dict[str, Any] = {"limit": PAGE_SIZE}
            if token:
                options["_continue"] = token
            page = await self._read(what, call, *args, **options)
            if page is None:
                raise KubeError(f"{what}: the API server does not serve this resource", status=404)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue") or None
            if token is None:
                return items

    async def _connect(
        self, what: str, method: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
    ) -> Any:
        """The response (status checked, body unread), retrying connections that never opened."""
        for attempt in range(CONNECT_ATTEMPTS):
            try:
                response = await method(*args, _preload_content=False, **kwargs)
                break
            except aiohttp.ClientConnectorError as exc:
                if attempt + 1 == CONNECT_ATTEMPTS:
                    raise
                log.debug("%s: could not connect (%s); retrying", what, exc)
                await asyncio.sleep(0.1 * 2**attempt)
        if not 200 <= response.status <= 299:
            async with response:
                body = await response.read()
            raise _Failure(response.status, str(response.reason or ""), response.headers, body)
        return response

    async def _send(
        self, what: str, method: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
    ) -> bytes:
        response = await self._connect(what, method, *args, _request_timeout=REQUEST_TIMEOUT_S, **kwargs)
        async with response:
            return bytes(await response.read())

    async def _read(self, what: str, call: Call, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        """The object as sent (JSON), or None on 404; KubeError with a readable reason otherwise."""
        method = call(self._apis())  # outside the try: using a client on the wrong loop is a bug
        try:
            found = json.loads(await self._send(what, method, *args, **kwargs))
        except _Failure as exc:
            if exc.status == 404:
                return None
            raise self._read_error(what, exc) from exc
        except Exception as exc:  # network, TLS, credentials plugin, a body that is not JSON
            raise KubeError(f"{what}: could not be read ({exc or type(exc).__name__})") from exc
        if not isinstance(found, dict):
            raise KubeError(f"{what}: the API server sent {type(found).__name__}, not an object")
        return found

    def _read_error(self, what: str, failure: _Failure) -> KubeError:
        retry_after = None
        if failure.status == 429:
            retry_after = self.last_retry_after = _retry_after(failure.headers)
        return KubeError(f"{what}: {_read_failure(failure)}", status=failure.status, retry_after=retry_after)

    async def _write(
        self, what: str, call: Call, *args: Any, cluster_change: bool = True, **kwargs: Any
    ) -> WriteResult:
        result, _ = await self._write_answer(what, call, *args, cluster_change=cluster_change, **kwargs)
        return result

    async def _write_answer(
        self, what: str, call: Call, *args: Any, cluster_change: bool = True, **kwargs: Any
    ) -> tuple[WriteResult, dict[str, Any] | None]:
        """The write's result and, for DONE, the object the API server answered with (None if
        the answer was not a JSON object)."""
        if self.dry_run and cluster_change:
            log.info("dry-run: would %s", what)
            return WriteResult.DRY_RUN, None
        method = call(self._apis())
        try:
            raw = await self._send(what, method, *args, **kwargs)
        except _Failure as exc:
            return self._classify(what, exc), None
        except Exception as exc:  # network errors: logged, retried by the caller's next pass
            log.warning("could not %s: %s", what, exc or type(exc).__name__)
            return WriteResult.TRANSIENT, None
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            answer = None
        return WriteResult.DONE, answer if isinstance(answer, dict) else None

    def _classify(self, what: str, failure: _Failure) -> WriteResult:
        if failure.status == 404:
            return WriteResult.GONE
        if failure.status == 409:
            return WriteResult.CONFLICT
        if failure.status == 429:
            self.last_retry_after = _retry_after(failure.headers)
            log.warning("API server throttled us (%s); retry after %ss", what, self.last_retry_after)
            return WriteResult.THROTTLED
        log.warning("could not %s: HTTP %s %s", what, failure.status, failure.reason)
        if failure.status in TRANSIENT_STATUSES:
            return WriteResult.TRANSIENT
        return WriteResult.FORBIDDEN if failure.status in (401, 403) else WriteResult.FAILED


def _read_failure(failure: _Failure) -> str:
    if failure.status == 403:
        return "forbidden (the operator's service account may not read it; see the chart's ClusterRole)"
    if failure.status == 401:
        return "unauthorized (the operator's credentials were refused)"
    if failure.status == 429:
        return "throttled by the API server"
    if failure.status == 410:
        return "expired (410 Gone: list again)"
    return f"HTTP {failure.status} {failure.reason}"


def _retry_after(headers: Mapping[str, str]) -> float:
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else 1.0
    except ValueError:
        return 1.0
