"""Cloud VMs in the pure engine: which budget covers a VM, its accrual, its place in the ledger
and the status, and the targets a Kill or a Suspend gives it."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from costwarden.engine.anomalies import idle_gpu_id
from costwarden.engine.budget_ledger import settle, settle_at
from costwarden.engine.enforcement import EnforcementPolicy, plan_record, vm_key
from costwarden.engine.evaluation import BudgetInput, evaluate_budget
from costwarden.engine.ledger import PodAccrual
from costwarden.engine.outside import VM, CoveredOutside, Mark, OutsideGroup, OutsideView
from costwarden.engine.vms import (
    RUNNING,
    STOPPED,
    TERMINATED,
    VMRecord,
    accrue_vm,
    covered_vms,
    kill_order,
    vm_node,
)
from costwarden.models import Action, ActionRecord, BudgetLedger, CostBudgetSpec, CostBudgetStatus
from costwarden.pricing import PriceBook, load_bundled_catalog
from costwarden.pricing.classify import classify_node
from costwarden.records import format_time

NOV_1 = datetime(2026, 11, 1, tzinfo=UTC)
NOV_3 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
NS = "research"


def spec(**raw: Any) -> CostBudgetSpec:
    return CostBudgetSpec.model_validate({"limit": 500, "period": "Monthly", **raw})


def vm(
    vm_id: str, cluster: str | None = "llama-sweep-2ea4", *, head: bool = False, **changes: Any
) -> VMRecord:
    tags = []
    if cluster is not None:
        tags = [
            ("skypilot-cluster-name", cluster),
            ("ray-cluster-name", cluster),
            ("skypilot-head-node", "1" if head else "0"),
            ("ray-node-type", "head" if head else "worker"),
        ]
    base = VMRecord(
        cloud="aws",
        scope="aws:us-east-1",
        vm_id=vm_id,
        name=vm_id,
        region="us-east-1",
        zone="us-east-1a",
        instance_type="g5.xlarge",
        capacity_type="on-demand",
        state=RUNNING,
        launched=NOV_3 - timedelta(hours=2),
        tags=tuple(tags),
        provider_id=f"aws:///us-east-1a/{vm_id}",
    )
    return replace(base, **changes)


def test_a_budget_covers_the_vms_of_the_cluster_it_names_and_nothing_else() -> None:
    ours = [vm("i-head", head=True), vm("i-w1"), vm("i-w2", cloud="gcp")]
    decoy = vm("i-decoy", cluster="llama-sweep2-2ea4")
    untagged = vm("i-untagged", cluster=None)
    chosen = covered_vms(spec(skypilotCluster="llama-sweep"), [*ours, decoy, untagged])
    assert [v.vm_id for v in chosen] == ["i-head", "i-w1", "i-w2"]
    assert covered_vms(spec(), [*ours, decoy]) == []  # no skypilotCluster: no VM (they are in no namespace)


def skypilot_name_on_cloud(typed: str, limit: int, user_hash: str = "2ea4") -> str:
    """sky/utils/common_utils.make_cluster_name_on_cloud, as SkyPilot 0.14 writes it."""
    name = typed.replace(".", "-").replace("_", "-").lower()
    if len(name) <= limit - len(user_hash) - 1:
        return f"{name}-{user_hash}"
    cut = name[: limit - 2 - 1 - len(user_hash) - 1].rstrip("-")
    number, digits = int(hashlib.md5(typed.encode()).hexdigest(), 16), ""
    while number:
        number, rest = divmod(number, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[rest] + digits
    return f"{cut}-{digits[:2]}-{user_hash}"


def test_a_long_cluster_name_is_matched_with_each_clouds_own_length_limit() -> None:
    typed = "a-very-long-cluster-name-for-a-sweep"  # 36 characters: cut and hashed on GCP (35)
    on_gcp = vm("p/z/n", cluster=skypilot_name_on_cloud(typed, 35), cloud="gcp")
    assert len(on_gcp.cluster or "") <= 35
    forged = vm("p/z/m", cluster=(on_gcp.cluster or "")[:-7] + "-zz-2ea4", cloud="gcp")
    on_aws = vm("i-1", cluster=skypilot_name_on_cloud(typed, 248))
    chosen = covered_vms(spec(skypilotCluster=typed), [on_gcp, on_aws, forged])
    assert chosen == [on_gcp, on_aws]  # AWS allows 248 characters: the name is not cut there


def test_a_running_vm_seen_first_accrues_since_launch_and_a_stopped_one_does_not() -> None:
    rate = Decimal("1.006")
    running = accrue_vm(vm("i-1"), rate, NOV_3, None, None)
    assert running.spend == Decimal("2.012") and running.rate == rate
    stopped = accrue_vm(vm("i-2", state=STOPPED), rate, NOV_3, None, None)
    assert stopped.spend == 0 and stopped.rate == 0


def test_accrual_continues_from_the_previous_figure_then_from_a_mark_after_a_restart() -> None:
    rate = Decimal("2")
    previous = PodAccrual(Decimal("10"), rate, NOV_3)
    later = accrue_vm(vm("i-1", state=STOPPED), rate, NOV_3 + timedelta(minutes=30), previous, None)
    assert later.spend == Decimal("11") and later.rate == 0  # charged up to now, then nothing
    mark = Mark(Decimal("10"), NOV_3)
    resumed = accrue_vm(vm("i-1"), rate, NOV_3 + timedelta(hours=1), None, mark)
    assert resumed.spend == Decimal("12")  # ran while the operator was down
    idle = accrue_vm(vm("i-1", state=STOPPED), rate, NOV_3 + timedelta(hours=1), None, mark)
    assert idle.spend == Decimal("10")


def test_the_ledger_counts_vms_beside_pods_and_closes_a_vanished_one_with_its_last_figure() -> None:
    head, worker = vm("i-head", head=True), vm("i-w1")
    covered = [
        CoveredOutside(head, PodAccrual(Decimal("4"), Decimal("2"), NOV_3), gpus=1),
        CoveredOutside(worker, PodAccrual(Decimal("6"), Decimal("3"), NOV_3), gpus=4),
    ]
    first = settle_with(BudgetLedger(), covered, NOV_3)
    assert first.spend == Decimal("10") and first.kind(VM).spend == Decimal("10")
    assert (first.kind(VM).live, first.live_gpus, first.hourly_rate) == (2, 5, Decimal("5"))
    assert set(first.ledger.pods) == {head.key, worker.key}
    # the worker is gone from the cloud's answer: closed with its last figure, still VM spend
    second = settle_with(first.ledger, covered[:1], NOV_3 + timedelta(minutes=1))
    assert second.spend == Decimal("10") and second.kind(VM).spend == Decimal("10")
    assert second.ledger.closed_vm_spend == Decimal("6") == second.ledger.closed_spend
    assert second.kind(VM).live == 1


def test_a_terminated_vm_is_not_live_but_its_spend_stays() -> None:
    gone = vm("i-1", state=TERMINATED)
    result = settle_with(
        BudgetLedger(), [CoveredOutside(gone, PodAccrual(Decimal("3"), Decimal(0), NOV_3))], NOV_3
    )
    assert result.kind(VM).live == 0 and result.spend == Decimal("3")


def settle_with(ledger: BudgetLedger, vms: list[CoveredOutside], now: datetime, all_read: bool = True) -> Any:
    group = OutsideGroup(VM, OutsideView(tuple(vms), (), all_read))
    return settle_at(ledger, (NOV_1, format_time(NOV_1)), [], now, format_time(now), (group,))


def test_the_status_shows_vms_and_their_spend_only_when_clouds_are_watched() -> None:
    budget = BudgetInput(NS, "sweep", 1, spec(skypilotCluster="llama-sweep"), CostBudgetStatus())
    covered = [CoveredOutside(vm("i-1"), PodAccrual(Decimal("7.5"), Decimal("1.5"), NOV_3), gpus=1)]
    watched = evaluate_budget(budget, [], NOV_3, clouds=OutsideView(tuple(covered))).status
    assert (watched.vms, watched.vm_spend, watched.spend, watched.gpus) == (
        1,
        Decimal("7.5"),
        Decimal("7.5"),
        1,
    )
    body = watched.to_k8s()
    assert body["vms"] == 1 and body["vmSpend"] == 7.5
    unwatched = evaluate_budget(budget, [], NOV_3).status
    assert unwatched.vms is None and "vmSpend" not in unwatched.to_k8s()


def test_settle_without_vms_is_unchanged() -> None:
    assert settle(BudgetLedger(), NOV_1, [], NOV_3).ledger.closed_vm_spend == 0


def record(action: Action, record_id: str = "threshold/100/2026-11-01T00:00:00Z") -> ActionRecord:
    return ActionRecord(
        id=record_id, time="2026-11-03T10:00:00Z", trigger="spend reached 100%", action=action
    )


CLUSTER = [
    vm("i-head", head=True),
    vm("i-w2"),
    vm("i-w1"),
    vm("i-gone", state=TERMINATED),
    vm("i-off", state=STOPPED),
]


def test_kill_terminates_the_clusters_vms_workers_first_and_the_head_last() -> None:
    plan = plan_record(
        NS,
        spec(skypilotCluster="llama-sweep"),
        record(Action.KILL),
        ([], []),
        EnforcementPolicy(),
        vms=CLUSTER,
    )
    assert [str(t) for t in plan.targets] == ["VM/aws:i-off", "VM/aws:i-w1", "VM/aws:i-w2", "VM/aws:i-head"]
    assert plan.skipped is None
    assert vm_key(plan.targets[-1]) == vm("i-head").key
    assert [v.vm_id for v in kill_order(CLUSTER)][-1] == "i-head"


def test_suspend_stops_running_vms_and_scale_leaves_them_alone() -> None:
    budget = spec(skypilotCluster="llama-sweep")
    suspend = plan_record(NS, budget, record(Action.SUSPEND), ([], []), EnforcementPolicy(), vms=CLUSTER)
    assert [t.name for t in suspend.targets] == ["aws:i-w1", "aws:i-w2", "aws:i-head"]
    scale = plan_record(NS, budget, record(Action.SCALE), ([], []), EnforcementPolicy(), vms=CLUSTER)
    assert scale.targets == () and scale.skipped is not None
    assert {t.name for t in scale.left_alone} == {"aws:i-w1", "aws:i-w2", "aws:i-head"}


def test_vm_actions_honour_the_switches() -> None:
    budget = spec(skypilotCluster="llama-sweep")
    off = plan_record(NS, budget, record(Action.KILL), ([], []), EnforcementPolicy(mode="off"), vms=CLUSTER)
    assert off.targets == () and off.skipped == "enforcement is off (--enforcement=off)"
    dry = plan_record(
        NS, budget, record(Action.KILL), ([], []), EnforcementPolicy(mode="dry-run"), vms=CLUSTER
    )
    assert dry.dry_run and len(dry.targets) == 4
    protected = EnforcementPolicy(protected_namespaces=frozenset({NS}))
    assert plan_record(NS, budget, record(Action.KILL), ([], []), protected, vms=CLUSTER).targets == ()


def test_an_idle_gpu_finding_never_takes_the_clusters_vms() -> None:
    idle = record(Action.KILL, idle_gpu_id("uid-1"))
    plan = plan_record(
        NS, spec(skypilotCluster="llama-sweep"), idle, ([], []), EnforcementPolicy(), vms=CLUSTER
    )
    assert all(t.kind != "VM" for t in plan.targets)


def test_a_vm_is_priced_as_the_node_it_would_be() -> None:
    facts = classify_node(vm_node(vm("i-1", capacity_type="spot")))
    assert (facts.cloud, facts.instance_type, facts.region, facts.capacity_type) == (
        "aws",
        "g5.xlarge",
        "us-east-1",
        "spot",
    )


def test_a_failing_cloud_scope_shows_as_a_condition_on_budgets_naming_a_cluster() -> None:
    named = BudgetInput(NS, "sweep", 1, spec(skypilotCluster="llama-sweep"), CostBudgetStatus())
    problem = "aws:us-east-1 DescribeInstances: RequestLimitExceeded (3 failed polls in a row)"
    status = evaluate_budget(named, [], NOV_3, clouds=OutsideView((), (problem,))).status
    condition = next(c for c in status.conditions if c.type == "CloudUnavailable")
    assert condition.status == "True" and problem in condition.message
    healthy = evaluate_budget(named, [], NOV_3, clouds=OutsideView()).status
    assert next(c for c in healthy.conditions if c.type == "CloudUnavailable").status == "False"
    plain_budget = BudgetInput(NS, "team", 1, spec(), CostBudgetStatus())
    other = evaluate_budget(plain_budget, [], NOV_3, clouds=OutsideView((), (problem,))).status
    assert all(c.type != "CloudUnavailable" for c in other.conditions)


def test_a_gce_vm_with_attached_gpus_is_priced_with_them() -> None:
    bare = vm(
        "p/us-central1-a/n",
        cloud="gcp",
        instance_type="n1-standard-8",
        region="us-central1",
        zone="us-central1-a",
        provider_id="gce://p/us-central1-a/n",
    )
    with_t4 = replace(bare, accelerators=(("nvidia-tesla-t4", 1),))
    book = PriceBook(load_bundled_catalog())
    host, gpu = book.price(vm_node(bare)), book.price(vm_node(with_t4))
    assert gpu.facts.gpu_count == 1 and host.facts.gpu_count == 0
    assert gpu.hourly > host.hourly


def test_before_every_cloud_answered_a_vm_missing_from_the_pass_is_kept_not_closed() -> None:
    covered = [CoveredOutside(vm("i-1"), PodAccrual(Decimal("4"), Decimal("2"), NOV_3), gpus=1)]
    first = settle_with(BudgetLedger(), covered, NOV_3)
    later = NOV_3 + timedelta(minutes=1)
    unread = settle_with(first.ledger, [], later, all_read=False)
    assert unread.ledger.pods == first.ledger.pods and unread.ledger.closed_vm_spend == 0
    assert unread.spend == Decimal("4") and unread.kind(VM).spend == Decimal("4")
    read = settle_with(unread.ledger, [], later)
    assert read.ledger.pods == {} and read.ledger.closed_vm_spend == Decimal("4")  # now it is gone
