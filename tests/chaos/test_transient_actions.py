"""A destructive action whose own requests get transient answers is retried until it is carried out.

Under the chaos suite's 500s and lost writes (a DELETE carried out but answered 504), a Kill or
a Scale counted each such answer as a failed attempt and ended Failed after ``MAX_ATTEMPTS``
passes, although the API server was merely flaky. A transient answer (408, 500, 502, 503, 504,
no answer) now leaves the record Pending ("transient, will retry"), as a 429 does; every
``RETRY_WARNING_EVERY`` tries a Warning Event on the budget says it still waits. A permanent
error (a 422) still ends Failed after ``MAX_ATTEMPTS`` tries.
"""

from __future__ import annotations

import threading
import urllib.request
from typing import Any

import kmock

from costwarden.engine.outcomes import MAX_ATTEMPTS, RETRY_WARNING_EVERY
from costwarden.operator.enforce import RETRY_EVENT
from costwarden.sim.testing import ThreadedSimCluster
from tests.chaos.test_throttled_actions import gate, seed_deployment
from tests.component.test_enforcement import CB, kill_budget, record
from tests.component.test_operator_spend import NS, events_with, seed_skypilot_cluster

DEPLOYMENTS = kmock.resource("apps", "v1", "deployments")
PODS = kmock.resource("", "v1", "pods")


def settled_or_beyond(record: dict[str, Any], tries: int) -> bool:
    """Ended (which it must not, while the faults last), or still Pending after ``tries`` tries."""
    return record.get("result") not in (None, "Pending") or record.get("attempts", 0) >= tries


def retried_transiently(record: dict[str, Any]) -> bool:
    """Pending because of a transient answer (between two passes the message says what the next
    try acts on, so it is read once a try has reported)."""
    return record.get("result") == "Pending" and "transient, will retry" in record.get("message", "")


