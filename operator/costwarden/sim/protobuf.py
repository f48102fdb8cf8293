"""Decoding of Kubernetes protobuf request bodies for a few core kinds.

client-go's typed clients (``kubectl create secret|configmap|namespace``, Helm's release storage)
send ``application/vnd.kubernetes.protobuf`` bodies. This decodes the envelope (``k8s\\0`` +
``runtime.Unknown``) and the messages of Secret, ConfigMap, Namespace and ServiceAccount into
their JSON form, following k8s.io/api/core/v1/generated.proto. Other kinds are refused (415).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

MAGIC = b"k8s\x00"

# A schema maps a field number to (json name, kind); kind is "string", "bytes", "int", "bool",
# "time", a nested schema (dict), ("map", value_kind) or ("repeated", kind).
Schema = Mapping[int, tuple[str, Any]]

_OWNER_REFERENCE: Schema = {
    1: ("kind", "string"),
    3: ("name", "string"),
    4: ("uid", "string"),
    5: ("apiVersion", "string"),
    6: ("controller", "bool"),
    7: ("blockOwnerDeletion", "bool"),
}
_OBJECT_META: Schema = {
    1: ("name", "string"),
    2: ("generateName", "string"),
    3: ("namespace", "string"),
    5: ("uid", "string"),
    6: ("resourceVersion", "string"),
    7: ("generation", "int"),
    8: ("creationTimestamp", "time"),
    9: ("deletionTimestamp", "time"),
    10: ("deletionGracePeriodSeconds", "int"),
    11: ("labels", ("map", "string")),
    12: ("annotations", ("map", "string")),
    13: ("ownerReferences", ("repeated", _OWNER_REFERENCE)),
    14: ("finalizers", ("repeated", "string")),
}
_OBJECT_REFERENCE: Schema = {1: ("kind", "string"), 2: ("namespace", "string"), 3: ("name", "string")}
KINDS: dict[tuple[str, str], Schema] = {
    ("v1", "Secret"): {
        1: ("metadata", _OBJECT_META),
        2: ("data", ("map", "bytes")),
        3: ("type", "string"),
        4: ("stringData", ("map", "string")),
        5: ("immutable", "bool"),
    },
    ("v1", "ConfigMap"): {
        1: ("metadata", _OBJECT_META),
        2: ("data", ("map", "string")),
        3: ("binaryData", ("map", "bytes")),
        4: ("immutable", "bool"),
    },
    ("v1", "Namespace"): {
        1: ("metadata", _OBJECT_META),
        2: ("spec", {1: ("finalizers", ("repeated", "string"))}),
        3: ("status", {1: ("phase", "string")}),
    },
    ("v1", "ServiceAccount"): {
        1: ("metadata", _OBJECT_META),
        2: ("secrets", ("repeated", _OBJECT_REFERENCE)),
        3: ("automountServiceAccountToken", "bool"),
        4: ("imagePullSecrets", ("repeated", {1: ("name", "string")})),
    },
}
_DELETE_OPTIONS: Schema = {
    1: ("gracePeriodSeconds", "int"),
    2: ("preconditions", {1: ("uid", "string"), 2: ("resourceVersion", "string")}),
    3: ("orphanDependents", "bool"),
    4: ("propagationPolicy", "string"),
    5: ("dryRun", ("repeated", "string")),
}
KINDS[("v1", "DeleteOptions")] = KINDS[("meta.k8s.io/v1", "DeleteOptions")] = _DELETE_OPTIONS
_ENVELOPE: Schema = {1: ("typeMeta", {1: ("apiVersion", "string"), 2: ("kind", "string")}), 2: ("raw", "raw")}


class ProtobufError(ValueError):
    """The body is not protobuf we can read; the message says why."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs; varints as int, length-delimited as bytes, fixed skipped."""
    fields: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            fields.append((number, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            fields.append((number, data[pos : pos + length]))
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return fields


def _scalar(kind: str, value: int | bytes) -> Any:
    if kind == "int":
        number = int(value) if isinstance(value, int) else 0
        return number - (1 << 64) if number >= 1 << 63 else number
    if kind == "bool":
        return bool(value)
    if not isinstance(value, bytes):
        raise ProtobufError(f"expected bytes for a {kind} field")
    if kind == "raw":
        return value
    if kind == "bytes":
        return base64.b64encode(value).decode()
    if kind == "time":
        parts = dict(_fields(value))
        seconds = int(parts.get(1, 0)) if isinstance(parts.get(1, 0), int) else 0
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value.decode("utf-8")


def _value(kind: Any, value: int | bytes) -> Any:
    if isinstance(kind, Mapping):
        if not isinstance(value, bytes):
            raise ProtobufError("expected a nested message")
        return decode_message(kind, value)
    return _scalar(kind, value)


def decode_message(schema: Schema, data: bytes) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for number, value in _fields(data):
        if number not in schema:
            continue
        name, kind = schema[number]
        if isinstance(kind, tuple) and kind[0] == "map":
            if not isinstance(value, bytes):
                raise ProtobufError("expected a map entry")
            entry = dict(_fields(value))
            key = _scalar("string", entry.get(1, b""))
            result.setdefault(name, {})[key] = _value(kind[1], entry.get(2, b""))
        elif isinstance(kind, tuple) and kind[0] == "repeated":
            result.setdefault(name, []).append(_value(kind[1], value))
        else:
            result[name] = _value(kind, value)
    return {k: v for k, v in result.items() if v not in ("", 0, False, {}, [])}


def decode_object(body: bytes) -> dict[str, Any]:
    """A protobuf-encoded object of a supported kind, as its JSON dict (with apiVersion and kind)."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf envelope")
    envelope = decode_message(_ENVELOPE, body[len(MAGIC) :])
    type_meta = envelope.get("typeMeta", {})
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    schema = KINDS.get((api_version, kind))
    if schema is None:
        raise ProtobufError(f"protobuf bodies of {api_version}/{kind} are not decoded by this stand-in")
    return {"apiVersion": api_version, "kind": kind, **decode_message(schema, envelope.get("raw", b""))}
