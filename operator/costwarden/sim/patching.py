"""The four patch flavours the apiserver accepts, chosen by Content-Type.

Strategic merge is approximated: lists known to merge by a key in the built-in types (containers,
env, ports, volumes, conditions, ...) merge element-wise, ``metadata.finalizers`` merges as a set,
and the ``$patch``, ``$retainKeys``, ``$setElementOrder`` and ``$deleteFromPrimitiveList``
directives that kubectl emits are honoured or dropped. Every other list is replaced.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import jsonpatch
import jsonpointer

from costwarden.sim.errors import ApiError, bad_request, unprocessable

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE, STRATEGIC, APPLY)
CUSTOM_PATCH_TYPES = (JSON_PATCH, MERGE, APPLY)

# Merge keys of the built-in types' lists (x-kubernetes-patch-merge-key); the first present wins.
_MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "volumes": ("name",),
    "env": ("name",),
    "imagePullSecrets": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "ports": ("containerPort", "port"),
    "conditions": ("type",),
    "ownerReferences": ("uid",),
    "hostAliases": ("ip",),
    "topologySpreadConstraints": ("topologyKey",),
    "resourceClaims": ("name",),
}
_SET_LISTS = frozenset({"finalizers"})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: Mapping[str, Any], ops: Any) -> dict[str, Any]:
    """RFC 6902; malformed patches are 400, failed ``test`` ops and bad paths are 422."""
    if not isinstance(ops, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    try:
        patch = jsonpatch.JsonPatch(ops)
    except (jsonpatch.InvalidJsonPatch, TypeError) as exc:
        raise bad_request(str(exc)) from exc
    try:
        result = patch.apply(copy.deepcopy(dict(target)))
    except jsonpatch.JsonPatchTestFailed as exc:
        raise unprocessable(f"the server rejected our request due to an error in our request: {exc}") from exc
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, KeyError, IndexError) as exc:
        raise unprocessable(f"the server rejected our request due to an error in our request: {exc}") from exc
    if not isinstance(result, dict):
        raise unprocessable("the server rejected our request: the patched document is not an object")
    return result


def strategic_merge(target: Any, patch: Any) -> Any:
    """Strategic merge patch, approximated as described in the module docstring."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            result[name] = [v for v in result.get(name) or [] if v not in (value or [])]
        elif key.startswith("$"):
            continue
        elif value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        elif isinstance(value, Mapping):
            merged = strategic_merge(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = copy.deepcopy(value)
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_key(name: str, items: list[Any]) -> str | None:
    for candidate in _MERGE_KEYS.get(name, ()):
        if all(isinstance(item, Mapping) and candidate in item for item in items):
            return candidate
    return None


def _merge_list(name: str, current: Any, patch: list[Any]) -> list[Any]:
    existing = list(current) if isinstance(current, list) else []
    if name in _SET_LISTS and all(not isinstance(v, Mapping) for v in patch):
        return existing + [v for v in patch if v not in existing]
    if any(isinstance(p, Mapping) and p.get("$patch") == "replace" for p in patch):
        return [copy.deepcopy(p) for p in patch if not (isinstance(p, Mapping) and "$patch" in p)]
    key = _merge_key(name, [p for p in patch if not (isinstance(p, Mapping) and p.get("$patch") == "delete")])
    if key is None or not all(isinstance(item, Mapping) for item in existing):
        return [copy.deepcopy(p) for p in patch]
    result = list(existing)
    for item in patch:
        index = next((i for i, old in enumerate(result) if old.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(strategic_merge({}, item))
        else:
            result[index] = strategic_merge(result[index], item)
    return result


def apply_patch(content_type: str, target: Mapping[str, Any], patch: Any) -> dict[str, Any]:
    """Dispatch on the (already negotiated) patch Content-Type."""
    if content_type == JSON_PATCH:
        return json_patch(target, patch)
    if not isinstance(patch, Mapping):
        raise bad_request("the patch body must be a JSON object")
    if content_type == MERGE:
        return dict(merge_patch(target, patch))
    if content_type in (STRATEGIC, APPLY):
        return dict(strategic_merge(target, patch))
    raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {content_type}")
