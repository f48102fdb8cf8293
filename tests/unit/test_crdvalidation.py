"""Table-driven tests of the CRD schema validator (costwarden.sim.crdvalidation) on small schemas."""

from __future__ import annotations

from typing import Any

import pytest

from costwarden.sim.celrules import RuleSet
from costwarden.sim.crdvalidation import (
    CrdValidator,
    FieldProblem,
    go_float,
    render_path,
    validate_custom_object,
)

NOT_CHECKED = FieldProblem(
    "<nil>",
    "FieldValueInvalid",
    'Invalid value: "null": some validation rules were not checked because the object was invalid; '
    "correct the existing errors to complete validation",
)


def _root(spec_properties: dict[str, Any], **spec_extra: Any) -> dict[str, Any]:
    """A CRD-like root schema whose spec has ``spec_properties``."""
    spec = {"type": "object", "properties": spec_properties, **spec_extra}
    return {"type": "object", "properties": {"spec": spec}}


def _problems(schema: dict[str, Any], spec: Any) -> list[tuple[str, str, str]]:
    return [(p.field, p.reason, p.message) for p in CrdValidator(schema).validate({"spec": spec})]


NUMBER_GT_0 = {"type": "number", "minimum": 0, "exclusiveMinimum": True}

CASES: list[tuple[str, dict[str, Any], Any, list[tuple[str, str, str]]]] = [
    ("number ok", {"n": NUMBER_GT_0}, {"n": 1.5}, []),
    ("integer is a number", {"n": NUMBER_GT_0}, {"n": 3}, []),
    (
        "exclusive minimum",
        {"n": NUMBER_GT_0},
        {"n": 0},
        [("spec.n", "FieldValueInvalid", "Invalid value: 0: spec.n in body should be greater than 0")],
    ),
    (
        "inclusive minimum",
        {"n": {"type": "integer", "minimum": 1}},
        {"n": 0},
        [
            (
                "spec.n",
                "FieldValueInvalid",
                "Invalid value: 0: spec.n in body should be greater than or equal to 1",
            )
        ],
    ),
    ("inclusive minimum met", {"n": {"type": "integer", "minimum": 1}}, {"n": 1}, []),
    (
        "inclusive maximum",
        {"n": {"type": "number", "maximum": 1000}},
        {"n": 5000},
        [
            (
                "spec.n",
                "FieldValueInvalid",
                "Invalid value: 5000: spec.n in body should be less than or equal to 1000",
            )
        ],
    ),
    ("inclusive maximum met", {"n": {"type": "number", "maximum": 1000}}, {"n": 1000}, []),
    (
        "exclusive maximum",
        {"n": {"type": "number", "maximum": 100, "exclusiveMaximum": True}},
        {"n": 100},
        [("spec.n", "FieldValueInvalid", "Invalid value: 100: spec.n in body should be less than 100")],
    ),
    (
        "string for a number",
        {"n": NUMBER_GT_0},
        {"n": "abc"},
        [
            (
                "spec.n",
                "FieldValueTypeInvalid",
                'Invalid value: "string": spec.n in body must be of type number: "string"',
            )
        ],
    ),
    (
        "boolean is not an integer",
        {"n": {"type": "integer"}},
        {"n": True},
        [
            (
                "spec.n",
                "FieldValueTypeInvalid",
                'Invalid value: "boolean": spec.n in body must be of type integer: "boolean"',
            )
        ],
    ),
    (
        "fraction is not an integer",
        {"n": {"type": "integer"}},
        {"n": 1.5},
        [
            (
                "spec.n",
                "FieldValueTypeInvalid",
                'Invalid value: "number": spec.n in body must be of type integer: "number"',
            )
        ],
    ),
    (
        "string for a boolean",
        {"b": {"type": "boolean"}},
        {"b": "true"},
        [
            (
                "spec.b",
                "FieldValueTypeInvalid",
                'Invalid value: "string": spec.b in body must be of type boolean: "string"',
            )
        ],
    ),
    (
        "object for an array",
        {"a": {"type": "array", "items": {"type": "string"}}},
        {"a": {}},
        [
            (
                "spec.a",
                "FieldValueTypeInvalid",
                'Invalid value: "object": spec.a in body must be of type array: "object"',
            )
        ],
    ),
    (
        "enum",
        {"p": {"type": "string", "enum": ["Lifetime", "Daily"]}},
        {"p": "Hourly"},
        [
            (
                "spec.p",
                "FieldValueNotSupported",
                'Unsupported value: "Hourly": supported values: "Lifetime", "Daily"',
            )
        ],
    ),
    ("enum ok", {"p": {"type": "string", "enum": ["Lifetime", "Daily"]}}, {"p": "Daily"}, []),
    (
        "min length",
        {"s": {"type": "string", "minLength": 1}},
        {"s": ""},
        [
            (
                "spec.s",
                "FieldValueInvalid",
                'Invalid value: "": spec.s in body should be at least 1 chars long',
            )
        ],
    ),
    (
        "max length",
        {"s": {"type": "string", "maxLength": 3}},
        {"s": "abcd"},
        [("spec.s", "FieldValueTooLong", "Too long: may not be more than 3 bytes")],
    ),
    (
        "pattern",
        {"s": {"type": "string", "pattern": "^[a-z]+$"}},
        {"s": "A1"},
        [("spec.s", "FieldValueInvalid", "Invalid value: \"A1\": spec.s in body should match '^[a-z]+$'")],
    ),
    (
        "max items",
        {"a": {"type": "array", "maxItems": 1, "items": {"type": "integer"}}},
        {"a": [1, 2]},
        [("spec.a", "FieldValueTooMany", "Too many: 2: must have at most 1 items")],
    ),
    (
        "required, nested",
        {"o": {"type": "object", "required": ["name", "key"], "properties": {"name": {"type": "string"}}}},
        {"o": {"name": "x"}},
        [("spec.o.key", "FieldValueRequired", "Required value")],
    ),
    (
        "unknown field",
        {"limit": {"type": "number"}},
        {"limit": 1, "limt": 5},
        [("spec.limt", "FieldValueForbidden", "Forbidden: field not declared in schema")],
    ),
    (
        "map values are typed, keys are free",
        {"labels": {"type": "object", "additionalProperties": {"type": "string"}}},
        {"labels": {"a": "1", "b": 2}},
        [
            (
                "spec.labels.b",
                "FieldValueTypeInvalid",
                'Invalid value: "integer": spec.labels.b in body must be of type string: "integer"',
            )
        ],
    ),
    (
        "preserve-unknown-fields keeps anything",
        {"raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
        {"raw": {"anything": {"goes": 1}}},
        [],
    ),
    (
        "nested list paths",
        {
            "items": {
                "type": "array",
                "items": {"type": "object", "properties": {"percent": {"type": "number", "maximum": 10}}},
            }
        },
        {"items": [{"percent": 1}, {"percent": 11}]},
        [
            (
                "spec.items[1].percent",
                "FieldValueInvalid",
                "Invalid value: 11: spec.items[1].percent in body should be less than or equal to 10",
            )
        ],
    ),
    ("nullable accepts null", {"s": {"type": "string", "nullable": True}}, {"s": None}, []),
    (
        "not nullable refuses null",
        {"s": {"type": "string"}},
        {"s": None},
        [
            (
                "spec.s",
                "FieldValueTypeInvalid",
                'Invalid value: "null": spec.s in body must be of type string: "null"',
            )
        ],
    ),
    ("int-or-string: int", {"v": {"x-kubernetes-int-or-string": True}}, {"v": 3}, []),
    ("int-or-string: string", {"v": {"x-kubernetes-int-or-string": True}}, {"v": "50%"}, []),
    (
        "date-time ok",
        {"t": {"type": "string", "format": "date-time"}},
        {"t": "2026-11-28T02:14:00.5+01:00"},
        [],
    ),
    (
        "date-time bad",
        {"t": {"type": "string", "format": "date-time"}},
        {"t": "2026-13-28T02:14:00Z"},
        [
            (
                "spec.t",
                "FieldValueInvalid",
                'Invalid value: "2026-13-28T02:14:00Z": spec.t in body must be of type date-time: '
                '"2026-13-28T02:14:00Z"',
            )
        ],
    ),
    (
        "date-time needs a zone",
        {"t": {"type": "string", "format": "date-time"}},
        {"t": "2026-11-28T02:14:00"},
        [
            (
                "spec.t",
                "FieldValueInvalid",
                'Invalid value: "2026-11-28T02:14:00": spec.t in body must be of type date-time: '
                '"2026-11-28T02:14:00"',
            )
        ],
    ),
    (
        "list-map keys are unique",
        {
            "conditions": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
                "items": {
                    "type": "object",
                    "properties": {"type": {"type": "string"}, "status": {"type": "string"}},
                },
            }
        },
        {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Ready", "status": "False"}]},
        [("spec.conditions[1]", "FieldValueDuplicate", 'Duplicate value: {"type":"Ready"}')],
    ),
    (
        "list-set items are unique",
        {"tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}},
        {"tags": ["a", "b", "a"]},
        [("spec.tags[2]", "FieldValueDuplicate", 'Duplicate value: "a"')],
    ),
]


@pytest.mark.parametrize(
    ("properties", "spec", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_schema_keywords(properties: dict[str, Any], spec: Any, expected: list[tuple[str, str, str]]) -> None:
    assert _problems(_root(properties), spec) == expected


def test_root_allows_apiversion_kind_and_any_metadata() -> None:
    schema = {
        "type": "object",
        "properties": {
            "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 5}}},
            "spec": {"type": "object"},
        },
    }
    validator = CrdValidator(schema)
    obj = {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "abc", "labels": {"a": "b"}}, "spec": {}}
    assert validator.validate(obj) == []
    assert [p.field for p in validator.validate({**obj, "metadata": {"name": "toolong"}})] == [
        "metadata.name"
    ]
    assert [p.field for p in validator.validate({**obj, "extra": 1})] == ["extra"]


RULE_CASES: list[tuple[str, dict[str, Any], dict[str, Any], list[tuple[str, str, str]]]] = [
    (
        "rule with fieldPath and reason",
        {
            "rule": "!has(self.burn) || has(self.rate)",
            "fieldPath": ".rate",
            "reason": "FieldValueRequired",
            "message": "burn needs rate",
        },
        {"burn": 2},
        [("spec.rate", "FieldValueRequired", "Required value: burn needs rate")],
    ),
    (
        "rule holds",
        {"rule": "!has(self.burn) || has(self.rate)", "fieldPath": ".rate", "message": "burn needs rate"},
        {"burn": 2, "rate": 1},
        [],
    ),
    (
        "rule on the node, default reason",
        {"rule": "self.rate < 10.0", "message": "rate too high"},
        {"rate": 11},
        [("spec", "FieldValueInvalid", 'Invalid value: "object": rate too high')],
    ),
    (
        "number fields are doubles even when written as integers",
        {"rule": "self.rate > 0.5", "message": "m"},
        {"rate": 1},
        [],
    ),
    (
        "no message",
        {"rule": "self.rate == 1.0"},
        {"rate": 2},
        [("spec", "FieldValueInvalid", 'Invalid value: "object": failed rule: self.rate == 1.0')],
    ),
    (
        "messageExpression",
        {"rule": "self.rate < 10.0", "messageExpression": "'rate ' + string(self.rate) + ' is too high'"},
        {"rate": 12.5},
        [("spec", "FieldValueInvalid", 'Invalid value: "object": rate 12.5 is too high')],
    ),
    (
        "forbidden reason, bracket fieldPath",
        {
            "rule": "!has(self.burn)",
            "fieldPath": "['burn']",
            "reason": "FieldValueForbidden",
            "message": "no burn",
        },
        {"burn": 1},
        [("spec.burn", "FieldValueForbidden", "Forbidden: no burn")],
    ),
    (
        "transition rules are skipped",
        {"rule": "self.rate == oldSelf.rate", "message": "immutable"},
        {"rate": 2},
        [],
    ),
]

SPEC_WITH_RATES = {"rate": {"type": "number"}, "burn": {"type": "number"}}


@pytest.mark.parametrize(
    ("rule", "spec", "expected"), [c[1:] for c in RULE_CASES], ids=[c[0] for c in RULE_CASES]
)
def test_cel_rules(rule: dict[str, Any], spec: dict[str, Any], expected: list[tuple[str, str, str]]) -> None:
    schema = _root(SPEC_WITH_RATES, **{"x-kubernetes-validations": [rule]})
    assert _problems(schema, spec) == expected


ASCENDING = "self.map(t, t.percent).isSorted() && self.all(a, self.exists_one(b, b.percent == a.percent))"
THRESHOLDS = {
    "thresholds": {
        "type": "array",
        "maxItems": 20,
        "x-kubernetes-validations": [{"rule": ASCENDING, "message": "must be strictly ascending"}],
        "items": {"type": "object", "properties": {"percent": {"type": "number"}}},
    }
}


@pytest.mark.parametrize(
    ("percents", "ok"),
    [
        ([], True),
        ([50], True),
        ([50, 80, 100], True),
        ([80, 50], False),
        ([100, 100], False),
        ([50, 80, 60], False),
    ],
)
def test_list_rule_on_thresholds(percents: list[int], ok: bool) -> None:
    problems = _problems(_root(THRESHOLDS), {"thresholds": [{"percent": p} for p in percents]})
    expected = (
        []
        if ok
        else [("spec.thresholds", "FieldValueInvalid", 'Invalid value: "array": must be strictly ascending')]
    )
    assert problems == expected


@pytest.mark.parametrize(
    "rule",
    [
        "[1, 3, 2].sum() == 6",
        "[3, 1, 2].min() == 1 && [3, 1, 2].max() == 3",
        "['a', 'b', 'a'].indexOf('a') == 0 && ['a', 'b', 'a'].lastIndexOf('a') == 2",
        "[1, 2].indexOf(5) == -1",
        "[1.0, 2.0].isSorted() && !['b', 'a'].isSorted()",
    ],
)
def test_kubernetes_list_library(rule: str) -> None:
    schema = _root({}, **{"x-kubernetes-validations": [{"rule": rule}]})
    assert _problems(schema, {}) == []


def test_rule_that_cannot_be_evaluated_is_a_problem() -> None:
    schema = _root(SPEC_WITH_RATES, **{"x-kubernetes-validations": [{"rule": "self.missing > 1.0"}]})
    ((field, reason, message),) = _problems(schema, {"rate": 2})
    assert (field, reason) == ("spec", "FieldValueInvalid")
    assert message.startswith('Invalid value: "object": ')
    assert "missing" in message
    assert message.endswith("evaluating rule: self.missing > 1.0")


def test_blocking_problem_skips_cel_rules() -> None:
    schema = _root(
        {"rate": {"type": "number"}, "period": {"type": "string", "enum": ["Daily"]}},
        **{"x-kubernetes-validations": [{"rule": "self.rate < 1.0", "message": "rate too high"}]},
    )
    problems = CrdValidator(schema).validate({"spec": {"rate": 5, "period": "Hourly"}})
    assert [p.field for p in problems] == ["spec.period", "<nil>"]
    assert problems[-1] == NOT_CHECKED


def test_non_blocking_problem_keeps_cel_rules() -> None:
    schema = _root(
        {"rate": {"type": "number", "maximum": 2}},
        **{"x-kubernetes-validations": [{"rule": "self.rate < 1.0", "message": "rate too high"}]},
    )
    problems = CrdValidator(schema).validate({"spec": {"rate": 5}})
    assert [p.field for p in problems] == ["spec.rate", "spec"]


def _type_error(field: str, expected: str, actual: str) -> tuple[str, str, str]:
    quoted = f'"{actual}"'
    return (
        field,
        "FieldValueTypeInvalid",
        f"Invalid value: {quoted}: {field} in body must be of type {expected}: {quoted}",
    )


NOT_CHECKED_ROW = (NOT_CHECKED.field, NOT_CHECKED.reason, NOT_CHECKED.message)


@pytest.mark.parametrize(
    ("value", "actual"),
    [
        (False, "boolean"),
        (True, "boolean"),
        ("50,80", "string"),
        (80, "integer"),
        (0.5, "number"),
        ({"0": {"percent": 50}}, "object"),
    ],
)
def test_a_list_rule_is_not_run_on_a_value_that_is_no_list(value: Any, actual: str) -> None:
    """The rule maps over ``self``; cel-python raised TypeError on a boolean. The apiserver reports
    the type error and runs no rule after it (hasBlockingErr)."""
    problems = _problems(_root(THRESHOLDS), {"thresholds": value})
    assert problems == [_type_error("spec.thresholds", "array", actual), NOT_CHECKED_ROW]


def test_a_rule_on_the_parent_is_not_run_when_a_child_has_the_wrong_type() -> None:
    rule = {"rule": "self.rate < 10.0", "message": "rate too high"}
    schema = _root(SPEC_WITH_RATES, **{"x-kubernetes-validations": [rule]})
    assert _problems(schema, {"rate": "eleven"}) == [
        _type_error("spec.rate", "number", "string"),
        NOT_CHECKED_ROW,
    ]
    assert _problems(schema, {"rate": [11]}) == [_type_error("spec.rate", "number", "array"), NOT_CHECKED_ROW]


INT64_MAX = 2**63 - 1


@pytest.mark.parametrize(
    ("properties", "spec", "expected"),
    [
        # the apiserver decodes an integer literal outside int64 as a float64: a "number"
        ({"s": {"type": "string"}}, {"s": 10**20}, [_type_error("spec.s", "string", "number")]),
        ({"s": {"type": "string"}}, {"s": 5}, [_type_error("spec.s", "string", "integer")]),
        ({"i": {"type": "integer"}}, {"i": INT64_MAX}, []),
        ({"i": {"type": "integer"}}, {"i": -INT64_MAX - 1}, []),
        ({"i": {"type": "integer"}}, {"i": INT64_MAX + 1}, [_type_error("spec.i", "integer", "number")]),
        ({"i": {"type": "integer"}}, {"i": -INT64_MAX - 2}, [_type_error("spec.i", "integer", "number")]),
        # a float64 is an integer when whole and within 2^53 - 1 (go-openapi's IsFloat64AJSONInteger)
        ({"i": {"type": "integer"}}, {"i": 5.0}, []),
        ({"i": {"type": "integer"}}, {"i": float(2**53 - 1)}, []),
        ({"i": {"type": "integer"}}, {"i": float(2**53)}, [_type_error("spec.i", "integer", "number")]),
        ({"i": {"type": "integer"}}, {"i": 1.5}, [_type_error("spec.i", "integer", "number")]),
        (
            {"n": {"type": "number", "maximum": 1000}},
            {"n": 10**20},
            [
                (
                    "spec.n",
                    "FieldValueInvalid",
                    "Invalid value: 1e+20: spec.n in body should be less than or equal to 1000",
                )
            ],
        ),
        (
            {"n": {"type": "number", "maximum": 1000}},
            {"n": 10**400},  # past float64: Go's decoder refuses it; here it is +Inf, still refused
            [
                (
                    "spec.n",
                    "FieldValueInvalid",
                    "Invalid value: +Inf: spec.n in body should be less than or equal to 1000",
                )
            ],
        ),
    ],
    ids=[
        "int-beyond-int64-for-a-string",
        "int-for-a-string",
        "int64-max",
        "int64-min",
        "beyond-int64-max",
        "beyond-int64-min",
        "whole-float",
        "float-2^53-1",
        "float-2^53",
        "fraction",
        "beyond-int64-for-a-number",
        "beyond-float64-for-a-number",
    ],
)
def test_numbers_are_typed_as_the_apiserver_decodes_them(
    properties: dict[str, Any], spec: Any, expected: list[tuple[str, str, str]]
) -> None:
    assert _problems(_root(properties), spec) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5.0, []),  # a whole float64 the schema took as an integer is a CEL int
        (10**20, [_type_error("spec.i", "integer", "number"), NOT_CHECKED_ROW]),  # overflowed CEL's int
    ],
)
def test_a_rule_on_an_integer_sees_an_int(value: Any, expected: list[tuple[str, str, str]]) -> None:
    schema = _root({"i": {"type": "integer", "x-kubernetes-validations": [{"rule": "self == 5"}]}})
    assert _problems(schema, {"i": value}) == expected


