"""Validate a custom object against a CRD version's structural schema, as the apiserver does.

The structural OpenAPI v3 subset is converted to JSON Schema (draft 7) and checked by the
``jsonschema`` library; what JSON Schema cannot say is added as a few custom keywords (required
and unknown fields with one problem per field, list-map key uniqueness, CEL
``x-kubernetes-validations`` rules evaluated with cel-python). Problems carry the field path,
cause type (reason) and message the way kube-apiserver renders them, e.g.
``spec.limit`` / ``FieldValueInvalid`` / ``Invalid value: 0: spec.limit in body should be greater than 0``.

Like the apiserver, CEL rules run only after the schema validation, and not at all when it found a
blocking problem (wrong type, unsupported enum value, missing required field, too long, too many):
one problem at ``<nil>`` says so instead (``hasBlockingErr`` in apiextensions-apiserver's
pkg/registry/customresource/strategy.go, which calls the CEL validator only when it returns false).
So a rule never sees a value of the wrong type, e.g. ``self.map(t, t.percent)`` over
``thresholds: false``: the answer is ``spec.thresholds: Invalid value: "boolean": spec.thresholds
in body must be of type array: "boolean"``. A rule that still fails to evaluate is a
``FieldValueInvalid`` problem at the rule's node, ``<error> evaluating rule: <rule>`` (as in
apiextensions-apiserver's pkg/apiserver/schema/cel/validation.go), never an exception.

Numbers are typed as the apiserver decodes them (k8s.io/apimachinery/pkg/util/json: an int64 when
the JSON number is one, else a float64): an integer literal outside int64, such as ``1e20`` written
out, is a ``number``, and a ``number`` passes as an ``integer`` only when it is whole and within
±(2^53 - 1) (kube-openapi's type validator, go-openapi's ``IsFloat64AJSONInteger``). So
``period: 100000000000000000000`` is ``spec.period: Invalid value: "number": spec.period in body
must be of type string: "number"``.

Unknown fields are reported as ``FieldValueForbidden`` "field not declared in schema": the caller
decides whether to refuse them (fieldValidation=Strict) or prune them.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any, cast

from jsonschema import Draft7Validator, FormatChecker, ValidationError, validators

from costwarden.sim.celrules import RuleSet

REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
TYPE_INVALID = "FieldValueTypeInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
FORBIDDEN = "FieldValueForbidden"
DUPLICATE = "FieldValueDuplicate"
TOO_LONG = "FieldValueTooLong"
TOO_MANY = "FieldValueTooMany"

_BLOCKING = frozenset({REQUIRED, TYPE_INVALID, NOT_SUPPORTED, TOO_LONG, TOO_MANY})
_IMPLICIT_ROOT_FIELDS = ("apiVersion", "kind", "metadata")
_DROPPED_KEYWORDS = frozenset({"nullable", "default", "x-kubernetes-int-or-string", "required", "properties"})
_SUB_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_BOUNDS = MappingProxyType(
    {
        "minimum": "greater than or equal to",
        "exclusiveMinimum": "greater than",
        "maximum": "less than or equal to",
        "exclusiveMaximum": "less than",
        "multipleOf": "a multiple of",
    }
)
_COUNTS = MappingProxyType(
    {
        "minLength": "should be at least {} chars long",
        "minItems": "should have at least {} items",
        "minProperties": "should have at least {} properties",
    }
)
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_TIME = re.compile(r"^(\d{2}):(\d{2}):(\d{2})(\.\d+)?(z|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True)
class FieldProblem:
    """One cause of a 422 Invalid: ``field`` as Kubernetes renders it, ``reason`` its cause type."""

    field: str
    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class _KubeError(ValidationError):
    """A problem raised by one of our keywords, already in the apiserver's words."""

    def __init__(self, reason: str, body: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(body, path=path)
        self.reason = reason


class _RulesToCheck(ValidationError):
    """Not a problem: one node's ``x-kubernetes-validations``, kept to evaluate after the schema
    validation (the walk gives it the node's path)."""

    def __init__(self, rules: list[Any], instance: Any, schema: Mapping[str, Any]) -> None:
        super().__init__("x-kubernetes-validations")
        self.rules = rules
        self.node = instance
        self.node_schema = schema


class CrdValidator:
    """Compiled validator for one ``openAPIV3Schema``; build once, call ``validate`` many times."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self._rules = RuleSet(schema)
        keywords = {
            "x-required": _required,
            "x-closed": _unknown_fields,
            "x-kubernetes-list-map-keys": _duplicate_map_keys,
            "x-kubernetes-list-type": _duplicate_set_items,
            "x-kubernetes-validations": _rules_to_check,
        }
        checker = Draft7Validator.TYPE_CHECKER.redefine("integer", _is_integer)
        cls = validators.extend(Draft7Validator, keywords, type_checker=checker)  # type: ignore[no-untyped-call]
        self._validator = cls(_convert(schema, root=True), format_checker=_format_checker())

    def validate(self, obj: Mapping[str, Any]) -> list[FieldProblem]:
        """Every problem of ``obj``; an empty list means the apiserver would accept it."""
        problems: list[FieldProblem] = []
        to_check: list[_RulesToCheck] = []
        for error in self._validator.iter_errors(as_decoded(obj)):
            if isinstance(error, _RulesToCheck):
                to_check.append(error)
            else:
                problems.append(_problem(error))
        if any(p.reason in _BLOCKING for p in problems):
            return [*problems, _RULES_NOT_CHECKED] if self._rules else problems
        for node in to_check:
            problems.extend(self._cel_problems(node))
        return problems

    def _cel_problems(self, node: _RulesToCheck) -> Iterator[FieldProblem]:
        """The failures of one node's rules, each at the node's path (and the rule's fieldPath)."""
        node_type = str(node.node_schema.get("x-k8s-type", "object"))
        for failure in self._rules.check(node.rules, node.node, node.node_schema):
            path = render_path([*node.absolute_path, *failure.path])
            body = _cel_body(failure.reason, node_type, failure.message)
            yield FieldProblem(path or "<nil>", failure.reason, body)


def _rules_to_check(
    _v: Any, rules: list[Any], instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    """The ``x-kubernetes-validations`` keyword: the rules of this node, to run after the schema."""
    if instance is not None:
        yield _RulesToCheck(rules, instance, schema)


_INT64 = (-(2**63), 2**63 - 1)
_JSON_INTEGER = 2**53 - 1  # go-openapi's maxJSONFloat


def as_decoded(value: Any) -> Any:
    """``value`` with its numbers as the apiserver's JSON decoder makes them: an integer that
    does not fit int64 becomes a float64 (an infinite one past float64's range, which Go's decoder
    refuses outright and so no object of the apiserver's ever holds)."""
    if isinstance(value, dict):
        return {k: as_decoded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_decoded(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not _INT64[0] <= value <= _INT64[1]:
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    return value


def _is_integer(_checker: Any, value: Any) -> bool:
    """kube-openapi's ``integer``: an int64, or a float64 that is whole within ±(2^53 - 1)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return (
        isinstance(value, float)
        and math.isfinite(value)
        and value.is_integer()
        and abs(value) <= _JSON_INTEGER
    )


_RULES_NOT_CHECKED = FieldProblem(
    "<nil>",
    INVALID,
    'Invalid value: "null": some validation rules were not checked because the object was invalid; '
    "correct the existing errors to complete validation",
)


@functools.lru_cache(maxsize=32)
def _cached_validator(schema_json: str) -> CrdValidator:
    return CrdValidator(json.loads(schema_json))


def validate_custom_object(schema: Mapping[str, Any], obj: Mapping[str, Any]) -> list[FieldProblem]:
    """Problems of ``obj`` against ``schema`` (a CRD version's ``schema.openAPIV3Schema``)."""
    return _cached_validator(json.dumps(schema, sort_keys=True)).validate(obj)


# ---- conversion: structural OpenAPI v3 -> JSON Schema draft 7 with our keywords ----


def _convert(node: Mapping[str, Any], root: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in node.items() if k not in _DROPPED_KEYWORDS}
    k8s_type = node.get("type")
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if node.get("nullable") and "type" in out:
        out["type"] = [*_as_list(out["type"]), "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    if k8s_type is not None:
        out["x-k8s-type"] = k8s_type
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if out.get(exclusive) is True and bound in node:
            out[exclusive] = out.pop(bound)
        elif isinstance(out.get(exclusive), bool):
            del out[exclusive]
    properties = dict(node.get("properties", {}))
    if root and "metadata" in properties:
        properties["metadata"] = _root_metadata(properties["metadata"])
    if properties:
        out["properties"] = {name: _convert(sub) for name, sub in properties.items()}
    if node.get("required"):
        out["x-required"] = list(node["required"])
    if isinstance(node.get("additionalProperties"), Mapping):
        out["additionalProperties"] = _convert(node["additionalProperties"])
    if isinstance(node.get("items"), Mapping):
        out["items"] = _convert(node["items"])
    if "not" in node:
        out["not"] = _convert(node["not"])
    for key in _SUB_SCHEMA_LISTS:
        if key in node:
            out[key] = [_convert(sub) for sub in node[key]]
    if _closed(node):
        implicit = _IMPLICIT_ROOT_FIELDS if root or node.get("x-kubernetes-embedded-resource") else ()
        out["x-closed"] = [*properties, *implicit]
    return out


def _closed(node: Mapping[str, Any]) -> bool:
    """Objects whose undeclared fields the apiserver prunes (or refuses under Strict)."""
    return (
        node.get("type") == "object"
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    )


def _root_metadata(node: Mapping[str, Any]) -> dict[str, Any]:
    """ObjectMeta is validated by the apiserver itself; a CRD may only constrain the name."""
    name = node.get("properties", {}).get("name", {"type": "string"})
    return {"type": "object", "properties": {"name": name}, "x-kubernetes-preserve-unknown-fields": True}


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    checker.checks("date-time")(_is_date_time)
    checker.checks("date")(_is_date)
    return checker


def _is_date(value: object) -> bool:
    match = _DATE.match(value) if isinstance(value, str) else None
    if match is None:
        return not isinstance(value, str)
    year, month, day = (int(g) for g in match.groups())
    return 1 <= month <= 12 and 1 <= day <= _days_in_month(year, month)


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _is_date_time(value: object) -> bool:
    """kube-openapi's strfmt.IsDateTime: a date, 'T', hh:mm:ss[.frac], then 'Z' or an offset."""
    if not isinstance(value, str):
        return True
    parts = value.lower().split("t")
    if len(parts) != 2 or not _is_date(parts[0]):
        return False
    match = _TIME.match(parts[1])
    return match is not None and match[1] <= "23" and match[2] <= "59" and match[3] <= "59"


# ---- custom keywords ----


def _required(_v: Any, names: list[str], instance: Any, _s: Any) -> Iterator[_KubeError]:
    if isinstance(instance, dict):
        for name in names:
            if name not in instance:
                yield _KubeError(REQUIRED, "Required value", (name,))


def _unknown_fields(_v: Any, declared: list[str], instance: Any, _s: Any) -> Iterator[_KubeError]:
    if isinstance(instance, dict):
        for name in instance:
            if name not in declared:
                yield _KubeError(FORBIDDEN, "Forbidden: field not declared in schema", (name,))


def _duplicate_map_keys(_v: Any, keys: list[str], instance: Any, _s: Any) -> Iterator[_KubeError]:
    if isinstance(instance, list):
        yield from _duplicates(
            [{k: item.get(k) for k in keys} for item in instance if isinstance(item, dict)]
        )


def _duplicate_set_items(_v: Any, list_type: str, instance: Any, _s: Any) -> Iterator[_KubeError]:
    if list_type == "set" and isinstance(instance, list):
        yield from _duplicates(instance)


def _duplicates(items: list[Any]) -> Iterator[_KubeError]:
    seen: set[str] = set()
    for index, item in enumerate(items):
        key = json.dumps(item, sort_keys=True)
        if key in seen:
            yield _KubeError(DUPLICATE, f"Duplicate value: {go_value(item)}", (index,))
        seen.add(key)


def _cel_body(reason: str, node_type: str, message: str) -> str:
    if reason == FORBIDDEN:
        return f"Forbidden: {message}"
    if reason == REQUIRED:
        return f"Required value: {message}"
    if reason == DUPLICATE:
        return f"Duplicate value: {go_value(node_type)}"
    return f"Invalid value: {go_value(node_type)}: {message}"


# ---- rendering jsonschema errors the apiserver's way ----


def render_path(parts: Iterator[str | int] | tuple[str | int, ...] | list[str | int]) -> str:
    """``('spec', 'thresholds', 1, 'percent')`` -> ``spec.thresholds[1].percent``."""
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _problem(error: ValidationError) -> FieldProblem:
    path = render_path(list(error.absolute_path))
    if isinstance(error, _KubeError):
        return FieldProblem(path or "<nil>", error.reason, error.message)
    reason, detail = _detail(error, path or "body")
    value = error.instance
    if reason == INVALID:
        return FieldProblem(path, reason, f"Invalid value: {go_value(value)}: {detail}")
    return FieldProblem(path, reason, detail)


def _detail(error: ValidationError, path: str) -> tuple[str, str]:
    keyword, schema = str(error.validator), cast(Mapping[str, Any], error.schema)
    limit, value = cast(Any, error.validator_value), cast(Any, error.instance)
    prefix = f"{path} in body"
    if keyword == "type":
        actual = _json_type(value)
        expected = schema.get("x-k8s-type") or ",".join(t for t in _as_list(limit) if t != "null")
        quoted = go_value(actual)
        return TYPE_INVALID, f"Invalid value: {quoted}: {prefix} must be of type {expected}: {quoted}"
    if keyword == "enum":
        supported = ", ".join(go_value(v) for v in limit if v is not None)
        return NOT_SUPPORTED, f"Unsupported value: {go_value(value)}: supported values: {supported}"
    if keyword == "maxLength":
        return TOO_LONG, f"Too long: may not be more than {limit} bytes"
    if keyword in ("maxItems", "maxProperties"):
        noun = "items" if keyword == "maxItems" else "properties"
        return TOO_MANY, f"Too many: {len(value)}: must have at most {limit} {noun}"
    if keyword in _BOUNDS:
        return INVALID, f"{prefix} should be {_BOUNDS[keyword]} {go_value(float(limit))}"
    if keyword in _COUNTS:
        return INVALID, f"{prefix} {_COUNTS[keyword].format(limit)}"
    if keyword == "pattern":
        return INVALID, f"{prefix} should match '{limit}'"
    if keyword == "format":
        return INVALID, f"{prefix} must be of type {limit}: {go_value(value)}"
    return INVALID, f"{prefix} {error.message}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def go_value(value: Any) -> str:
    """A value as Go's field.Error prints it: strings quoted, numbers like %v, null as null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def go_float(value: float) -> str:
    """Go's ``%v`` of a float64: shortest digits, exponent form below 1e-4 and from 1e6 on."""
    if math.isnan(value) or math.isinf(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    if value == 0:
        return "0"
    number = Decimal(repr(value)).normalize()
    exponent = number.adjusted()
    if -4 <= exponent < 6:
        return format(number, "f")
    digits = "".join(str(d) for d in number.as_tuple().digits)
    mantissa = digits[0] + (f".{digits[1:]}" if len(digits) > 1 else "")
    return f"{'-' if value < 0 else ''}{mantissa}e{'+' if exponent >= 0 else '-'}{abs(exponent):02d}"
