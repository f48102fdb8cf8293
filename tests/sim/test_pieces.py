"""The stand-in's pure pieces: patches, selectors, durations, JSONPath, schema pruning, paths."""

from __future__ import annotations

import pytest

from costwarden.sim import errors, patching, protobuf, routing, schema, tables
from costwarden.sim.resources import version_priority
from costwarden.sim.selectors import FieldSelector, LabelSelector, SelectorError, label_selector_string


def test_merge_patch_deletes_with_null_and_replaces_lists() -> None:
    target = {"a": {"b": 1, "c": 2}, "l": [1, 2]}
    assert patching.merge_patch(target, {"a": {"b": None, "d": 3}, "l": [3]}) == {
        "a": {"c": 2, "d": 3},
        "l": [3],
    }


def test_strategic_merge_keys_and_directives() -> None:
    target = {
        "containers": [
            {"name": "a", "image": "x", "ports": [{"containerPort": 80}]},
            {"name": "b", "image": "y"},
        ],
        "tolerations": [{"key": "k"}],
        "finalizers": ["f1"],
    }
    patch = {
        "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
        "containers": [{"name": "a", "ports": [{"containerPort": 81}]}, {"name": "b", "$patch": "delete"}],
        "tolerations": [{"key": "j"}],
        "finalizers": ["f2"],
    }
    result = patching.strategic_merge(target, patch)
    assert result["containers"] == [
        {"name": "a", "image": "x", "ports": [{"containerPort": 80}, {"containerPort": 81}]}
    ]
    assert result["tolerations"] == [{"key": "j"}]
    assert result["finalizers"] == ["f1", "f2"]
    assert patching.strategic_merge({"x": {"a": 1}}, {"x": {"$patch": "replace", "b": 2}}) == {"x": {"b": 2}}
    assert patching.strategic_merge({"a": 1, "b": 2, "c": 3}, {"$retainKeys": ["a", "c"], "c": 4}) == {
        "a": 1,
        "c": 4,
    }


def test_json_patch_errors() -> None:
    with pytest.raises(errors.ApiError) as bad:
        patching.json_patch({}, {"op": "add"})
    with pytest.raises(errors.ApiError) as failed:
        patching.json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 2}])
    with pytest.raises(errors.ApiError) as missing:
        patching.json_patch({"a": 1}, [{"op": "remove", "path": "/b"}])
    assert (bad.value.code, failed.value.code, missing.value.code) == (400, 422, 422)


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=x", {"app": "x"}, True),
        ("app==x,tier!=db", {"app": "x"}, True),
        ("app!=x", {}, True),
        ("app in (x, y)", {"app": "y"}, True),
        ("app notin (x,y)", {"app": "y"}, False),
        ("app", {"app": ""}, True),
        ("!app", {"app": "x"}, False),
        ("example.com/team=ml,gpu", {"example.com/team": "ml", "gpu": "1"}, True),
        ("", {}, True),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert LabelSelector.parse(selector).matches({"metadata": {"labels": labels}}) is expected


def test_selector_errors_and_field_values() -> None:
    with pytest.raises(SelectorError):
        LabelSelector.parse("app in x")
    with pytest.raises(SelectorError, match=r"field label not supported: spec\.x"):
        FieldSelector.parse("spec.x=1", frozenset({"metadata.name"}))
    pod = {"spec": {"hostNetwork": True}, "status": {"phase": "Running"}}
    assert FieldSelector.parse("spec.hostNetwork=true,status.phase!=Failed").matches(pod)
    assert FieldSelector.parse("metadata.name=a").exact_name() == "a"
    expressions = {
        "matchLabels": {"a": "1"},
        "matchExpressions": [{"key": "b", "operator": "In", "values": ["x", "y"]}],
    }
    assert label_selector_string(expressions) == "a=1,b in (x,y)"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (59, "59s"),
        (119, "119s"),
        (310, "5m10s"),
        (600, "10m"),
        (3 * 3600 + 60, "3h1m"),
        (9 * 3600, "9h"),
        (50 * 3600, "2d2h"),
        (30 * 86400, "30d"),
        (3 * 365 * 86400, "3y"),
        (10 * 365 * 86400, "10y"),
    ],
)
def test_human_duration_matches_kubernetes(seconds: int, text: str) -> None:
    assert tables.human_duration(seconds) == text


