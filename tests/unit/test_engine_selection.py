"""Which pods a budget covers: label selector semantics, namespace, SkyPilot cluster names."""

from __future__ import annotations

from typing import Any

import pytest

from costwarden.engine.selection import budget_covers, coverage, covered_pods, selector_matches
from costwarden.models import CostBudgetSpec, LabelSelector
from costwarden.records import PodRecord

LABELS = {"app": "train", "team": "llm", "skypilot-cluster-name": "llama-sweep-2ea4", "parent": "skypilot"}


def selector(raw: dict[str, Any]) -> LabelSelector:
    return LabelSelector.model_validate(raw)


def expression(key: str, operator: str, *values: str) -> dict[str, Any]:
    return {"matchExpressions": [{"key": key, "operator": operator, "values": list(values)}]}


@pytest.mark.parametrize(
    ("raw", "matches"),
    [
        pytest.param({}, True, id="empty-matches-all"),
        pytest.param({"matchLabels": {"app": "train"}}, True, id="matchLabels"),
        pytest.param(
            {"matchLabels": {"app": "train", "team": "vision"}}, False, id="matchLabels-all-must-hold"
        ),
        pytest.param({"matchLabels": {"missing": ""}}, False, id="matchLabels-empty-value-needs-the-key"),
        pytest.param(expression("app", "In", "eval", "train"), True, id="In"),
        pytest.param(expression("app", "In", "eval"), False, id="In-other-value"),
        pytest.param(expression("missing", "In", "x"), False, id="In-missing-key"),
        pytest.param(expression("app", "NotIn", "eval"), True, id="NotIn"),
        pytest.param(expression("app", "NotIn", "train"), False, id="NotIn-listed"),
        pytest.param(expression("missing", "NotIn", "x"), True, id="NotIn-missing-key-matches"),
        pytest.param(expression("parent", "Exists"), True, id="Exists"),
        pytest.param(expression("missing", "Exists"), False, id="Exists-missing"),
        pytest.param(expression("missing", "DoesNotExist"), True, id="DoesNotExist"),
        pytest.param(expression("parent", "DoesNotExist"), False, id="DoesNotExist-present"),
        pytest.param(
            {"matchLabels": {"team": "llm"}, **expression("app", "In", "serve")},
            False,
            id="labels-and-expressions-both-must-hold",
        ),
        pytest.param(
            {
                "matchExpressions": [
                    {"key": "app", "operator": "In", "values": ["train"]},
                    {"key": "team", "operator": "NotIn", "values": ["infra"]},
                    {"key": "parent", "operator": "Exists"},
                ]
            },
            True,
            id="several-expressions",
        ),
    ],
)
def test_selector_matches(raw: dict[str, Any], matches: bool) -> None:
    assert selector_matches(selector(raw), LABELS) is matches


def pod(
    labels: dict[str, str] | None = None,
    namespace: str = "research",
    skypilot_cluster: str | None = None,
    name: str = "p",
) -> PodRecord:
    return PodRecord(
        namespace=namespace,
        name=name,
        uid=f"uid-{name}",
        labels=tuple(sorted((labels or {}).items())),
        skypilot_cluster=skypilot_cluster,
    )


def spec(**raw: Any) -> CostBudgetSpec:
    return CostBudgetSpec.model_validate({"limit": 100, **raw})


