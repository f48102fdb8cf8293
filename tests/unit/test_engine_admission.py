"""The admission guard: which exhausted budget refuses a new pod, and what it tells the user."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from costwarden.engine.admission import blocking_budget, refusal_message
from costwarden.models import CostBudgetSpec, Period, Phase
from costwarden.records import PodRecord
from tests.shapes import skypilot_pod

NS = "research"
PROTECTED = frozenset({"kube-system", "costwarden-system"})


def spec(block: bool = True, **raw: Any) -> CostBudgetSpec:
    return CostBudgetSpec.model_validate(
        {"limit": 500, "period": "Monthly", "enforcement": {"blockNewPods": block}, **raw}
    )


def relaunched_head(namespace: str = NS, cluster: str = "llama-sweep-2ea4") -> PodRecord:
    """SkyPilot's managed-job recovery recreating the head it lost (no uid yet: being created)."""
    body = skypilot_pod(cluster, "llama-sweep", namespace=namespace, node="")
    body["metadata"]["labels"]["team"] = "research"
    return PodRecord.from_body(body)


EXCEEDED_MESSAGE = (
    "CostBudget research/llama-sweep is Exceeded; raise spec.limit "
    "(kubectl edit costbudget llama-sweep -n research) or wait for the next period"
)


def test_exceeded_budget_refuses_the_relaunch() -> None:
    budgets = [("llama-sweep", spec(selector={"matchLabels": {"team": "research"}}), Phase.EXCEEDED)]
    assert blocking_budget(relaunched_head(), budgets, PROTECTED) == ("llama-sweep", EXCEEDED_MESSAGE)


def test_enforced_budget_refuses_too() -> None:
    found = blocking_budget(relaunched_head(), [("llama-sweep", spec(), Phase.ENFORCED)], PROTECTED)
    assert found is not None
    assert found[1].startswith("CostBudget research/llama-sweep is Enforced; raise spec.limit")


@pytest.mark.parametrize("phase", [None, Phase.OK, Phase.WARNING, Phase.INVALID])
def test_budget_that_is_not_exhausted_lets_the_pod_in(phase: Phase | None) -> None:
    assert blocking_budget(relaunched_head(), [("llama-sweep", spec(), phase)], PROTECTED) is None


def test_without_block_new_pods_nothing_is_refused() -> None:
    budgets = [("llama-sweep", spec(block=False), Phase.EXCEEDED)]
    assert blocking_budget(relaunched_head(), budgets, PROTECTED) is None


@pytest.mark.parametrize(
    "raw",
    [
        {"selector": {"matchLabels": {"team": "infra"}}},
        {"selector": {"matchExpressions": [{"key": "parent", "operator": "DoesNotExist"}]}},
        {"skypilotCluster": "mistral-eval"},
    ],
)
def test_budget_that_does_not_cover_the_pod_lets_it_in(raw: dict[str, Any]) -> None:
    budgets = [("other", spec(**raw), Phase.EXCEEDED)]
    assert blocking_budget(relaunched_head(), budgets, PROTECTED) is None


def test_skypilot_cluster_budget_refuses_its_own_cluster() -> None:
    budgets = [("llama-sweep", spec(skypilotCluster="llama-sweep"), Phase.EXCEEDED)]
    assert blocking_budget(relaunched_head(), budgets, PROTECTED) == ("llama-sweep", EXCEEDED_MESSAGE)


def test_first_blocking_budget_by_name_wins() -> None:
    budgets = [
        ("zz-team", spec(), Phase.EXCEEDED),
        ("aa-open", spec(block=False), Phase.EXCEEDED),
        ("mm-team", spec(), Phase.ENFORCED),
        ("bb-fine", spec(), Phase.WARNING),
    ]
    found = blocking_budget(relaunched_head(), budgets, PROTECTED)
    assert found is not None
    assert found[0] == "mm-team"


def test_protected_namespace_is_never_blocked() -> None:
    pod = relaunched_head(namespace="kube-system")
    assert blocking_budget(pod, [("all", spec(), Phase.EXCEEDED)], PROTECTED) is None


def test_lifetime_budget_message_has_no_next_period() -> None:
    message = refusal_message(NS, "llama-sweep", Phase.EXCEEDED, Period.LIFETIME)
    assert message == (
        "CostBudget research/llama-sweep is Exceeded; raise spec.limit "
        "(kubectl edit costbudget llama-sweep -n research)"
    )


@given(
    budgets=st.lists(
        st.tuples(
            st.text(alphabet="abcdefgh-", min_size=1, max_size=6),
            st.booleans(),
            st.sampled_from([None, *Phase]),
        ),
        max_size=6,
    )
)
def test_blocks_exactly_when_some_budget_blocks(budgets: list[tuple[str, bool, Phase | None]]) -> None:
    specs = {True: spec(block=True), False: spec(block=False)}
    given_budgets = [(name, specs[block], phase) for name, block, phase in budgets]
    found = blocking_budget(relaunched_head(), given_budgets, PROTECTED)
    blocking = sorted(
        name for name, block, phase in budgets if block and phase in (Phase.EXCEEDED, Phase.ENFORCED)
    )
    assert (found[0] if found else None) == (blocking[0] if blocking else None)
    assert blocking_budget(relaunched_head("kube-system"), given_budgets, PROTECTED) is None
