"""What the apiserver does to a custom object with its CRD's structural schema.

Order as in apiextensions-apiserver: prune unknown fields (reporting them, for
``fieldValidation=Strict|Warn``), apply ``default`` values, then validate (with
``costwarden.sim.crdvalidation``: OpenAPI through jsonschema, ``x-kubernetes-validations`` through CEL).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from costwarden.sim.crdvalidation import validate_custom_object
from costwarden.sim.errors import Problem

_ROOT_KEYS = frozenset({"apiVersion", "kind", "metadata"})
Validator = Callable[[Mapping[str, Any], Mapping[str, Any]], Sequence[Problem]]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def prune(schema: Mapping[str, Any], obj: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Drop fields the schema does not declare; return the pruned copy and the dropped paths."""
    unknown: list[str] = []
    root = {k: copy.deepcopy(v) for k, v in obj.items() if k in _ROOT_KEYS}
    rest = {k: v for k, v in obj.items() if k not in _ROOT_KEYS}
    pruned = _prune_value(schema, rest, "", unknown)
    root.update(pruned if isinstance(pruned, dict) else {})
    return root, unknown


def _prune_value(schema: Mapping[str, Any], value: Any, path: str, unknown: list[str]) -> Any:
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            return [_prune_value(items, item, f"{path}[{i}]", unknown) for i, item in enumerate(value)]
        return copy.deepcopy(value)
    if not isinstance(value, Mapping):
        return value
    properties = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    embedded = bool(schema.get("x-kubernetes-embedded-resource"))
    if not properties and additional is None and (preserve or schema.get("type") != "object"):
        return copy.deepcopy(value)
    result: dict[str, Any] = {}
    for key, item in value.items():
        sub_path = _join(path, key)
        if key in properties:
            result[key] = _prune_value(properties[key], item, sub_path, unknown)
        elif isinstance(additional, Mapping):
            result[key] = _prune_value(additional, item, sub_path, unknown)
        elif preserve or additional is True or (embedded and key in _ROOT_KEYS):
            result[key] = copy.deepcopy(item)
        else:
            unknown.append(sub_path)
    return result


def apply_defaults(schema: Mapping[str, Any], obj: Any) -> Any:
    """Fill in ``default`` values of absent (or null, when not nullable) properties, recursively."""
    if isinstance(obj, list):
        items = schema.get("items")
        return [apply_defaults(items, item) for item in obj] if isinstance(items, Mapping) else obj
    if not isinstance(obj, Mapping):
        return obj
    result = dict(obj)
    properties: Mapping[str, Any] = schema.get("properties") or {}
    for key, sub in properties.items():
        if result.get(key, 0) is None and not sub.get("nullable"):
            del result[key]
        if key not in result and "default" in sub:
            result[key] = copy.deepcopy(sub["default"])
        if key in result:
            result[key] = apply_defaults(sub, result[key])
    additional = schema.get("additionalProperties")
    if isinstance(additional, Mapping):
        for key in set(result) - set(properties):
            result[key] = apply_defaults(additional, result[key])
    return result


def load_validator() -> Validator:
    """The apiserver's validation of a custom object against its CRD's schema."""
    return validate_custom_object


def process(
    schema: Mapping[str, Any], obj: Mapping[str, Any], validator: Validator | None
) -> tuple[dict[str, Any], list[str], list[Problem]]:
    """Prune, default, validate: the stored form, the unknown field paths, and the problems found."""
    pruned, unknown = prune(schema, obj)
    body = {k: v for k, v in pruned.items() if k not in _ROOT_KEYS}
    defaulted = apply_defaults(schema, body)
    result = {**{k: pruned[k] for k in ("apiVersion", "kind", "metadata") if k in pruned}, **defaulted}
    problems = list(validator(schema, result)) if validator is not None else []
    return result, unknown, problems
