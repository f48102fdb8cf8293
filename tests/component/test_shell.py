"""The operator's shell: leadership without budgets, status without nodes, nothing slow on the
enforcement path, and no destructive action before its Pending record is stored."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import kmock

from costwarden.models import GROUP, PLURAL, VERSION
from costwarden.sim.testing import ThreadedSimCluster
from tests import shapes
from tests.component.conftest import T0
from tests.component.test_enforcement import kill_budget, pod_names, record, secret
from tests.component.test_operator_spend import NS, annotations_of, budget, seed_skypilot_cluster, status_of

LEASE = {
    "lease_name": "costwarden",
    "lease_namespace": "default",
    "lease_duration": 3.0,
    "renew_deadline": 2.0,
    "retry_period": 0.2,
}


@contextlib.contextmanager
def silent_receiver() -> Iterator[str]:
    """An HTTP endpoint that accepts connections and never answers (a hung Slack or webhook)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/hook"
    finally:
        stop.set()
        thread.join(5)
        for connection in held:
            connection.close()
        server.close()


def lease_holder(cluster: ThreadedSimCluster) -> str:
    lease = cluster.get("coordination.k8s.io/v1", "leases", "costwarden", namespace="default") or {}
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def test_with_leader_election_and_no_budget_skypilot_pods_still_get_spend(cluster, clock, start_operator):
    cluster.create(shapes.namespace(NS))
    cluster.create(shapes.eks_p5_node("gpu-1"))
    pod = shapes.skypilot_pod("dev-7f3a", "dev", namespace=NS, node="gpu-1")
    name = cluster.create(pod)["metadata"]["name"]
    cluster.patch(
        "v1", "pods", name, {"status": shapes.running_status(T0)}, namespace=NS, subresource="status"
    )
    operator = start_operator(lease_identity="replica-a", **LEASE)
    clock.advance(timedelta(hours=1))
    cluster.wait_for(lambda: "costwarden.dev/spend" in annotations_of(cluster, name), timeout=20)
    assert lease_holder(cluster) == "replica-a"
    assert operator.runtime.acting()
    assert Decimal(annotations_of(cluster, name)["costwarden.dev/spend"]) > 0


def test_a_budget_over_an_empty_cluster_gets_a_status_within_an_interval(cluster, start_operator):
    cluster.create(shapes.namespace(NS))
    cluster.create(budget(limit=100))
    start_operator(**LEASE)
    cluster.wait_for(lambda: status_of(cluster).get("phase") == "Ok", timeout=20)
    assert status_of(cluster)["spend"] == 0
    assert status_of(cluster)["pods"] == 0


def test_a_receiver_that_never_answers_does_not_hold_up_another_budgets_kill(cluster, start_operator):
    seed_skypilot_cluster(cluster, workers=1)
    with silent_receiver() as url:
        cluster.create(secret("hooks", url=url))
        slow = budget(limit=200)  # 110.08 of 200: its 50 % Notify goes to the silent receiver
        slow["metadata"]["name"] = "a-slow-hook"
        slow["spec"]["notify"] = {"webhook": {"urlSecretRef": {"name": "hooks", "key": "url"}}}
        cluster.create(slow)
        fast = kill_budget(limit=100)
        fast["metadata"]["name"] = "b-kill"
        cluster.create(fast)
        start_operator()
        cluster.wait_for(
            lambda: record(cluster, "threshold/100", "b-kill").get("result") == "Done", timeout=10
        )
        assert pod_names(cluster) == []
        # the notification is still stuck on the receiver: recorded as Pending, not sent, not lost
        assert record(cluster, "threshold/50", "a-slow-hook").get("notification") == "Pending"


def test_no_pod_is_killed_until_the_pending_record_is_stored(cluster, start_operator):
    seed_skypilot_cluster(cluster, workers=1)
    cluster.create(kill_budget(limit=100))
    failing = cluster.cluster.emulator["patch", kmock.resource(GROUP, VERSION, PLURAL)][:6] << 500
    start_operator()
    cluster.wait_for(lambda: record(cluster, "threshold/100").get("result") == "Done", timeout=30)
    assert pod_names(cluster) == []

    requests = list(cluster.cluster.emulator)
    refused = [i for i, r in enumerate(requests) if any(r is f for f in failing)]
    assert len(refused) == 6
    first_delete = next(i for i, r in enumerate(requests) if r.method.value == "DELETE")
    assert first_delete > refused[-1], "a pod was deleted while the budget's status could not be written"
    stored = [
        r
        for r in requests[refused[-1] + 1 : first_delete]
        if r.method.value == "PATCH" and r.resource == kmock.resource(GROUP, VERSION, PLURAL)
    ]
    pending = [
        a for r in stored for a in r.data["status"].get("actions", []) if a["id"].startswith("threshold/100")
    ]
    assert pending and pending[-1]["result"] == "Pending" and pending[-1]["attempts"] == 1
    assert len(pending[-1]["targets"]) == 2
    ledger = stored[-1].data["status"]["ledger"]
    assert ledger.get("packedPods") or ledger.get("pods"), (
        "the record written before the kill carries the ledger"
    )