@pytest.mark.parametrize(
    ("raw", "record", "covered"),
    [
        pytest.param({}, pod(), True, id="empty-selector-covers-the-namespace"),
        pytest.param({}, pod(namespace="other"), False, id="never-another-namespace"),
        pytest.param(
            {"selector": {"matchLabels": {"app": "train"}}}, pod({"app": "serve"}), False, id="selector"
        ),
        pytest.param(
            {"skypilotCluster": "Llama_Sweep"},
            pod({"skypilot-cluster-name": "llama-sweep-2ea4"}),
            True,
            id="typed-name-matches-cloud-label",
        ),
        pytest.param(
            {"skypilotCluster": "llama.sweep"},
            pod({"skypilot-cluster-name": "llama-sweep-2ea4"}),
            True,
            id="dots-become-dashes",
        ),
        pytest.param(
            {"skypilotCluster": "llama-sweep"},
            pod({"skypilot-cluster-name": "llama-sweep-2ea4deadbeef"}),
            False,
            id="suffix-must-be-the-user-hash",
        ),
        pytest.param(
            {"skypilotCluster": "llama-sweep"},
            pod({"skypilot-cluster-name": "llama-sweep-2ea4ab12"}),
            True,
            id="eight-hex-user-hash",
        ),
        pytest.param(
            {"skypilotCluster": "llama"},
            pod({"skypilot-cluster-name": "llama-sweep-2ea4"}),
            False,
            id="a-prefix-of-another-cluster-is-not-that-cluster",
        ),
        pytest.param(
            {"skypilotCluster": "llama-sweep"},
            pod({"skypilot-cluster-name": "llama-sweep-2EA4"}),
            False,
            id="hash-is-lowercase-hex",
        ),
        pytest.param(
            {"skypilotCluster": "llama-sweep-2ea4"},
            pod({"skypilot-cluster-name": "llama-sweep-2ea4"}),
            True,
            id="the-label-value-itself",
        ),
        pytest.param(
            {"skypilotCluster": "Llama_Sweep"},
            pod({"skypilot-cluster-name": "other-1234"}, skypilot_cluster="Llama_Sweep"),
            True,
            id="typed-name-from-annotation",
        ),
        pytest.param(
            {"skypilotCluster": "Llama_Sweep"}, pod({"app": "train"}), False, id="not-a-skypilot-pod"
        ),
        pytest.param(
            {"skypilotCluster": "Llama_Sweep", "selector": {"matchLabels": {"app": "train"}}},
            pod({"skypilot-cluster-name": "llama-sweep-2ea4", "app": "serve"}),
            False,
            id="cluster-and-selector-both-must-hold",
        ),
        pytest.param(
            # make_cluster_name_on_cloud(max_length=42): cut to 34, "-" + base36(md5(typed))[:2] + "-" + hash
            {"skypilotCluster": "Very.Long_Cluster.Name.For.The.Llama3.Sweep.Experiment"},
            pod({"skypilot-cluster-name": "very-long-cluster-name-for-the-lla-77-2ea4"}),
            True,
            id="long-name-truncated-with-name-hash",
        ),
        pytest.param(
            {"skypilotCluster": "Very.Long_Cluster.Name.For.The.Llama3.Sweep.Experiment"},
            pod({"skypilot-cluster-name": "very-long-cluster-name-for-the-lla-zz-2ea4"}),
            False,
            id="long-name-with-another-name-hash",
        ),
    ],
)
def test_budget_covers(raw: dict[str, Any], record: PodRecord, covered: bool) -> None:
    budget = spec(**raw)
    assert budget_covers(budget, "research", record) is covered
    compiled = coverage(budget, "research")
    assert compiled(record) is covered
    assert compiled(record) is covered  # second time from the memo
    assert covered_pods(budget, "research", [record]) == ([record] if covered else [])


def test_covered_pods_keeps_order_and_filters() -> None:
    pods = [
        pod({"app": "train"}, name="a"),
        pod({"app": "serve"}, name="b"),
        pod({"app": "train"}, namespace="other", name="c"),
        pod({"app": "train"}, name="d"),
    ]
    budget = spec(selector={"matchLabels": {"app": "train"}})
    assert [p.name for p in covered_pods(budget, "research", pods)] == ["a", "d"]
    assert [p.name for p in coverage(budget, "research").select(pods)] == ["a", "d"]


def test_memo_is_per_label_set_not_per_cluster_annotation() -> None:
    compiled = coverage(spec(skypilotCluster="Llama_Sweep"), "research")
    labels = {"skypilot-cluster-name": "other-1234"}
    assert compiled(pod(labels, skypilot_cluster="Llama_Sweep")) is True
    assert compiled(pod(labels, skypilot_cluster="Other")) is False
