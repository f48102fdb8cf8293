"""Fuzzed CostBudget specs: valid ones with places broken (wrong types, negative, huge, NaN and
infinite numbers, numeric strings, odd unicode, unknown fields, thresholds out of order, bad
selectors, odd skypilotCluster and slurm filters).

The model reads a spec or raises ValidationError whose ``explain`` names the broken field; a
refused spec becomes an Invalid decision (phase Invalid, Ready False naming the field, nothing
crossed, the actions and the ledger untouched); an accepted one holds sane figures and compiles
into a coverage test. What the API server admits (the stand-in's CRD validation, after pruning
and defaulting) the model reads, and the reverse (a limit or expected rate below 0.000001 too: the
CRD's rule and models.PositiveMoney refuse it in the same words).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, reject

from tests.fuzz.checks import (
    admitted,
    check_crd_and_model_agree,
    check_spec,
    crd_schema,
    json_text,
)
from tests.fuzz.profile import fuzz
from tests.fuzz.strategies import Path_, specs, valid_specs


@fuzz(150)
@given(specs)
def test_a_spec_is_read_or_refused_naming_the_broken_field(case: tuple[Any, list[Path_]]) -> None:
    raw, places = case
    check_spec(raw, places)


@fuzz(60)
@given(valid_specs())
def test_every_valid_spec_is_read(raw: dict[str, Any]) -> None:
    assert check_spec(raw) is not None


@fuzz(80)
@given(specs)
def test_the_crd_and_the_model_accept_the_same_specs(case: tuple[Any, list[Path_]]) -> None:
    raw = case[0]
    if not json_text(raw):
        reject()  # no API server ever receives it
    check_crd_and_model_agree(raw)  # a StandInCrash (the stand-in raised) fails it too


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        (
            {"limit": 1, "thresholds": False},
            "spec.thresholds",
            'Invalid value: "boolean": spec.thresholds in body must be of type array: "boolean"',
        ),
        (
            {"limit": 1, "period": 10**20},  # beyond int64: the API server decodes it as a float64
            "spec.period",
            'Invalid value: "number": spec.period in body must be of type string: "number"',
        ),
    ],
    ids=["thresholds-a-boolean", "period-beyond-int64"],
)
def test_the_stand_in_answers_a_budget_of_wrong_types(raw: dict[str, Any], field: str, message: str) -> None:
    """Found by the test above: the stand-in ran the CRD's CEL rules on these values and raised.
    The API server checks types first and runs no rule after a type error; so does the stand-in."""
    _, _, problems = admitted(raw)
    assert f"{field}: {message}" in problems
    assert problems[-1].startswith("<nil>: ") and "some validation rules were not checked" in problems[-1]
    check_crd_and_model_agree(raw)


crd_schema()  # compiled once at import (CEL raises the recursion limit while compiling)
