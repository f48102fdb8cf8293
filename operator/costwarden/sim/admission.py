"""Per-type defaulting and validation of built-in objects, as far as clients can tell the difference."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from costwarden.sim.registry import Cause
from costwarden.sim.resources import ResourceInfo

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_SUBDOMAIN_HINT = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation "
    "is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_HINT = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_PATH_SEGMENT_GROUPS = frozenset({"rbac.authorization.k8s.io"})
_POD_MUTABLE = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds", "schedulingGates")


def _invalid(field: str, value: Any, detail: str) -> Cause:
    return Cause(field, "FieldValueInvalid", f'Invalid value: "{value}": {detail}')


def name_causes(info: ResourceInfo, name: str) -> list[Cause]:
    if info.plural == "events" or info.group in _PATH_SEGMENT_GROUPS:
        bad = name in (".", "..") or "/" in name or "%" in name
        return [_invalid("metadata.name", name, "may not contain '/' or '%'")] if bad else []
    if info.plural == "namespaces" and not info.group:
        ok = len(name) <= 63 and _LABEL.match(name) is not None
        return [] if ok else [_invalid("metadata.name", name, _LABEL_HINT)]
    ok = len(name) <= 253 and _SUBDOMAIN.match(name) is not None
    return [] if ok else [_invalid("metadata.name", name, _SUBDOMAIN_HINT)]


def _key_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and _QUALIFIED.match(name) is not None


def metadata_causes(meta: Mapping[str, Any]) -> list[Cause]:
    causes = []
    for key, value in (meta.get("labels") or {}).items():
        if not _key_ok(str(key)):
            causes.append(
                _invalid("metadata.labels", key, "name part must consist of alphanumeric characters")
            )
        elif not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(
                _invalid(
                    "metadata.labels",
                    value,
                    "a valid label must be an empty string or consist of alphanumeric characters, "
                    "'-', '_' or '.', and must start and end with an alphanumeric character",
                )
            )
    for key, value in (meta.get("annotations") or {}).items():
        if not _key_ok(str(key)):
            causes.append(
                _invalid("metadata.annotations", key, "name part must consist of alphanumeric characters")
            )
        elif not isinstance(value, str):
            causes.append(_invalid(f"metadata.annotations[{key}]", value, "must be a string"))
    return causes


def _container_causes(spec: Mapping[str, Any]) -> list[Cause]:
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        return [Cause("spec.containers", "FieldValueRequired", "Required value")]
    causes = []
    for index, container in enumerate(containers):
        for required in ("name", "image"):
            if not isinstance(container, Mapping) or not container.get(required):
                causes.append(
                    Cause(f"spec.containers[{index}].{required}", "FieldValueRequired", "Required value")
                )
    return causes


def _without_mutable_pod_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    result = {k: v for k, v in spec.items() if k not in _POD_MUTABLE}
    for list_name in ("containers", "initContainers"):
        if isinstance(result.get(list_name), list):
            result[list_name] = [
                {k: v for k, v in c.items() if k != "image"} if isinstance(c, Mapping) else c
                for c in result[list_name]
            ]
    return result


def object_causes(info: ResourceInfo, obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    """Built-in validation beyond metadata: pods need containers, pod specs are mostly immutable."""
    if info.group or info.plural != "pods":
        return []
    spec = obj.get("spec") or {}
    causes = _container_causes(spec)
    if old is not None and _without_mutable_pod_fields(spec) != _without_mutable_pod_fields(
        old.get("spec") or {}
    ):
        causes.append(
            Cause(
                "spec",
                "FieldValueForbidden",
                "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, "
                "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` "
                "(only additions to existing tolerations), `spec.terminationGracePeriodSeconds` "
                "(allow it to be set to 1 if it was previously negative)",
            )
        )
    return causes


def _qos_class(spec: Mapping[str, Any]) -> str:
    resources = [c.get("resources") or {} for c in spec.get("containers") or [] if isinstance(c, Mapping)]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        r.get("limits")
        and all(r["limits"].get(k) == v for k, v in (r.get("requests") or {}).items())
        and {"cpu", "memory"} <= set(r["limits"])
        for r in resources
    )
    return "Guaranteed" if guaranteed else "Burstable"


def create_defaults(info: ResourceInfo, obj: dict[str, Any]) -> None:
    """Fill what the apiserver fills on create (in place): pod phase, namespace phase, replicas."""
    if info.group == "" and info.plural == "pods":
        spec = obj.setdefault("spec", {})
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("schedulerName", "default-scheduler")
        obj["status"] = {"phase": "Pending", "qosClass": _qos_class(spec)}
    elif info.group == "" and info.plural == "namespaces":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Active"}
    elif info.group == "" and info.plural == "secrets":
        obj.setdefault("type", "Opaque")
    elif info.group == "apps" and info.scale is not None:
        obj.setdefault("spec", {}).setdefault("replicas", 1)
        obj["status"] = {}
    elif info.reset_status_on_create and info.crd is None and not info.group.endswith("k8s.io"):
        obj["status"] = {}


_STATUS_ZERO_VALUES = (("name", ""), ("ready", False), ("restartCount", 0), ("image", ""), ("imageID", ""))


def _container_defaults(container: dict[str, Any]) -> None:
    image = str(container.get("image", ""))
    tagged = ":" in image.rsplit("/", 1)[-1] or "@" in image
    pull = "IfNotPresent" if tagged and not image.endswith(":latest") else "Always"
    container.setdefault("imagePullPolicy", pull)
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("resources", {})
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def normalize(info: ResourceInfo, obj: dict[str, Any]) -> None:
    """Fields Go always serializes (no omitempty) or defaults on every write, filled in place.

    Typed clients (the kubernetes Python client among them) insist on them, e.g. a pod's
    ``containerStatuses[*].image``/``imageID``/``restartCount``.
    """
    if info.group or info.plural != "pods":
        return
    spec, status = obj.get("spec"), obj.get("status")
    if isinstance(spec, dict):
        for key in ("containers", "initContainers"):
            for container in spec.get(key) or []:
                if isinstance(container, dict):
                    _container_defaults(container)
    if isinstance(status, dict):
        for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
            for entry in status.get(key) or []:
                if isinstance(entry, dict):
                    for field, zero in _STATUS_ZERO_VALUES:
                        entry.setdefault(field, zero)
