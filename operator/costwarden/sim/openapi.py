"""A small ``/openapi/v3``: enough for kubectl to know that server-side field validation is on.

kubectl (1.27+) asks the v3 document of a group-version whether the PATCH operation of a kind takes
the ``fieldValidation`` query parameter; if so it leaves validation to the server. PATCH request
bodies do not list strategic merge, so kubectl's client-side apply falls back to its compiled-in
types for built-ins and to JSON merge patch for custom resources, as with a real CRD. Custom
resources carry their ``openAPIV3Schema`` for ``kubectl explain``. ``/openapi/v2`` is not served
(kubectl only takes it as protobuf and copes with its absence).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from costwarden.sim.registry import Registry
from costwarden.sim.resources import ResourceInfo, sorted_infos

_WRITE_PARAMS = ("dryRun", "fieldManager", "fieldValidation")
_BODY_TYPES = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _schema_name(info: ResourceInfo, version: str) -> str:
    reversed_group = ".".join(reversed(info.group.split("."))) if info.group else "io.k8s.api.core"
    return f"{reversed_group}.{version}.{info.kind}"


def _params(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}} for n in names]


def _operation(
    info: ResourceInfo, version: str, action: str, ref: str, body_types: tuple[str, ...] = ()
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": f"{action}{info.kind}",
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": info.group, "version": version, "kind": info.kind},
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": ref}}}}
        },
    }
    if action in ("post", "put", "patch"):
        operation["parameters"] = _params(*_WRITE_PARAMS, *(("force",) if action == "patch" else ()))
        media = body_types or ("application/json",)
        operation["requestBody"] = {
            "content": {m: {"schema": {"type": "object"}} for m in media},
            "required": True,
        }
    return operation


def _resource_paths(info: ResourceInfo, version: str) -> dict[str, Any]:
    ref = f"#/components/schemas/{_schema_name(info, version)}"
    base = "/" + _gv_path(info.group, version)
    prefix = f"{base}/namespaces/{{namespace}}/{info.plural}" if info.namespaced else f"{base}/{info.plural}"
    item = {
        "get": _operation(info, version, "get", ref),
        "put": _operation(info, version, "put", ref),
        "patch": _operation(info, version, "patch", ref, _BODY_TYPES),
        "delete": _operation(info, version, "delete", ref),
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
    }
    paths: dict[str, Any] = {
        prefix: {
            "get": _operation(info, version, "list", ref),
            "post": _operation(info, version, "post", ref),
        },
        f"{prefix}/{{name}}": item,
    }
    for sub in sorted(info.subresources - {"scale", "eviction"}):
        paths[f"{prefix}/{{name}}/{sub}"] = {k: item[k] for k in ("get", "put", "patch", "parameters")}
    if info.namespaced:
        paths[f"{base}/{info.plural}"] = {"get": _operation(info, version, "list", ref)}
    return paths


def _component(info: ResourceInfo, version: str) -> dict[str, Any]:
    schema = dict(info.schema(version) or {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    schema["x-kubernetes-group-version-kind"] = [{"group": info.group, "version": version, "kind": info.kind}]
    return schema


def group_version_document(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    infos = [i for i in sorted_infos(registry.infos()) if i.group == group and version in i.versions]
    if not infos:
        return None
    paths: dict[str, Any] = {}
    for info in infos:
        paths.update(_resource_paths(info, version))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": {_schema_name(i, version): _component(i, version) for i in infos}},
    }


def root_document(registry: Registry) -> dict[str, Any]:
    versions = {("", "v1")} | {(g, v) for g, vs in registry.group_versions().items() for v in vs}
    paths = {}
    for group, version in sorted(versions):
        document = group_version_document(registry, group, version)
        digest = hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest().upper()[:64]
        path = _gv_path(group, version)
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}
