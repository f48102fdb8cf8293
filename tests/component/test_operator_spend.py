"""The real operator (kopf) against the stand-in cluster: spend, annotations, status, events, metrics."""

from __future__ import annotations

import urllib.request
from datetime import timedelta
from decimal import Decimal
from typing import Any

from costwarden.models import CostBudgetStatus, PodLedgerEntry
from costwarden.records import parse_time
from costwarden.sim.testing import ThreadedSimCluster
from tests import shapes
from tests.component.conftest import T0

NS = "research"
P5_HOURLY = Decimal("55.04")  # the catalog: p5.48xlarge, us-east-1, on-demand


def budget(limit: float = 500, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "costwarden.dev/v1alpha1",
        "kind": "CostBudget",
        "metadata": {"name": "llama-sweep", "namespace": NS},
        "spec": {
            "limit": limit,
            "period": "Lifetime",
            "skypilotCluster": "llama-sweep",
            "selector": {"matchLabels": {"skypilot-cluster-name": "llama-sweep-2ea4"}},
            "thresholds": [
                {"percent": 50, "action": "Notify"},
                {"percent": 80, "action": "Notify"},
                {"percent": 100, "action": "Kill"},
            ],
        },
    }
    body["spec"].update(spec)
    return body


def seed_skypilot_cluster(cluster: ThreadedSimCluster, workers: int = 1) -> list[str]:
    """Head + workers on their own p5.48xlarge nodes, each pod taking the whole node."""
    cluster.create(shapes.namespace(NS))
    names = []
    for index in range(workers + 1):
        role = "head" if index == 0 else "worker"
        node = f"ip-10-0-1-{index + 10}.ec2.internal"
        cluster.create(shapes.eks_p5_node(node))
        pod = shapes.skypilot_pod(
            "llama-sweep-2ea4", "llama-sweep", namespace=NS, node=node, role=role, index=index
        )
        created = cluster.create(pod)
        name = created["metadata"]["name"]
        cluster.patch(
            "v1",
            "pods",
            name,
            {"status": shapes.running_status(T0 - timedelta(hours=1))},
            namespace=NS,
            subresource="status",
        )
        names.append(name)
    return names


def status_of(cluster: ThreadedSimCluster, name: str = "llama-sweep") -> dict[str, Any]:
    obj = cluster.get("costwarden.dev/v1alpha1", "costbudgets", name, namespace=NS)
    return dict((obj or {}).get("status") or {})


def annotations_of(cluster: ThreadedSimCluster, pod: str) -> dict[str, str]:
    obj = cluster.get("v1", "pods", pod, namespace=NS) or {}
    return dict(obj.get("metadata", {}).get("annotations") or {})


def events_with(cluster: ThreadedSimCluster, reason: str) -> list[dict[str, Any]]:
    return [e for e in cluster.list("v1", "events", namespace=NS) if e.get("reason") == reason]


