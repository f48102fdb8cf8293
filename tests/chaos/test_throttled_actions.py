"""A destructive action the API server throttles is retried until it is carried out.

Found by the chaos scenario (20 % of requests answered 429): a Scale whose Deployment read was
throttled on three passes in a row ended Failed, and the Deployment kept running past the
budget. A 429 means "not now": it never makes an action Failed. A refusal still does, after
``MAX_ATTEMPTS`` tries.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import kmock

from costwarden.engine.outcomes import MAX_ATTEMPTS
from costwarden.sim.testing import ThreadedSimCluster
from tests import shapes
from tests.component.conftest import T0
from tests.component.test_enforcement import kill_budget, owner, record
from tests.component.test_operator_spend import NS, seed_skypilot_cluster

CB = "costwarden.dev/v1alpha1"


def gate(sim: ThreadedSimCluster, action: str, resource: Any, status: int) -> threading.Event:
    """While the returned event is set, ``action`` requests on ``resource`` get ``status``."""
    blocked = threading.Event()
    blocked.set()
    reaction = sim.cluster.emulator[action, resource, blocked] << status
    if status == 429:
        reaction << {"Retry-After": "1"}
    return blocked


def throttled_beyond_the_limit(record: dict[str, Any]) -> bool:
    """More tries than a failing action gets, and still Pending, for a 429 (between two passes the
    message says what the next try acts on)."""
    return (
        record.get("attempts", 0) > MAX_ATTEMPTS
        and record.get("result") == "Pending"
        and "throttled, will retry" in record.get("message", "")
    )


def seed_deployment(cluster: ThreadedSimCluster) -> None:
    cluster.create(shapes.namespace(NS))
    cluster.create(shapes.eks_p5_node("ip-10-0-1-10.ec2.internal"))
    template = {"metadata": {"labels": {"app": "inference"}}, "spec": {"containers": [{"name": "c"}]}}
    spec = {"replicas": 3, "selector": {"matchLabels": {"app": "inference"}}, "template": template}
    deployment = cluster.create(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "inference", "namespace": NS},
            "spec": spec,
        }
    )
    replicas = cluster.create(
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": "inference-5d9c",
                "namespace": NS,
                "ownerReferences": [owner("Deployment", "apps/v1", deployment)],
            },
            "spec": spec,
        }
    )
    body = shapes.plain_pod(
        "inference-5d9c-a", namespace=NS, node="ip-10-0-1-10.ec2.internal", labels={"app": "inference"}
    )
    body["metadata"]["ownerReferences"] = [owner("ReplicaSet", "apps/v1", replicas)]
    body["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] = "4"
    cluster.create(body)
    status = {"status": shapes.running_status(T0 - timedelta(hours=1))}
    cluster.patch("v1", "pods", "inference-5d9c-a", status, namespace=NS, subresource="status")
    cluster.create(
        {
            "apiVersion": CB,
            "kind": "CostBudget",
            "metadata": {"name": "serve", "namespace": NS},
            "spec": {
                "limit": 1,
                "selector": {"matchLabels": {"app": "inference"}},
                "thresholds": [{"percent": 100, "action": "Scale"}],
            },
        }
    )


def test_a_throttled_scale_waits_and_then_scales(cluster, start_operator):
    seed_deployment(cluster)
    blocked = gate(cluster, "fetch", kmock.resource("apps", "v1", "deployments"), 429)
    start_operator()

    def scale() -> dict[str, Any]:
        return record(cluster, "threshold/100", "serve")

    cluster.wait_for(lambda: throttled_beyond_the_limit(scale()), timeout=30)
    assert (cluster.get("apps/v1", "deployments", "inference", namespace=NS) or {})["spec"]["replicas"] == 3

    blocked.clear()  # the API server has room again
    cluster.wait_for(lambda: scale().get("result") == "Done", timeout=20)
    assert (cluster.get("apps/v1", "deployments", "inference", namespace=NS) or {})["spec"]["replicas"] == 0


def test_throttled_deletes_are_retried_and_refused_ones_fail(cluster, start_operator):
    seed_skypilot_cluster(cluster, workers=1)
    cluster.create(kill_budget())
    pods = kmock.resource("", "v1", "pods")
    blocked = gate(cluster, "delete", pods, 429)
    start_operator()

    def kill() -> dict[str, Any]:
        return record(cluster, "threshold/100")

    cluster.wait_for(lambda: throttled_beyond_the_limit(kill()), timeout=30)
    refused = gate(cluster, "delete", pods, 403)  # now the deletes are refused, not throttled
    blocked.clear()
    cluster.wait_for(lambda: kill().get("result") == "Failed", timeout=20)
    assert "forbidden" in kill()["message"]
    refused.clear()
    assert len(cluster.list("v1", "pods", namespace=NS)) == 2
