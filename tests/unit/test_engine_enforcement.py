"""Enforcement plans: targets per action, SkyPilot clusters killed whole, and the safety switches."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costwarden.engine.anomalies import idle_gpu_id
from costwarden.engine.enforcement import (
    ActionPlan,
    EnforcementPolicy,
    Target,
    is_head,
    plan_actions,
    plan_pending,
    plan_record,
)
from costwarden.engine.evaluation import BudgetInput, CoveredPod, evaluate_budget
from costwarden.engine.ledger import PodAccrual
from costwarden.models import Action, ActionRecord, CostBudgetSpec, CostBudgetStatus
from costwarden.records import PodRecord
from tests.shapes import running_status, skypilot_pod

NOV_3 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
NS = "research"
ON = EnforcementPolicy()


def spec(**raw: Any) -> CostBudgetSpec:
    return CostBudgetSpec.model_validate({"limit": 500, "period": "Monthly", **raw})


def sky(cluster: str, role: str = "head", index: int = 0, namespace: str = NS, **changes: Any) -> PodRecord:
    """A SkyPilot pod as instance.py labels it (``cluster`` is the name on cloud)."""
    body = skypilot_pod(
        cluster, cluster.rsplit("-", 1)[0], namespace=namespace, node="n1", role=role, index=index
    )
    body["metadata"]["uid"] = f"uid-{namespace}-{body['metadata']['name']}"
    body["status"] = running_status(NOV_3)
    return replace(PodRecord.from_body(body), **changes)


def cluster(name: str, workers: int = 3, namespace: str = NS) -> list[PodRecord]:
    head = sky(name, namespace=namespace)
    return [head, *(sky(name, "worker", i, namespace=namespace) for i in range(1, workers + 1))]


def owned(name: str, kind: str | None, owner: str | None, namespace: str = NS, **changes: Any) -> PodRecord:
    pod = PodRecord(
        namespace=namespace,
        name=name,
        uid=f"uid-{namespace}-{name}",
        phase="Running",
        gpus=1,
        owner_kind=kind,
        owner_name=owner,
    )
    return replace(pod, **changes)


def record(action: Action, record_id: str = "threshold/100/2026-11-01T00:00:00Z") -> ActionRecord:
    return ActionRecord(
        id=record_id, time="2026-11-03T10:00:00Z", trigger="spend reached 100%", action=action
    )


def plan(
    action: Action,
    covered: list[PodRecord],
    namespace_pods: list[PodRecord] | None = None,
    *,
    budget: CostBudgetSpec | None = None,
    policy: EnforcementPolicy = ON,
    record_id: str = "threshold/100/2026-11-01T00:00:00Z",
    namespace: str = NS,
) -> ActionPlan:
    pods = (covered, namespace_pods if namespace_pods is not None else covered)
    return plan_record(namespace, budget or spec(), record(action, record_id), pods, policy)


def names(result: ActionPlan) -> list[str]:
    return [str(target) for target in result.targets]


# --- Kill ------------------------------------------------------------------------------------


def test_skypilot_cluster_is_killed_whole_workers_first_head_last() -> None:
    llama = cluster("llama-sweep-2ea4")
    result = plan(Action.KILL, [llama[0]], namespace_pods=llama)
    assert names(result) == [
        "Pod/llama-sweep-2ea4-worker1",
        "Pod/llama-sweep-2ea4-worker2",
        "Pod/llama-sweep-2ea4-worker3",
        "Pod/llama-sweep-2ea4-head",
    ]
    assert all(target.namespace == NS and target.kind == "Pod" for target in result.targets)
    assert (result.skipped, result.dry_run, result.grace_period_seconds) == (None, False, 30)
    assert result.trigger == "spend reached 100%"


def test_kill_two_clusters_and_a_plain_pod_every_head_after_every_worker() -> None:
    pods = [
        *cluster("zeta-1a2b", workers=1),
        *cluster("alpha-3c4d", workers=2),
        owned("notebook", None, None),
    ]
    other = sky("bystander-9f9f")  # same namespace, not covered, another cluster: left alone
    result = plan(Action.KILL, pods, namespace_pods=[*pods, other])
    assert names(result) == [
        "Pod/alpha-3c4d-worker1",
        "Pod/alpha-3c4d-worker2",
        "Pod/notebook",
        "Pod/zeta-1a2b-worker1",
        "Pod/alpha-3c4d-head",
        "Pod/zeta-1a2b-head",
    ]


def test_kill_skips_ended_pods_and_names_each_pod_once() -> None:
    head, worker = cluster("llama-2ea4", workers=1)
    done = owned("finished", "Job", "train", phase="Succeeded")
    result = plan(Action.KILL, [head, worker, worker, done], namespace_pods=[head, worker, head])
    assert names(result) == ["Pod/llama-2ea4-worker1", "Pod/llama-2ea4-head"]


def test_budget_in_namespace_a_never_targets_namespace_b() -> None:
    a = cluster("llama-2ea4", workers=1, namespace="team-a")
    b = cluster("llama-2ea4", workers=2, namespace="team-b")
    b_owned = [
        owned("api-1", "ReplicaSet", "api-7d9f", namespace="team-b"),
        owned("j", "Job", "j", namespace="team-b"),
    ]
    for action in (Action.KILL, Action.SCALE, Action.SUSPEND):
        result = plan(action, [*a, *b, *b_owned], namespace_pods=[*a, *b, *b_owned], namespace="team-a")
        assert all(target.namespace == "team-a" for target in result.targets), action
        assert all(target.namespace == "team-a" for target in result.left_alone), action
    assert names(plan(Action.KILL, [*a, *b], [*a, *b], namespace="team-a")) == [
        "Pod/llama-2ea4-worker1",
        "Pod/llama-2ea4-head",
    ]
    only_b = plan(Action.KILL, b, b, namespace="team-a")
    assert (only_b.targets, only_b.skipped) == ((), "no pod of this budget is running")


def test_is_head_by_either_label() -> None:
    assert is_head(sky("c-1a2b"))
    assert not is_head(sky("c-1a2b", "worker", 1))
    assert is_head(owned("p", None, None, labels=(("skypilot-head-node", "1"),)))
    assert is_head(owned("p", None, None, labels=(("ray-node-type", "head"),)))
    assert not is_head(owned("p", None, None))


# --- Scale and Suspend -------------------------------------------------------------------------


def test_scale_targets_replicasets_and_statefulsets_once_and_leaves_the_rest_alone() -> None:
    pods = [
        owned("api-7d9f-abcde", "ReplicaSet", "api-7d9f"),
        owned("api-7d9f-fghij", "ReplicaSet", "api-7d9f"),
        owned("vllm-0", "StatefulSet", "vllm"),
        owned("train-x2k", "Job", "train"),
        sky("llama-2ea4"),
    ]
    result = plan(Action.SCALE, pods)
    assert result.targets == (
        Target("ReplicaSet", NS, "api-7d9f"),
        Target("StatefulSet", NS, "vllm"),
    )
    assert [str(t) for t in result.left_alone] == ["Pod/llama-2ea4-head", "Pod/train-x2k"]
    assert result.skipped is None


def test_scale_with_no_scalable_owner_is_skipped() -> None:
    result = plan(Action.SCALE, cluster("llama-2ea4"))
    assert result.targets == ()
    assert result.skipped == "no pod of this budget has a scalable owner (ReplicaSet or StatefulSet)"
    assert len(result.left_alone) == 4


def test_suspend_targets_jobs_and_prefers_the_jobset() -> None:
    jobset_label = (("jobset.sigs.k8s.io/jobset-name", "pretrain"),)
    pods = [
        owned("train-x2k", "Job", "train"),
        owned("train-y7m", "Job", "train"),
        owned("pretrain-workers-0-0-abc", "Job", "pretrain-workers-0", labels=jobset_label),
        owned("pretrain-workers-1-0-def", "Job", "pretrain-workers-1", labels=jobset_label),
        owned("api-7d9f-abcde", "ReplicaSet", "api-7d9f"),
    ]
    result = plan(Action.SUSPEND, pods)
    assert result.targets == (Target("Job", NS, "train"), Target("JobSet", NS, "pretrain"))
    assert names(replace(result, targets=result.left_alone)) == ["Pod/api-7d9f-abcde"]


def test_suspend_of_bare_skypilot_pods_is_skipped() -> None:
    result = plan(Action.SUSPEND, cluster("llama-2ea4"))
    assert result.skipped == "no pod of this budget belongs to a Job or JobSet"


# --- idle GPU findings -----------------------------------------------------------------------


def test_idle_gpu_kill_takes_only_the_idle_pod_never_its_cluster() -> None:
    llama = cluster("llama-2ea4", workers=2)
    notebook = owned("notebook", None, None)
    covered = [*llama, notebook]
    alone = plan(Action.KILL, covered, record_id=idle_gpu_id(notebook.uid))
    assert names(alone) == ["Pod/notebook"]
    hung_worker = plan(Action.KILL, covered, record_id=idle_gpu_id(llama[2].uid))
    assert names(hung_worker) == [f"Pod/{llama[2].name}"]  # the busy replicas keep running


def test_idle_gpu_scale_takes_only_that_pods_owner() -> None:
    pods = [owned("api-a", "ReplicaSet", "api-7d9f"), owned("vllm-0", "StatefulSet", "vllm")]
    result = plan(Action.SCALE, pods, record_id=idle_gpu_id(pods[1].uid))
    assert result.targets == (Target("StatefulSet", NS, "vllm"),)


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        (Action.KILL, "the idle pod (uid uid-gone) is no longer running or covered"),
        (Action.SCALE, "the idle pod (uid uid-gone) has no scalable owner (ReplicaSet or StatefulSet)"),
        (Action.SUSPEND, "the idle pod (uid uid-gone) belongs to no Job or JobSet"),
    ],
)
def test_idle_gpu_pod_that_is_gone_is_skipped(action: Action, reason: str) -> None:
    result = plan(action, cluster("llama-2ea4"), record_id=idle_gpu_id("uid-gone"))
    assert (result.targets, result.skipped) == ((), reason)


def test_idle_gpu_scale_of_a_bare_pod_names_it() -> None:
    notebook = owned("notebook", None, None)
    result = plan(Action.SCALE, [notebook], record_id=idle_gpu_id(notebook.uid))
    assert result.skipped == "the idle pod notebook has no scalable owner (ReplicaSet or StatefulSet)"


# --- safety switches ---------------------------------------------------------------------------

DESTRUCTIVE = [Action.KILL, Action.SCALE, Action.SUSPEND]
WORKLOAD = [*cluster("llama-2ea4"), owned("api-a", "ReplicaSet", "api"), owned("t", "Job", "train")]


@pytest.mark.parametrize("action", DESTRUCTIVE)
def test_enforcement_off_skips_destructive_actions(action: Action) -> None:
    result = plan(action, WORKLOAD, policy=EnforcementPolicy(mode="off"))
    assert (result.targets, result.skipped) == ((), "enforcement is off (--enforcement=off)")


@pytest.mark.parametrize("action", DESTRUCTIVE)
def test_protected_namespace_is_never_touched(action: Action) -> None:
    pods = [replace(pod, namespace="kube-system") for pod in WORKLOAD]
    result = plan(action, pods, namespace="kube-system")
    assert (result.targets, result.skipped) == ((), "namespace kube-system is protected")
    custom = EnforcementPolicy(protected_namespaces=frozenset({"kube-system", NS}))
    result = plan(action, WORKLOAD, policy=custom)
    assert (result.targets, result.skipped) == ((), f"namespace {NS} is protected")


@pytest.mark.parametrize(
    ("dry_run_spec", "mode", "dry_run"),
    [(False, "on", False), (True, "on", True), (False, "dry-run", True), (True, "dry-run", True)],
)
@pytest.mark.parametrize("action", DESTRUCTIVE)
def test_dry_run_plans_keep_their_targets(
    dry_run_spec: bool, mode: str, dry_run: bool, action: Action
) -> None:
    budget = spec(enforcement={"dryRun": dry_run_spec, "gracePeriodSeconds": 120})
    result = plan(action, WORKLOAD, budget=budget, policy=EnforcementPolicy(mode=mode))
    assert result.dry_run is dry_run
    assert result.targets
    assert result.skipped is None
    assert result.grace_period_seconds == 120


@pytest.mark.parametrize("mode", ["off", "dry-run", "on"])
def test_notify_is_never_blocked_and_has_no_targets(mode: str) -> None:
    pods = [replace(pod, namespace="kube-system") for pod in WORKLOAD]
    result = plan(Action.NOTIFY, pods, namespace="kube-system", policy=EnforcementPolicy(mode=mode))
    assert (result.targets, result.skipped, result.left_alone) == ((), None, ())
    assert result.dry_run is (mode == "dry-run")


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="off, dry-run, on"):
        EnforcementPolicy(mode="yes")


# --- from a decision -----------------------------------------------------------------------------


def _decide(budget: CostBudgetSpec, pods: list[PodRecord], status: CostBudgetStatus) -> Any:
    covered = [CoveredPod(pod, PodAccrual(Decimal(300), Decimal(100), NOV_3)) for pod in pods]
    return evaluate_budget(BudgetInput(NS, "llama-sweep", 1, budget, status), covered, NOV_3)


def test_one_plan_per_new_crossing_and_anomaly_in_order() -> None:
    budget = spec(
        limit=500,
        expectedHourlyRate=50,
        thresholds=[{"percent": 50, "action": "Notify"}, {"percent": 100, "action": "Kill"}],
        anomalies={"burnRate": {"multiplier": 2, "action": "Scale"}},
    )
    llama = cluster("llama-2ea4", workers=1)
    decision = _decide(budget, llama, CostBudgetStatus())
    plans = plan_actions(NS, budget, decision, llama, llama, ON)
    assert [(p.record_id, p.action) for p in plans] == [
        ("threshold/50/2026-11-01T00:00:00Z", Action.NOTIFY),
        ("threshold/100/2026-11-01T00:00:00Z", Action.KILL),
        ("anomaly/burnRate/2026-11-01T00:00:00Z", Action.SCALE),
    ]
    assert plans[0].trigger == "spend 600.00 reached 50% of 500"
    assert names(plans[1]) == ["Pod/llama-2ea4-worker1", "Pod/llama-2ea4-head"]
    assert plans[2].trigger.startswith("hourly rate $200.00/h is 4.0 times the expected $50.00/h")
    assert plans[2].skipped == "no pod of this budget has a scalable owner (ReplicaSet or StatefulSet)"

    again = _decide(budget, llama, decision.status)
    assert plan_actions(NS, budget, again, llama, llama, ON) == []


def test_pending_records_are_planned_again_after_a_restart() -> None:
    llama = cluster("llama-2ea4", workers=1)
    actions = [
        replace_record(record(Action.KILL), result="Pending"),
        replace_record(record(Action.NOTIFY, "threshold/50/2026-11-01T00:00:00Z"), result="Done"),
        replace_record(record(Action.SCALE, "anomaly/burnRate/2026-11-01T00:00:00Z"), result="Failed"),
    ]
    plans = plan_pending(NS, spec(), actions, (llama, llama), ON)
    assert [(p.record_id, names(p)) for p in plans] == [
        ("threshold/100/2026-11-01T00:00:00Z", ["Pod/llama-2ea4-worker1", "Pod/llama-2ea4-head"])
    ]


def replace_record(item: ActionRecord, **changes: Any) -> ActionRecord:
    return item.model_copy(update=changes)


# --- properties ----------------------------------------------------------------------------------

namespaces = st.sampled_from(["team-a", "team-b", "kube-system"])
cluster_names = st.sampled_from([None, "llama-2ea4", "mistral-9f1c"])
owners = st.sampled_from(
    [(None, None), ("ReplicaSet", "api-7d9f"), ("StatefulSet", "vllm"), ("Job", "train")]
)


@st.composite
def any_pod(draw: st.DrawFn, index: int) -> PodRecord:
    namespace, cluster_name, (kind, owner) = draw(namespaces), draw(cluster_names), draw(owners)
    labels: list[tuple[str, str]] = []
    if cluster_name is not None:
        head = draw(st.booleans())
        labels += [
            ("parent", "skypilot"),
            ("skypilot-cluster-name", cluster_name),
            ("ray-node-type", "head" if head else "worker"),
            ("skypilot-head-node", "1" if head else "0"),
        ]
    phase = draw(st.sampled_from(["Running", "Running", "Pending", "Succeeded"]))
    return owned(f"pod-{index}", kind, owner, namespace, labels=tuple(sorted(labels)), phase=phase)


@st.composite
def pod_lists(draw: st.DrawFn) -> list[PodRecord]:
    count = draw(st.integers(min_value=0, max_value=12))
    return [draw(any_pod(index)) for index in range(count)]


@settings(max_examples=200, deadline=None)
@given(
    all_pods=pod_lists(),
    picks=st.lists(st.booleans(), min_size=12, max_size=12),
    action=st.sampled_from(DESTRUCTIVE),
    budget_namespace=namespaces,
)
def test_targets_stay_in_the_namespace_and_heads_go_last(
    all_pods: list[PodRecord], picks: list[bool], action: Action, budget_namespace: str
) -> None:
    covered = [pod for pod, picked in zip(all_pods, picks, strict=False) if picked]
    result = plan(action, covered, all_pods, namespace=budget_namespace)
    assert all(target.namespace == budget_namespace for target in result.targets)
    assert len(set(result.targets)) == len(result.targets)
    if budget_namespace == "kube-system":
        assert result.targets == ()
    if action is not Action.KILL:
        return
    by_name = {pod.name: pod for pod in all_pods}
    killed = [by_name[target.name] for target in result.targets]
    assert all(not pod.is_terminal for pod in killed)
    heads = [index for index, pod in enumerate(killed) if is_head(pod)]
    workers = [index for index, pod in enumerate(killed) if not is_head(pod)]
    assert not heads or not workers or max(workers) < min(heads)
    if budget_namespace != "kube-system":
        live = {pod.name for pod in covered if pod.namespace == budget_namespace and not pod.is_terminal}
        assert live <= {target.name for target in result.targets}
        clusters = {pod.label_map.get("skypilot-cluster-name") for pod in killed} - {None}
        for pod in all_pods:
            in_cluster = pod.label_map.get("skypilot-cluster-name") in clusters
            if in_cluster and pod.namespace == budget_namespace and not pod.is_terminal:
                assert Target("Pod", budget_namespace, pod.name) in result.targets


@pytest.mark.parametrize("action", DESTRUCTIVE)
def test_plans_do_not_depend_on_the_order_pods_come_in(action: Action) -> None:
    assert plan(action, list(reversed(WORKLOAD))) == plan(action, WORKLOAD)
