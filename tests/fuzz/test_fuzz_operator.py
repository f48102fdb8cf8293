"""End to end: budgets the fuzz tests found invalid, applied to the stand-in (with a CRD that does
not validate the spec, as an old install might have), under the real operator. Each ends Invalid
with Ready False naming the field; none records an action or crosses a threshold, and no pod is
deleted, though every one of them would have killed the pods at 1 % were it valid. A valid budget
over the same pods shows the operator was evaluating all along.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from tests.component.conftest import load_crd
from tests.component.test_operator_spend import NS, events_with, seed_skypilot_cluster, status_of

_BASE: dict[str, Any] = {
    "limit": 1,
    "skypilotCluster": "llama-sweep",
    "selector": {"matchLabels": {"skypilot-cluster-name": "llama-sweep-2ea4"}},
    "thresholds": [{"percent": 1, "action": "Kill"}],
}
# (name, what the fuzzer broke, the field the condition must name)
INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("limit-numeric-string", {"limit": "1e3"}, "spec.limit"),
    (
        "thresholds-descending",
        {"thresholds": [{"percent": 80, "action": "Kill"}, {"percent": 1, "action": "Kill"}]},
        "spec.thresholds",
    ),
    (
        "in-without-values",
        {"selector": {"matchExpressions": [{"key": "team", "operator": "In"}]}},
        "spec.selector.matchExpressions[0]",
    ),
    (
        "idle-below-150",
        {"anomalies": {"idleGpu": {"belowPercent": 150, "forMinutes": 5, "action": "Kill"}}},
        "spec.anomalies.idleGpu.belowPercent",
    ),
    ("unknown-limits", {"limits": 5}, "spec.limits"),
    ("slurm-cluster-empty", {"slurm": {"cluster": ""}}, "spec.slurm.cluster"),
    ("dry-run-a-string", {"enforcement": {"dryRun": "false"}}, "spec.enforcement.dryRun"),
]


@pytest.fixture
def crd() -> dict[str, Any]:
    """The CRD as an older install might have it: spec not validated at all."""
    lax = load_crd()
    schema = lax["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["properties"]["spec"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return lax


def _budget(name: str, change: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(_BASE)
    spec.update(change)
    return {
        "apiVersion": "costwarden.dev/v1alpha1",
        "kind": "CostBudget",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def test_fuzz_found_invalid_budgets_end_invalid_naming_the_field_and_never_act(
    cluster, clock, start_operator
):
    pods = seed_skypilot_cluster(cluster, workers=1)
    for name, change, _ in INVALID:
        cluster.create(_budget(name, change))
    control = _budget("control", {"thresholds": [{"percent": 1, "action": "Notify"}]})
    cluster.create(control)
    start_operator()

    def settled() -> bool:
        invalid = all(status_of(cluster, name).get("phase") == "Invalid" for name, _, _ in INVALID)
        return invalid and status_of(cluster, "control").get("phase") in ("Warning", "Exceeded")

    cluster.wait_for(settled, timeout=30)
    clock.advance(timedelta(hours=100))  # far past every threshold of every budget
    cluster.wait_for(
        lambda: status_of(cluster, "control").get("lastEvaluated", "").startswith("2026-11-30"), timeout=30
    )

    for name, _, field in INVALID:
        status = status_of(cluster, name)
        assert status["phase"] == "Invalid", name
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec"), name
        assert field in ready["message"], (name, ready["message"])
        assert status.get("actions", []) == [], name
    assert status_of(cluster, "control")["phase"] == "Exceeded"
    crossed = {e["involvedObject"]["name"] for e in events_with(cluster, "ThresholdCrossed")}
    assert crossed == {"control"}
    left = {p["metadata"]["name"]: p for p in cluster.list("v1", "pods", namespace=NS)}
    assert sorted(left) == sorted(pods)
    assert not any(p["metadata"].get("deletionTimestamp") for p in left.values())
