"""Fuzzed CostBudget specs: valid ones with places broken (wrong types, negative, huge, NaN and
infinite numbers, numeric strings, odd unicode, unknown fields, thresholds out of order, bad
selectors, odd skypilotCluster and slurm filters).

The model reads a spec or raises ValidationError whose ``explain`` names the broken field; a
refused spec becomes an Invalid decision (phase Invalid, Ready False naming the field, nothing
crossed, the actions and the ledger untouched); an accepted one holds sane figures and compiles
into a coverage test. What the API server admits (the stand-in's CRD validation, after pruning
and defaulting) the model reads, and the reverse; but for a limit or expected rate below 0.000001,
which only the model refuses (models.PositiveMoney).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, reject

from tests.fuzz.checks import (
    StandInCrash,
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
    try:
        check_crd_and_model_agree(raw)
    except StandInCrash:
        reject()  # the stand-in's own fault: see the next test


@pytest.mark.xfail(
    strict=True,
    raises=StandInCrash,
    reason="costwarden.sim runs a CRD's CEL rules on values of the wrong type (the API server skips "
    "them after a type error) and raises instead of answering 422",
)
@pytest.mark.parametrize(
    "raw",
    [{"limit": 1, "thresholds": False}, {"limit": 1, "period": 10**20}],
    ids=["thresholds-a-boolean", "period-beyond-int64"],
)
def test_the_stand_in_answers_a_budget_of_wrong_types(raw: dict[str, Any]) -> None:
    """Found by the test above; the stand-in is not this suite's to fix, so kept here until it is."""
    _, _, problems = admitted(raw)
    assert problems


crd_schema()  # compiled once at import (CEL raises the recursion limit while compiling)
