"""``costwarden top``'s pure rows: grouping and sorting pods, budget rows, latest actions."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import pytest
from rich.console import Console

from costwarden.models import CostBudgetStatus
from costwarden.operator.spendbook import SpendBook
from costwarden.pricing import LiveQuote, NodeFacts, PriceBook, RateFactor, load_bundled_catalog
from costwarden.records import NodeRecord, PodRecord
from costwarden.top import (
    NONE,
    Snapshot,
    budget_row,
    budget_rows,
    group_pods,
    latest_actions,
    node_prices,
    node_rate,
    price_kind,
    render,
)
from tests import shapes


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


def vm_budget(name: str, cluster: str | None, **status: Any) -> dict[str, Any]:
    body = budget(name, **status)
    if cluster is not None:
        body["spec"]["skypilotCluster"] = cluster
    return body


def test_budget_row_reads_the_vms_and_vm_spend_of_a_budget_that_names_a_cluster():
    row = budget_row(vm_budget("pretrain", "llama-pretrain", spend=200.5, vms=2, vmSpend=66.25))
    assert (row.vms, row.vm_spend, row.spend) == (2, Decimal("66.25"), Decimal("200.5"))
    # its VMs terminated: none live, their spend stays
    gone = budget_row(vm_budget("pretrain", "llama-pretrain", vms=0, vmSpend=260.89))
    assert (gone.vms, gone.vm_spend) == (0, Decimal("260.89"))
    # names a cluster under --cloud that never ran on VMs: zero, not unknown
    idle = budget_row(vm_budget("pretrain", "llama-pretrain", vms=0, vmSpend=0))
    assert (idle.vms, idle.vm_spend) == (0, Decimal(0))


@pytest.mark.parametrize(
    ("cluster", "status"),
    [
        ("llama-pretrain", {"spend": 10}),  # the operator watches no cloud: it writes neither
        (None, {"spend": 10}),
        (None, {"spend": 10, "vms": 0, "vmSpend": 0}),  # --cloud, but no cluster named: covers no VM
    ],
)
def test_budget_row_has_no_vm_figures_where_the_budget_cannot_have_vms(cluster, status):
    row = budget_row(vm_budget("b", cluster, **status))
    assert (row.vms, row.vm_spend) == (None, None)


def test_budget_row_keeps_vm_figures_the_status_holds_though_the_spec_names_no_cluster():
    """A budget whose skypilotCluster was removed keeps its VMs' spend in its ledger this period."""
    row = budget_row(vm_budget("b", None, vms=0, vmSpend=12.5))
    assert (row.vms, row.vm_spend) == (0, Decimal("12.5"))


def test_render_shows_vms_and_vm_spend_columns_with_a_dash_where_there_are_none():
    bodies = (
        vm_budget(
            "pretrain", "llama-pretrain", spend=394.74, percentUsed=112.8, pods=0, vms=2, vmSpend=260.89
        ),
        vm_budget("sweep", None, spend=125.5, percentUsed=50.2, pods=4, vms=0, vmSpend=0),
        vm_budget("old", "finetune", spend=3, percentUsed=1, pods=1),  # no --cloud
        vm_budget("killed", "eval", spend=99, percentUsed=99, pods=0, vms=0, vmSpend=98.5),
    )
    out = io.StringIO()
    Console(file=out, width=240).print(render(Snapshot(budgets=bodies, pods=()), "cluster"))
    lines = out.getvalue().splitlines()
    header = next(line for line in lines if "NAMESPACE" in line and "PHASE" in line)
    cells = [c.strip() for c in header.strip("│┃ ").split("┃")]
    assert cells[-3:] == ["PODS", "VMS", "VM SPEND"]

    def row(name: str) -> list[str]:
        line = next(line for line in lines if f" {name} " in line)
        return [c.strip() for c in line.strip("│┃ ").split("│")]

    assert row("pretrain")[-3:] == ["0", "2", "260.89"]
    assert row("pretrain")[2] == "394.74"  # SPEND is pods and VMs together
    assert row("sweep")[-3:] == ["4", "-", "-"]
    assert row("old")[-3:] == ["1", "-", "-"]
    assert row("killed")[-3:] == ["0", "0", "98.50"]  # its VMs terminated, their spend stays


