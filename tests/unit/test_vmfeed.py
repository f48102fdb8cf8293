"""The operator's view of cloud VMs: polls with back-off, nothing dropped or acted on from a
failed or partial poll, accrual once per pass resumed from a budget's ledger, and the action
door that refuses stale scopes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from costwarden.clouds.base import Discovery, VMActionResult
from costwarden.engine.enforcement import ActionPlan, vm_target
from costwarden.engine.vms import RUNNING, STOPPED, VMRecord, vm_node
from costwarden.models import Action, BudgetLedger, PodLedgerEntry
from costwarden.operator.vmactions import act_on_vms, waiting_on_clouds
from costwarden.operator.vmfeed import VMFeed, VMFeedSettings
from costwarden.operator.workloads import Outcome
from costwarden.pricing import PriceBook, load_bundled_catalog
from tests.outside_runtime import FakeKube, FakeRuntime

NOV_3 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
SCOPE = "aws:us-east-1"


def vm(vm_id: str, *, head: bool = False, **changes: Any) -> VMRecord:
    tags = (
        ("skypilot-cluster-name", "llama-sweep-2ea4"),
        ("skypilot-head-node", "1" if head else "0"),
    )
    base = VMRecord(
        cloud="aws",
        scope=SCOPE,
        vm_id=vm_id,
        name=vm_id,
        region="us-east-1",
        zone="us-east-1a",
        instance_type="g5.xlarge",
        capacity_type="on-demand",
        state=RUNNING,
        launched=NOV_3 - timedelta(hours=1),
        tags=tags,
        provider_id=f"aws:///us-east-1a/{vm_id}",
    )
    return replace(base, **changes)


@dataclass
class ScriptedInventory:
    """A VMInventory answering what the test scripts, and recording what it was asked to do."""

    answers: list[Discovery]
    scope: str = SCOPE
    cloud: str = "aws"
    calls: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    def discover(self) -> Discovery:
        self.calls.append(("discover", ()))
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def describe(self, vms: Sequence[VMRecord]) -> Discovery:
        return Discovery(tuple(vms), complete=True)

    def stop(self, vms: Sequence[VMRecord]) -> list[VMActionResult]:
        self.calls.append(("stop", tuple(v.vm_id for v in vms)))
        return [VMActionResult(v.vm_id, True, "stopping") for v in vms]

    def terminate(self, vms: Sequence[VMRecord]) -> list[VMActionResult]:
        self.calls.append(("terminate", tuple(v.vm_id for v in vms)))
        return [VMActionResult(v.vm_id, True, "shutting-down") for v in vms]


async def same_thread(call: Any) -> Any:
    return call()


def feed_of(*answers: Discovery, interval: float = 60.0) -> tuple[VMFeed, ScriptedInventory]:
    inventory = ScriptedInventory(list(answers))
    return VMFeed([inventory], VMFeedSettings(interval=interval), run=same_thread), inventory


def test_a_failed_poll_keeps_the_last_known_vms_backs_off_and_makes_the_scope_unfit_to_act() -> None:
    good = Discovery((vm("i-1"), vm("i-2")), complete=True)
    bad = Discovery((), complete=False, error="aws:us-east-1 DescribeInstances: RequestLimitExceeded")
    feed, inventory = feed_of(good, bad, bad, good)
    assert asyncio.run(feed.poll(0.0)) == {SCOPE: True}
    assert feed.fresh(SCOPE, 1.0) and feed.problems(1.0) == ()
    assert asyncio.run(feed.poll(59.0)) == {}  # not due yet
    assert asyncio.run(feed.poll(60.0)) == {SCOPE: False}
    assert {v.vm_id for v in feed.records()} == {"i-1", "i-2"}  # nothing dropped
    assert not feed.fresh(SCOPE, 61.0)
    assert "RequestLimitExceeded" in feed.problems(61.0)[0]
    assert asyncio.run(feed.poll(119.0)) == {}  # first back-off: one interval
    assert asyncio.run(feed.poll(120.0)) == {SCOPE: False}
    assert asyncio.run(feed.poll(200.0)) == {}  # second back-off: two intervals
    assert asyncio.run(feed.poll(240.0)) == {SCOPE: True}
    assert feed.fresh(SCOPE, 241.0)
    assert [name for name, _ in inventory.calls] == ["discover"] * 4


def test_retry_after_is_honoured_when_longer_than_the_back_off() -> None:
    throttled = Discovery((), complete=False, error="throttled", retry_after=300.0)
    feed, _ = feed_of(Discovery((vm("i-1"),), complete=True), throttled)
    asyncio.run(feed.poll(0.0))
    asyncio.run(feed.poll(60.0))
    assert asyncio.run(feed.poll(359.0)) == {}
    assert asyncio.run(feed.poll(360.0)) == {SCOPE: False}


def test_a_partial_answer_updates_what_it_read_and_drops_nothing() -> None:
    first = Discovery((vm("i-1"), vm("i-2")), complete=True)
    partial = Discovery((vm("i-1", state=STOPPED),), complete=False, error="zone us-east-1b unreachable")
    feed, _ = feed_of(first, partial)
    asyncio.run(feed.poll(0.0))
    asyncio.run(feed.poll(60.0))
    states = {v.vm_id: v.state for v in feed.records()}
    assert states == {"i-1": STOPPED, "i-2": RUNNING}


def test_a_complete_answer_replaces_the_scope_and_a_stale_scope_is_a_problem() -> None:
    feed, _ = feed_of(Discovery((vm("i-1"),), complete=True), Discovery((), complete=True))
    asyncio.run(feed.poll(0.0))
    assert not feed.fresh(SCOPE, 181.0)  # 3 x interval without a complete poll
    assert feed.problems(181.0) == (f"{SCOPE}: last read 181 s ago",)
    asyncio.run(feed.poll(181.0))
    assert feed.records() == []


def test_never_polled_is_a_problem_and_not_fresh() -> None:
    feed, _ = feed_of(Discovery((), complete=True))
    assert feed.problems(0.0) == (f"{SCOPE}: not read yet",) and not feed.fresh(SCOPE, 0.0)


def test_accrual_is_computed_once_per_pass_and_resumes_from_the_budget_ledger() -> None:
    feed, _ = feed_of(Discovery((vm("i-1"),), complete=True))
    prices = PriceBook(load_bundled_catalog())
    record = vm("i-1")
    hourly = prices.price(vm_node(record)).hourly
    ledger = BudgetLedger(pods={record.key: PodLedgerEntry(spend=Decimal(5), at="2026-11-03T09:00:00Z")})
    first = feed.covered(record, prices, NOV_3, ledger)
    assert first.accrual.spend == Decimal(5) + hourly  # ran the hour the operator was down
    assert feed.covered(record, prices, NOV_3, BudgetLedger()) is first  # another budget, same pass
    later = feed.covered(record, prices, NOV_3 + timedelta(hours=1), BudgetLedger())
    assert later.accrual.spend == Decimal(5) + 2 * hourly
    assert first.gpus == 1  # g5.xlarge: one A10G, from the catalog
    feed.clear()  # a new term: resumes from what is stored
    fresh = feed.covered(record, prices, NOV_3 + timedelta(hours=2), BudgetLedger())
    assert fresh.accrual.spend == 3 * hourly  # no ledger entry: since launch


def plan_for(action: Action, vms: Sequence[VMRecord]) -> ActionPlan:
    targets = tuple(vm_target("research", v) for v in vms)
    return ActionPlan("threshold/100/x", action, "spend reached 100%", targets, False, 30, None)


def test_vm_actions_terminate_workers_first_and_only_on_a_fresh_scope() -> None:
    head, worker = vm("i-head", head=True), vm("i-w1")
    feed, inventory = feed_of(Discovery((head, worker), complete=True))
    runtime: Any = FakeRuntime(vms=feed)
    plan = plan_for(Action.KILL, [head, worker])
    asyncio.run(feed.poll(0.0))
    assert waiting_on_clouds(runtime, plan) is None
    results = asyncio.run(act_on_vms(runtime, Action.KILL, plan.targets))
    assert [(r.target, r.result) for r in results] == [
        ("VM aws:i-w1", Outcome.DONE),
        ("VM aws:i-head", Outcome.DONE),
    ]
    assert inventory.calls[1:] == [("terminate", ("i-w1",)), ("terminate", ("i-head",))]


def test_vm_actions_on_stale_data_or_vanished_vms_do_nothing_and_say_why() -> None:
    head, gone = vm("i-head", head=True), vm("i-gone")
    feed, inventory = feed_of(Discovery((head,), complete=True))
    asyncio.run(feed.poll(0.0))
    runtime: Any = FakeRuntime(vms=feed, now=1000.0)  # last complete poll 1000 s ago: stale
    plan = plan_for(Action.SUSPEND, [head, gone])
    assert "aws:us-east-1" in (waiting_on_clouds(runtime, plan) or "")
    results = asyncio.run(act_on_vms(runtime, Action.SUSPEND, plan.targets))
    assert {(r.target, r.result) for r in results} == {
        ("VM aws:i-head", Outcome.THROTTLED),
        ("VM aws:i-gone", Outcome.GONE),
    }
    assert [name for name, _ in inventory.calls] == ["discover"]  # nothing stopped


def test_dry_run_reaches_vm_actions() -> None:
    head = vm("i-head", head=True)
    feed, inventory = feed_of(Discovery((head,), complete=True))
    asyncio.run(feed.poll(0.0))
    runtime: Any = FakeRuntime(vms=feed, kube=FakeKube(dry_run=True))
    results = asyncio.run(act_on_vms(runtime, Action.KILL, plan_for(Action.KILL, [head]).targets))
    assert [(r.result, r.message) for r in results] == [(Outcome.DRY_RUN, "would terminate")]
    assert [name for name, _ in inventory.calls] == ["discover"]


def test_without_clouds_vm_targets_are_skipped() -> None:
    runtime: Any = FakeRuntime(vms=None)
    results = asyncio.run(act_on_vms(runtime, Action.KILL, plan_for(Action.KILL, [vm("i-1")]).targets))
    assert results[0].result == Outcome.SKIPPED
