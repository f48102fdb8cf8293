"""What enforcement may do about a budget's new crossings and anomalies: plans, as data.

The shell carries a plan out (notify, scale, suspend, kill) and records its result; nothing here
acts. The rules (docs/enforcement.md):

- Kill targets the budget's running pods; a SkyPilot cluster is killed as a whole: every running
  pod of the budget's namespace with the same ``skypilot-cluster-name`` label, workers first and
  heads last. An idle-GPU finding kills only the idle pod, never the rest of its cluster: one
  replica hung on a checkpoint write must not take the busy ones with it (SkyPilot's own
  recovery decides what a lost pod means for its cluster).
- Scale targets the owning ReplicaSet (the shell resolves it to its Deployment) or StatefulSet;
  Suspend the owning Job, or the JobSet named by the pod label
  ``jobset.sigs.k8s.io/jobset-name``. Pods with any other owner are left alone
  (``ActionPlan.left_alone``): the operator never escalates to a kill on its own.
- Cloud VMs of the budget's SkyPilot cluster (``engine.vms``, with ``--cloud``) are targets
  too: Kill terminates them, workers first and heads last, as ``sky down`` does; Suspend stops
  them (disks kept), as ``sky stop`` does; Scale leaves them alone (``left_alone``). A VM
  target names the VM (``VM/<cloud>:<id>``); the shell re-reads it and acts only if it still
  carries the cluster's tag and its cloud's last poll was complete and fresh.
- Slurm jobs the budget covers (``engine.slurm``, with ``--slurm``) are targets too: Kill
  cancels them (a signal, the grace period, then ``scancel``); Suspend suspends the running
  ones and holds the pending ones; Scale leaves them alone. A job target names the job
  (``SlurmJob/<cluster>:<job id>``).
- Nothing outside the budget's namespace is ever a target, and nothing destructive happens in a
  protected namespace or with ``--enforcement=off``. VMs and Slurm jobs, which are in no
  namespace, are targets only of budgets in the namespaces ``--outside-namespace`` allows
  (``EnforcementPolicy.outside``; docs/security.md). ``dry_run`` (the budget's ``dryRun`` or
  ``--enforcement=dry-run``) means "record what would have been done".
- Notify is never blocked by these switches: a Notify plan has no targets and no ``skipped``;
  its ``dry_run`` only tells the message to say that destructive actions are in dry run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from costwarden.engine.anomalies import idle_pod_uid
from costwarden.engine.evaluation import BudgetDecision
from costwarden.engine.outside import EVERY_NAMESPACE_FENCE, OutsideFence
from costwarden.engine.slurm import SlurmJob
from costwarden.engine.thresholds import DESTRUCTIVE_ACTIONS
from costwarden.engine.vms import PENDING, RUNNING, VMRecord, kill_order
from costwarden.models import Action, ActionRecord, ActionResult, CostBudgetSpec
from costwarden.records import SKYPILOT_CLUSTER_LABEL, PodRecord

__all__ = [
    "DEFAULT_PROTECTED_NAMESPACES",
    "JOBSET_NAME_LABEL",
    "ActionPlan",
    "EnforcementPolicy",
    "Target",
    "is_head",
    "job_key",
    "job_target",
    "plan_actions",
    "plan_pending",
    "plan_record",
    "vm_key",
    "vm_target",
]

JOBSET_NAME_LABEL: Final = "jobset.sigs.k8s.io/jobset-name"
RAY_NODE_TYPE_LABEL: Final = "ray-node-type"
SKYPILOT_HEAD_LABEL: Final = "skypilot-head-node"
DEFAULT_PROTECTED_NAMESPACES: Final = frozenset({"kube-system"})
MODES: Final = frozenset({"off", "dry-run", "on"})

_SCALABLE_OWNERS: Final = frozenset({"ReplicaSet", "StatefulSet"})


@dataclass(frozen=True, slots=True)
class Target:
    kind: str  # Pod, ReplicaSet, StatefulSet, Job, JobSet, VM (<cloud>:<id>), SlurmJob (<cluster>:<id>)
    namespace: str
    name: str
    # A pod's uid: the shell deletes exactly that pod, never a new one of the same name (a
    # relaunched SkyPilot cluster). Not part of a target's identity, nor of its record text.
    uid: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True, slots=True)
class EnforcementPolicy:
    """The operator's switches: ``--enforcement``, its protected namespaces, and the namespaces
    whose budgets may act on VMs and Slurm jobs (``--outside-namespace``)."""

    mode: str = "on"  # "off" | "dry-run" | "on"
    protected_namespaces: frozenset[str] = DEFAULT_PROTECTED_NAMESPACES
    outside: OutsideFence = EVERY_NAMESPACE_FENCE

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"enforcement mode must be one of off, dry-run, on; not {self.mode!r}")


@dataclass(frozen=True, slots=True)
class ActionPlan:
    record_id: str
    action: Action
    trigger: str
    targets: tuple[Target, ...]
    dry_run: bool
    grace_period_seconds: int
    skipped: str | None  # why nothing may be done; None when the plan is to be carried out
    left_alone: tuple[Target, ...] = ()  # Scale/Suspend: running pods whose owner is neither
    dry_run_reason: str | None = None  # which switch made it a dry run


def is_head(pod: PodRecord) -> bool:
    """A Ray/SkyPilot head pod (labels ``ray-node-type=head`` or ``skypilot-head-node=1``)."""
    labels = pod.label_map
    return labels.get(RAY_NODE_TYPE_LABEL) == "head" or labels.get(SKYPILOT_HEAD_LABEL) == "1"


def _running(pods: Iterable[PodRecord], namespace: str) -> list[PodRecord]:
    """Pods of ``namespace`` that can still cost money, once each (by uid, else by name)."""
    seen: set[str] = set()
    chosen = []
    for pod in pods:
        identity = pod.uid or f"name:{pod.name}"
        if pod.namespace != namespace or pod.is_terminal or identity in seen:
            continue
        seen.add(identity)
        chosen.append(pod)
    return chosen


def _pod_target(pod: PodRecord) -> Target:
    return Target(kind="Pod", namespace=pod.namespace, name=pod.name, uid=pod.uid)


def _kill_targets(pods: Sequence[PodRecord], namespace_pods: Sequence[PodRecord]) -> list[Target]:
    clusters = {pod.label_map.get(SKYPILOT_CLUSTER_LABEL) for pod in pods} - {None}
    expanded = [*pods, *(p for p in namespace_pods if p.label_map.get(SKYPILOT_CLUSTER_LABEL) in clusters)]
    by_name = {pod.name: pod for pod in expanded}
    ordered = sorted(by_name.values(), key=lambda pod: (is_head(pod), pod.name))
    return [_pod_target(pod) for pod in ordered]


def _owner_target(pod: PodRecord, action: Action) -> Target | None:
    if action is Action.SUSPEND:
        jobset = pod.label_map.get(JOBSET_NAME_LABEL)
        if jobset:
            return Target(kind="JobSet", namespace=pod.namespace, name=jobset)
        if pod.owner_kind == "Job" and pod.owner_name:
            return Target(kind="Job", namespace=pod.namespace, name=pod.owner_name)
        return None
    if pod.owner_kind in _SCALABLE_OWNERS and pod.owner_name:
        return Target(kind=pod.owner_kind, namespace=pod.namespace, name=pod.owner_name)
    return None


def _owner_targets(pods: Sequence[PodRecord], action: Action) -> tuple[list[Target], list[Target]]:
    """The owners to scale or suspend, and the pods left alone because their owner is neither."""
    owners: set[Target] = set()
    left_alone: set[Target] = set()
    for pod in pods:
        owner = _owner_target(pod, action)
        if owner is None:
            left_alone.add(_pod_target(pod))
        else:
            owners.add(owner)
    order = sorted(owners, key=lambda t: (t.kind, t.name))
    return order, sorted(left_alone, key=lambda t: t.name)


def vm_target(namespace: str, vm: VMRecord) -> Target:
    return Target(kind="VM", namespace=namespace, name=f"{vm.cloud}:{vm.vm_id}")


def vm_key(target: Target) -> str:
    """The ledger key (``VMRecord.key``) of a VM target."""
    return f"vm:{target.name}"


def _vm_targets(namespace: str, vms: Sequence[VMRecord], action: Action) -> tuple[list[Target], list[Target]]:
    """VMs to act on and VMs left alone (Scale has no meaning for a VM)."""
    if action is Action.KILL:
        return [vm_target(namespace, vm) for vm in kill_order(v for v in vms if not v.is_terminal)], []
    live = [vm for vm in kill_order(vms) if vm.state in (RUNNING, PENDING)]
    if action is Action.SUSPEND:
        return [vm_target(namespace, vm) for vm in live], []
    return [], [vm_target(namespace, vm) for vm in live]


def job_target(namespace: str, job: SlurmJob) -> Target:
    return Target(kind="SlurmJob", namespace=namespace, name=f"{job.cluster}:{job.job_id}")


def job_key(target: Target) -> str:
    """The ledger key (``SlurmJob.key``) of a Slurm job target."""
    return f"slurm:{target.name}"


def _job_targets(
    namespace: str, jobs: Sequence[SlurmJob], action: Action
) -> tuple[list[Target], list[Target]]:
    """Jobs to act on and jobs left alone (Scale has no meaning for a Slurm job)."""
    live = sorted((job for job in jobs if not job.is_terminal), key=lambda job: (job.cluster, job.job_id))
    if action in (Action.KILL, Action.SUSPEND):
        return [job_target(namespace, job) for job in live], []
    return [], [job_target(namespace, job) for job in live]


def _nothing_to_do(action: Action, idle_pod: str | None) -> str:
    """Why a destructive plan has no target; ``idle_pod`` names the pod of an idle-GPU finding."""
    if idle_pod is None:
        if action is Action.KILL:
            return "no pod of this budget is running"
        if action is Action.SCALE:
            return "no pod of this budget has a scalable owner (ReplicaSet or StatefulSet)"
        return "no pod of this budget belongs to a Job or JobSet"
    if action is Action.KILL:
        return f"the idle pod {idle_pod} is no longer running or covered"
    if action is Action.SCALE:
        return f"the idle pod {idle_pod} has no scalable owner (ReplicaSet or StatefulSet)"
    return f"the idle pod {idle_pod} belongs to no Job or JobSet"


def plan_record(
    budget_namespace: str,
    spec: CostBudgetSpec,
    record: ActionRecord,
    pods: tuple[Sequence[PodRecord], Sequence[PodRecord]],
    policy: EnforcementPolicy,
    *,
    vms: Sequence[VMRecord] = (),
    jobs: Sequence[SlurmJob] = (),
) -> ActionPlan:
    """The plan for one action record (new, or Pending after a restart).

    ``pods`` is ``(covered, namespace_pods)``: the pods the budget covers now and every pod of
    its namespace (for SkyPilot cluster expansion); pods of other namespaces are ignored.
    ``vms`` are the cloud VMs the budget covers (its SkyPilot cluster's), ``jobs`` its Slurm jobs.
    """
    covered, namespace_pods = pods
    dry_run = spec.enforcement.dry_run or policy.mode == "dry-run"
    reason = "spec.enforcement.dryRun" if spec.enforcement.dry_run else "--enforcement=dry-run"
    plan = ActionPlan(
        record_id=record.id,
        action=record.action,
        trigger=record.trigger,
        targets=(),
        dry_run=dry_run,
        grace_period_seconds=spec.enforcement.grace_period_seconds,
        skipped=None,
        dry_run_reason=reason if dry_run else None,
    )
    if record.action not in DESTRUCTIVE_ACTIONS:
        return plan
    if policy.mode == "off":
        return replace(plan, skipped="enforcement is off (--enforcement=off)")
    if budget_namespace in policy.protected_namespaces:
        return replace(plan, skipped=f"namespace {budget_namespace} is protected")
    running = _running(covered, budget_namespace)
    idle_pod: str | None = None
    idle_uid = idle_pod_uid(record.id)
    if idle_uid is not None:
        running = [pod for pod in running if pod.uid == idle_uid]
        idle_pod = running[0].name if running else f"(uid {idle_uid})"
    left_alone: list[Target] = []
    if record.action is Action.KILL and idle_uid is not None:
        targets = [_pod_target(pod) for pod in running]  # the idle pod only, never its cluster
    elif record.action is Action.KILL:
        targets = _kill_targets(running, _running(namespace_pods, budget_namespace))
    else:
        targets, left_alone = _owner_targets(running, record.action)
    if not policy.outside.allows(budget_namespace):
        vms, jobs = (), ()  # the shell selects none for such a budget; this holds even if it did
    if idle_uid is None:
        vm_targets, vms_alone = _vm_targets(budget_namespace, vms, record.action)
        job_targets, jobs_alone = _job_targets(budget_namespace, jobs, record.action)
        targets = [*targets, *vm_targets, *job_targets]
        left_alone = [*left_alone, *vms_alone, *jobs_alone]
    targets = [target for target in targets if target.namespace == budget_namespace]
    skipped = None if targets else _nothing_to_do(record.action, idle_pod)
    return replace(plan, targets=tuple(targets), skipped=skipped, left_alone=tuple(left_alone))


def plan_actions(  # noqa: PLR0917 -- the signature the enforcement shell codes against
    budget_namespace: str,
    spec: CostBudgetSpec,
    decision: BudgetDecision,
    covered: Sequence[PodRecord],
    namespace_pods: Sequence[PodRecord],
    policy: EnforcementPolicy,
    *,
    vms: Sequence[VMRecord] = (),
    jobs: Sequence[SlurmJob] = (),
) -> list[ActionPlan]:
    """One plan per new crossing and new anomaly of ``decision``, in that order."""
    records = {record.id: record for record in decision.status.actions}
    wanted = [
        *((c.record_id, c.action) for c in decision.crossings),
        *((a.record_id, a.action) for a in decision.anomalies),
    ]
    plans = []
    for record_id, action in dict.fromkeys(wanted):
        record = records.get(record_id) or ActionRecord(
            id=record_id, time="", trigger=record_id, action=action
        )
        plans.append(
            plan_record(budget_namespace, spec, record, (covered, namespace_pods), policy, vms=vms, jobs=jobs)
        )
    return plans


def plan_pending(
    budget_namespace: str,
    spec: CostBudgetSpec,
    actions: Sequence[ActionRecord],
    pods: tuple[Sequence[PodRecord], Sequence[PodRecord]],
    policy: EnforcementPolicy,
    *,
    vms: Sequence[VMRecord] = (),
    jobs: Sequence[SlurmJob] = (),
) -> list[ActionPlan]:
    """Plans for every record still Pending in ``status.actions`` (decided, perhaps not carried
    out before a restart), oldest first; ``pods`` and ``vms`` as for ``plan_record``."""
    return [
        plan_record(budget_namespace, spec, record, pods, policy, vms=vms, jobs=jobs)
        for record in actions
        if record.result == ActionResult.PENDING
    ]