def test_spend_rises_live_on_budget_pods_and_metrics(cluster, clock, start_operator):
    pods = seed_skypilot_cluster(cluster, workers=1)
    cluster.create(budget())
    operator = start_operator()

    # Each pod has run one hour on a whole p5.48xlarge: 55.04 each.
    cluster.wait_for(lambda: status_of(cluster).get("spend") == 110.08, timeout=20)
    status = status_of(cluster)
    assert status["hourlyRate"] == 110.08
    assert status["pods"] == 2 and status["gpus"] == 16
    assert status["phase"] == "Ok"
    cluster.wait_for(
        lambda: all("costwarden.dev/spend" in annotations_of(cluster, p) for p in pods), timeout=20
    )
    for pod in pods:
        notes = annotations_of(cluster, pod)
        assert Decimal(notes["costwarden.dev/spend"]) == P5_HOURLY
        assert Decimal(notes["costwarden.dev/rate"]) == P5_HOURLY
        assert parse_time(notes["costwarden.dev/spend-at"]) == T0
        assert notes["costwarden.dev/budgets"] == "llama-sweep"

    # Two more hours: 330.24 of 500 crosses the 50 % threshold, once.
    clock.advance(timedelta(hours=2))
    cluster.wait_for(lambda: status_of(cluster).get("spend") == 330.24, timeout=20)
    cluster.wait_for(lambda: len(events_with(cluster, "ThresholdCrossed")) == 1, timeout=20)
    status = status_of(cluster)
    assert status["phase"] == "Warning"
    assert status["percentUsed"] == 66.0
    fired = [a for a in status["actions"] if a["id"].startswith("threshold/50")]
    assert len(fired) == 1 and fired[0]["result"] == "Done"
    remaining_hours = (Decimal(500) - Decimal("330.24")) / Decimal("110.08")
    expected_exhaustion = T0 + timedelta(hours=2) + timedelta(seconds=float(remaining_hours * 3600))
    assert abs((parse_time(status["exhaustsAt"]) - expected_exhaustion).total_seconds()) <= 1
    event = events_with(cluster, "ThresholdCrossed")[0]
    assert event["involvedObject"]["name"] == "llama-sweep"
    assert "50" in event["message"]

    # Later passes do not fire the same threshold again.
    clock.advance(timedelta(minutes=10))
    cluster.wait_for(lambda: status_of(cluster).get("spend", 0) > 330.24, timeout=20)
    assert len(events_with(cluster, "ThresholdCrossed")) == 1
    cluster.wait_for(
        lambda: Decimal(annotations_of(cluster, pods[0])["costwarden.dev/spend"]) > P5_HOURLY * 3, timeout=20
    )

    port = operator.settings.metrics_port
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'costwarden_budget_limit_usd{budget="llama-sweep",namespace="research"} 500.0' in metrics
    assert (
        'costwarden_pod_hourly_cost_usd{namespace="research",node="ip-10-0-1-10.ec2.internal",'
        'pod="llama-sweep-2ea4-head"} 55.04' in metrics
    )
    assert "costwarden_reconcile_duration_seconds_count" in metrics
    assert 'costwarden_api_writes_total{kind="pod_annotation",result="done"}' in metrics


def test_restart_continues_from_annotations_and_closes_vanished_pods(cluster, clock, start_operator):
    head, worker = seed_skypilot_cluster(cluster, workers=1)
    cluster.create(budget(limit=10_000))
    first = start_operator()
    cluster.wait_for(lambda: status_of(cluster).get("spend") == 110.08, timeout=20)
    cluster.wait_for(lambda: "costwarden.dev/spend" in annotations_of(cluster, worker), timeout=20)
    cluster.wait_for(lambda: worker_in_ledger(cluster), timeout=20)
    first.stop()

    # While the operator is down: 30 minutes pass and the worker is deleted.
    clock.advance(timedelta(minutes=30))
    cluster.delete("v1", "pods", worker, namespace=NS)
    start_operator()

    # The head continues from its annotation (55.04 at T0, 55.04/h): 82.56; the worker is
    # closed with its last figure (55.04). Nothing counted twice, nothing lost for live pods.
    cluster.wait_for(lambda: status_of(cluster).get("spend") == 137.6, timeout=20)
    status = status_of(cluster)
    assert status["pods"] == 1
    assert status["hourlyRate"] == 55.04
    assert list(ledger_pods(cluster)) == [pod_uid(cluster, head)]


def ledger_pods(cluster: ThreadedSimCluster) -> dict[str, PodLedgerEntry]:
    return CostBudgetStatus.model_validate(status_of(cluster)).ledger.pods


def worker_in_ledger(cluster: ThreadedSimCluster) -> bool:
    return len(ledger_pods(cluster)) == 2


def pod_uid(cluster: ThreadedSimCluster, name: str) -> str:
    return str((cluster.get("v1", "pods", name, namespace=NS) or {})["metadata"]["uid"])


def test_skypilot_pods_outside_budgets_are_annotated_and_others_left_alone(cluster, clock, start_operator):
    seed_skypilot_cluster(cluster, workers=0)
    cluster.create(shapes.aks_t4_spot_node())
    sky = shapes.skypilot_pod(
        "dev-box-91ac",
        "dev_box",
        namespace=NS,
        node="aks-gpuspot-31415926-vmss000000",
        gpus=1,
        cpu="4",
        memory="28Gi",
    )
    cluster.create(sky)
    plain = shapes.plain_pod("web", namespace=NS, node="aks-gpuspot-31415926-vmss000000")
    cluster.create(plain)
    for name in ("dev-box-91ac-head", "web"):
        cluster.patch(
            "v1", "pods", name, {"status": shapes.running_status(T0)}, namespace=NS, subresource="status"
        )
    operator = start_operator()
    clock.advance(timedelta(hours=1))
    cluster.wait_for(
        lambda: "costwarden.dev/spend" in annotations_of(cluster, "dev-box-91ac-head"), timeout=20
    )
    notes = annotations_of(cluster, "dev-box-91ac-head")
    assert Decimal(notes["costwarden.dev/rate"]) > 0
    assert "costwarden.dev/budgets" not in notes
    cluster.wait_for(lambda: "web" in [row.name for row in operator.runtime.metrics.pod_rows], timeout=20)
    assert "costwarden.dev/spend" not in annotations_of(cluster, "web")


