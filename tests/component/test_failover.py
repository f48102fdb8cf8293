"""Two real operator processes with leader election: kill the leader, the other takes over
within the Lease's duration, and every action and notification still happens exactly once.

Real time here (two processes cannot share a test clock): the pods' node costs 3,600 USD/h,
one dollar a second, so the budget's 50 % Notify and 100 % Kill come seconds apart.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kmock

from costwarden.sim.testing import ThreadedSimCluster
from tests import shapes
from tests.component.test_enforcement import pod_names, record, secret
from tests.component.test_operator_spend import NS, budget, status_of
from tests.receiver import Receiver

COSTWARDEN = Path(sys.executable).with_name("costwarden")
LEASE_DURATION = 3.0


def start_replica(cluster: ThreadedSimCluster, identity: str, log: Path) -> subprocess.Popen[bytes]:
    command = [
        str(COSTWARDEN),
        "run",
        f"--kubeconfig={cluster.kubeconfig}",
        "--metrics-port=0",
        "--interval=0.5",
        "--accrual-interval=0.5",
        "--status-interval=0.5",
        "--lease=costwarden",
        "--lease-namespace=default",
        f"--lease-identity={identity}",
        f"--lease-duration={LEASE_DURATION}",
        "--renew-deadline=2",
        "--retry-period=0.3",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)


def lease(cluster: ThreadedSimCluster) -> dict[str, Any]:
    found = cluster.get("coordination.k8s.io/v1", "leases", "costwarden", namespace="default") or {}
    return dict(found.get("spec") or {})


def seed(cluster: ThreadedSimCluster, started: datetime) -> None:
    cluster.create(shapes.namespace(NS))
    for index, role in enumerate(("head", "worker")):
        node = shapes.eks_p5_node(f"gpu-{index}")
        node["metadata"]["annotations"] = {"costwarden.dev/hourly-price": "1800"}  # half a dollar a second
        cluster.create(node)
        pod = shapes.skypilot_pod(
            "llama-sweep-2ea4", "llama-sweep", namespace=NS, node=f"gpu-{index}", role=role, index=index
        )
        name = cluster.create(pod)["metadata"]["name"]
        running = {"status": shapes.running_status(started)}
        cluster.patch("v1", "pods", name, running, namespace=NS, subresource="status")


def test_killing_the_leader_hands_over_and_every_action_happens_once(tmp_path):
    with ThreadedSimCluster() as cluster, Receiver() as receiver:
        from tests.component.conftest import load_crd

        cluster.create(load_crd())
        started = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
        seed(cluster, started)
        cluster.create(secret("hooks", url=f"{receiver.url}/hook"))
        body = budget(limit=24)  # 1 USD/s: 50 % at ~12 s, 100 % at ~24 s after the pods start
        body["spec"]["thresholds"] = [{"percent": 50, "action": "Notify"}, {"percent": 100, "action": "Kill"}]
        body["spec"]["notify"] = {"webhook": {"urlSecretRef": {"name": "hooks", "key": "url"}}}
        cluster.create(body)

        first = start_replica(cluster, "replica-a", tmp_path / "a.log")
        cluster.wait_for(lambda: lease(cluster).get("holderIdentity") == "replica-a", timeout=30)
        second = start_replica(cluster, "replica-b", tmp_path / "b.log")
        try:
            # The leader dies after its 50 % notification is stored as Sent. (Killed between the
            # receiver's answer and that write, the next leader would send it again with the same
            # Idempotency-Key: the documented at-least-once window, not exercised here.)
            cluster.wait_for(
                lambda: record(cluster, "threshold/50").get("notification") == "Sent", timeout=40
            )
            assert lease(cluster)["holderIdentity"] == "replica-a"
            killed_at = time.monotonic()
            first.send_signal(signal.SIGKILL)
            first.wait(10)

            cluster.wait_for(lambda: lease(cluster).get("holderIdentity") == "replica-b", timeout=20)
            took_over = time.monotonic() - killed_at
            assert took_over <= LEASE_DURATION + 2, f"took over after {took_over:.1f}s"
            assert lease(cluster)["leaseTransitions"] >= 1

            cluster.wait_for(
                lambda: record(cluster, "threshold/100").get("notification") == "Sent", timeout=40
            )
        finally:
            for process in (first, second):
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    try:
                        process.wait(20)
                    except subprocess.TimeoutExpired:
                        process.kill()

        assert pod_names(cluster) == []
        deletes = list(cluster.cluster.emulator["delete", kmock.resource("", "v1", "pods")])
        assert sorted(r.name for r in deletes) == ["llama-sweep-2ea4-head", "llama-sweep-2ea4-worker1"]
        hooks = receiver.on("/hook")
        keys = [h.headers["Idempotency-Key"] for h in hooks]
        assert sorted(keys) == [
            f"{NS}/llama-sweep/threshold/100/lifetime",
            f"{NS}/llama-sweep/threshold/50/lifetime",
        ]
        actions = status_of(cluster)["actions"]
        assert [(a["id"], a["result"], a.get("notification")) for a in actions] == [
            ("threshold/50/lifetime", "Done", "Sent"),
            ("threshold/100/lifetime", "Done", "Sent"),
        ]
