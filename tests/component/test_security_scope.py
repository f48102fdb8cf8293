"""The running operator, watching one namespace (``--namespace``), calls the API only there (and,
for cluster-scoped kinds, cluster-wide): what makes the chart's per-namespace Roles enough
(charts/costwarden/templates/rbac.yaml; tests/chart/test_chart_security.py checks the chart
side). A budget in another namespace, its pod and its Secret are never touched: not read, not
listed, not written.

Every request the operator sends to the Kubernetes API stand-in is recorded; the budget it
watches crosses a Notify (its webhook URL read from a Secret) and a Kill (its pod deleted).

And the outside fence with the real operator and moto's EC2: only a budget of a namespace
``--outside-namespace`` allows covers the SkyPilot cluster's VMs; the same budget elsewhere says
why in its condition and never acts.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from costwarden.operator.app import OperatorThread
from costwarden.operator.kube import REQUIRED_PERMISSIONS
from costwarden.operator.settings import OperatorSettings
from costwarden.sim.testing import ThreadedSimCluster
from tests import shapes
from tests.cloud_fleet import Fleet
from tests.component.conftest import T0, free_port, load_crd
from tests.component.test_cloud_vms import fleet, vm_budget
from tests.component.test_operator_spend import NS
from tests.component.test_workloads import permission_of

WATCHED, OTHER = "research", "sandbox"
__all__ = ["fleet"]  # the EC2 fleet fixture of test_cloud_vms, used below
SKY = "llama-sweep-2ea4"
# Kinds in no namespace: the ClusterRole keeps these whatever operator.namespaces says.
CLUSTER_SCOPED = {"nodes", "namespaces", "customresourcedefinitions", "validatingwebhookconfigurations"}


@pytest.fixture
def sim() -> Iterator[ThreadedSimCluster]:  # its own stand-in: the conftest's `cluster` is another
    with ThreadedSimCluster() as cluster:
        cluster.create(load_crd())
        cluster.create(shapes.eks_p5_node("gpu-1"))
        for namespace in (WATCHED, OTHER):
            seed(cluster, namespace)
        yield cluster


def seed(cluster: ThreadedSimCluster, namespace: str) -> None:
    """A SkyPilot head an hour into a whole p5.48xlarge, and a 1 USD budget over it that notifies
    through a webhook whose URL is in a Secret at 50 % and kills at 100 %."""
    cluster.create(shapes.namespace(namespace))
    pod = cluster.create(shapes.skypilot_pod(SKY, "llama-sweep", namespace=namespace, node="gpu-1"))
    running = {"status": shapes.running_status(T0 - timedelta(hours=1))}
    cluster.patch("v1", "pods", pod["metadata"]["name"], running, namespace=namespace, subresource="status")
    url = f"http://127.0.0.1:{free_port()}/hook"  # nobody listens: the delivery fails, recorded
    cluster.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "hooks", "namespace": namespace},
            "data": {"url": base64.b64encode(url.encode()).decode()},
        }
    )
    cluster.create(
        {
            "apiVersion": "costwarden.dev/v1alpha1",
            "kind": "CostBudget",
            "metadata": {"name": "sweep", "namespace": namespace},
            "spec": {
                "limit": 1,
                "period": "Lifetime",
                "selector": {},
                "thresholds": [{"percent": 50, "action": "Notify"}, {"percent": 100, "action": "Kill"}],
                "notify": {"webhook": {"urlSecretRef": {"name": "hooks", "key": "url"}}},
                "enforcement": {"gracePeriodSeconds": 0},
            },
        }
    )


def requests_of(sim: ThreadedSimCluster) -> list[Any]:
    return [r for r in sim.cluster.emulator if r.resource is not None]


def test_an_operator_watching_one_namespace_calls_the_api_only_there(sim: ThreadedSimCluster) -> None:
    settings = OperatorSettings(
        kubeconfig=sim.kubeconfig,
        namespaces=(WATCHED,),
        interval=0.2,
        accrual_interval=0.2,
        status_interval=0.2,
        metrics_port=0,
        lease_name="costwarden",
        lease_namespace=WATCHED,
        lease_duration=3,
        renew_deadline=2,
        retry_period=0.2,
        notify_attempts=1,
    )
    operator = OperatorThread(settings, clock=lambda: T0).start()
    try:

        def killed_and_notified() -> bool:
            budget = sim.get("costwarden.dev/v1alpha1", "costbudgets", "sweep", namespace=WATCHED) or {}
            actions = (budget.get("status") or {}).get("actions") or []
            notified = any(a.get("notification") in ("Sent", "Failed") for a in actions)
            return notified and sim.get("v1", "pods", f"{SKY}-head", namespace=WATCHED) is None

        sim.wait_for(killed_and_notified, timeout=20)
    finally:
        operator.stop()

    seen = requests_of(sim)
    used = {permission_of(r) for r in seen}
    assert ("", "secrets", "get") in used and ("", "pods", "delete") in used, "the test exercised both"
    assert used <= set(REQUIRED_PERMISSIONS)
    outside = sorted(
        {
            f"{r.method.value} {r.resource.plural} in {r.namespace or 'all namespaces'}"
            for r in seen
            if r.resource.plural not in CLUSTER_SCOPED and r.namespace != WATCHED
        }
    )
    assert outside == [], "namespaced calls outside the watched namespace"
    assert not [r for r in seen if r.namespace == OTHER]
    assert sim.get("v1", "pods", f"{SKY}-head", namespace=OTHER) is not None
    other = sim.get("costwarden.dev/v1alpha1", "costbudgets", "sweep", namespace=OTHER) or {}
    assert "status" not in other


# --- the outside fence, end to end ---------------------------------------------------------------


def test_only_budgets_of_allowed_namespaces_reach_the_clusters_vms(
    cluster: ThreadedSimCluster, start_operator: Any, clock: Any, fleet: Fleet
) -> None:
    """``--outside-namespace ml-platform``: the same budget in ``research`` covers the cluster's
    pods only (none here), shows why, and never acts; in ``ml-platform`` it covers the three VMs
    and kills them at its limit."""
    allowed = "ml-platform"
    for namespace in (NS, allowed):
        cluster.create(shapes.namespace(namespace))
        body = vm_budget(limit=100)
        body["metadata"]["namespace"] = namespace
        cluster.create(body)

    def status_in(namespace: str) -> dict[str, Any]:
        obj = cluster.get("costwarden.dev/v1alpha1", "costbudgets", "llama-sweep", namespace=namespace)
        return dict((obj or {}).get("status") or {})

    start_operator(clouds=("aws:us-east-1",), cloud_interval=0.5, outside_namespaces=(allowed,))
    cluster.wait_for(lambda: status_in(allowed).get("vms") == 3, timeout=20)
    cluster.wait_for(lambda: "conditions" in status_in(NS), timeout=10)
    fenced = next(c for c in status_in(NS)["conditions"] if c["type"] == "CloudUnavailable")
    assert (fenced["status"], fenced["reason"]) == ("True", "NamespaceNotAllowed")
    assert fenced["message"] == (
        f"CostBudgets in namespace {NS} may not cover cloud VMs: the operator allows only "
        f"namespaces {allowed} (--outside-namespace)"
    )
    assert status_in(NS).get("vms", 0) == 0 and float(status_in(NS).get("spend", 0)) == 0
    assert "vm:" not in str(status_in(NS).get("ledger") or {}), "no VM id in the fenced status"
    ok = next(c for c in status_in(allowed)["conditions"] if c["type"] == "CloudUnavailable")
    assert ok["status"] == "False"

    clock.advance(timedelta(hours=2))  # past both limits: only the allowed budget has spend to act on
    cluster.wait_for(
        lambda: any(r.get("result") == "Done" for r in status_in(allowed).get("actions") or []), timeout=15
    )
    assert not status_in(NS).get("actions")
    assert [fleet.state(vm) for vm in (fleet.decoy, fleet.untagged)] == ["running", "running"]
