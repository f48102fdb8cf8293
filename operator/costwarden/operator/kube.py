"""The one module that talks to the Kubernetes API (besides kopf's own watching and patching).

Blocking client calls run in threads so handlers never block the event loop. In dry-run mode
every write is logged and skipped here, so no caller can forget to honour it.
"""

from __future__ import annotations

import asyncio
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

from costwarden.records import format_time

log = logging.getLogger(__name__)


class WriteResult(Enum):
    DONE = "done"
    DRY_RUN = "dry-run"
    GONE = "gone"  # the object no longer exists
    CONFLICT = "conflict"
    THROTTLED = "throttled"  # 429 from the API server (Retry-After honoured by the caller)
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ObjectRef:
    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str = ""


def load_configuration(kubeconfig: Path | None) -> kubernetes.client.Configuration:
    """A client configuration of our own (never the library's global default)."""
    configuration = kubernetes.client.Configuration()
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
        self.last_retry_after: float | None = None

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

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

    async def _write(self, what: str, call: Any, *args: Any) -> WriteResult:
        if self.dry_run:
            log.info("dry-run: would %s", what)
            return WriteResult.DRY_RUN
        try:
            await asyncio.to_thread(call, *args)
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
        return WriteResult.FAILED


def _retry_after(exc: ApiException) -> float:
    headers = exc.headers or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else 1.0
    except ValueError:
        return 1.0
