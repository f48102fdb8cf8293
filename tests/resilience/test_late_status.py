"""Issue 12, two replicas: a status write an old leader sent before a partition cut it off,
delivered late, no longer replaces what the new leader stored.

Two replicas' status writers (the operator's own ``StatusWriter`` and ``KubeClient``) write one
CostBudget on the stand-in, each through its own ``ApiProxy``. The leader's proxy holds its
status write as a partition holds unacknowledged TCP data; its fence runs out; the standby takes
over from what is stored and writes; then the partition heals and the held write is delivered.

- Delivered after the new leader wrote: the API server refuses it (409, its resourceVersion is
  stale) and the old leader, no longer leading, drops it without reading or writing again.
- Delivered after the takeover but before the new leader's first write: it is taken (nothing
  wrote the budget since its version); the new leader's write is then refused, and the one it
  makes after reading the budget again keeps its own records and takes in the one only the old
  leader had decided.

Either way the stored status ends with the new leader's records. Before resourceVersion
preconditions, the late write replaced them until the new leader's next write
(bench/RESULTS.md, "Crash, restart and failover").
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from costwarden.engine.status_patch import status_merge_patch
from costwarden.models import Action, ActionRecord, ActionResult, CostBudgetStatus, NotificationState, Phase
from costwarden.operator.budgets import BudgetObject, previous_status
from costwarden.operator.budgetstate import BudgetBook, BudgetState
from costwarden.operator.kube import KubeClient, load_configuration
from costwarden.operator.metrics import Metrics
from costwarden.operator.statuswriter import StatusWriter
from costwarden.sim.testing import ThreadedSimCluster
from tests import shapes
from tests.component.conftest import load_crd
from tests.resilience.harness import ApiProxy, Exchange, Passed, Verdict

NS = "research"
NAME = "llama-sweep"
GROUP_VERSION = "costwarden.dev/v1alpha1"
BUDGET_PATH = f"/apis/{GROUP_VERSION}/namespaces/{NS}/costbudgets/{NAME}"
NOTIFY_ID = "threshold/50/lifetime"
KILL_ID = "threshold/100/lifetime"
IDLE_ID = "anomaly/idleGpu/8d0c1f2e"
WAIT_S = 10.0


def record(record_id: str, action: Action, result: ActionResult, **fields: Any) -> ActionRecord:
    return shapes.action_record(record_id, action, result, time="2026-12-07T12:10:00Z", **fields)


NOTIFIED = record(NOTIFY_ID, Action.NOTIFY, ActionResult.DONE, notification=NotificationState.SENT)
KILL_PENDING = record(
    KILL_ID, Action.KILL, ActionResult.PENDING, attempts=1, notification=NotificationState.PENDING
)
KILL_DONE = record(KILL_ID, Action.KILL, ActionResult.DONE, attempts=1, notification=NotificationState.SENT)
IDLE_PENDING = record(IDLE_ID, Action.NOTIFY, ActionResult.PENDING)


def status(*records: ActionRecord, spend: str) -> CostBudgetStatus:
    return CostBudgetStatus(phase=Phase.EXCEEDED, spend=spend, actions=list(records))


@dataclass
class Replica:
    """One operator replica's status path: its client (through its proxy), its writer, its fence."""

    name: str
    proxy: ApiProxy
    kube: KubeClient
    leading: bool = False
    book: BudgetBook = field(default_factory=BudgetBook)
    writer: StatusWriter | None = None
    runner: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.writer = StatusWriter(
            self.kube,
            Metrics(),
            monotonic=time.monotonic,
            acting=lambda: self.leading,
            patch_of=status_merge_patch,
        )
        self.runner = asyncio.create_task(self.writer.run())

    def take_over(self, sim: ThreadedSimCluster) -> BudgetState:
        """The state of the budget as a new term starts it: from what is stored now."""
        body = sim.get(GROUP_VERSION, "costbudgets", NAME, namespace=NS)
        assert body is not None
        budget = BudgetObject.from_body(body)
        stored = previous_status(budget.status, f"{NS}/{NAME}")
        self.leading = True
        return self.book.state(budget.key, budget.uid, stored, budget.status, budget.resource_version)

    async def write(self, state: BudgetState, new: CostBudgetStatus) -> int:
        assert self.writer is not None
        revision = state.replace_status(new)
        self.writer.submit(state)
        return revision

    def status_writes(self) -> list[Passed]:
        return self.proxy.requests("PATCH", f"{BUDGET_PATH}/status")

    def budget_reads(self) -> list[Passed]:
        return [p for p in self.proxy.requests("GET", BUDGET_PATH) if p.path.split("?")[0] == BUDGET_PATH]


