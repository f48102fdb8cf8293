"""The engine's fences (docs/security.md): a budget acts only in its own namespace whatever its
selector, never in a protected namespace, and on VMs and Slurm jobs (which are in no namespace)
only from the namespaces ``--outside-namespace`` allows.

The properties draw pods of three namespaces with overlapping labels (the same SkyPilot clusters,
the same owners, the same app labels in each), any label selector the CRD allows (matchLabels and
every matchExpressions operator, NotIn and DoesNotExist included, which match pods lacking the
key), and ``skypilotCluster`` naming clusters that run in the budget's namespace, in another, or
in both; then follow them from selection to the plan of every action.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costwarden.engine.admission import blocking_budget
from costwarden.engine.enforcement import EnforcementPolicy, plan_record
from costwarden.engine.evaluation import BudgetInput, evaluate_budget
from costwarden.engine.outside import EVERY_NAMESPACE, NOT_ALLOWED, OutsideFence, OutsideView
from costwarden.engine.selection import budget_covers, covered_pods
from costwarden.engine.slurm import RUNNING as JOB_RUNNING
from costwarden.engine.slurm import SlurmJob, budget_jobs, covered_jobs
from costwarden.engine.vms import RUNNING as VM_RUNNING
from costwarden.engine.vms import VMRecord, budget_vms, covered_vms
from costwarden.models import Action, ActionRecord, CostBudgetSpec, CostBudgetStatus, Phase
from costwarden.records import PodRecord

NOV_3 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
A, B, PROTECTED = "team-a", "team-b", "kube-system"
NAMESPACES = (A, B, PROTECTED)
DESTRUCTIVE = (Action.KILL, Action.SCALE, Action.SUSPEND)
CLUSTERS = ("llama-2ea4", "mistral-9f1c")  # names on cloud; typed names "llama", "mistral"
KEYS = ("app", "team", "skypilot-cluster-name", "tier")
VALUES = ("llama-2ea4", "mistral-9f1c", "trainer", "a", "b")
RECORD_ID = "threshold/100/2026-11-01T00:00:00Z"


def spec(**raw: Any) -> CostBudgetSpec:
    return CostBudgetSpec.model_validate({"limit": 500, "period": "Monthly", **raw})


def record(action: Action) -> ActionRecord:
    return ActionRecord(
        id=RECORD_ID, time="2026-11-03T10:00:00Z", trigger="spend reached 100%", action=action
    )


def vm(vm_id: str, cluster: str, *, head: bool = False) -> VMRecord:
    return VMRecord(
        cloud="aws",
        scope="aws:us-east-1",
        vm_id=vm_id,
        name=vm_id,
        region="us-east-1",
        zone="us-east-1a",
        instance_type="g5.xlarge",
        capacity_type="on-demand",
        state=VM_RUNNING,
        launched=NOV_3 - timedelta(hours=1),
        tags=(("skypilot-cluster-name", cluster), ("skypilot-head-node", "1" if head else "0")),
    )


def job(job_id: str, name: str, user: str = "alice") -> SlurmJob:
    return SlurmJob(
        cluster="hpc",
        job_id=job_id,
        name=name,
        user=user,
        account="ml",
        partition="gpu",
        state=JOB_RUNNING,
        slurm_state="RUNNING",
        gpus=1,
        memory_gib=Decimal(1),
    )


# VMs and jobs of both SkyPilot clusters and one of no cluster: whoever runs them, wherever
# the cluster's pods (if any) are.
VMS = (vm("i-1", "llama-2ea4", head=True), vm("i-2", "llama-2ea4"), vm("i-3", "mistral-9f1c"))
JOBS = (job("101", "llama-2ea4"), job("102", "mistral-9f1c", user="bob"), job("103", "notebook"))


# --- strategies ----------------------------------------------------------------------------------


@st.composite
def pods(draw: st.DrawFn) -> list[PodRecord]:
    """Pods of every namespace, with labels drawn from one small vocabulary, so that a selector
    that matches a pod in one namespace matches its twins in the others."""
    found = []
    for index in range(draw(st.integers(min_value=0, max_value=14))):
        namespace = draw(st.sampled_from(NAMESPACES))
        labels = dict(draw(st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=3)))
        cluster = labels.get("skypilot-cluster-name")
        if cluster is not None and draw(st.booleans()):
            labels["skypilot-head-node"] = "1"
        owner = draw(
            st.sampled_from(
                [(None, None), ("ReplicaSet", "api-7d9f"), ("StatefulSet", "vllm"), ("Job", "train")]
            )
        )
        if cluster is None and draw(st.booleans()):
            labels["jobset.sigs.k8s.io/jobset-name"] = "sweep"
        found.append(
            PodRecord(
                namespace=namespace,
                name=f"pod-{index}",
                uid=f"uid-{index}",
                phase=draw(st.sampled_from(["Running", "Running", "Pending", "Succeeded"])),
                labels=tuple(sorted(labels.items())),
                gpus=1,
                skypilot_cluster=(cluster.rsplit("-", 1)[0] if cluster and draw(st.booleans()) else None),
                owner_kind=owner[0],
                owner_name=owner[1],
            )
        )
    return found


requirements = st.builds(
    lambda key, operator, values: {
        "key": key,
        "operator": operator,
        **({"values": values} if operator in ("In", "NotIn") else {}),
    },
    st.sampled_from(KEYS),
    st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]),
    st.lists(st.sampled_from(VALUES), min_size=1, max_size=2, unique=True),
)
selectors = st.fixed_dictionaries(
    {},
    optional={
        "matchLabels": st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=2),
        "matchExpressions": st.lists(requirements, max_size=2),
    },
)
budgets = st.builds(
    lambda selector, cluster, slurm: spec(
        selector=selector,
        **({"skypilotCluster": cluster} if cluster else {}),
        **({"slurm": slurm} if slurm is not None else {}),
    ),
    selectors,
    st.sampled_from([None, "llama", "mistral", "llama-2ea4"]),
    st.sampled_from([None, {}, {"user": "bob"}]),
)
fences = st.sampled_from(
    [OutsideFence(), OutsideFence.of([A]), OutsideFence.of([B]), OutsideFence.of([]), OutsideFence.of([A, B])]
)


# --- pods and workloads: never outside the budget's namespace ------------------------------------


@settings(max_examples=300, deadline=None)
@given(all_pods=pods(), budget=budgets, namespace=st.sampled_from(NAMESPACES))
def test_a_budget_covers_only_pods_of_its_namespace_whatever_its_selector(
    all_pods: list[PodRecord], budget: CostBudgetSpec, namespace: str
) -> None:
    covered = covered_pods(budget, namespace, all_pods)
    assert all(pod.namespace == namespace for pod in covered)
    assert covered == [pod for pod in all_pods if budget_covers(budget, namespace, pod)]
    # The same pod moved to another namespace is never covered, whatever it matches.
    for pod in all_pods:
        elsewhere = replace(pod, namespace=B if namespace != B else A)
        assert not budget_covers(budget, namespace, elsewhere)


@settings(max_examples=300, deadline=None)
@given(
    all_pods=pods(),
    budget=budgets,
    namespace=st.sampled_from(NAMESPACES),
    action=st.sampled_from(DESTRUCTIVE),
    fence=fences,
    mode=st.sampled_from(["on", "dry-run", "off"]),
)
def test_every_target_of_every_action_is_in_the_budgets_namespace(
    all_pods: list[PodRecord],
    budget: CostBudgetSpec,
    namespace: str,
    action: Action,
    fence: OutsideFence,
    mode: str,
) -> None:
    """Selection to plan, as the shell runs them: covered pods, every pod of the namespace (for a
    SkyPilot cluster's Kill), the VMs and jobs the fenced selection returns."""
    policy = EnforcementPolicy(mode=mode, outside=fence)
    allowed = EVERY_NAMESPACE in fence.namespaces or namespace in fence.namespaces  # the oracle
    covered = covered_pods(budget, namespace, all_pods)
    namespace_pods = [pod for pod in all_pods if pod.namespace == namespace]
    vms, vms_refused = budget_vms(budget, namespace, VMS, fence)
    jobs, jobs_refused = budget_jobs(budget, namespace, JOBS, fence)
    # Even handed every pod, VM and job there is, the plan keeps to what the fences allow.
    for given_pods, given_vms, given_jobs in ((covered, vms, jobs), (all_pods, VMS, JOBS)):
        result = plan_record(
            namespace, budget, record(action), (given_pods, all_pods), policy, vms=given_vms, jobs=given_jobs
        )
        assert all(target.namespace == namespace for target in (*result.targets, *result.left_alone))
        pods_named = {t.name for t in result.targets if t.kind == "Pod"}
        assert pods_named <= {pod.name for pod in namespace_pods if not pod.is_terminal}
        outside = [t for t in result.targets if t.kind in ("VM", "SlurmJob")]
        if mode == "off" or namespace == PROTECTED:
            assert result.targets == () and result.skipped is not None
        if not allowed:
            assert outside == [] and not [t for t in result.left_alone if t.kind in ("VM", "SlurmJob")]
    if not allowed:
        assert vms == jobs == []
        assert (vms_refused is not None) == bool(budget.skypilot_cluster)
        assert (jobs_refused is not None) == (budget.slurm is not None or bool(budget.skypilot_cluster))
    else:
        assert (vms, vms_refused) == (covered_vms(budget, VMS), None)
        assert (jobs, jobs_refused) == (covered_jobs(budget, JOBS), None)


def test_a_selector_matching_pods_of_another_namespace_takes_none_of_them() -> None:
    """Budget in A, selector matching B's pods by label, and a SkyPilot cluster whose pods run in B
    only: nothing of B is covered or targeted, by any action."""
    b_pods = [
        PodRecord(
            B,
            "llama-2ea4-head",
            "u1",
            phase="Running",
            labels=(("app", "trainer"), ("skypilot-cluster-name", "llama-2ea4"), ("skypilot-head-node", "1")),
        ),
        PodRecord(
            B,
            "llama-2ea4-worker1",
            "u2",
            phase="Running",
            labels=(("app", "trainer"), ("skypilot-cluster-name", "llama-2ea4")),
        ),
        PodRecord(
            B,
            "api-1",
            "u3",
            phase="Running",
            labels=(("app", "trainer"),),
            owner_kind="ReplicaSet",
            owner_name="api-7d9f",
        ),
        PodRecord(
            B,
            "train-1",
            "u4",
            phase="Running",
            labels=(("app", "trainer"),),
            owner_kind="Job",
            owner_name="train",
        ),
    ]
    for budget in (
        spec(selector={"matchLabels": {"app": "trainer"}}),
        spec(selector={"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["x"]}]}),
        spec(selector={}, skypilotCluster="llama"),
        spec(selector={"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}),
    ):
        assert covered_pods(budget, A, b_pods) == []
        for action in DESTRUCTIVE:
            result = plan_record(A, budget, record(action), (b_pods, b_pods), EnforcementPolicy())
            assert [t for t in result.targets if t.kind != "VM"] == []
            assert result.left_alone == ()


# --- protected namespaces ------------------------------------------------------------------------


@pytest.mark.parametrize("action", DESTRUCTIVE)
@pytest.mark.parametrize("fence", [OutsideFence(), OutsideFence.of([PROTECTED])])
def test_a_protected_namespace_holds_for_every_action_and_for_vms_and_jobs(
    action: Action, fence: OutsideFence
) -> None:
    budget = spec(skypilotCluster="llama", slurm={})
    pod = PodRecord(
        PROTECTED,
        "llama-2ea4-head",
        "u1",
        phase="Running",
        labels=(("skypilot-cluster-name", "llama-2ea4"),),
        owner_kind="Job",
        owner_name="j",
    )
    vms, _ = budget_vms(budget, PROTECTED, VMS, fence)
    jobs, _ = budget_jobs(budget, PROTECTED, JOBS, fence)
    assert vms and jobs, "the fence lets the protected namespace cover them: only protection stops the act"
    for policy in (
        EnforcementPolicy(outside=fence),
        EnforcementPolicy(protected_namespaces=frozenset({PROTECTED, A}), outside=fence),
    ):
        result = plan_record(PROTECTED, budget, record(action), ([pod], [pod]), policy, vms=vms, jobs=jobs)
        assert (result.targets, result.left_alone) == ((), ())
        assert result.skipped == f"namespace {PROTECTED} is protected"


def test_the_admission_guard_never_refuses_in_a_protected_namespace_nor_across_namespaces() -> None:
    blocking = spec(selector={}, enforcement={"blockNewPods": True})
    budgets = [("all", blocking, Phase.EXCEEDED)]
    pod_in_a = PodRecord(A, "p", "u", labels=(("app", "trainer"),))
    assert blocking_budget(pod_in_a, budgets, frozenset({PROTECTED})) is not None
    assert blocking_budget(replace(pod_in_a, namespace=PROTECTED), budgets, frozenset({PROTECTED})) is None


# --- the outside fence ---------------------------------------------------------------------------


def test_the_fence_allows_the_listed_namespaces_or_every_one_with_a_star() -> None:
    assert OutsideFence().open and OutsideFence().allows("anything")
    assert OutsideFence.of([EVERY_NAMESPACE, A]).allows(B)
    assert OutsideFence.of([A]).allows(A) and not OutsideFence.of([A]).allows(B)
    assert not OutsideFence.of([]).allows(A)
    assert OutsideFence.of([A]).refusal(A, "cloud VMs") is None
    assert OutsideFence.of([A, "ml"]).refusal(B, "cloud VMs") == (
        f"CostBudgets in namespace {B} may not cover cloud VMs: the operator allows only "
        f"namespaces ml, {A} (--outside-namespace)"
    )


def test_a_fenced_budget_still_covers_its_own_skypilot_pods() -> None:
    """The fence takes VMs and jobs only: skypilotCluster keeps selecting the namespace's pods."""
    budget = spec(skypilotCluster="llama")
    head = PodRecord(
        B, "llama-2ea4-head", "u1", phase="Running", labels=(("skypilot-cluster-name", "llama-2ea4"),)
    )
    fence = OutsideFence.of([A])
    assert covered_pods(budget, B, [head]) == [head]
    assert budget_vms(budget, B, VMS, fence)[0] == []
    result = plan_record(
        B, budget, record(Action.KILL), ([head], [head]), EnforcementPolicy(outside=fence), vms=VMS
    )
    assert [str(t) for t in result.targets] == ["Pod/llama-2ea4-head"]


@pytest.mark.parametrize(
    ("raw", "condition"),
    [({"skypilotCluster": "llama"}, "CloudUnavailable"), ({"slurm": {"user": "bob"}}, "SlurmUnavailable")],
)
def test_a_fenced_budget_says_why_in_its_condition(raw: dict[str, Any], condition: str) -> None:
    budget = spec(**raw)
    fence = OutsideFence.of([A])
    if condition == "CloudUnavailable":
        chosen: list[Any]
        chosen, refused = budget_vms(budget, B, VMS, fence)
    else:
        chosen, refused = budget_jobs(budget, B, JOBS, fence)
    assert chosen == [] and refused is not None
    view = OutsideView((), ("a scope failing is not the reason here",), True, refused)
    views = {"clouds": view} if condition == "CloudUnavailable" else {"slurm": view}
    status = evaluate_budget(
        BudgetInput(B, "sweep", 1, budget, CostBudgetStatus()), [], NOV_3, **views
    ).status
    found = next(c for c in status.conditions if c.type == condition)
    assert (found.status, found.reason, found.message) == ("True", NOT_ALLOWED, refused)
    assert status.vms in (None, 0) and status.slurm_jobs in (None, 0)


def test_an_allowed_budget_reaches_any_skypilot_clusters_vms_by_name_the_power_the_fence_limits() -> None:
    """What the fence is for: VMs are in no namespace, so an allowed budget names them by cluster
    alone, and Slurm filters select any user's jobs."""
    assert [v.vm_id for v in covered_vms(spec(skypilotCluster="mistral"), VMS)] == ["i-3"]
    assert [j.job_id for j in covered_jobs(spec(slurm={}), JOBS)] == ["101", "102", "103"]
    assert [j.job_id for j in covered_jobs(spec(slurm={"user": "bob"}), JOBS)] == ["102"]
