"""Two ``costwarden run --lease`` replicas through the scenario; the leader is disrupted at a
named point (killed, paused or cut off from the API server), the standby takes over, and the
old leader, if it comes back, must not act.

Each replica talks to the stand-in through its own ``ApiProxy``, so that one of them can be
partitioned and every request it makes is seen. After the standby has carried the Kill out,
SkyPilot "relaunches" the cluster (new pods with the same names): only then is the old leader
resumed or reconnected, so that a late delete of its would hit a pod that must survive.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from costwarden.sim.testing import ThreadedSimCluster
from tests import shapes
from tests.resilience.harness import ApiProxy, Exchange, OperatorProcess, Passed, SharedClock, Verdict
from tests.resilience.scenario import (
    BUDGET,
    CLUSTER,
    EXPECTED_SPEND,
    NS,
    PODS_PATH,
    POINTS,
    STEP,
    STEPS,
    T0,
    HookReceiver,
    _records,
    caught_up,
    exact_spend,
    seed,
    status_of,
)

LEASE_DURATION = 3.0
RENEW_DEADLINE = 2.0
RETRY_PERIOD = 0.3
LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
RELAUNCH_STEP = 10  # the step of the Kill: after it the cluster comes back, under new uids
# Relaunched at step 10, the new pods spend 2 USD a minute until step 12.
EXPECTED_SPEND_RELAUNCHED = EXPECTED_SPEND + Decimal(2) * (STEPS - RELAUNCH_STEP)


@dataclass(frozen=True)
class LeaseTimes:
    duration: float = LEASE_DURATION
    renew_deadline: float = RENEW_DEADLINE
    retry_period: float = RETRY_PERIOD

    @property
    def takeover_bound(self) -> float:
        """The standby takes over once it has seen the same record for the duration: at most a
        retry period to first see the leader's last renewal, the duration, a retry period to its
        next try; + 0.5 s to write the Lease on a busy machine."""
        return self.duration + 2 * self.retry_period + 0.5


TEST_LEASE = LeaseTimes()  # the chart's scaled down, so that a takeover takes seconds
CHART_LEASE = LeaseTimes(15.0, 10.0, 2.0)  # the chart's and the flags' defaults


def lease_args(identity: str, times: LeaseTimes = TEST_LEASE) -> list[str]:
    return [
        "--lease=costwarden",
        "--lease-namespace=default",
        f"--lease-identity={identity}",
        f"--lease-duration={times.duration:g}",
        f"--renew-deadline={times.renew_deadline:g}",
        f"--retry-period={times.retry_period:g}",
    ]


def holder(cluster: ThreadedSimCluster) -> str:
    found = cluster.get("coordination.k8s.io/v1", "leases", "costwarden", namespace="default") or {}
    return str((found.get("spec") or {}).get("holderIdentity") or "")


def acts(passed: Passed) -> bool:
    """A request that changes the world: anything written but the replica's own Lease."""
    return passed.method in ("POST", "PUT", "PATCH", "DELETE") and not passed.path.startswith(LEASE_PATH)


@dataclass
class FailoverResult:
    disruption: str
    point: str
    takeover_s: float  # disruption -> the standby holds the Lease
    acting_s: float  # disruption -> the standby's first write (status, annotation, delete, Event)
    actions: list[tuple[str, str, str, str | None, tuple[str, ...]]]
    spend: Decimal
    deletes: dict[str, list[tuple[str, int | None]]]  # pod name -> (replica, answer) of each DELETE
    deliveries: Counter[str]
    # Writes of the old leader the API server accepted although they left it after its fence
    # (its last Lease renewal + the renew deadline): must be none.
    after_fence: list[tuple[str, str, int | None]]
    # Writes it sent while it still led that the network delivered after the standby took over
    # (a partition holds them, as unacknowledged TCP data): (method, path, answer, records).
    late: list[tuple[str, str, int | None, str]]
    # For each late status write the API server took: seconds until the new leader's next one
    # replaced it (the stored status was the old leader's meanwhile). None since status writes
    # carry a resourceVersion precondition: a late one is refused (409).
    stale_s: list[float]
    relaunched_alive: bool
    lease_transitions: int
    seconds: float


