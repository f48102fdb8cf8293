"""What a request addresses and asks for, and the documents derived from that alone."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from costwarden.sim import errors
from costwarden.sim.resources import ResourceInfo
from costwarden.sim.selectors import label_selector_string


@dataclass(frozen=True)
class Target:
    """What a request addresses: a resource at a version, maybe a namespace, name and subresource."""

    info: ResourceInfo
    version: str
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


@dataclass(frozen=True)
class WriteOptions:
    dry_run: bool = False
    field_validation: str = "Warn"  # Strict | Warn | Ignore


@dataclass
class WriteResult:
    obj: dict[str, Any]
    created: bool = False
    warnings: list[str] = field(default_factory=list)


def now_text(clock: Callable[[], datetime]) -> str:
    return clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def get_path(obj: Mapping[str, Any], path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        obj = obj.setdefault(part, {})
    obj[last] = value


def scale_of(target: Target, obj: Mapping[str, Any]) -> dict[str, Any]:
    """The ``autoscaling/v1 Scale`` view of an object with a scale subresource."""
    paths = target.info.scale
    assert paths is not None
    meta = obj["metadata"]
    selector = get_path(obj, paths.label_selector) if paths.label_selector else None
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": get_path(obj, paths.spec_replicas) or 0},
        "status": {
            "replicas": get_path(obj, paths.status_replicas) or 0,
            "selector": label_selector_string(selector)
            if isinstance(selector, Mapping)
            else (selector or ""),
        },
    }


def check_identity(target: Target, obj: dict[str, Any], creating: bool) -> dict[str, Any]:
    """Reconcile apiVersion, kind, namespace and name of a body with the URL (400 where they clash)."""
    info = target.info
    expected_version = info.api_version(target.version)
    if obj.get("apiVersion", expected_version) != expected_version or obj.get("kind", info.kind) != info.kind:
        raise errors.bad_request(
            f"the API version in the data ({obj.get('apiVersion')}) does not match "
            f"the expected API version ({expected_version})"
            if obj.get("apiVersion", expected_version) != expected_version
            else f"the kind in the data ({obj.get('kind')}) does not match the expected kind ({info.kind})"
        )
    obj["apiVersion"], obj["kind"] = expected_version, info.kind
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = obj["metadata"] = {}
    if info.namespaced:
        if meta.get("namespace") and target.namespace and meta["namespace"] != target.namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        meta["namespace"] = meta.get("namespace") or target.namespace or "default"
    else:
        meta.pop("namespace", None)
    if creating and target.name and not meta.get("name"):
        meta["name"] = target.name
    if target.name and meta.get("name") and meta["name"] != target.name:
        raise errors.bad_request(
            f"the name of the object ({meta['name']}) does not match the name on the URL ({target.name})"
        )
    if not creating:
        meta["name"] = target.name
    return obj