def test_jsonpath() -> None:
    obj = {"spec": {"items": [{"name": "a"}], "x.y": 1}, "metadata": {"labels": {"app": "z"}}}
    assert tables.jsonpath(obj, ".spec.items[0].name") == (True, "a")
    assert tables.jsonpath(obj, "{.metadata.labels['app']}") == (True, "z")
    assert tables.jsonpath(obj, ".spec['x.y']") == (True, 1)
    assert tables.jsonpath(obj, ".spec.items[3].name") == (False, None)


def test_schema_pruning_and_defaults() -> None:
    structural = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "keep": {"type": "string", "default": "d"},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "map": {
                        "type": "object",
                        "additionalProperties": {"type": "object", "properties": {"v": {"type": "integer"}}},
                    },
                    "list": {
                        "type": "array",
                        "items": {"type": "object", "properties": {"n": {"type": "string", "default": "x"}}},
                    },
                },
            }
        },
    }
    obj = {
        "apiVersion": "g/v1",
        "kind": "K",
        "metadata": {"name": "n"},
        "spec": {"drop": 1, "free": {"any": 1}, "map": {"k": {"v": 1, "w": 2}}, "list": [{"z": 1}]},
    }
    result, unknown, problems = schema.process(structural, obj, None)
    assert unknown == ["spec.drop", "spec.map.k.w", "spec.list[0].z"]
    assert result["spec"] == {"free": {"any": 1}, "map": {"k": {"v": 1}}, "list": [{"n": "x"}], "keep": "d"}
    assert list(result)[:3] == ["apiVersion", "kind", "metadata"] and problems == []


def test_api_paths() -> None:
    assert routing.parse_api_path("/api/v1/namespaces") == routing.ApiPath("", "v1", "namespaces")
    assert routing.parse_api_path("/api/v1/namespaces/x/status") == routing.ApiPath(
        "", "v1", "namespaces", None, "x", "status"
    )
    assert routing.parse_api_path("/apis/apps/v1/namespaces/x/deployments/d/scale") == routing.ApiPath(
        "apps", "v1", "deployments", "x", "d", "scale"
    )
    assert routing.parse_api_path("/api/v1/nodes/n") == routing.ApiPath("", "v1", "nodes", None, "n")
    assert routing.parse_api_path("/apis/apps/v1") == routing.ApiPath("apps", "v1")
    assert routing.parse_api_path("/version") is None


def test_version_priority() -> None:
    versions = ["v1alpha1", "v2", "foo", "v1beta2", "v1", "v1beta1"]
    assert sorted(versions, key=version_priority) == ["v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte, number = number & 0x7F, number >> 7
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)


def _field(number: int, value: bytes | int) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def test_protobuf_secret_decodes_to_json() -> None:
    meta = (
        _field(1, b"s1")
        + _field(3, b"ns")
        + _field(11, _field(1, b"owner") + _field(2, b"helm"))
        + _field(2, b"")
    )
    meta += _field(8, _field(1, 1_800_000_000))
    secret = (
        _field(1, meta)
        + _field(2, _field(1, b"release") + _field(2, b"\x00\x01"))
        + _field(3, b"helm.sh/release.v1")
    )
    envelope = _field(1, _field(1, b"v1") + _field(2, b"Secret")) + _field(2, secret)
    decoded = protobuf.decode_object(protobuf.MAGIC + envelope)
    assert decoded == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "s1",
            "namespace": "ns",
            "labels": {"owner": "helm"},
            "creationTimestamp": "2027-01-15T08:00:00Z",
        },
        "data": {"release": "AAE="},
        "type": "helm.sh/release.v1",
    }
    with pytest.raises(protobuf.ProtobufError, match="apps/v1/Deployment"):
        protobuf.decode_object(protobuf.MAGIC + _field(1, _field(1, b"apps/v1") + _field(2, b"Deployment")))
