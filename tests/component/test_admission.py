"""The admission guard end to end: the real operator's webhook, called by the stand-in over HTTPS."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from costwarden.sim.errors import ApiError
from costwarden.sim.testing import ThreadedSimCluster
from tests import shapes
from tests.component.conftest import T0, free_port

GUARDED, OPEN = "research", "sandbox"  # blockNewPods true / false
SKY = "llama-sweep-2ea4"
CONFIG = ("admissionregistration.k8s.io/v1", "validatingwebhookconfigurations", "costwarden.dev")


def budget(namespace: str, *, block: bool) -> dict[str, Any]:
    return {
        "apiVersion": "costwarden.dev/v1alpha1",
        "kind": "CostBudget",
        "metadata": {"name": "llama-sweep", "namespace": namespace},
        "spec": {
            "limit": 50,
            "period": "Lifetime",
            "selector": {"matchLabels": {"skypilot-cluster-name": SKY}},
            "thresholds": [{"percent": 80, "action": "Notify"}],
            "enforcement": {"blockNewPods": block},
        },
    }


def head_pod(namespace: str) -> dict[str, Any]:
    return shapes.skypilot_pod(SKY, "llama-sweep", namespace=namespace, node=f"node-{namespace}")


def seed(cluster: ThreadedSimCluster, namespace: str, *, block: bool) -> None:
    """A SkyPilot head that has run an hour on a whole p5.48xlarge (55.04) against a 50 USD budget."""
    cluster.create(shapes.namespace(namespace))
    cluster.create(shapes.eks_p5_node(f"node-{namespace}"))
    name = cluster.create(head_pod(namespace))["metadata"]["name"]
    status = {"status": shapes.running_status(T0 - timedelta(hours=1))}
    cluster.patch("v1", "pods", name, status, namespace=namespace, subresource="status")
    cluster.create(budget(namespace, block=block))


def phase(cluster: ThreadedSimCluster, namespace: str) -> str | None:
    obj = cluster.get("costwarden.dev/v1alpha1", "costbudgets", "llama-sweep", namespace=namespace) or {}
    return (obj.get("status") or {}).get("phase")


def webhooks(cluster: ThreadedSimCluster) -> list[dict[str, Any]]:
    return list((cluster.get(*CONFIG) or {}).get("webhooks") or [])


def webhook_settings(**overrides: Any) -> dict[str, Any]:
    return {
        "webhook_port": free_port(),
        "webhook_addr": "127.0.0.1",
        "webhook_host": "127.0.0.1",
        **overrides,
    }


def test_a_relaunch_into_an_exhausted_budget_is_refused(cluster, start_operator):
    seed(cluster, GUARDED, block=True)
    seed(cluster, OPEN, block=False)
    start_operator(**webhook_settings())
    cluster.wait_for(lambda: len(webhooks(cluster)) == 1, timeout=15)
    (hook,) = webhooks(cluster)
    assert hook["failurePolicy"] == "Ignore"
    assert hook["rules"][0]["resources"] == ["pods"] and hook["rules"][0]["operations"] == ["CREATE"]
    assert hook["clientConfig"]["url"].startswith("https://127.0.0.1:")
    cluster.wait_for(lambda: phase(cluster, GUARDED) == phase(cluster, OPEN) == "Exceeded", timeout=15)

    # SkyPilot's recovery relaunches the killed head with the same name and labels.
    cluster.delete("v1", "pods", f"{SKY}-head", namespace=GUARDED)
    with pytest.raises(ApiError) as refused:
        cluster.create(head_pod(GUARDED))
    assert refused.value.code == 403
    assert refused.value.message.startswith(
        'admission webhook "costwarden-block-exhausted.costwarden.dev" denied the request: '
        f"CostBudget {GUARDED}/llama-sweep is Exceeded; raise spec.limit"
    )
    assert cluster.get("v1", "pods", f"{SKY}-head", namespace=GUARDED) is None

    # A pod the budget does not cover, and a budget without blockNewPods, admit.
    other = shapes.plain_pod("notebook", namespace=GUARDED, node=f"node-{GUARDED}")
    assert cluster.create(other)["metadata"]["name"] == "notebook"
    generated = {**head_pod(OPEN), "metadata": {**head_pod(OPEN)["metadata"], "name": None}}
    generated["metadata"]["generateName"] = f"{SKY}-worker-"
    assert cluster.create(generated)["metadata"]["name"].startswith(f"{SKY}-worker-")


def test_fail_is_selectable_and_a_graceful_stop_removes_the_webhook(cluster, start_operator):
    operator = start_operator(**webhook_settings(webhook_failure_policy="Fail"))
    cluster.wait_for(lambda: len(webhooks(cluster)) == 1, timeout=15)
    assert webhooks(cluster)[0]["failurePolicy"] == "Fail"
    operator.stop()
    assert webhooks(cluster) == []
    cluster.create(shapes.namespace(GUARDED))
    assert cluster.create(head_pod(GUARDED))["metadata"]["name"] == f"{SKY}-head"


def test_no_webhook_port_means_no_admission_guard(cluster, start_operator):
    seed(cluster, GUARDED, block=True)
    start_operator()
    cluster.wait_for(lambda: phase(cluster, GUARDED) == "Exceeded", timeout=15)
    assert cluster.get(*CONFIG) is None
    cluster.delete("v1", "pods", f"{SKY}-head", namespace=GUARDED)
    assert cluster.create(head_pod(GUARDED))["metadata"]["name"] == f"{SKY}-head"
