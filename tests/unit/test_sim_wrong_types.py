"""The API stand-in (costwarden.sim) answers a CostBudget of wrongly typed values with 422 Invalid.

The real CRD (crds/costbudget.yaml, with its CEL rules) is served by a SimCluster; each budget is
sent as JSON text, as kubectl sends it. The API server checks the schema's types first and runs no
``x-kubernetes-validations`` rule after a type error: the answer is a Status naming the field, never
a 500. The stand-in used to run the rules anyway and raise (found by tests/fuzz).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from costwarden.crd import load_crd
from costwarden.models import BELOW_A_MICRODOLLAR
from costwarden.sim.cluster import SimCluster

BUDGETS = "/apis/costwarden.dev/v1alpha1/namespaces/default/costbudgets"
NOT_CHECKED = "some validation rules were not checked because the object was invalid"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with SimCluster() as sim:
        await sim.create(load_crd())
        async with aiohttp.ClientSession(sim.url) as client:
            yield client


async def _create(session: aiohttp.ClientSession, spec_json: str) -> tuple[int, dict[str, Any]]:
    head = '"apiVersion": "costwarden.dev/v1alpha1", "kind": "CostBudget", "metadata": {"name": "b"}'
    body = f'{{{head}, "spec": {spec_json}}}'
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    async with session.post(BUDGETS, data=body, headers=headers) as response:
        return response.status, json.loads(await response.text())


def _type_error(field: str, expected: str, actual: str) -> tuple[str, str, str]:
    message = f'Invalid value: "{actual}": {field} in body must be of type {expected}: "{actual}"'
    return field, "FieldValueTypeInvalid", message


WRONG_TYPES = [
    # the two the fuzz tests found: the thresholds rule mapped over false; 1e20 overflowed CEL's int
    ('{"limit": 1, "thresholds": false}', _type_error("spec.thresholds", "array", "boolean")),
    ('{"limit": 1, "period": 100000000000000000000}', _type_error("spec.period", "string", "number")),
    ('{"limit": "500"}', _type_error("spec.limit", "number", "string")),
    ('{"limit": true}', _type_error("spec.limit", "number", "boolean")),
    ('{"limit": 1, "thresholds": {"0": {"percent": 80}}}', _type_error("spec.thresholds", "array", "object")),
    (
        '{"limit": 1, "thresholds": [{"percent": "80", "action": "Notify"}, '
        '{"percent": 90, "action": "Kill"}]}',
        _type_error("spec.thresholds[0].percent", "number", "string"),
    ),
    (
        '{"limit": 1, "selector": {"matchExpressions": "team in (a)"}}',
        _type_error("spec.selector.matchExpressions", "array", "string"),
    ),
    (
        '{"limit": 1, "selector": {"matchExpressions": [{"key": "team", "operator": "In", "values": "a"}]}}',
        _type_error("spec.selector.matchExpressions[0].values", "array", "string"),
    ),
    (
        '{"limit": 1, "expectedHourlyRate": 1, "anomalies": {"burnRate": true}}',
        _type_error("spec.anomalies.burnRate", "object", "boolean"),
    ),
    (
        '{"limit": 1, "anomalies": {"idleGpu": {"belowPercent": 5, "forMinutes": 1e30}}}',
        _type_error("spec.anomalies.idleGpu.forMinutes", "integer", "number"),
    ),
    ('{"limit": 1, "anomalies": "none"}', _type_error("spec.anomalies", "object", "string")),
]


@pytest.mark.parametrize(("spec_json", "cause"), WRONG_TYPES, ids=[s for s, _ in WRONG_TYPES])
async def test_a_wrongly_typed_budget_is_invalid_naming_the_field(
    session: aiohttp.ClientSession, spec_json: str, cause: tuple[str, str, str]
) -> None:
    status, body = await _create(session, spec_json)
    assert status == 422, body
    assert (body["kind"], body["status"], body["reason"], body["code"]) == (
        "Status",
        "Failure",
        "Invalid",
        422,
    )
    field, reason, message = cause
    causes = [(c["field"], c["reason"], c["message"]) for c in body["details"]["causes"]]
    assert (field, reason, message) in causes
    assert causes[-1][0] == "<nil>" and NOT_CHECKED in causes[-1][2]  # no rule ran after the type error
    assert body["message"].startswith('CostBudget.costwarden.dev "b" is invalid: ')
    assert f"{field}: {message}" in body["message"]
    async with session.get(BUDGETS) as listed:  # nothing stored, and the stand-in still serves
        assert listed.status == 200 and (await listed.json())["items"] == []


@pytest.mark.parametrize(
    ("spec_json", "field"),
    [
        ('{"limit": 0.0000001}', "spec.limit"),
        ('{"limit": 5e-324, "period": "Daily"}', "spec.limit"),
        (
            '{"limit": 1, "expectedHourlyRate": 0.0000009, "anomalies": {"burnRate": {"multiplier": 2}}}',
            "spec.expectedHourlyRate",
        ),
    ],
)
async def test_an_amount_below_a_millionth_of_a_dollar_is_invalid_in_the_models_words(
    session: aiohttp.ClientSession, spec_json: str, field: str
) -> None:
    """The CRD's rule, run once the types are right, refuses what models.PositiveMoney refuses."""
    status, body = await _create(session, spec_json)
    assert status == 422, body
    causes = [(c["field"], c["reason"], c["message"]) for c in body["details"]["causes"]]
    assert causes == [(field, "FieldValueInvalid", f'Invalid value: "number": {BELOW_A_MICRODOLLAR}')]


@pytest.mark.parametrize("spec_json", ['{"limit": 0.000001}', '{"limit": 1, "expectedHourlyRate": 0.000001}'])
async def test_a_millionth_of_a_dollar_is_taken(session: aiohttp.ClientSession, spec_json: str) -> None:
    status, body = await _create(session, spec_json)
    assert status == 201, body
