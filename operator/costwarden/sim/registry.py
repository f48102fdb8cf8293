"""The table of served resources, and what a CustomResourceDefinition adds to it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from costwarden.sim.resources import BUILTINS, ResourceInfo, info_from_crd, matches_name, version_priority

CRD_GROUP = "apiextensions.k8s.io"
CRD_PLURAL = "customresourcedefinitions"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class Cause:
    field: str
    reason: str
    message: str


class Registry:
    """Resources by (group, plural); built-ins first, CRD resources added and removed at run time."""

    def __init__(self, builtins: Iterable[ResourceInfo] = BUILTINS) -> None:
        self._infos: dict[tuple[str, str], ResourceInfo] = {(i.group, i.plural): i for i in builtins}
        self._builtin_keys = frozenset(self._infos)

    def get(self, group: str, plural: str) -> ResourceInfo | None:
        return self._infos.get((group, plural))

    def lookup(self, group: str, version: str, plural: str) -> ResourceInfo | None:
        info = self._infos.get((group, plural))
        return info if info is not None and version in info.versions else None

    def resolve(self, api_version: str, name: str) -> ResourceInfo | None:
        """Find a resource by apiVersion and any of its names (plural, kind, singular, short name)."""
        group, _, version = api_version.rpartition("/")
        exact = self.lookup(group, version, name)
        if exact is not None:
            return exact
        for info in self._infos.values():
            if (
                info.group == group
                and version in info.versions
                and (info.kind == name or matches_name(info, name))
            ):
                return info
        return None

    def infos(self) -> list[ResourceInfo]:
        return list(self._infos.values())

    def group_versions(self) -> dict[str, list[str]]:
        """Every non-core group with its served versions, preferred first."""
        versions: dict[str, set[str]] = {}
        for info in self._infos.values():
            if info.group:
                versions.setdefault(info.group, set()).update(info.versions)
        return {g: sorted(vs, key=version_priority) for g, vs in sorted(versions.items())}

    def is_builtin(self, group: str, plural: str) -> bool:
        return (group, plural) in self._builtin_keys

    def register_crd(self, crd: Mapping[str, Any]) -> ResourceInfo:
        info = info_from_crd(crd)
        self._infos[(info.group, info.plural)] = info
        return info

    def unregister_crd(self, crd: Mapping[str, Any]) -> ResourceInfo | None:
        spec = crd.get("spec", {})
        key = (str(spec.get("group", "")), str(spec.get("names", {}).get("plural", "")))
        if key in self._builtin_keys:
            return None
        return self._infos.pop(key, None)


def validate_crd(crd: Mapping[str, Any], registry: Registry) -> list[Cause]:
    """The checks the apiserver makes that matter for a stand-in: names, scope, versions."""
    causes: list[Cause] = []
    spec = crd.get("spec") or {}
    group = spec.get("group")
    names = spec.get("names") or {}
    plural, kind = names.get("plural"), names.get("kind")
    if not group:
        causes.append(Cause("spec.group", "FieldValueRequired", "Required value"))
    elif "." not in str(group):
        causes.append(
            Cause(
                "spec.group",
                "FieldValueInvalid",
                f'Invalid value: "{group}": should be a domain with at least one dot',
            )
        )
    if not plural:
        causes.append(Cause("spec.names.plural", "FieldValueRequired", "Required value"))
    elif not _DNS_LABEL.match(str(plural)):
        causes.append(
            Cause(
                "spec.names.plural",
                "FieldValueInvalid",
                f'Invalid value: "{plural}": a lowercase RFC 1123 label',
            )
        )
    if not kind:
        causes.append(Cause("spec.names.kind", "FieldValueRequired", "Required value"))
    name = crd.get("metadata", {}).get("name")
    if group and plural and name != f"{plural}.{group}":
        causes.append(
            Cause(
                "metadata.name",
                "FieldValueInvalid",
                f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
            )
        )
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(
            Cause(
                "spec.scope",
                "FieldValueNotSupported",
                f'Unsupported value: "{spec.get("scope")}": supported values: "Cluster", "Namespaced"',
            )
        )
    causes.extend(_version_causes(spec.get("versions") or []))
    if group and plural and registry.is_builtin(str(group), str(plural)):
        causes.append(
            Cause(
                "spec.names.plural", "FieldValueInvalid", f'Invalid value: "{plural}": is a built-in resource'
            )
        )
    return causes


def _version_causes(versions: list[Mapping[str, Any]]) -> list[Cause]:
    causes: list[Cause] = []
    if not versions:
        return [
            Cause(
                "spec.versions",
                "FieldValueRequired",
                "Required value: must have exactly one version marked as storage version",
            )
        ]
    storage = [v for v in versions if v.get("storage")]
    if len(storage) != 1:
        causes.append(
            Cause(
                "spec.versions",
                "FieldValueInvalid",
                "Invalid value: must have exactly one version marked as storage version",
            )
        )
    for index, version in enumerate(versions):
        if not isinstance(version.get("name"), str) or not _DNS_LABEL.match(version["name"]):
            causes.append(
                Cause(f"spec.versions[{index}].name", "FieldValueInvalid", "Invalid value: a DNS-1035 label")
            )
        if not isinstance((version.get("schema") or {}).get("openAPIV3Schema"), Mapping):
            causes.append(
                Cause(
                    f"spec.versions[{index}].schema.openAPIV3Schema",
                    "FieldValueRequired",
                    "Required value: schemas are required",
                )
            )
    return causes


def crd_status(crd: Mapping[str, Any], timestamp: str, previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """The status the apiextensions controllers would write: names accepted, established."""
    names = dict(crd["spec"]["names"])
    names.setdefault("singular", str(names["kind"]).lower())
    names.setdefault("listKind", f"{names['kind']}List")
    stored = [v["name"] for v in crd["spec"]["versions"] if v.get("storage")]
    old_stored = list((previous or {}).get("storedVersions") or [])
    conditions = [
        _condition("NamesAccepted", "NoConflicts", "no conflicts found", timestamp, previous),
        _condition(
            "Established", "InitialNamesAccepted", "the initial names have been accepted", timestamp, previous
        ),
    ]
    return {
        "acceptedNames": names,
        "conditions": conditions,
        "storedVersions": old_stored + [v for v in stored if v not in old_stored],
    }


def _condition(
    kind: str, reason: str, message: str, timestamp: str, previous: Mapping[str, Any] | None
) -> dict[str, Any]:
    for old in (previous or {}).get("conditions") or []:
        if old.get("type") == kind and old.get("status") == "True":
            return dict(old)
    return {
        "type": kind,
        "status": "True",
        "lastTransitionTime": timestamp,
        "reason": reason,
        "message": message,
    }
