"""Kubernetes ``Status`` errors, shaped like the apiserver's so that kubectl and kopf read them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class Problem(Protocol):
    """One field-level problem (``crdvalidation.FieldProblem`` satisfies it)."""

    @property
    def field(self) -> str: ...

    @property
    def reason(self) -> str: ...

    @property
    def message(self) -> str: ...


_REASON_PREFIX = {
    "FieldValueInvalid": "Invalid value",
    "FieldValueRequired": "Required value",
    "FieldValueNotSupported": "Unsupported value",
    "FieldValueDuplicate": "Duplicate value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueTooLong": "Too long",
    "FieldValueTooMany": "Too many",
    "FieldValueNotFound": "Not found",
    "FieldValueTypeInvalid": "Invalid value",
    "InternalError": "Internal error",
}


class ApiError(Exception):
    """An error the API answers with; ``status()`` is the wire body."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(resource: str, name: str | None) -> dict[str, Any]:
    plural, _, group = resource.partition(".")
    details: dict[str, Any] = {"kind": plural}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    return details


def not_found(resource: str, name: str) -> ApiError:
    """``resource`` is the qualified plural, e.g. ``pods`` or ``costbudgets.costwarden.dev``."""
    return ApiError(404, "NotFound", f'{resource} "{name}" not found', _details(resource, name))


def no_such_resource() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(resource: str, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{resource} "{name}" already exists', _details(resource, name))


def conflict(resource: str, name: str, why: str | None = None) -> ApiError:
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    message = f'Operation cannot be fulfilled on {resource} "{name}": {why}'
    return ApiError(409, "Conflict", message, _details(resource, name))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unprocessable(message: str) -> ApiError:
    """A 422 without field causes (failed JSON-patch ``test``, unappliable patches)."""
    return ApiError(422, "Invalid", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def forbidden(resource: str, name: str, why: str) -> ApiError:
    message = f'{resource} "{name}" is forbidden: {why}'
    return ApiError(403, "Forbidden", message, _details(resource, name))


def method_not_allowed(verb: str) -> ApiError:
    return ApiError(
        405, "MethodNotAllowed", f"the server does not allow this method on the requested resource ({verb})"
    )


def unsupported_media_type(accepted: Sequence[str]) -> ApiError:
    message = "the body of the request was in an unknown format - accepted media types include: " + ", ".join(
        accepted
    )
    return ApiError(415, "UnsupportedMediaType", message)


def problem_body(problem: Problem) -> str:
    """The part after ``field:`` in a field error: ``Invalid value: 0: must be greater than 0``."""
    prefix = _REASON_PREFIX.get(problem.reason)
    if prefix is None or problem.message.startswith(prefix):
        return problem.message
    return f"{prefix}: {problem.message}"


def invalid(kind: str, group: str, name: str, problems: Sequence[Problem]) -> ApiError:
    """422 Invalid with ``causes``, worded like ``CostBudget.costwarden.dev "x" is invalid: ...``."""
    qualified = f"{kind}.{group}" if group else kind
    texts = [f"{p.field}: {problem_body(p)}" if p.field else problem_body(p) for p in problems]
    aggregate = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    details: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "causes": [{"reason": p.reason, "message": problem_body(p), "field": p.field} for p in problems],
    }
    if group:
        details["group"] = group
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {aggregate}', details)
