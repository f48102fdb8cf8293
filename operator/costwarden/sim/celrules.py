"""CRD ``x-kubernetes-validations`` rules evaluated with cel-python, the apiserver's way.

``self`` is bound to the node's value typed as the apiserver types it (``number`` fields are
doubles even when written as integers, ``date-time`` strings are timestamps); Kubernetes' CEL list
library (``isSorted``, ``sum``, ``min``, ``max``, ``indexOf``, ``lastIndexOf``) is provided since
cel-python lacks it. Transition rules (``oldSelf``) need the stored object and are skipped.
``RuleSet.check`` never raises: a rule that cannot be evaluated (cel-python's CELEvalError, or an
exception of its own on a value of an unexpected type) is a failure in the apiserver's words.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import celpy
from celpy import celtypes
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError

_FIELD_PATH_STEP = re.compile(r"\.([A-Za-z_$][\w$-]*)|\[\s*'([^']*)'\s*\]|\[\s*\"([^\"]*)\"\s*\]")
_TRANSITION = re.compile(r"\b(oldSelf|optionalOldSelf)\b")


@dataclass(frozen=True)
class RuleFailure:
    """A rule that did not hold (or could not be evaluated) on one node."""

    path: tuple[str, ...]  # below the node: the rule's fieldPath
    reason: str  # cause type: the rule's reason, FieldValueInvalid by default
    message: str
    evaluation_error: bool = False


class RuleSet:
    """Every rule of one schema, compiled once."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self._env = celpy.Environment()
        self._programs = {text: self._compile(text) for text in _rule_texts(schema)}

    def __bool__(self) -> bool:
        return bool(self._programs)

    def _compile(self, text: str) -> celpy.Runner:
        try:
            return self._env.program(self._env.compile(text), functions=dict(K8S_LIST_FUNCTIONS))
        except CELParseError as exc:
            raise ValueError(f"invalid CEL expression {text!r}: {exc}") from exc

    def check(
        self, rules: list[Mapping[str, Any]], value: Any, schema: Mapping[str, Any]
    ) -> Iterator[RuleFailure]:
        """The failures of ``rules`` (one node's list) on ``value``, whose schema is ``schema``.

        Never raises: a rule that cannot be evaluated is a failure worded as the apiserver words
        it (pkg/apiserver/schema/cel/validation.go in apiextensions-apiserver): ``'no such
        overload': call arguments did not match ...`` for arguments of the wrong type, else
        ``<error> evaluating rule: <rule>``; ``<rule>`` is the rule's message when it has one."""
        try:
            activation = {"self": to_cel(value, schema)}
        except Exception as exc:  # a value no schema-valid object holds; refused, not crashed on
            for rule in rules:
                if rule["rule"] in self._programs:
                    yield _evaluation_failure(rule, exc)
            return
        for rule in rules:
            program = self._programs.get(rule["rule"])
            if program is None:  # a transition rule
                continue
            passed: Any
            try:
                passed = program.evaluate(activation)
            except Exception as exc:
                passed = exc
            if isinstance(passed, Exception):
                yield _evaluation_failure(rule, passed)
            elif not passed:
                path = field_path(rule.get("fieldPath", ""))
                yield RuleFailure(
                    path, rule.get("reason", "FieldValueInvalid"), self._message(rule, activation)
                )

    def _message(self, rule: Mapping[str, Any], activation: dict[str, Any]) -> str:
        expression = rule.get("messageExpression")
        if expression in self._programs:
            text: Any
            try:
                text = self._programs[expression].evaluate(activation)
            except Exception:
                text = None
            if isinstance(text, str) and text.strip():
                return str(text)
        return str(rule.get("message") or f"failed rule: {rule['rule']}")


