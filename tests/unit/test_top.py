"""``costwarden top``'s pure rows: grouping and sorting pods, budget rows, latest actions."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import pytest
from rich.console import Console

from costwarden.records import PodRecord
from costwarden.top import (
    NONE,
    Snapshot,
    budget_row,
    budget_rows,
    group_pods,
    latest_actions,
    render,
)


def pod(
    name: str,
    *,
    namespace: str = "research",
    cluster: tuple[str, str] | None = None,
    user: str | None = None,
    spend: str | None = "1",
    rate: str = "0.5",
    gpus: int = 0,
    budgets: str | None = None,
    gpu_utilization: str | None = None,
) -> PodRecord:
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    if cluster is not None:
        labels["skypilot-cluster-name"] = cluster[1]
        annotations["skypilot-cluster-name"] = cluster[0]
    if user is not None:
        labels["skypilot-user"] = user.lower()
        annotations["skypilot-user"] = user
    if spend is not None:
        annotations["costwarden.dev/spend"] = spend
        annotations["costwarden.dev/rate"] = rate
        annotations["costwarden.dev/spend-at"] = "2026-11-26T10:00:00Z"
    if budgets is not None:
        annotations["costwarden.dev/budgets"] = budgets
    if gpu_utilization is not None:
        annotations["costwarden.dev/gpu-utilization"] = gpu_utilization
    resources = {"requests": {"nvidia.com/gpu": str(gpus)}} if gpus else {}
    return PodRecord.from_body(
        {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": f"uid-{namespace}-{name}",
                "labels": labels,
                "annotations": annotations,
            },
            "spec": {"containers": [{"name": "main", "resources": resources}]},
            "status": {"phase": "Running"},
        }
    )


SWEEP = ("lr-sweep", "lr-sweep-7c1e")
FINETUNE = ("finetune", "finetune-3b1d")

PODS = [
    pod(
        "lr-sweep-7c1e-head",
        cluster=SWEEP,
        user="alice",
        spend="40.5",
        rate="13.6",
        gpus=2,
        budgets="lr-sweep",
    ),
    pod(
        "lr-sweep-7c1e-worker1",
        cluster=SWEEP,
        user="alice",
        spend="40.25",
        rate="13.6",
        gpus=2,
        budgets="lr-sweep,research-monthly",
    ),
    pod("finetune-3b1d-head", cluster=FINETUNE, user="bob", spend="3.1", rate="0.48", gpus=1),
    pod("llm-serving-x", namespace="serving", spend="120", rate="35.1", gpus=8, budgets="llm-serving"),
    pod("not-priced", cluster=SWEEP, user="alice", spend=None, gpus=2),
]


def test_by_cluster_sums_the_pods_of_each_skypilot_cluster_costliest_first():
    rows = group_pods(PODS, "cluster")
    assert [r.key for r in rows] == [NONE, "lr-sweep", "finetune"]
    sweep = rows[1]
    assert sweep.pods == 2  # the unpriced pod is left out
    assert sweep.gpus == 4
    assert sweep.spend == Decimal("80.75")
    assert sweep.rate == Decimal("27.2")
    assert sweep.namespaces == ("research",)
    assert sweep.budgets == ("lr-sweep", "research-monthly")
    assert rows[0].namespaces == ("serving",)


def test_cluster_key_falls_back_to_the_label_when_the_annotation_is_missing():
    body_pod = PodRecord.from_body(
        {
            "metadata": {
                "name": "p",
                "namespace": "ns",
                "uid": "u",
                "labels": {"skypilot-cluster-name": "on-cloud-name"},
                "annotations": {
                    "costwarden.dev/spend": "1",
                    "costwarden.dev/spend-at": "2026-11-26T10:00:00Z",
                },
            }
        }
    )
    assert [r.key for r in group_pods([body_pod], "cluster")] == ["on-cloud-name"]


def test_by_user_and_by_namespace():
    assert [(r.key, r.spend) for r in group_pods(PODS, "user")] == [
        (NONE, Decimal(120)),
        ("alice", Decimal("80.75")),
        ("bob", Decimal("3.1")),
    ]
    by_namespace = group_pods(PODS, "namespace")
    assert [(r.key, r.pods, r.spend) for r in by_namespace] == [
        ("serving", 1, Decimal(120)),
        ("research", 3, Decimal("83.85")),
    ]


def test_by_pod_and_limit():
    rows = group_pods(PODS, "pod", limit=2)
    assert [r.key for r in rows] == ["serving/llm-serving-x", "research/lr-sweep-7c1e-head"]


def test_equal_spend_sorts_by_rate_then_key():
    pods = [
        pod("b", spend="5", rate="1"),
        pod("a", spend="5", rate="1"),
        pod("c", spend="5", rate="2"),
    ]
    assert [r.key for r in group_pods(pods, "pod")] == ["research/c", "research/a", "research/b"]


def budget(name: str, namespace: str = "research", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"limit": 250},
        "status": status,
    }


def test_budget_row_reads_status_and_tolerates_an_unevaluated_budget():
    row = budget_row(
        budget(
            "lr-sweep",
            spend=125.5,
            hourlyRate=41.28,
            percentUsed=50.2,
            phase="Warning",
            exhaustsAt="2026-11-26T14:00:00Z",
            pods=3,
            actions=[{"id": "threshold/50/x"}],
        )
    )
    assert (row.spend, row.limit, row.percent, row.rate) == (
        Decimal("125.5"),
        Decimal(250),
        Decimal("50.2"),
        Decimal("41.28"),
    )
    assert (row.phase, row.exhausts, row.pods, row.actions) == ("Warning", "2026-11-26T14:00:00Z", 3, 1)
    empty = budget_row({"metadata": {"name": "new", "namespace": "x"}, "spec": {"limit": 10}})
    assert (empty.spend, empty.percent, empty.phase, empty.exhausts) == (Decimal(0), Decimal(0), "-", "-")


def test_budget_rows_most_used_first():
    rows = budget_rows(
        [budget("a", percentUsed=10, spend=25), budget("b", percentUsed=90, spend=225), budget("c")]
    )
    assert [r.name for r in rows] == ["b", "a", "c"]


def test_latest_actions_newest_first_across_budgets():
    bodies = [
        budget(
            "lr-sweep",
            actions=[
                {
                    "id": "threshold/50/p",
                    "time": "2026-11-26T10:00:00Z",
                    "action": "Notify",
                    "result": "Done",
                },
                {
                    "id": "threshold/100/p",
                    "time": "2026-11-26T13:00:00Z",
                    "action": "Kill",
                    "result": "Pending",
                    "targets": ["Pod/research/a"],
                },
            ],
        ),
        budget(
            "llm",
            namespace="serving",
            actions=[
                {"id": "threshold/80/p", "time": "2026-11-26T11:00:00Z", "action": "Notify", "result": "Done"}
            ],
        ),
    ]
    rows = latest_actions(bodies)
    assert [(r.budget, r.id) for r in rows] == [
        ("lr-sweep", "threshold/100/p"),
        ("llm", "threshold/80/p"),
        ("lr-sweep", "threshold/50/p"),
    ]
    assert rows[0].targets == ("Pod/research/a",)
    assert len(latest_actions(bodies, limit=1)) == 1
    assert len(latest_actions(bodies, limit=None)) == 3


@pytest.mark.parametrize("by", ["cluster", "user", "namespace", "pod"])
def test_render_draws_budgets_and_groups(by):
    snapshot = Snapshot(
        budgets=(budget("lr-sweep", spend=125.5, percentUsed=50.2, phase="Warning", hourlyRate=41.28),),
        pods=tuple(PODS),
    )
    out = io.StringIO()
    Console(file=out, width=200).print(render(snapshot, by))
    text = out.getvalue()
    assert "lr-sweep" in text and "125.50" in text and "Warning" in text
    assert "120.00" in text  # the serving pod's spend, whatever the grouping


def test_gpu_utilisation_and_waste_are_shown_gpu_weighted():
    row = budget_row(budget("sweep", gpuUtilization=41.5, wastedSpend=12.25))
    assert (row.gpu_utilization, row.wasted) == (Decimal("41.5"), Decimal("12.25"))
    sweep = [
        pod("a", cluster=SWEEP, gpus=6, gpu_utilization="0"),
        pod("b", cluster=SWEEP, gpus=2, gpu_utilization="100"),
        pod("c", cluster=SWEEP, gpus=2),  # no sample written: not counted
    ]
    (group,) = group_pods(sweep, "cluster")
    assert group.gpu_utilization == Decimal(25)
    out = io.StringIO()
    Console(file=out, width=220).print(
        render(Snapshot(budgets=(budget("sweep", wastedSpend=12.25),), pods=tuple(sweep)), "cluster")
    )
    assert "25%" in out.getvalue() and "12.25" in out.getvalue()
