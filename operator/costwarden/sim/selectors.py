"""``labelSelector`` and ``fieldSelector`` query strings, parsed and matched like the apiserver does."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_EXISTS = re.compile(rf"^(?P<key>{_KEY})$")
_NOT_EXISTS = re.compile(rf"^!\s*(?P<key>{_KEY})$")
_EQUALITY = re.compile(rf"^(?P<key>{_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>{_VALUE})$")
_SET = re.compile(rf"^(?P<key>{_KEY})\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_COMPARE = re.compile(rf"^(?P<key>{_KEY})\s*(?P<op>[<>])\s*(?P<value>-?\d+)$")


class SelectorError(ValueError):
    """The selector string does not parse; the message is what the apiserver would say."""


Requirement = Callable[[Mapping[str, str]], bool]


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _requirement(text: str) -> Requirement:
    if m := _NOT_EXISTS.match(text):
        key = m["key"]
        return lambda labels: key not in labels
    if m := _EXISTS.match(text):
        key = m["key"]
        return lambda labels: key in labels
    if m := _EQUALITY.match(text):
        key, value = m["key"], m["value"]
        if m["op"] == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if m := _SET.match(text):
        key = m["key"]
        values = frozenset(v.strip() for v in m["values"].split(",") if v.strip())
        if m["op"] == "notin":
            return lambda labels: labels.get(key) not in values
        return lambda labels: key in labels and labels[key] in values
    if m := _COMPARE.match(text):
        key, bound, greater = m["key"], int(m["value"]), m["op"] == ">"
        return lambda labels: _compare(labels.get(key), bound, greater)
    raise SelectorError(f"unable to parse requirement: {text!r}")


def _compare(value: str | None, bound: int, greater: bool) -> bool:
    try:
        number = int(value or "")
    except ValueError:
        return False
    return number > bound if greater else number < bound


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        return cls(tuple(_requirement(part) for part in _split_top_level(text or "")))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(req(labels) for req in self.requirements)


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """A field's value as field selectors compare it: strings as is, booleans lowercase, absent as ''."""
    if path == "source" and obj.get("kind") == "Event":
        path = "source.component"
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


@dataclass(frozen=True)
class FieldSelector:
    terms: tuple[tuple[str, bool, str], ...] = ()  # (field, equal?, value)

    @classmethod
    def parse(cls, text: str | None, allowed: frozenset[str] | None = None) -> FieldSelector:
        terms = []
        for raw in re.split(r"(?<!\\),", text or ""):
            part = raw.strip()
            if not part:
                continue
            m = re.match(r"^([^=!]+?)\s*(==|=|!=)\s*(.*)$", part)
            if m is None:
                raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
            field, op, value = m.group(1).strip(), m.group(2), _unescape(m.group(3).strip())
            if allowed is not None and field not in allowed:
                raise SelectorError(f"field label not supported: {field}")
            terms.append((field, op != "!=", value))
        return cls(tuple(terms))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all((field_value(obj, f) == v) == equal for f, equal, v in self.terms)

    def exact_name(self) -> str | None:
        """The name this selector pins (``metadata.name=x``), so callers can skip a full scan."""
        for field, equal, value in self.terms:
            if field == "metadata.name" and equal:
                return value
        return None


def label_selector_string(selector: Mapping[str, Any] | None) -> str:
    """A metav1.LabelSelector (matchLabels/matchExpressions) in query-string form, for ``/scale``."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)