def slurm_budget(
    name: str, slurm: dict[str, str] | None, cluster: str | None = None, **status: Any
) -> dict[str, Any]:
    body = vm_budget(name, cluster, **status)
    if slurm is not None:
        body["spec"]["slurm"] = slurm
    return body


def test_budget_row_reads_the_slurm_jobs_and_slurm_spend_of_a_budget_that_covers_jobs():
    row = budget_row(slurm_budget("hpc", {"account": "nlp"}, spend=95.5, slurmJobs=2, slurmSpend=80.25))
    assert (row.slurm_jobs, row.slurm_spend, row.spend) == (2, Decimal("80.25"), Decimal("95.5"))
    assert (row.vms, row.vm_spend) == (None, None)  # the VM columns keep their own rule
    # its jobs cancelled: none live, their spend stays
    gone = budget_row(slurm_budget("hpc", {"account": "nlp"}, slurmJobs=0, slurmSpend=122.05))
    assert (gone.slurm_jobs, gone.slurm_spend) == (0, Decimal("122.05"))
    # slurm: {} covers every job of every cluster: zero, not unknown
    every = budget_row(slurm_budget("all", {}, slurmJobs=0, slurmSpend=0))
    assert (every.slurm_jobs, every.slurm_spend) == (0, Decimal(0))
    # a budget naming a SkyPilot cluster covers its job on Slurm: zero, not unknown
    sky = budget_row(slurm_budget("sky", None, "llama-pretrain", slurmJobs=0, slurmSpend=0, vms=0, vmSpend=0))
    assert (sky.slurm_jobs, sky.slurm_spend, sky.vms, sky.vm_spend) == (0, Decimal(0), 0, Decimal(0))


@pytest.mark.parametrize(
    ("slurm", "cluster", "status"),
    [
        ({"account": "nlp"}, None, {"spend": 10}),  # the operator reads no Slurm: it writes neither
        (None, "llama-pretrain", {"spend": 10}),
        (None, None, {"spend": 10}),
        (None, None, {"spend": 10, "slurmJobs": 0, "slurmSpend": 0}),  # --slurm, but it covers no job
    ],
)
def test_budget_row_has_no_slurm_figures_where_the_budget_cannot_have_jobs(slurm, cluster, status):
    row = budget_row(slurm_budget("b", slurm, cluster, **status))
    assert (row.slurm_jobs, row.slurm_spend) == (None, None)


def test_budget_row_keeps_slurm_figures_the_status_holds_though_the_spec_covers_no_job():
    """A budget whose spec.slurm was removed keeps its jobs' spend in its ledger this period."""
    row = budget_row(slurm_budget("b", None, slurmJobs=0, slurmSpend=7.5))
    assert (row.slurm_jobs, row.slurm_spend) == (0, Decimal("7.5"))


def budgets_text(bodies: tuple[dict[str, Any], ...]) -> list[str]:
    out = io.StringIO()
    Console(file=out, width=260).print(render(Snapshot(budgets=bodies, pods=()), "cluster"))
    return out.getvalue().splitlines()


def header_cells(lines: list[str]) -> list[str]:
    header = next(line for line in lines if "NAMESPACE" in line and "PHASE" in line)
    return [c.strip() for c in header.strip("│┃ ").split("┃")]


