"""Which budgets the admission guard consults, also right after a restart."""

from pathlib import Path

from costwarden.models import CostBudgetStatus, Phase
from costwarden.operator.admission import budgets_of
from costwarden.operator.budgets import BudgetObject
from tests.unit.test_runtime import runtime

SPEC = {"limit": 100, "enforcement": {"blockNewPods": True}}


def stored(name: str, namespace: str = "research", phase: str = "Exceeded", spec=SPEC) -> BudgetObject:
    return BudgetObject(namespace, name, uid=f"uid-{name}", generation=1, spec=spec, status={"phase": phase})


def test_before_the_first_evaluation_the_stored_phase_counts(tmp_path: Path):
    rt = runtime(tmp_path)
    found = budgets_of(rt, "research", [stored("sweep"), stored("other-ns", namespace="prod")])
    assert [(name, phase) for name, _, phase in found] == [("sweep", Phase.EXCEEDED)]


def test_an_evaluated_budget_uses_the_live_phase_and_an_invalid_stored_spec_is_skipped(tmp_path: Path):
    rt = runtime(tmp_path)
    state = rt.budgets.state(("research", "sweep"), "uid-sweep", CostBudgetStatus(), {})
    state.compile(1, SPEC)
    state.replace_status(CostBudgetStatus(phase=Phase.OK))
    broken = stored("broken", spec={"limit": -1})
    found = budgets_of(rt, "research", [stored("sweep"), broken])
    assert [(name, phase) for name, _, phase in found] == [("sweep", Phase.OK)]
