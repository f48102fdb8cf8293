"""Object semantics: metadata, resourceVersion preconditions, status/scale subresources, finalizers.

``ObjectApi`` is the single code path for writes, used by the HTTP layer and by in-process calls.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from costwarden.sim import admission, errors, patching, schema
from costwarden.sim.addressing import (
    Target,
    WriteOptions,
    WriteResult,
    check_identity,
    get_path,
    now_text,
    scale_of,
    set_path,
)
from costwarden.sim.errors import ApiError, Problem
from costwarden.sim.registry import CRD_GROUP, CRD_PLURAL, Cause, Registry, crd_status, validate_crd
from costwarden.sim.resources import ResourceInfo
from costwarden.sim.store import Store

__all__ = ["ObjectApi", "Target", "WriteOptions", "WriteResult"]

NAMESPACES = ("", "namespaces")
PROTECTED_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


class ObjectApi:
    def __init__(
        self,
        store: Store,
        registry: Registry,
        clock: Callable[[], datetime],
        validator_loader: Callable[[], schema.Validator | None] = schema.load_validator,
    ) -> None:
        self.store = store
        self.registry = registry
        self._clock = clock
        self._load_validator = validator_loader
        self._random = random.Random()

    # ---- reading

    def present(self, target: Target, obj: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of a stored object as seen through ``target``'s version."""
        result = copy.deepcopy(dict(obj))
        result["apiVersion"] = target.info.api_version(target.version)
        result["kind"] = target.info.kind
        return result

    def _stored(self, target: Target) -> dict[str, Any]:
        assert target.name is not None
        obj = self.store.get((target.info.group, target.info.plural), target.namespace, target.name)
        if obj is None:
            raise errors.not_found(target.info.qualified, target.name)
        return obj

    def read(self, target: Target) -> dict[str, Any]:
        obj = self._stored(target)
        if target.subresource == "scale":
            return scale_of(target, obj)
        return self.present(target, obj)

    # ---- writing

    def create(self, target: Target, body: Mapping[str, Any], opts: WriteOptions) -> WriteResult:
        info = target.info
        obj = check_identity(target, copy.deepcopy(dict(body)), creating=True)
        meta = obj["metadata"]
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise self._invalid(
                    target,
                    "",
                    [
                        Cause(
                            "metadata.name",
                            "FieldValueRequired",
                            "Required value: name or generateName is required",
                        )
                    ],
                )
            suffix = "".join(self._random.choice(_NAME_ALPHABET) for _ in range(5))
            meta["name"] = f"{meta['generateName']}{suffix}"
        if info.namespaced:
            self._check_namespace_open(target, meta["namespace"], meta["name"])
        if self.store.get((info.group, info.plural), meta.get("namespace"), meta["name"]) is not None:
            raise errors.already_exists(info.qualified, meta["name"])
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "managedFields"):
            meta.pop(key, None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_text(self._clock), generation=1)
        if info.reset_status_on_create:
            obj.pop("status", None)
        admission.create_defaults(info, obj)
        obj, warnings = self._admit(target, obj, None, opts)
        if opts.dry_run:
            return WriteResult(self.present(target, obj), True, warnings)
        stored = self.store.commit((info.group, info.plural), "ADDED", obj)
        self._after_write(info, stored)
        return WriteResult(self.present(target, stored), True, warnings)

    def replace(self, target: Target, body: Mapping[str, Any], opts: WriteOptions) -> WriteResult:
        old = self._stored(target)
        if target.subresource == "scale":
            return self._write_scale(target, old, body, opts)
        new = check_identity(target, copy.deepcopy(dict(body)), creating=False)
        return self._update(target, old, new, opts)

    def patch(self, target: Target, content_type: str, patch: Any, opts: WriteOptions) -> WriteResult:
        info = target.info
        allowed = patching.CUSTOM_PATCH_TYPES if info.crd is not None else patching.PATCH_TYPES
        if content_type not in allowed:
            raise errors.unsupported_media_type(allowed)
        assert target.name is not None
        old = self.store.get((info.group, info.plural), target.namespace, target.name)
        if old is None and content_type == patching.APPLY and target.subresource is None:
            return self.create(target, patch if isinstance(patch, Mapping) else {}, opts)
        old = self._stored(target)
        if target.subresource == "scale":
            scale = patching.apply_patch(content_type, scale_of(target, old), patch)
            return self._write_scale(target, old, scale, opts)
        new = patching.apply_patch(content_type, self.present(target, old), patch)
        new = check_identity(target, new, creating=False)
        return self._update(target, old, new, opts)

    def _write_scale(
        self, target: Target, old: dict[str, Any], scale: Mapping[str, Any], opts: WriteOptions
    ) -> WriteResult:
        paths = target.info.scale
        assert paths is not None
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise self._invalid(
                target,
                old["metadata"]["name"],
                [
                    Cause(
                        "spec.replicas",
                        "FieldValueInvalid",
                        f"Invalid value: {replicas}: must be greater than or equal to 0",
                    )
                ],
            )
        new = self.present(target, old)
        set_path(new, paths.spec_replicas, replicas)
        requested_rv = (scale.get("metadata") or {}).get("resourceVersion")
        new["metadata"]["resourceVersion"] = requested_rv or old["metadata"]["resourceVersion"]
        result = self._update(
            Target(target.info, target.version, target.namespace, target.name), old, new, opts
        )
        return WriteResult(scale_of(target, result.obj), False, result.warnings)

    def _update(
        self, target: Target, old: dict[str, Any], new: dict[str, Any], opts: WriteOptions
    ) -> WriteResult:
        info = target.info
        name = old["metadata"]["name"]
        requested_rv = new.get("metadata", {}).get("resourceVersion")
        if requested_rv and requested_rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(info.qualified, name)
        if target.subresource == "status":
            status = new.get("status")
            new = copy.deepcopy(old)
            new.pop("status", None)
            if status is not None:
                new["status"] = status
        elif info.has_status:
            new.pop("status", None)
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
        meta, old_meta = new.setdefault("metadata", {}), old["metadata"]
        if meta.get("uid") and meta["uid"] != old_meta.get("uid"):  # ValidateObjectMetaUpdate
            immutable = f'Invalid value: "{meta["uid"]}": field is immutable'
            raise self._invalid(target, name, [Cause("metadata.uid", "FieldValueInvalid", immutable)])
        for key in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ):
            meta.pop(key, None)
            if key in old_meta:
                meta[key] = old_meta[key]
        added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
        if old_meta.get("deletionTimestamp") and added:
            raise self._invalid(
                target,
                name,
                [
                    Cause(
                        "metadata.finalizers",
                        "FieldValueForbidden",
                        "Forbidden: no new finalizers can be added if the object is being deleted, "
                        f"found new finalizers {sorted(added)}",
                    )
                ],
            )
        if info.group == CRD_GROUP and info.plural == CRD_PLURAL:
            self._check_crd_immutables(target, old, new)
        new, warnings = self._admit(target, new, old, opts)
        meta = new["metadata"]
        new["apiVersion"], new["kind"] = old.get("apiVersion"), old.get("kind")
        if self._content(info, new) != self._content(info, old):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if new == old:
            return WriteResult(self.present(target, old), False, warnings)
        kind = "DELETED" if meta.get("deletionTimestamp") and not meta.get("finalizers") else "MODIFIED"
        if opts.dry_run:
            return WriteResult(self.present(target, new), False, warnings)
        stored = self.store.commit((info.group, info.plural), kind, new)
        if kind == "MODIFIED":
            self._after_write(info, stored)
        else:
            self._after_removal(info, stored)
        return WriteResult(self.present(target, stored), False, warnings)

    @staticmethod
    def _content(info: ResourceInfo, obj: Mapping[str, Any]) -> dict[str, Any]:
        """What counts towards ``generation``: everything but metadata (and status, if a subresource)."""
        skip = {"metadata", "status"} if info.has_status else {"metadata"}
        return {k: v for k, v in obj.items() if k not in skip}

    def delete(self, target: Target, options: Mapping[str, Any], opts: WriteOptions) -> dict[str, Any]:
        info = target.info
        old = self._stored(target)
        meta = old["metadata"]
        preconditions = options.get("preconditions") or {}
        for key in ("uid", "resourceVersion"):
            if preconditions.get(key) and preconditions[key] != meta.get(key):
                label = {"uid": "UID", "resourceVersion": "ResourceVersion"}[key]
                why = (
                    f"Precondition failed: {label} in precondition: {preconditions[key]}, "
                    f"{label} in object meta: {meta.get(key)}"
                )
                raise errors.conflict(info.qualified, meta["name"], why)
        if info.group == "" and info.plural == "namespaces" and meta["name"] in PROTECTED_NAMESPACES:
            raise errors.forbidden(info.qualified, meta["name"], "this namespace may not be deleted")
        if opts.dry_run:
            return self.present(target, old)
        if meta.get("deletionTimestamp"):
            return self.present(target, old)
        if info.group == "" and info.plural == "namespaces":
            return self.present(target, self._delete_namespace(old))
        if meta.get("finalizers"):
            marked = copy.deepcopy(old)
            marked["metadata"].update(
                deletionTimestamp=now_text(self._clock),
                deletionGracePeriodSeconds=0,
                generation=int(meta.get("generation", 1)) + 1,
            )
            return self.present(target, self.store.commit((info.group, info.plural), "MODIFIED", marked))
        stored = self.store.commit((info.group, info.plural), "DELETED", old)
        self._after_removal(info, stored)
        return self.present(target, stored)

    # ---- helpers

    def _check_namespace_open(self, target: Target, namespace: str, name: str) -> None:
        ns = self.store.get(NAMESPACES, None, namespace)
        if ns is None:
            raise errors.not_found("namespaces", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise errors.forbidden(
                target.info.qualified,
                name,
                f"unable to create new content in namespace {namespace} because it is being terminated",
            )

    def _check_crd_immutables(self, target: Target, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        for path in ("spec.group", "spec.names.plural"):
            if get_path(old, path) != get_path(new, path):
                raise self._invalid(
                    target,
                    old["metadata"]["name"],
                    [Cause(path, "FieldValueInvalid", "Invalid value: field is immutable")],
                )

    def _invalid(self, target: Target, name: str, causes: Sequence[Problem]) -> ApiError:
        return errors.invalid(target.info.kind, target.info.group, name, causes)

    def _admit(
        self, target: Target, obj: dict[str, Any], old: Mapping[str, Any] | None, opts: WriteOptions
    ) -> tuple[dict[str, Any], list[str]]:
        """Validate (and for custom objects prune and default) what is about to be stored."""
        info = target.info
        name = obj["metadata"]["name"]
        causes: list[Problem] = list(admission.name_causes(info, name)) if old is None else []
        admission.normalize(info, obj)
        causes += admission.metadata_causes(obj["metadata"]) + admission.object_causes(info, obj, old)
        warnings: list[str] = []
        if info.group == CRD_GROUP and info.plural == CRD_PLURAL:
            causes += validate_crd(obj, self.registry)
            if not causes:
                obj["status"] = crd_status(obj, now_text(self._clock), (old or {}).get("status"))
        crd_schema = info.schema(target.version) if info.crd is not None else None
        if crd_schema is not None:
            obj, unknown, problems = schema.process(crd_schema, obj, self._load_validator())
            causes += problems
            if unknown and opts.field_validation == "Strict":
                fields = ", ".join(f'unknown field "{path}"' for path in unknown)
                raise errors.bad_request(
                    f'{info.kind} in version "{target.version}" cannot be handled as a {info.kind}: '
                    f"strict decoding error: {fields}"
                )
            if opts.field_validation == "Warn":
                warnings = [f'unknown field "{path}"' for path in unknown]
        if causes:
            raise self._invalid(target, name, causes)
        return obj, warnings

    def _after_write(self, info: ResourceInfo, stored: dict[str, Any]) -> None:
        if info.group == CRD_GROUP and info.plural == CRD_PLURAL:
            self.registry.register_crd(stored)

    def _after_removal(self, info: ResourceInfo, stored: dict[str, Any]) -> None:
        if info.group == CRD_GROUP and info.plural == CRD_PLURAL:
            removed = self.registry.unregister_crd(stored)
            if removed is not None:
                for obj in self.store.items((removed.group, removed.plural)):
                    self.store.commit((removed.group, removed.plural), "DELETED", obj)
        namespace = stored["metadata"].get("namespace")
        if info.namespaced and namespace:
            ns = self.store.get(NAMESPACES, None, namespace)
            if (
                ns is not None
                and ns["metadata"].get("deletionTimestamp")
                and not self.store.count_in_namespace(namespace)
            ):
                self.store.commit(NAMESPACES, "DELETED", ns)

    def _delete_namespace(self, ns: dict[str, Any]) -> dict[str, Any]:
        name = ns["metadata"]["name"]
        marked = copy.deepcopy(ns)
        marked["metadata"]["deletionTimestamp"] = now_text(self._clock)
        marked["status"] = {"phase": "Terminating"}
        result = self.store.commit(NAMESPACES, "MODIFIED", marked)
        for group, plural in self.store.resources():
            info = self.registry.get(group, plural)
            if info is None or not info.namespaced:
                continue
            for obj in self.store.items((group, plural), name):
                self.delete(Target(info, info.versions[0], name, obj["metadata"]["name"]), {}, WriteOptions())
        if not self.store.count_in_namespace(name):
            result = self.store.commit(NAMESPACES, "DELETED", result)
        return result