def test_render_shows_slurm_columns_with_a_dash_where_a_budget_covers_no_job():
    bodies = (
        slurm_budget(
            "hpc",
            {"cluster": "hpc", "account": "nlp"},
            spend=122.05,
            percentUsed=101.7,
            pods=0,
            slurmJobs=0,
            slurmSpend=122.05,
        ),
        slurm_budget(
            "gpu", {"partition": "gpu"}, spend=30, percentUsed=30, pods=0, slurmJobs=3, slurmSpend=30
        ),
        slurm_budget(
            "pretrain",
            None,
            "llama-pretrain",
            spend=394.74,
            percentUsed=112.8,
            pods=0,
            vms=2,
            vmSpend=260.89,
            slurmJobs=0,
            slurmSpend=0,
        ),
        slurm_budget(
            "sweep", None, spend=125.5, percentUsed=50.2, pods=4, vms=0, vmSpend=0, slurmJobs=0, slurmSpend=0
        ),
    )
    lines = budgets_text(bodies)
    assert header_cells(lines)[-5:] == ["PODS", "VMS", "VM SPEND", "SLURM JOBS", "SLURM SPEND"]

    def row(name: str) -> list[str]:
        line = next(line for line in lines if f" {name} " in line)
        return [c.strip() for c in line.strip("│┃ ").split("│")]

    assert row("hpc")[2] == "122.05"  # SPEND is pods, VMs and jobs together
    assert row("hpc")[-5:] == ["0", "-", "-", "0", "122.05"]  # its jobs cancelled, their spend stays
    assert row("gpu")[-2:] == ["3", "30.00"]
    assert row("pretrain")[-4:] == ["2", "260.89", "0", "0.00"]
    assert row("sweep")[-4:] == ["-", "-", "-", "-"]


def test_render_leaves_the_slurm_columns_out_where_no_budget_has_slurm_figures():
    """Without --slurm every cell would be '-': the table keeps its width."""
    bodies = (
        slurm_budget("hpc", {"account": "nlp"}, spend=3, percentUsed=1, pods=0),  # no --slurm
        vm_budget(
            "pretrain", "llama-pretrain", spend=394.74, percentUsed=112.8, pods=0, vms=2, vmSpend=260.89
        ),
    )
    lines = budgets_text(bodies)
    assert header_cells(lines)[-3:] == ["PODS", "VMS", "VM SPEND"]
    assert not any("SLURM" in line for line in lines)


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


# ---- node prices (status.nodePrices, as the operator publishes them)

P5, T4 = "ip-10-0-1-10.ec2.internal", "aks-gpuspot-31415926-vmss000000"
BILLED = "billing: 312 reconciled aws p5.48xlarge on-demand node-hours through 2026-11-26T10:00:00Z"


def published(book: PriceBook, *bodies: dict[str, Any]) -> list[dict[str, Any]]:
    """``status.nodePrices`` for these nodes, made as the operator makes it (spend book, status)."""
    nodes = {body["metadata"]["name"]: NodeRecord.from_body(body) for body in bodies}
    spend = SpendBook()
    spend.price_nodes(nodes, book)
    return list(CostBudgetStatus(node_prices=spend.price_notes(nodes)).to_k8s()["nodePrices"])


def live_azure(facts: NodeFacts) -> LiveQuote | None:
    if facts.cloud != "azure":
        return None
    return LiveQuote(Decimal("0.0871"), "azure retail prices eastus (fetched 2026-12-01T05:00Z)")


def billed(facts: NodeFacts) -> RateFactor | None:
    return RateFactor(Decimal("0.7012"), BILLED) if facts.cloud == "aws" else None


BOOK = PriceBook(load_bundled_catalog(), live=live_azure, factors=billed)
P5_BILLED = round(BOOK.price(NodeRecord.from_body(shapes.eks_p5_node(P5))).hourly, 4)  # 55.04 x 0.7012


def test_node_prices_list_each_node_once_across_budgets_with_where_its_price_came_from():
    p5, t4 = shapes.eks_p5_node(P5), shapes.aks_t4_spot_node(T4)
    pinned = shapes.eks_p5_node("ip-10-0-1-11.ec2.internal")
    pinned["metadata"]["annotations"] = {"costwarden.dev/hourly-price": "30"}
    bodies = [
        budget("sweep", lastEvaluated="2026-11-26T10:00:05Z", nodePrices=published(BOOK, p5, t4)),
        budget(
            "serving", "prod", lastEvaluated="2026-11-26T10:00:03Z", nodePrices=published(BOOK, p5, pinned)
        ),
        budget("new"),  # not evaluated yet: no nodePrices
    ]
    rows = node_prices(bodies)
    assert [(r.name, r.rate, r.kind, r.factor) for r in rows] == [
        (P5, P5_BILLED, "catalog", Decimal("0.7012")),
        ("ip-10-0-1-11.ec2.internal", Decimal(30), "annotation", None),
        (T4, Decimal("0.0871"), "live", None),
    ]
    assert rows[0].budgets == ("prod/serving", "research/sweep")  # seen by both, listed once
    assert rows[2].budgets == ("research/sweep",)
    assert rows[0].source.startswith("catalog: aws p5.48xlarge us-east-1 on-demand")
    assert rows[0].source.endswith(f"x 0.7012 ({BILLED})")
    assert rows[2].source == "live: azure retail prices eastus (fetched 2026-12-01T05:00Z)"
    assert [r.name for r in node_prices(bodies, limit=1)] == [P5]