def test_a_rule_that_fails_to_evaluate_is_named_by_its_message() -> None:
    """ruleErrorString: the rule's message when it has one, else the rule."""
    rule = {"rule": "self.burn / 0 > 1", "message": "burn too high"}
    schema = _root(SPEC_WITH_RATES | {"burn": {"type": "integer"}}, **{"x-kubernetes-validations": [rule]})
    ((field, reason, message),) = _problems(schema, {"rate": 2, "burn": 3})
    assert (field, reason) == ("spec", "FieldValueInvalid")
    assert message.startswith('Invalid value: "object": ')
    assert message.endswith(" evaluating rule: burn too high")


def test_a_rule_called_with_arguments_of_the_wrong_type_is_no_such_overload() -> None:
    schema = _root({"s": {"type": "string"}}, **{"x-kubernetes-validations": [{"rule": "self.s > 1"}]})
    assert _problems(schema, {"s": "x"}) == [
        (
            "spec",
            "FieldValueInvalid",
            "Invalid value: \"object\": 'no such overload': call arguments did not match a supported "
            "operator, function or macro signature for rule: self.s > 1",
        )
    ]


def test_a_message_expression_that_fails_falls_back_to_the_message() -> None:
    rule = {"rule": "self.rate < 1.0", "messageExpression": "'rate ' + self.rate", "message": "too high"}
    schema = _root(SPEC_WITH_RATES, **{"x-kubernetes-validations": [rule]})
    assert _problems(schema, {"rate": 2}) == [
        ("spec", "FieldValueInvalid", 'Invalid value: "object": too high')
    ]


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (False, "'no such overload': call arguments did not match"),  # cel-python raised TypeError
        (10**20, "evaluating rule: must be strictly ascending"),  # celtypes.IntType raised ValueError
    ],
)
def test_rule_set_check_never_raises(value: Any, detail: str) -> None:
    """Even handed a value the schema validation would have refused, ``RuleSet.check`` answers."""
    schema = THRESHOLDS["thresholds"]
    rules = RuleSet(schema)
    (failure,) = rules.check(schema["x-kubernetes-validations"], value, schema)
    assert failure.evaluation_error and failure.reason == "FieldValueInvalid"
    assert detail in failure.message


def test_invalid_cel_is_refused_when_the_validator_is_built() -> None:
    with pytest.raises(ValueError, match="invalid CEL"):
        CrdValidator(_root({}, **{"x-kubernetes-validations": [{"rule": "self.(("}]}))


def test_validate_custom_object_matches_the_validator_and_reuses_it() -> None:
    schema = _root({"n": NUMBER_GT_0})
    first = validate_custom_object(schema, {"spec": {"n": 0}})
    assert first == CrdValidator(schema).validate({"spec": {"n": 0}})
    assert validate_custom_object(schema, {"spec": {"n": 0}}) == first
    assert str(first[0]) == "spec.n: Invalid value: 0: spec.n in body should be greater than 0"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (5.0, "5"),
        (0.5, "0.5"),
        (123456.0, "123456"),
        (1e6, "1e+06"),
        (1.5e14, "1.5e+14"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (-2.25, "-2.25"),
    ],
)
def test_go_float(value: float, text: str) -> None:
    assert go_float(value) == text


def test_render_path() -> None:
    assert render_path(("spec", "thresholds", 1, "percent")) == "spec.thresholds[1].percent"
    assert render_path(()) == ""
