"""``meta.k8s.io/v1 Table`` responses: what ``kubectl get`` prints.

Like the apiserver, cells of type ``date`` (and the built-in AGE columns) are rendered server-side
as a human duration (``5m10s``); kubectl prints cells as it receives them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from costwarden.sim.resources import ResourceInfo

Row = Callable[[Mapping[str, Any], datetime], list[Any]]
_PATH_TOKEN = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\['([^']+)'\]|\[\"([^\"]+)\"\]")


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery duration.HumanDuration."""
    secs = int(seconds)
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 120:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        return f"{minutes}m{secs % 60}s" if secs % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = secs // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years, days = hours // 24 // 365, (hours // 24) % 365
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{hours // 24 // 365}y"


def age(timestamp: Any, now: datetime) -> str:
    if not isinstance(timestamp, str) or not timestamp:
        return "<unknown>"
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    return human_duration((now - then).total_seconds())


def jsonpath(obj: Any, path: str) -> tuple[bool, Any]:
    """A simple JSONPath (``.status.spend``, ``.spec.items[0].name``); returns (found, value)."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    value = obj
    for match in _PATH_TOKEN.finditer(path):
        key, index, quoted1, quoted2 = match.groups()
        if index is not None:
            if not isinstance(value, list) or int(index) >= len(value):
                return False, None
            value = value[int(index)]
        else:
            name = key or quoted1 or quoted2
            if not isinstance(value, Mapping) or name not in value:
                return False, None
            value = value[name]
    return True, value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value).removesuffix(".0") if value.is_integer() and abs(value) < 1e21 else repr(value)
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _cell(kind: str, value: Any, now: datetime) -> Any:
    if value is None:
        return None
    if kind == "string":
        return _text(value)
    if kind == "date":
        return age(value, now)
    if kind == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind == "boolean" and isinstance(value, bool):
        return value
    return None


def _column(
    name: str, kind: str = "string", priority: int = 0, fmt: str = "", description: str = ""
) -> dict[str, Any]:
    return {"name": name, "type": kind, "format": fmt, "description": description, "priority": priority}


_NAME = _column("Name", fmt="name", description="Name must be unique within a namespace.")
_AGE = _column(
    "Age",
    description="CreationTimestamp is a timestamp representing the server time when this object was created.",
)


def _meta(obj: Mapping[str, Any], key: str) -> Any:
    return obj.get("metadata", {}).get(key)


def _pod_row(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    phase = (
        "Terminating"
        if _meta(obj, "deletionTimestamp")
        else status.get("reason") or status.get("phase") or ""
    )
    restarts = sum(int(s.get("restartCount") or 0) for s in statuses)
    return [
        f"{ready}/{len(spec.get('containers') or [])}",
        phase,
        restarts,
        age(_meta(obj, "creationTimestamp"), now),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
    ]


def _node_row(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    conditions = {c.get("type"): c.get("status") for c in (obj.get("status") or {}).get("conditions") or []}
    state = {"True": "Ready", "False": "NotReady"}.get(conditions.get("Ready") or "", "Unknown")
    if (obj.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k[len(prefix) :] for k in (_meta(obj, "labels") or {}) if k.startswith(prefix))
    version = ((obj.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", "")
    return [state, ",".join(roles) or "<none>", age(_meta(obj, "creationTimestamp"), now), version]


def _deployment_row(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        int(status.get("updatedReplicas", 0)),
        int(status.get("availableReplicas", 0)),
        age(_meta(obj, "creationTimestamp"), now),
    ]


def _event_row(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    involved = obj.get("involvedObject") or {}
    seen = obj.get("lastTimestamp") or obj.get("eventTime") or _meta(obj, "creationTimestamp")
    subject = f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"
    return [age(seen, now), obj.get("type", ""), obj.get("reason", ""), subject, obj.get("message", "")]


_BUILTIN: dict[tuple[str, str], tuple[list[dict[str, Any]], Row]] = {
    ("", "pods"): (
        [
            _column("Ready"),
            _column("Status"),
            _column("Restarts", "integer"),
            _AGE,
            _column("IP", priority=1),
            _column("Node", priority=1),
        ],
        _pod_row,
    ),
    ("", "nodes"): ([_column("Status"), _column("Roles"), _AGE, _column("Version")], _node_row),
    ("", "namespaces"): (
        [_column("Status"), _AGE],
        lambda o, now: [(o.get("status") or {}).get("phase", ""), age(_meta(o, "creationTimestamp"), now)],
    ),
    ("", "events"): (
        [_column("Last Seen"), _column("Type"), _column("Reason"), _column("Object"), _column("Message")],
        _event_row,
    ),
    ("", "configmaps"): (
        [_column("Data", "integer"), _AGE],
        lambda o, now: [
            len(o.get("data") or {}) + len(o.get("binaryData") or {}),
            age(_meta(o, "creationTimestamp"), now),
        ],
    ),
    ("", "secrets"): (
        [_column("Type"), _column("Data", "integer"), _AGE],
        lambda o, now: [
            o.get("type", "Opaque"),
            len(o.get("data") or {}),
            age(_meta(o, "creationTimestamp"), now),
        ],
    ),
    ("apiextensions.k8s.io", "customresourcedefinitions"): (
        [_column("Created At", "date")],
        lambda o, now: [_meta(o, "creationTimestamp")],
    ),
    ("apps", "deployments"): (
        [_column("Ready"), _column("Up-to-date", "integer"), _column("Available", "integer"), _AGE],
        _deployment_row,
    ),
}


def _custom_columns(info: ResourceInfo, version: str) -> tuple[list[dict[str, Any]], Row]:
    declared = list(info.crd_version(version).get("additionalPrinterColumns") or [])
    if not declared:
        declared = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
    columns = [
        _column(
            c["name"],
            c.get("type", "string"),
            int(c.get("priority", 0)),
            c.get("format", ""),
            c.get("description", ""),
        )
        for c in declared
    ]

    def row(obj: Mapping[str, Any], now: datetime) -> list[Any]:
        cells = []
        for column in declared:
            found, value = jsonpath(obj, str(column.get("jsonPath", "")))
            cells.append(_cell(column.get("type", "string"), value, now) if found else None)
        return cells

    return columns, row


def columns_for(info: ResourceInfo, version: str) -> tuple[list[dict[str, Any]], Row]:
    if info.crd is not None:
        return _custom_columns(info, version)
    return _BUILTIN.get(
        (info.group, info.plural), ([_AGE], lambda o, now: [age(_meta(o, "creationTimestamp"), now)])
    )


def _row_object(obj: Mapping[str, Any], include: str) -> Any:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def table(
    info: ResourceInfo,
    version: str,
    objects: Sequence[Mapping[str, Any]],
    now: datetime,
    *,
    include: str = "Metadata",
    resource_version: str = "",
    with_columns: bool = True,
) -> dict[str, Any]:
    columns, row = columns_for(info, version)
    rows = [{"cells": [_meta(o, "name"), *row(o, now)], "object": _row_object(o, include)} for o in objects]
    result: dict[str, Any] = {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "rows": rows,
    }
    if with_columns:
        result["columnDefinitions"] = [_NAME, *columns]
    return result
