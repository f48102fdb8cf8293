"""What the stand-in serves: built-in resource descriptions and resources made from CRDs."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SUB_VERBS = ("get", "patch", "update")
META_FIELDS = frozenset({"metadata.name", "metadata.namespace"})


@dataclass(frozen=True)
class ScalePaths:
    """Where a ``/scale`` subresource reads and writes (dotted paths without the leading dot)."""

    spec_replicas: str = "spec.replicas"
    status_replicas: str = "status.replicas"
    label_selector: str | None = "spec.selector"


@dataclass(frozen=True)
class ResourceInfo:
    group: str
    versions: tuple[str, ...]  # served versions, the preferred (and storage) one first
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: frozenset[str] = frozenset()
    reset_status_on_create: bool = False
    field_labels: frozenset[str] = frozenset()
    scale: ScalePaths | None = None
    crd: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def qualified(self) -> str:
        """``pods`` or ``costbudgets.costwarden.dev``: how error messages name the resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        names = (self.crd or {}).get("spec", {}).get("names", {})
        return str(names.get("listKind") or f"{self.kind}List")

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    def api_version(self, version: str | None = None) -> str:
        version = version or self.versions[0]
        return f"{self.group}/{version}" if self.group else version

    def allowed_field_labels(self, version: str) -> frozenset[str]:
        return META_FIELDS | self.field_labels | frozenset(_selectable(self.crd, version))

    def crd_version(self, version: str) -> Mapping[str, Any]:
        for entry in (self.crd or {}).get("spec", {}).get("versions", []):
            if entry.get("name") == version:
                return dict(entry)
        return {}

    def schema(self, version: str) -> Mapping[str, Any] | None:
        schema = self.crd_version(version).get("schema", {}).get("openAPIV3Schema")
        return schema if isinstance(schema, Mapping) else None


def _selectable(crd: Mapping[str, Any] | None, version: str) -> list[str]:
    for entry in (crd or {}).get("spec", {}).get("versions", []):
        if entry.get("name") == version:
            return [str(f.get("jsonPath", "")).lstrip(".") for f in entry.get("selectableFields", [])]
    return []


def _core(plural: str, kind: str, namespaced: bool = True, **kwargs: Any) -> ResourceInfo:
    return ResourceInfo(group="", versions=("v1",), plural=plural, kind=kind, namespaced=namespaced, **kwargs)


def _grouped(group: str, plural: str, kind: str, namespaced: bool = True, **kwargs: Any) -> ResourceInfo:
    return ResourceInfo(
        group=group, versions=("v1",), plural=plural, kind=kind, namespaced=namespaced, **kwargs
    )


_STATUS = frozenset({"status"})
_STATUS_SCALE = frozenset({"status", "scale"})
_POD_FIELDS = frozenset(
    {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    }
)
_EVENT_FIELDS = frozenset(
    {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    }
)
_NO_COLLECTION = tuple(v for v in ALL_VERBS if v != "deletecollection")

