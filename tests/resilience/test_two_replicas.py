"""Issue 12, point 3: two `costwarden run --lease` processes; the leader is killed (SIGKILL),
paused (SIGSTOP, later SIGCONT) and partitioned from the API server (its proxy holds every
request and answer, then delivers them, as TCP would), each at the point where it has decided
the Kill. The standby takes over within the Lease's documented time, no action is lost or
doubled, and the old leader, once back, writes nothing: no delete, no Event, no status, no
annotation (its Lease renewal attempts aside). What it sent before the cut and the network
delivered late is refused: deletes and annotations by their uid preconditions, status writes by
their resourceVersion (test_late_status.py shows that one on its own, in seconds).

Lease settings: duration 3 s, renew deadline 2 s, retry period 0.3 s (the chart's 15 / 10 / 2 s
scaled down). A standby takes over once it has seen the same Lease record for the duration, so
takeover takes at most duration + 2 retry periods after the leader's last renewal (one period for
the standby to first see that record, one for its next try), plus the time to write the Lease.

Here one run per disruption; every disruption at every point is test_campaign.py's
(RESILIENCE_CAMPAIGN=1, `make crash`).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from costwarden.sim.testing import ThreadedSimCluster
from tests.resilience.failover import (
    EXPECTED_SPEND_RELAUNCHED,
    LEASE_DURATION,
    TEST_LEASE,
    FailoverResult,
    LeaseTimes,
    holder,
    lease_args,
    run_failover,
)
from tests.resilience.harness import ApiProxy, OperatorProcess, SharedClock, processes
from tests.resilience.scenario import KILL_ID, NOTIFY_ID, T0, HookReceiver, seed

TAKEOVER_BOUND = TEST_LEASE.takeover_bound


def check_failover(result: FailoverResult, times: LeaseTimes = TEST_LEASE) -> None:
    summary = f"{result.disruption} at {result.point}: {result}"
    assert [(i, a, r, n) for i, a, r, n, _ in result.actions] == [
        (NOTIFY_ID, "Notify", "Done", "Sent"),
        (KILL_ID, "Kill", "Done", "Sent"),
    ], summary
    # Each original pod deleted once (one DELETE that found it), by whichever replica led.
    for answers in result.deletes.values():
        assert [status for _, status in answers].count(200) == 1, summary
    assert sorted(result.deletes) == ["llama-sweep-2ea4-head", "llama-sweep-2ea4-worker1"], summary
    assert result.relaunched_alive, summary  # the cluster SkyPilot brought back lives on
    assert result.after_fence == [], summary  # the old leader, back, wrote nothing
    # What it sent while it led and the network delivered late: a delete or an annotation is
    # refused by the API server (uid preconditions), and so is a status write (its
    # resourceVersion is stale: the new leader has written since); an Event may land.
    late = {(method, status) for method, path, status, _ in result.late if "/status" not in path}
    assert late <= {("DELETE", 409), ("PATCH", 422), ("POST", 201)}, summary
    late_status = {(method, status) for method, path, status, _ in result.late if "/status" in path}
    assert late_status <= {("PATCH", 409)}, summary
    assert sorted(result.deliveries.values()) == [1, 1], summary
    assert result.spend == EXPECTED_SPEND_RELAUNCHED, summary
    assert result.takeover_s <= times.takeover_bound, summary
    assert result.stale_s == [], summary  # no late status of the old leader was ever stored
    assert result.lease_transitions == 1, summary  # a to b, and never back


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("disruption", "point"),
    [
        ("kill", "kill-pending-stored"),
        ("pause", "between-deletes"),
        ("partition", "kill-decided-unstored"),
        ("partition", "before-first-delete"),
    ],
)
def test_the_standby_takes_over_and_the_old_leader_does_not_act(
    tmp_path: Path, disruption: str, point: str
) -> None:
    check_failover(run_failover(tmp_path, disruption, point))


@pytest.mark.timeout(60)
def test_a_live_leader_keeps_its_lease_while_the_scenario_clock_stands_still(tmp_path: Path) -> None:
    """The Lease's renewTime is real time even when the operator's clock is a test's: with the
    scenario's clock, renewals rewrote the same record, the API server kept it unchanged, and the
    standby took over from a live leader after one lease duration."""
    clock = SharedClock(T0, tmp_path / "clock")
    with (
        ThreadedSimCluster(clock=clock) as cluster,
        HookReceiver() as receiver,
        ApiProxy(cluster.url) as proxy,
    ):
        seed(cluster, receiver.url)
        kubeconfig = proxy.write_kubeconfig(tmp_path / "kubeconfig")
        a = OperatorProcess(kubeconfig, clock.path, tmp_path / "a.log", lease_args("replica-a"))
        b = OperatorProcess(kubeconfig, clock.path, tmp_path / "b.log", lease_args("replica-b"))
        with processes(a, b):
            a.start()
            deadline = time.monotonic() + 60
            while holder(cluster) != "replica-a":
                assert time.monotonic() < deadline, a.log_text()[-3000:]
                time.sleep(0.05)
            b.start()
            time.sleep(3 * LEASE_DURATION + 2)
            assert holder(cluster) == "replica-a", b.log_text()[-3000:]
            lease = cluster.get("coordination.k8s.io/v1", "leases", "costwarden", namespace="default") or {}
            assert lease["spec"].get("leaseTransitions", 0) == 0
            assert "replica-b now leads" not in b.log_text()