@pytest.fixture
def sim() -> Iterator[ThreadedSimCluster]:
    with ThreadedSimCluster() as cluster:
        cluster.create(load_crd())
        cluster.create(shapes.namespace(NS))
        cluster.create(
            {
                "apiVersion": GROUP_VERSION,
                "kind": "CostBudget",
                "metadata": {"name": NAME, "namespace": NS},
                "spec": {
                    "limit": 20,
                    "period": "Lifetime",
                    "thresholds": [{"percent": 100, "action": "Kill"}],
                },
            }
        )
        yield cluster


@pytest.fixture
async def replicas(sim: ThreadedSimCluster, tmp_path: Path) -> AsyncIterator[tuple[Replica, Replica]]:
    with ApiProxy(sim.url) as proxy_a, ApiProxy(sim.url) as proxy_b:
        a = Replica("a", proxy_a, KubeClient(load_configuration(proxy_a.write_kubeconfig(tmp_path / "a"))))
        b = Replica("b", proxy_b, KubeClient(load_configuration(proxy_b.write_kubeconfig(tmp_path / "b"))))
        a.start()
        b.start()
        try:
            yield a, b
        finally:
            for replica in (a, b):
                assert replica.runner is not None
                replica.runner.cancel()
                await asyncio.gather(replica.runner, return_exceptions=True)
                replica.proxy.heal()
                await replica.kube.close()


def hold_next_status_write(proxy: ApiProxy) -> threading.Event:
    """Partition ``proxy`` as the next status write reaches it, holding that write."""
    held = threading.Event()

    def on_request(exchange: Exchange) -> Verdict:
        if (
            not held.is_set()
            and exchange.method == "PATCH"
            and exchange.path.startswith(f"{BUDGET_PATH}/status")
        ):
            proxy.partition()
            held.set()
        return Verdict.FORWARD

    proxy.on_request = on_request
    return held