BUILTINS: tuple[ResourceInfo, ...] = (
    _core(
        "namespaces",
        "Namespace",
        False,
        short_names=("ns",),
        verbs=_NO_COLLECTION,
        subresources=_STATUS,
        field_labels=frozenset({"status.phase"}),
    ),
    _core(
        "pods",
        "Pod",
        short_names=("po",),
        categories=("all",),
        subresources=frozenset({"status", "eviction"}),
        reset_status_on_create=True,
        field_labels=_POD_FIELDS,
    ),
    _core(
        "nodes",
        "Node",
        False,
        short_names=("no",),
        subresources=_STATUS,
        field_labels=frozenset({"spec.unschedulable"}),
    ),
    _core("events", "Event", short_names=("ev",), field_labels=_EVENT_FIELDS),
    _core("secrets", "Secret", field_labels=frozenset({"type"})),
    _core("configmaps", "ConfigMap", short_names=("cm",)),
    _core(
        "services",
        "Service",
        short_names=("svc",),
        categories=("all",),
        subresources=_STATUS,
        reset_status_on_create=True,
    ),
    _core("serviceaccounts", "ServiceAccount", short_names=("sa",)),
    _core("endpoints", "Endpoints", short_names=("ep",)),
    _core(
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        short_names=("pvc",),
        subresources=_STATUS,
        reset_status_on_create=True,
    ),
    *(
        _grouped(
            "apps",
            plural,
            kind,
            short_names=(short,),
            categories=("all",),
            subresources=_STATUS_SCALE if scalable else _STATUS,
            reset_status_on_create=True,
            scale=ScalePaths() if scalable else None,
        )
        for plural, kind, short, scalable in (
            ("deployments", "Deployment", "deploy", True),
            ("replicasets", "ReplicaSet", "rs", True),
            ("statefulsets", "StatefulSet", "sts", True),
            ("daemonsets", "DaemonSet", "ds", False),
        )
    ),
    _grouped("apps", "controllerrevisions", "ControllerRevision"),
    _grouped(
        "batch",
        "jobs",
        "Job",
        categories=("all",),
        subresources=_STATUS,
        reset_status_on_create=True,
        field_labels=frozenset({"status.successful"}),
    ),
    _grouped(
        "batch",
        "cronjobs",
        "CronJob",
        short_names=("cj",),
        categories=("all",),
        subresources=_STATUS,
        reset_status_on_create=True,
    ),
    _grouped(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        short_names=("crd", "crds"),
        categories=("api-extensions",),
        subresources=_STATUS,
        reset_status_on_create=True,
    ),
    _grouped("coordination.k8s.io", "leases", "Lease"),
    _grouped(
        "events.k8s.io", "events", "Event", short_names=("ev",), field_labels=frozenset({"reason", "type"})
    ),
    *(
        _grouped("admissionregistration.k8s.io", plural, kind, False, categories=("api-extensions",))
        for plural, kind in (
            ("validatingwebhookconfigurations", "ValidatingWebhookConfiguration"),
            ("mutatingwebhookconfigurations", "MutatingWebhookConfiguration"),
        )
    ),
    *(
        _grouped("rbac.authorization.k8s.io", plural, kind, namespaced)
        for plural, kind, namespaced in (
            ("roles", "Role", True),
            ("rolebindings", "RoleBinding", True),
            ("clusterroles", "ClusterRole", False),
            ("clusterrolebindings", "ClusterRoleBinding", False),
        )
    ),
)

_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Kubernetes' version ordering as a sort key: v2 > v1 > v1beta2 > v1beta1 > v1alpha1 > others."""
    match = _VERSION_RE.match(version)
    if match is None:
        return (3, 0, 0, version)
    major, level, minor = match.group(1), match.group(2), match.group(3)
    rank = {None: 0, "beta": 1, "alpha": 2}[level]
    return (rank, -int(major), -int(minor or 0), "")


def info_from_crd(crd: Mapping[str, Any]) -> ResourceInfo:
    """The resource a (valid) CRD body describes."""
    spec = crd["spec"]
    names = spec["names"]
    served = [v for v in spec.get("versions", []) if v.get("served", True)]
    ordered = sorted((str(v["name"]) for v in served), key=version_priority)
    subresources: set[str] = set()
    scale: ScalePaths | None = None
    for entry in served:
        subs = entry.get("subresources") or {}
        if "status" in subs:
            subresources.add("status")
        if isinstance(subs.get("scale"), Mapping):
            subresources.add("scale")
            scale = _scale_paths(subs["scale"])
    return ResourceInfo(
        group=str(spec["group"]),
        versions=tuple(ordered),
        plural=str(names["plural"]),
        kind=str(names["kind"]),
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        singular=str(names.get("singular") or str(names["kind"]).lower()),
        short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()),
        subresources=frozenset(subresources),
        reset_status_on_create="status" in subresources,
        scale=scale,
        crd=crd,
    )


def _scale_paths(scale: Mapping[str, Any]) -> ScalePaths:
    selector = scale.get("labelSelectorPath")
    return ScalePaths(
        spec_replicas=str(scale.get("specReplicasPath", ".spec.replicas")).lstrip("."),
        status_replicas=str(scale.get("statusReplicasPath", ".status.replicas")).lstrip("."),
        label_selector=str(selector).lstrip(".") if selector else None,
    )


def matches_name(info: ResourceInfo, name: str) -> bool:
    """Whether a user-typed name (plural, singular, kind or short name) means this resource."""
    lowered = name.lower()
    return lowered in {info.plural, info.singular_name, info.kind.lower(), *info.short_names}


def sorted_infos(infos: Sequence[ResourceInfo]) -> list[ResourceInfo]:
    return sorted(infos, key=lambda i: (i.group, i.plural))
