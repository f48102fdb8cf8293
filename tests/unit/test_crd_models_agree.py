"""The CRD (crds/costbudget.yaml) and the pydantic models accept and refuse the same CostBudgets.

Every CostBudget in examples/ is accepted by both; every file in tests/data/invalid/ is refused by
both, and both name the field given in its ``# expect: <field path>`` header.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from costwarden import models
from costwarden.crd import load_crd, version_schema
from costwarden.models import (
    ActionRecord,
    BudgetLedger,
    Condition,
    CostBudgetStatus,
    PodLedgerEntry,
    explain,
    parse_spec,
)
from costwarden.sim.crdvalidation import CrdValidator, FieldProblem, validate_custom_object

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted([*ROOT.glob("examples/*.yaml"), *ROOT.glob("examples/*.yml")])
INVALID = sorted((ROOT / "tests/data/invalid").glob("*.yaml"))
EXPECT = re.compile(r"^#\s*expect:\s*(\S+)\s*$", re.MULTILINE)


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return load_crd()


@pytest.fixture(scope="module")
def schema(crd: dict[str, Any]) -> dict[str, Any]:
    return version_schema(crd)


def _cost_budgets(path: Path) -> list[dict[str, Any]]:
    return [
        d
        for d in yaml.safe_load_all(path.read_text())
        if isinstance(d, dict) and d.get("kind") == "CostBudget"
    ]


def _example_budgets() -> Iterator[Any]:
    for path in EXAMPLES:
        for index, doc in enumerate(_cost_budgets(path)):
            yield pytest.param(doc, id=f"{path.name}#{index}")


def _model_problems(spec: Any) -> list[str]:
    try:
        parse_spec(spec)
    except ValidationError as exc:
        return explain(exc)
    return []


def _names(text: str, field: str) -> bool:
    """``text`` starts with ``field`` or mentions it as a whole path (not ``spec.limits``)."""
    return (
        text.startswith(f"{field}:")
        or re.search(rf"(?<![\w.\[]){re.escape(field)}(?![\w\[])", text) is not None
    )


def test_there_are_examples_and_invalid_cases() -> None:
    assert len(list(_example_budgets())) >= 5
    assert len(INVALID) >= 10


@pytest.mark.parametrize("budget", list(_example_budgets()))
def test_example_is_accepted_by_crd_and_model(schema: dict[str, Any], budget: dict[str, Any]) -> None:
    assert validate_custom_object(schema, budget) == []
    assert _model_problems(budget["spec"]) == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_says_what_it_guards_against(path: Path) -> None:
    header = path.read_text().split("\n", 1)[0]
    assert header.startswith("#"), "each example opens with a comment"
    assert "guards against" in path.read_text().lower()


def test_skypilot_task_is_not_a_kubernetes_object_but_labels_its_pods() -> None:
    task = yaml.safe_load((ROOT / "examples/skypilot-task.yaml").read_text())
    assert "kind" not in task
    assert task["resources"]["accelerators"] == "H100:8"
    labels = task["config"]["kubernetes"]["pod_config"]["metadata"]["labels"]
    assert labels == {"team": "research", "costwarden.dev/budget": "llama-sweep"}


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_is_refused_by_both_naming_the_field(schema: dict[str, Any], path: Path) -> None:
    text = path.read_text()
    expected = EXPECT.search(text)
    assert expected, f"{path.name} needs a '# expect: <field path>' header"
    field = expected.group(1)
    (budget,) = _cost_budgets(path)

    crd_problems = validate_custom_object(schema, budget)
    assert any(p.field == field for p in crd_problems), crd_problems

    model_problems = _model_problems(budget["spec"])
    assert model_problems, "the model accepted it"
    assert any(_names(line, field) for line in model_problems), model_problems


@pytest.mark.parametrize(
    ("spec", "field", "refused"),
    [
        ({"limit": Decimal("0.0000009999")}, "spec.limit", True),
        ({"limit": 1e-07}, "spec.limit", True),
        ({"limit": 5e-324}, "spec.limit", True),
        ({"limit": 0.000001}, "spec.limit", False),
        ({"limit": 0.0000010001}, "spec.limit", False),
        ({"limit": 1, "expectedHourlyRate": 9e-07}, "spec.expectedHourlyRate", True),
        ({"limit": 1, "expectedHourlyRate": 0.000001}, "spec.expectedHourlyRate", False),
    ],
)
def test_a_millionth_of_a_dollar_is_the_least_both_take_in_the_same_words(
    schema: dict[str, Any], spec: dict[str, Any], field: str, refused: bool
) -> None:
    """The operator's money has 6 places (models.PositiveMoney); the CRD's rule on limit and
    expectedHourlyRate refuses what it refuses, at the same field and in the same words."""
    crd_spec = {k: float(v) if isinstance(v, Decimal) else v for k, v in spec.items()}
    crd_problems = [str(p) for p in validate_custom_object(schema, {"spec": crd_spec})]
    model_problems = _model_problems(spec)
    if not refused:
        assert (crd_problems, model_problems) == ([], [])
        return
    assert crd_problems == [f'{field}: Invalid value: "number": {models.BELOW_A_MICRODOLLAR}']
    assert model_problems == [f"{field}: {models.BELOW_A_MICRODOLLAR}"]


@pytest.mark.parametrize("limit", [0, -1, 0.0])
def test_a_limit_of_zero_or_less_has_one_cause(schema: dict[str, Any], limit: float) -> None:
    """The rule leaves amounts <= 0 to exclusiveMinimum: one cause, not two."""
    (problem,) = validate_custom_object(schema, {"spec": {"limit": limit}})
    assert str(problem).endswith("spec.limit in body should be greater than 0")


@pytest.mark.parametrize(
    ("enum_path", "values"),
    [
        (("spec", "period"), [p.value for p in models.Period]),
        (("spec", "thresholds", "[]", "action"), [a.value for a in models.Action]),
        (("spec", "anomalies", "burnRate", "action"), [a.value for a in models.Action]),
        (("spec", "anomalies", "idleGpu", "action"), [a.value for a in models.Action]),
        (("status", "phase"), [p.value for p in models.Phase]),
        (("status", "actions", "[]", "action"), [a.value for a in models.Action]),
    ],
)
def test_enums_match_the_models(
    schema: dict[str, Any], enum_path: tuple[str, ...], values: list[str]
) -> None:
    node = schema
    for part in enum_path:
        node = node["items"] if part == "[]" else node["properties"][part]
    assert node["enum"] == values


def test_crd_names_match_the_contract(crd: dict[str, Any]) -> None:
    spec = crd["spec"]
    assert crd["metadata"]["name"] == f"{models.PLURAL}.{models.GROUP}"
    assert spec["group"] == models.GROUP
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == models.KIND
    assert spec["names"]["plural"] == models.PLURAL
    assert spec["names"]["singular"] == models.SINGULAR
    assert spec["names"]["shortNames"] == [models.SHORT_NAME]
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == (models.VERSION, True, True)
    assert version["subresources"] == {"status": {}}


def test_printer_columns(crd: dict[str, Any], schema: dict[str, Any]) -> None:
    columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    shown = [c["name"].upper() for c in columns if c.get("priority", 0) == 0]
    # the contract's columns in its order; VM SPEND (cloud VMs' part of SPEND) beside SPEND
    assert shown == ["SPEND", "VM SPEND", "LIMIT", "USED", "RATE/H", "PHASE", "EXHAUSTS", "AGE"]
    assert next(c for c in columns if c["name"] == "Exhausts")["type"] == "string"
    for column in columns:
        parts = column["jsonPath"].lstrip(".").split(".")
        if parts[0] == "metadata":
            continue
        node = schema
        for part in parts:
            node = node["properties"][part]
        assert node["type"] == column["type"], column


def _nodes(node: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), Mapping):
        yield from _nodes(node["additionalProperties"], f"{path}.*")
    if isinstance(node.get("items"), Mapping):
        yield from _nodes(node["items"], f"{path}[]")


def test_schema_is_structural(schema: dict[str, Any]) -> None:
    for path, node in _nodes(schema):
        assert node.get("type") or node.get("x-kubernetes-int-or-string"), f"{path or '<root>'} has no type"
        assert not node.get("x-kubernetes-preserve-unknown-fields"), f"{path} keeps unknown fields"
        assert "$ref" not in node and "definitions" not in node, path
        assert not ("properties" in node and "additionalProperties" in node), path
        assert not isinstance(node.get("additionalProperties"), bool), path
        if "exclusiveMinimum" in node:
            assert node["exclusiveMinimum"] is True and "minimum" in node, path
        if node.get("type") == "array" and node.get("x-kubernetes-validations"):
            assert "maxItems" in node, f"{path}: CEL on an unbounded list exceeds the cost budget"
    metadata = schema["properties"]["metadata"]
    assert metadata == {"type": "object"}


def test_every_default_is_valid_for_its_field(schema: dict[str, Any]) -> None:
    defaults = [(path, node) for path, node in _nodes(schema) if "default" in node]
    assert defaults
    for path, node in defaults:
        wrapper = {
            "type": "object",
            "properties": {"value": {k: v for k, v in node.items() if k != "default"}},
        }
        assert CrdValidator(wrapper).validate({"value": node["default"]}) == [], path


def test_cel_rules_compile(schema: dict[str, Any]) -> None:
    CrdValidator(schema)


def _full_status(phase: models.Phase, closed: Decimal) -> CostBudgetStatus:
    return CostBudgetStatus(
        phase=phase,
        spend=Decimal("412.0712345"),
        hourly_rate=Decimal("220.16"),
        percent_used=Decimal("82.41"),
        exhausts_at="2026-11-28T02:14:00Z",
        pods=8,
        gpus=16,
        idle_node_hourly_cost=Decimal("3.5"),
        last_evaluated="2026-11-27T10:00:00.123456+00:00",
        observed_generation=3,
        conditions=[
            Condition(
                type="Ready",
                status="True",
                reason="Evaluated",
                message="spend 412.07 of 500",
                last_transition_time="2026-11-27T09:00:00Z",
                observed_generation=3,
            ),
            Condition(
                type="Invalid",
                status="False",
                reason="SpecValid",
                last_transition_time="2026-11-27T09:00:00Z",
            ),
        ],
        actions=[
            ActionRecord(
                id="threshold/80/2026-11-01T00:00:00Z",
                time="2026-11-27T09:30:00Z",
                trigger="threshold 80%",
                action=models.Action.NOTIFY,
                targets=["slack:#gpu-spend", "webhook"],
                result="Done",
                message="notified",
                dryRun=False,
                attempts=1,
            ),
            ActionRecord(
                id="anomaly/burnRate", time="2026-11-27T09:31:00Z", trigger="burnRate", action="Kill"
            ),
        ],
        ledger=BudgetLedger(
            period_start="2026-11-01T00:00:00Z",
            closed_spend=closed,
            pods={
                "0b7c-uid": PodLedgerEntry(
                    spend=Decimal("12.5"), at="2026-11-27T09:59:00Z", name="llama-head"
                ),
                "1d2e-uid": PodLedgerEntry(
                    spend=Decimal("1E+2"), at="2026-11-27T09:59:00Z", baseline=Decimal("7")
                ),
            },
        ),
    )


@pytest.mark.parametrize("phase", list(models.Phase))
@pytest.mark.parametrize(
    "closed", [Decimal(0), Decimal("0.00000000"), Decimal("1234.567890"), Decimal("-3.2")]
)
def test_rendered_status_fits_the_status_schema(
    schema: dict[str, Any], phase: models.Phase, closed: Decimal
) -> None:
    status = _full_status(phase, closed).to_k8s()
    assert {"spend", "hourlyRate", "exhaustsAt", "conditions", "actions", "ledger"} <= set(status)
    budget = {
        "apiVersion": "costwarden.dev/v1alpha1",
        "kind": "CostBudget",
        "spec": {"limit": 500},
        "status": status,
    }
    assert validate_custom_object(schema, budget) == []


def test_empty_status_fits_the_status_schema(schema: dict[str, Any]) -> None:
    budget = {"spec": {"limit": 1}, "status": CostBudgetStatus().to_k8s()}
    assert validate_custom_object(schema, budget) == []


def test_status_schema_catches_a_bad_status(schema: dict[str, Any]) -> None:
    status = _full_status(models.Phase.OK, Decimal(1)).to_k8s()
    status["phase"] = "Broken"
    status["ledger"]["closedSpend"] = "twelve"
    problems = validate_custom_object(schema, {"spec": {"limit": 1}, "status": status})
    assert {p.field for p in problems} >= {"status.phase", "status.ledger.closedSpend"}
    assert all(isinstance(p, FieldProblem) for p in problems)
