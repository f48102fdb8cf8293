"""URL paths and query parameters of the Kubernetes API, parsed into what a request addresses."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from costwarden.sim import errors
from costwarden.sim.addressing import WriteOptions

_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
T = TypeVar("T")


@dataclass(frozen=True)
class ApiPath:
    group: str
    version: str
    plural: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


def parse_api_path(path: str) -> ApiPath | None:
    """``/api/v1/namespaces/ns/pods/x/status`` and friends; None if not a resource path."""
    parts = [p for p in path.strip("/").split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace: str | None = None
    if rest and rest[0] == "namespaces":
        if len(rest) <= 2 or (len(rest) == 3 and rest[2] in _NAMESPACE_SUBRESOURCES):
            return ApiPath(group, version, "namespaces", None, *[*rest[1:], None, None][:2])
        namespace, rest = rest[1], rest[2:]
    if not rest:
        return ApiPath(group, version)
    if len(rest) > 3:
        raise errors.no_such_resource()
    plural, name, subresource = [*rest, None, None][:3]
    return ApiPath(group, version, plural, namespace, name, subresource)


def flag(query: Mapping[str, str], name: str) -> bool:
    return query.get(name, "").lower() in ("true", "1")


def write_options(query: Mapping[str, str], body: Mapping[str, Any] | None = None) -> WriteOptions:
    dry_run_values: Sequence[str] = (body or {}).get("dryRun") or (
        [query["dryRun"]] if "dryRun" in query else []
    )
    for value in dry_run_values:
        if value != "All":
            raise errors.bad_request(f'dryRun: Unsupported value: "{value}": supported values: "All"')
    validation = query.get("fieldValidation", "Warn") or "Warn"
    if validation not in ("Strict", "Warn", "Ignore"):
        raise errors.bad_request(
            f"fieldValidation: Unsupported value: {validation!r}: supported values: Ignore, Strict, Warn"
        )
    return WriteOptions(dry_run=bool(dry_run_values), field_validation=validation)


def parse_timeout(query: Mapping[str, str]) -> float | None:
    raw = query.get("timeoutSeconds")
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError as exc:
        raise errors.bad_request(f"invalid timeoutSeconds: {raw!r}") from exc


def paginate(items: list[T], limit: str | None, token: str | None) -> tuple[list[T], str, int]:
    """Offset-based ``limit``/``continue``: the page, the next token ('' at the end), items left."""
    start = 0
    if token:
        try:
            start = int(json.loads(base64.urlsafe_b64decode(token.encode()))["start"])
        except (ValueError, KeyError, TypeError) as exc:
            raise errors.bad_request("continue key is not valid") from exc
    try:
        size = int(limit) if limit else 0
    except ValueError as exc:
        raise errors.bad_request(f"invalid limit: {limit!r}") from exc
    if size <= 0:
        return items[start:], "", 0
    end = start + size
    if end >= len(items):
        return items[start:], "", 0
    next_token = base64.urlsafe_b64encode(json.dumps({"start": end}).encode()).decode()
    return items[start:end], next_token, len(items) - end


def wants(accept: str, as_kind: str) -> bool:
    """Whether an Accept header asks for a ``meta.k8s.io`` transformation such as ``as=Table``."""
    return any(f"as={as_kind}" in part.replace(" ", "") for part in accept.split(","))


def accepts_json(accept: str) -> bool:
    if not accept:
        return True
    return any(t in accept for t in ("json", "*/*", "yaml"))