def scraped(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


def test_a_scale_whose_reads_get_500s_waits_warns_and_then_scales(cluster, start_operator):
    seed_deployment(cluster)
    broken = gate(cluster, "fetch", DEPLOYMENTS, 500)
    operator = start_operator()

    def scale() -> dict[str, Any]:
        return record(cluster, "threshold/100", "serve")

    cluster.wait_for(lambda: settled_or_beyond(scale(), RETRY_WARNING_EVERY + 1), timeout=30)
    cluster.wait_for(lambda: retried_transiently(scale()), timeout=10)
    assert scale()["attempts"] > MAX_ATTEMPTS
    assert "HTTP 500" in scale()["message"]
    assert (cluster.get("apps/v1", "deployments", "inference", namespace=NS) or {})["spec"]["replicas"] == 3
    warnings = events_with(cluster, RETRY_EVENT)  # one at 10 tries, the next at 20, ...
    assert {(w["type"], w["involvedObject"]["kind"], w["involvedObject"]["name"]) for w in warnings} == {
        ("Warning", "CostBudget", "serve")
    }
    assert any(f"not carried out after {RETRY_WARNING_EVERY} tries" in w["message"] for w in warnings)
    assert len(warnings) <= scale()["attempts"] // RETRY_WARNING_EVERY
    retries = 'costwarden_action_retries_total{action="Scale",reason="transient"}'
    assert retries in scraped(operator.settings.metrics_port)

    broken.clear()  # the API server serves again
    cluster.wait_for(lambda: scale().get("result") == "Done", timeout=20)
    assert (cluster.get("apps/v1", "deployments", "inference", namespace=NS) or {})["spec"]["replicas"] == 0


def test_a_scale_whose_patch_is_invalid_still_fails(cluster, start_operator):
    seed_deployment(cluster)
    invalid = gate(cluster, "patch", DEPLOYMENTS, 422)
    start_operator()

    def scale() -> dict[str, Any]:
        return record(cluster, "threshold/100", "serve")

    cluster.wait_for(lambda: scale().get("result") == "Failed", timeout=20)
    invalid.clear()
    assert scale()["attempts"] == MAX_ATTEMPTS
    assert "could not scale" in scale()["message"]
    assert (cluster.get("apps/v1", "deployments", "inference", namespace=NS) or {})["spec"]["replicas"] == 3


def lose_deletes(cluster: ThreadedSimCluster, pod: str, deleted: list[str]) -> threading.Event:
    """While the returned event is set, a DELETE of ``pod`` is carried out but answered 504 (the
    chaos suite's lost write); ``deleted`` gets the pod's name each time one removed it."""
    lost = threading.Event()
    lost.set()

    async def carry_out(request: Any) -> None:
        await cluster.cluster.delete("v1", "pods", request.name, namespace=NS)  # 404 once it is gone
        deleted.append(request.name)

    cluster.cluster.emulator["delete", PODS, kmock.name(pod), lost] << 504 << carry_out
    return lost


def test_a_kill_whose_deletes_get_500s_and_504s_ends_done_each_pod_deleted_once(cluster, start_operator):
    head, worker = seed_skypilot_cluster(cluster, workers=1)
    deleted: list[str] = []
    lost = lose_deletes(cluster, worker, deleted)  # the worker goes, its DELETE answered 504
    broken = threading.Event()  # while set, the head's DELETE is answered 500, nothing done
    broken.set()
    cluster.cluster.emulator["delete", PODS, kmock.name(head), broken] << 500
    cluster.create(kill_budget())
    start_operator()

    def kill() -> dict[str, Any]:
        return record(cluster, "threshold/100")

    cluster.wait_for(lambda: settled_or_beyond(kill(), MAX_ATTEMPTS + 2), timeout=20)
    cluster.wait_for(lambda: retried_transiently(kill()), timeout=10)
    assert deleted == [worker]
    assert [p["metadata"]["name"] for p in cluster.list("v1", "pods", namespace=NS)] == [head]

    broken.clear()  # the API server serves again
    lost.clear()
    cluster.wait_for(lambda: kill().get("result") == "Done", timeout=20)
    assert cluster.list("v1", "pods", namespace=NS) == []
    assert deleted == [worker]  # the lost write was carried out once, not repeated
    assert sorted(kill()["targets"]) == sorted(f"Pod/{name}" for name in (head, worker))


def test_a_resume_whose_restore_gets_500s_keeps_the_request_and_restores_once_served(cluster, start_operator):
    from costwarden.cli import main

    seed_deployment(cluster)
    start_operator()

    def scale() -> dict[str, Any]:
        return record(cluster, "threshold/100", "serve")

    def replicas() -> int:
        return int(
            (cluster.get("apps/v1", "deployments", "inference", namespace=NS) or {})["spec"]["replicas"]
        )

    def requested() -> bool:
        meta = (cluster.get(CB, "costbudgets", "serve", namespace=NS) or {})["metadata"]
        return "costwarden.dev/resume" in (meta.get("annotations") or {})

    cluster.wait_for(lambda: scale().get("result") == "Done", timeout=20)
    assert replicas() == 0
    cluster.patch(CB, "costbudgets", "serve", {"spec": {"limit": 1_000_000}}, namespace=NS)
    broken = gate(cluster, "patch", DEPLOYMENTS, 500)
    assert main(["resume", "serve", "-n", NS, "--kubeconfig", str(cluster.kubeconfig)]) == 0
    cluster.wait_for(lambda: "resume will retry" in scale().get("message", ""), timeout=20)
    assert "resumedAt" not in scale() and replicas() == 0
    assert requested()  # the request stands while the API server fails

    broken.clear()
    cluster.wait_for(lambda: scale().get("resumedAt"), timeout=20)
    assert replicas() == 3
    message = scale()["message"]  # the action's note, then the resume's, the retries' replaced by it
    assert message.endswith(
        "; resumed: Deployment research/inference: restored 3 replicas "
        "(owner of ReplicaSet research/inference-5d9c)"
    )
    assert "resume will retry" not in message
    cluster.wait_for(lambda: not requested(), timeout=20)