def test_a_node_priced_differently_by_two_budgets_shows_the_latest_evaluation():
    p5 = shapes.eks_p5_node(P5)
    with_factor, listed = published(BOOK, p5), published(PriceBook(load_bundled_catalog()), p5)

    def both(a_at: str, b_at: str) -> list[dict[str, Any]]:
        return [
            budget("a", lastEvaluated=a_at, nodePrices=with_factor),
            budget("b", lastEvaluated=b_at, nodePrices=listed),
        ]

    [row] = node_prices(both("2026-11-26T10:00:09Z", "2026-11-26T10:00:05Z"))
    assert (row.rate, row.factor, row.budgets) == (P5_BILLED, Decimal("0.7012"), ("research/a", "research/b"))
    [row] = node_prices(both("2026-11-26T10:00:01Z", "2026-11-26T10:00:05Z"))
    assert (row.rate, row.factor) == (Decimal(str(listed[0]["hourlyRate"])), None)


@pytest.mark.parametrize(
    ("source", "kind", "factor"),
    [
        ("live: aws pricing get_products us-east-1 (fetched 2026-12-01T05:00Z)", "live", None),
        (
            f"catalog: gcp a3-highgpu-8g us-central1 spot (x, 2026-07-20) x 1.0500 ({BILLED})",
            "catalog",
            "1.0500",
        ),
        ("overrides:prices.yaml key p5.48xlarge", "overrides", None),
        ("overrides:prices.yaml gpuModels H100; cpu/ram at defaults: opencost", "overrides", None),
        ("annotation costwarden.dev/hourly-price", "annotation", None),
        (f"defaults: opencost x 0.9 ({BILLED})", "defaults", "0.9"),
        ("", "-", None),
    ],
)
def test_price_kind_reads_the_sources_first_word_and_the_factor(source, kind, factor):
    assert price_kind(source) == (kind, None if factor is None else Decimal(factor))


def test_render_draws_node_prices_once_with_rate_source_and_factor():
    bodies = (
        budget("sweep", nodePrices=published(BOOK, shapes.eks_p5_node(P5), shapes.aks_t4_spot_node(T4))),
        budget("other", nodePrices=published(BOOK, shapes.eks_p5_node(P5))),
    )
    out = io.StringIO()
    Console(file=out, width=260).print(render(Snapshot(budgets=bodies, pods=()), "cluster"))
    text = out.getvalue()
    assert "Node prices" in text
    lines = [line for line in text.splitlines() if P5 in line]
    assert len(lines) == 1  # one row, though two budgets list it
    assert node_rate(P5_BILLED) in lines[0] and "catalog" in lines[0] and "x0.7012" in lines[0]
    assert "research/other,research/sweep" in lines[0]
    [t4] = [line for line in text.splitlines() if T4 in line]
    assert "0.0871/h" in t4 and " live " in t4 and "live: azure retail prices eastus" in t4
    bare = io.StringIO()
    Console(file=bare, width=260).print(render(Snapshot(budgets=(budget("x"),), pods=()), "cluster"))
    assert "Node prices" not in bare.getvalue()


def test_node_rate_keeps_up_to_four_places():
    assert [node_rate(Decimal(v)) for v in ("55.04", "0.0871", "40", "1234.5", "0")] == [
        "55.04/h",
        "0.0871/h",
        "40.00/h",
        "1,234.50/h",
        "0.00/h",
    ]