def test_dry_run_writes_nothing(cluster, clock, start_operator):
    pods = seed_skypilot_cluster(cluster, workers=0)
    cluster.create(budget(limit=50))
    operator = start_operator(dry_run=True)
    key = ("research", "llama-sweep")

    def figures():
        state = operator.runtime.budgets.get(key)
        return state.figures if state is not None else None

    cluster.wait_for(lambda: figures() is not None and figures().spend > 0, timeout=20)
    assert figures().spend == P5_HOURLY
    assert status_of(cluster) == {}
    assert "costwarden.dev/spend" not in annotations_of(cluster, pods[0])
    assert events_with(cluster, "ThresholdCrossed") == []


def test_a_team_budget_prices_eks_gke_and_aks_nodes_from_the_catalog(cluster, clock, start_operator):
    """selector {} over a namespace with pods on an EKS p5, a GKE a3 spot and an AKS T4 spot node."""
    cluster.create(shapes.namespace(NS))
    nodes = [
        shapes.eks_p5_node("ip-10-0-1-10.ec2.internal"),
        shapes.gke_a3_spot_node(),
        shapes.aks_t4_spot_node(),
    ]
    for node in nodes:
        cluster.create(node)
    for index, node in enumerate(nodes):
        capacity = node["status"]["capacity"]
        pod = shapes.skypilot_pod(
            f"team-{index}-abcd",
            f"team-{index}",
            namespace=NS,
            node=node["metadata"]["name"],
            gpus=int(capacity["nvidia.com/gpu"]),
            cpu=capacity["cpu"],
            memory=capacity["memory"],
        )
        created = cluster.create(pod)["metadata"]["name"]
        cluster.patch(
            "v1", "pods", created, {"status": shapes.running_status(T0)}, namespace=NS, subresource="status"
        )
    team = {
        "apiVersion": "costwarden.dev/v1alpha1",
        "kind": "CostBudget",
        "metadata": {"name": "research-monthly", "namespace": NS},
        "spec": {"limit": 100_000, "period": "Monthly", "selector": {}},
    }
    cluster.create(team)
    operator = start_operator()
    cluster.wait_for(lambda: len(operator.runtime.pods.node_prices) == 3, timeout=20)
    prices = operator.runtime.pods.node_prices
    catalog = {name: price for name, price in prices.items() if price.source.startswith("catalog")}
    assert set(catalog) == set(prices), {name: p.source for name, p in prices.items()}
    facts = {name: (p.facts.cloud, p.facts.capacity_type) for name, p in prices.items()}
    assert facts == {
        "ip-10-0-1-10.ec2.internal": ("aws", "on-demand"),
        "gke-ml-a3-spot-7f3c2a1b-x9kq": ("gcp", "spot"),
        "aks-gpuspot-31415926-vmss000000": ("azure", "spot"),
    }
    # Every pod takes its whole node, so the budget's rate is the sum of the catalog's node prices:
    # p5.48xlarge on-demand 55.04, a3-highgpu-8g spot 20.19947, Standard_NC4as_T4_v3 spot 0.062699.
    node_total = P5_HOURLY + Decimal("20.19947") + Decimal("0.062699")
    assert sum(p.hourly for p in prices.values()) == node_total
    cluster.wait_for(
        lambda: status_of(cluster, "research-monthly").get("hourlyRate") == float(round(node_total, 4)),
        timeout=20,
    )
    clock.advance(timedelta(hours=2))
    expected = float(round(node_total * 2, 2))
    cluster.wait_for(lambda: status_of(cluster, "research-monthly").get("spend") == expected, timeout=20)
    assert status_of(cluster, "research-monthly")["gpus"] == 17