def run_failover(
    tmp: Path, disruption: str, point: str, *, times: LeaseTimes = TEST_LEASE, timeout: float = 240.0
) -> FailoverResult:
    """``disruption`` is kill, pause or partition, applied to the leader at ``point`` (a name of
    scenario.POINTS at the proxy: request or response stage)."""
    assert disruption in ("kill", "pause", "partition")
    where = POINTS[point]
    assert where.stage in ("request", "response")
    tmp.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    clock = SharedClock(T0, tmp / "clock")
    disrupted_at: float | None = None
    with (
        ThreadedSimCluster(clock=clock) as cluster,
        HookReceiver() as receiver,
        ApiProxy(cluster.url) as proxy_a,
        ApiProxy(cluster.url) as proxy_b,
    ):
        names = seed(cluster, receiver.url)
        a = OperatorProcess(
            proxy_a.write_kubeconfig(tmp / "a.kubeconfig"),
            clock.path,
            tmp / "a.log",
            lease_args("replica-a", times),
        )
        b = OperatorProcess(
            proxy_b.write_kubeconfig(tmp / "b.kubeconfig"),
            clock.path,
            tmp / "b.log",
            lease_args("replica-b", times),
        )

        def disrupt(stage: str, exchange: Exchange) -> Verdict:
            nonlocal disrupted_at
            if disrupted_at is not None or where.stage != stage or not where.matches(exchange):
                return Verdict.FORWARD
            disrupted_at = time.monotonic()
            if disruption == "kill":
                a.kill()
                return Verdict.DROP
            if disruption == "pause":
                a.pause()  # the request goes on / the answer waits in the socket until SIGCONT
            else:
                proxy_a.partition()  # held: delivered when the network heals
            return Verdict.FORWARD

        proxy_a.on_request = lambda e: disrupt("request", e)
        proxy_a.on_response = lambda e, status, body: disrupt("response", e)
        takeover_s = acting_s = float("nan")
        try:
            a.start()
            _wait(lambda: holder(cluster) == "replica-a", 60, "replica-a leads", a)
            b.start()
            time.sleep(1.0)  # b is up and standing by
            for step in range(STEPS + 1):
                now = T0 + step * STEP if step == 0 else clock.advance(STEP)
                deadline = time.monotonic() + timeout
                while not caught_up(cluster, now):
                    if disrupted_at is not None and math.isnan(takeover_s) and holder(cluster) == "replica-b":
                        takeover_s = time.monotonic() - disrupted_at
                    if time.monotonic() > deadline:
                        logs = f"A:\n{a.log_text()[-3000:]}\nB:\n{b.log_text()[-3000:]}"
                        raise TimeoutError(f"step {step} not caught up\n{logs}")
                    time.sleep(0.02)
                if step == RELAUNCH_STEP:
                    assert disrupted_at is not None, f"the leader never reached {point}"
                    if math.isnan(takeover_s):
                        _wait(lambda: holder(cluster) == "replica-b", 30, "replica-b leads", b)
                        takeover_s = time.monotonic() - disrupted_at
                    first = [p.at for p in proxy_b.passed if acts(p) and p.at >= disrupted_at]
                    acting_s = (min(first) - disrupted_at) if first else float("nan")
                    relaunch(cluster, names, now)
                    if disruption == "pause":
                        a.resume()
                    elif disruption == "partition":
                        proxy_a.heal(deliver=True)
                    time.sleep(min(times.duration, 5.0))  # room for the old leader to misbehave
            time.sleep(1.0)
            raw = status_of(cluster)
            alive = {
                p["metadata"]["name"]: p["metadata"]["uid"] for p in cluster.list("v1", "pods", namespace=NS)
            }
        finally:
            a.stop()
            b.stop()
        for replica, proxy in (("a", proxy_a), ("b", proxy_b)):  # for reading after a failure
            origin = disrupted_at or started
            (tmp / f"{replica}.requests").write_text(
                "".join(
                    f"{p.at - origin:+9.3f} {p.method} {p.path} {p.status} {_said(p)}\n" for p in proxy.passed
                )
            )
        for process in (a, b):
            assert "Traceback" not in process.log_text(), process.log_text()[-6000:]
        deletes: dict[str, list[tuple[str, int | None]]] = {}
        for replica, proxy in (("a", proxy_a), ("b", proxy_b)):
            for passed in proxy.requests("DELETE", PODS_PATH):
                name = passed.path.removeprefix(PODS_PATH).split("?")[0]
                deletes.setdefault(name, []).append((replica, passed.status))
        renewed = [
            p.received
            for p in proxy_a.passed
            if _lease(p) and p.method in ("PUT", "POST") and p.status in (200, 201)
        ]
        fence = max(renewed, default=started) + times.renew_deadline
        taken = (disrupted_at or started) + takeover_s
        accepted = [p for p in proxy_a.passed if acts(p) and p.status is not None and p.status < 300]
        after = [(p.method, p.path, p.status) for p in accepted if p.received >= fence]
        late = [
            (p.method, p.path, p.status, _said(p))
            for p in proxy_a.passed
            if acts(p) and p.received < fence and p.at >= taken
        ]
        writes_b = sorted(p.at for p in proxy_b.passed if _status_write(p) and p.status == 200)
        stale = [
            min((at for at in writes_b if at > p.at), default=float("inf")) - p.at
            for p in proxy_a.passed
            if _status_write(p) and p.status == 200 and p.received < fence and p.at >= taken
        ]
        lease = cluster.get("coordination.k8s.io/v1", "leases", "costwarden", namespace="default") or {}
        return FailoverResult(
            disruption=disruption,
            point=point,
            takeover_s=takeover_s,
            acting_s=acting_s,
            actions=[
                (r["id"], r["action"], r["result"], r.get("notification"), tuple(r.get("targets") or ()))
                for r in raw.get("actions") or []
            ],
            spend=exact_spend(raw),
            deletes=deletes,
            deliveries=receiver.counts(),
            after_fence=after,
            late=late,
            stale_s=stale,
            relaunched_alive=sorted(alive) == sorted(names),
            lease_transitions=int((lease.get("spec") or {}).get("leaseTransitions") or 0),
            seconds=time.monotonic() - started,
        )


def relaunch(cluster: ThreadedSimCluster, names: list[str], now: Any) -> None:
    """SkyPilot brings the cluster back: pods of the same names (new uids), running from ``now``."""
    for index, role in enumerate(("head", "worker")):
        pod = shapes.skypilot_pod(CLUSTER, BUDGET, namespace=NS, node=f"gpu-{index}", role=role, index=index)
        name = cluster.create(pod)["metadata"]["name"]
        assert name == names[index]
        cluster.patch(
            "v1", "pods", name, {"status": shapes.running_status(now)}, namespace=NS, subresource="status"
        )


def _status_write(passed: Passed) -> bool:
    return passed.method == "PATCH" and passed.path.endswith("/status")


def _lease(passed: Passed) -> bool:
    return passed.path.startswith(LEASE_PATH)


def _said(passed: Passed) -> str:
    """The action records a status write carries, in short."""
    records = _records(Exchange(passed.method, passed.path, passed.body))
    return " ".join(f"{r.get('id')}:{r.get('result')}/{r.get('notification')}" for r in records)


def _wait(predicate: Any, timeout: float, what: str, replica: OperatorProcess) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g}s\n{replica.log_text()[-3000:]}")
        time.sleep(0.02)