def test_a_transient_error_reading_the_webhook_secret_is_retried_not_failed(cluster, start_operator):
    from tests.receiver import Receiver

    seed_skypilot_cluster(cluster, workers=0)
    with Receiver() as receiver:
        cluster.create(secret("hooks", url=f"{receiver.url}/hook"))
        body = budget(limit=100)  # 55.04 of 100: the 50 % Notify fires
        body["spec"]["notify"] = {"webhook": {"urlSecretRef": {"name": "hooks", "key": "url"}}}
        cluster.create(body)
        refused = cluster.cluster.emulator["get", kmock.resource("", "v1", "secrets")][:2] << 503
        start_operator()
        cluster.wait_for(lambda: record(cluster, "threshold/50").get("notification") == "Sent", timeout=20)
        assert len(list(refused)) == 2
        assert record(cluster, "threshold/50")["result"] == "Done"
        assert record(cluster, "threshold/50")["notifyAttempts"] == 3
        assert len(receiver.on("/hook")) == 1


def test_status_write_conflicts_are_retried_and_the_kill_happens_once(cluster, start_operator):
    seed_skypilot_cluster(cluster, workers=1)
    cluster.create(kill_budget(limit=100))
    cluster.cluster.emulator["patch", kmock.resource(GROUP, VERSION, PLURAL)][:3] << 409
    start_operator()
    cluster.wait_for(lambda: record(cluster, "threshold/100").get("result") == "Done", timeout=30)
    deletes = list(cluster.cluster.emulator["delete", kmock.resource("", "v1", "pods")])
    assert len(deletes) == 2
    assert record(cluster, "threshold/100")["attempts"] == 1


async def test_a_resume_request_made_while_the_last_one_is_withdrawn_is_kept(cluster):
    from types import SimpleNamespace

    from costwarden.operator.budgetstate import BudgetState
    from costwarden.operator.kube import KubeClient, load_configuration
    from costwarden.operator.resume import RESUME_ANNOTATION, _withdraw

    cluster.create(shapes.namespace(NS))
    body = budget(limit=100)
    body["metadata"]["annotations"] = {RESUME_ANNOTATION: "second-request"}
    cluster.create(body)
    kube = KubeClient(load_configuration(cluster.kubeconfig))
    runtime = SimpleNamespace(kube=kube)
    state = BudgetState(key=(NS, "llama-sweep"), uid="u", status=None, stored={})  # type: ignore[arg-type]
    try:
        await _withdraw(runtime, state, "first-request")  # type: ignore[arg-type]
        meta = cluster.get(f"{GROUP}/{VERSION}", PLURAL, "llama-sweep", namespace=NS)["metadata"]
        assert meta["annotations"][RESUME_ANNOTATION] == "second-request"
        await _withdraw(runtime, state, "second-request")  # type: ignore[arg-type]
        meta = cluster.get(f"{GROUP}/{VERSION}", PLURAL, "llama-sweep", namespace=NS)["metadata"]
        assert RESUME_ANNOTATION not in (meta.get("annotations") or {})
    finally:
        await kube.close()


def test_a_notification_left_pending_by_a_dead_leader_is_sent_once_with_its_key(cluster, start_operator):
    from costwarden.records import format_time
    from tests.receiver import Receiver

    seed_skypilot_cluster(cluster, workers=0)
    with Receiver() as receiver:
        cluster.create(secret("hooks", url=f"{receiver.url}/hook"))
        body = budget(limit=100)
        body["spec"]["notify"] = {"webhook": {"urlSecretRef": {"name": "hooks", "key": "url"}}}
        cluster.create(body)
        left = {
            "id": "threshold/50/lifetime",
            "time": format_time(T0),
            "trigger": "spend 55.04 reached 50% of 100",
            "action": "Notify",
            "result": "Done",
            "notification": "Pending",  # stored before sending; the leader died before "Sent"
        }
        cluster.patch(
            f"{GROUP}/{VERSION}",
            PLURAL,
            "llama-sweep",
            {"status": {"actions": [left]}},
            namespace=NS,
            subresource="status",
        )
        start_operator()
        cluster.wait_for(lambda: record(cluster, "threshold/50").get("notification") == "Sent", timeout=20)
        [sent] = receiver.on("/hook")
        assert sent.headers["Idempotency-Key"] == f"{NS}/llama-sweep/threshold/50/lifetime"
        assert sent.body["trigger"] == "spend 55.04 reached 50% of 100"