def _evaluation_failure(rule: Mapping[str, Any], error: Exception) -> RuleFailure:
    """A rule that could not be evaluated: ``FieldValueInvalid`` at its node, as the apiserver has it."""
    named = str(rule.get("message") or rule["rule"]).strip()  # ruleErrorString
    reason = str(error.args[0] if isinstance(error, CELEvalError) and error.args else error)
    # cel-python says "no such overload" or "found no matching overload ...", or raises TypeError
    # (a macro over a value that is no list), where CEL's runtime says "no such overload"
    if isinstance(error, TypeError) or "no such overload" in reason or "no matching overload" in reason:
        detail = (
            "'no such overload': call arguments did not match a supported operator, function or "
            f"macro signature for rule: {named}"
        )
    else:
        detail = f"{reason} evaluating rule: {named}"
    return RuleFailure((), "FieldValueInvalid", detail, evaluation_error=True)


def _rule_texts(node: Any) -> Iterator[str]:
    """Every rule and messageExpression under ``node``, transition rules left out."""
    if isinstance(node, Mapping):
        for rule in node.get("x-kubernetes-validations", []):
            if not _TRANSITION.search(rule["rule"]):
                yield rule["rule"]
                if rule.get("messageExpression"):
                    yield rule["messageExpression"]
        for key, value in node.items():
            if key != "x-kubernetes-validations":
                yield from _rule_texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from _rule_texts(item)


def field_path(text: str) -> tuple[str, ...]:
    """A rule's ``fieldPath`` (``.limit``, ``.a.b``, ``['a.b']``) as path parts below the node."""
    return tuple(a or b or c for a, b, c in _FIELD_PATH_STEP.findall(text))


def to_cel(value: Any, schema: Mapping[str, Any]) -> Any:
    """A JSON value as the apiserver hands it to CEL, typed by its (structural) schema."""
    if isinstance(value, dict):
        properties, extra = schema.get("properties", {}), schema.get("additionalProperties")
        fallback = extra if isinstance(extra, Mapping) else {}
        return celtypes.MapType(
            {celtypes.StringType(k): to_cel(v, properties.get(k, fallback)) for k, v in value.items()}
        )
    if isinstance(value, list):
        items = schema.get("items")
        return celtypes.ListType([to_cel(v, items if isinstance(items, Mapping) else {}) for v in value])
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    declared = schema.get("x-k8s-type", schema.get("type"))
    if isinstance(value, float) and declared == "integer" and value.is_integer():
        return celtypes.IntType(int(value))  # a whole float64 the schema took as an integer
    if isinstance(value, float) or (isinstance(value, int) and declared == "number"):
        return celtypes.DoubleType(value)
    if isinstance(value, int):
        return celtypes.IntType(value)
    if isinstance(value, str) and schema.get("format") == "date-time":
        try:
            return celtypes.TimestampType(value)
        except ValueError:
            return celtypes.StringType(value)
    return celtypes.StringType(value) if isinstance(value, str) else None


def _index_of(seq: Any, item: Any) -> celtypes.IntType:
    if isinstance(seq, str):
        return celtypes.IntType(seq.find(item))
    return celtypes.IntType(seq.index(item) if item in seq else -1)


def _last_index_of(seq: Any, item: Any) -> celtypes.IntType:
    if isinstance(seq, str):
        return celtypes.IntType(seq.rfind(item))
    return celtypes.IntType(len(seq) - 1 - list(reversed(seq)).index(item) if item in seq else -1)


def _is_sorted(items: Any) -> celtypes.BoolType:
    return celtypes.BoolType(all(a <= b for a, b in itertools.pairwise(items)))


def _sum(items: Any) -> Any:
    return sum(items[1:], items[0]) if items else celtypes.IntType(0)


K8S_LIST_FUNCTIONS: Mapping[str, Callable[..., Any]] = MappingProxyType(
    {
        "isSorted": _is_sorted,
        "sum": _sum,
        "min": min,
        "max": max,
        "indexOf": _index_of,
        "lastIndexOf": _last_index_of,
    }
)
"""Kubernetes' CEL list library (k8s.io/apiserver/pkg/cel/library/lists.go)."""