async def until(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {WAIT_S:g}s"
        await asyncio.sleep(0.01)


def stored_records(sim: ThreadedSimCluster) -> list[tuple[str, str, str | None]]:
    body = sim.get(GROUP_VERSION, "costbudgets", NAME, namespace=NS) or {}
    return [
        (r["id"], r["result"], r.get("notification")) for r in (body.get("status") or {}).get("actions") or []
    ]


def stored_spend(sim: ThreadedSimCluster) -> Any:
    body = sim.get(GROUP_VERSION, "costbudgets", NAME, namespace=NS) or {}
    return (body.get("status") or {}).get("spend")


async def old_leader_writes_then_is_cut_off(sim: ThreadedSimCluster, a: Replica) -> BudgetState:
    """Replica a leads, stores its Pending Kill, then sends one more status write (spend moved,
    and an idle-GPU record it decided) that its partition holds; its fence then runs out."""
    state = a.take_over(sim)
    first = await a.write(state, status(NOTIFIED, KILL_PENDING, spend="20.5"))
    assert await state.wait_stored(first, WAIT_S)
    held = hold_next_status_write(a.proxy)
    late = await a.write(state, status(NOTIFIED, KILL_PENDING, IDLE_PENDING, spend="20.6"))
    await until(held.is_set, "a's status write held by the partition")
    a.leading = False  # its fence ran out: it cannot renew the Lease through the partition
    assert not await state.wait_stored(late, 0.05)
    return state


@pytest.mark.timeout(60)
async def test_a_late_status_write_delivered_after_the_new_leader_wrote_is_refused(sim, replicas):
    a, b = replicas
    a_state = await old_leader_writes_then_is_cut_off(sim, a)

    b_state = b.take_over(sim)  # b holds the Lease now; it carries the Kill out and stores it
    done = await b.write(b_state, status(NOTIFIED, KILL_DONE, spend="20.67"))
    assert await b_state.wait_stored(done, WAIT_S)
    expected = [(NOTIFY_ID, "Done", "Sent"), (KILL_ID, "Done", "Sent")]
    assert stored_records(sim) == expected

    a.proxy.heal(deliver=True)  # the held write reaches the API server now
    await until(lambda: [p.status for p in a.status_writes()] == [200, 409], "a's late write answered")
    assert a.writer is not None
    await until(lambda: a.writer is not None and a.writer.sizes()["writing"] == 0, "a's writer idle")

    assert stored_records(sim) == expected  # the new leader's records, not the Kill Pending again
    assert stored_spend(sim) == 20.67
    assert a.budget_reads() == []  # no longer leading: the 409 is not followed by a read
    assert a.writer.sizes() == {"queued": 0, "urgent": 0, "writing": 0, "failures": 0, "retries": 0}
    assert a_state.stored_revision < a_state.revision  # its late status was never stored
    assert [p.status for p in b.status_writes()] == [200]


@pytest.mark.timeout(60)
async def test_a_late_status_write_that_lands_first_is_merged_away_by_the_new_leaders_next_write(
    sim, replicas
):
    a, b = replicas
    await old_leader_writes_then_is_cut_off(sim, a)

    b_state = b.take_over(sim)  # b read the budget: a's Kill Pending
    a.proxy.heal(deliver=True)  # a's late write lands first, at the version b read too
    await until(lambda: [p.status for p in a.status_writes()] == [200, 200], "a's late write taken")
    assert stored_records(sim) == [
        (NOTIFY_ID, "Done", "Sent"),
        (KILL_ID, "Pending", "Pending"),
        (IDLE_ID, "Pending", None),
    ]

    done = await b.write(b_state, status(NOTIFIED, KILL_DONE, spend="20.67"))
    assert await b_state.wait_stored(done, WAIT_S)

    assert [p.status for p in b.status_writes()] == [409, 200]
    assert len(b.budget_reads()) == 1
    # b's Kill Done stands; the idle-GPU record only a had decided is kept (b's next pass plans it)
    assert stored_records(sim) == [
        (NOTIFY_ID, "Done", "Sent"),
        (KILL_ID, "Done", "Sent"),
        (IDLE_ID, "Pending", None),
    ]
    assert stored_spend(sim) == 20.67
    assert [r.id for r in b_state.status.actions] == [NOTIFY_ID, KILL_ID, IDLE_ID]


@pytest.mark.timeout(60)
async def test_a_users_edit_seen_on_the_watch_costs_no_conflict(sim, replicas):
    """The stored status read back is the one written (no 409 for the writer's own writes), and a
    spec edit leaves it so: the watched version is taken, and the next write goes through."""
    _, b = replicas
    state = b.take_over(sim)
    first = await b.write(state, status(NOTIFIED, spend="10.5"))
    assert await state.wait_stored(first, WAIT_S)
    sim.patch(GROUP_VERSION, "costbudgets", NAME, {"spec": {"limit": 25}}, namespace=NS)
    edited = BudgetObject.from_body(sim.get(GROUP_VERSION, "costbudgets", NAME, namespace=NS) or {})
    assert edited.resource_version != state.resource_version
    assert state.observe(edited.resource_version, edited.status)
    second = await b.write(state, status(NOTIFIED, spend="10.6"))
    assert await state.wait_stored(second, WAIT_S)
    assert [p.status for p in b.status_writes()] == [200, 200]
    assert b.budget_reads() == []
