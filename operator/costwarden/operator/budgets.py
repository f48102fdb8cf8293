"""Evaluating one CostBudget in the pass: run the engine, record the plans, queue the work.

Nothing here awaits: the pass only decides. What it decides is folded into the budget's state
as a new status (``engine.outcomes.first_outcomes``) and handed to background queues: the
status writer, destructive actions, notifications, Events, resumes.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from costwarden.engine.anomalies import BILLING
from costwarden.engine.enforcement import ActionPlan, plan_pending
from costwarden.engine.evaluation import (
    BudgetDecision,
    BudgetInput,
    CoveredPod,
    evaluate_budget,
    invalid_decision,
)
from costwarden.engine.outcomes import ActionOutcome, first_outcomes, fold, pending_notifications, resumable
from costwarden.engine.outside import OutsideView
from costwarden.engine.slurm import SlurmJob, budget_jobs
from costwarden.engine.thresholds import DESTRUCTIVE_ACTIONS
from costwarden.engine.vms import VMRecord, budget_vms
from costwarden.models import (
    GROUP,
    KIND,
    VERSION,
    ActionResult,
    BudgetLedger,
    CostBudgetSpec,
    CostBudgetStatus,
    explain,
)
from costwarden.operator.budgetstate import BudgetFigures, BudgetState
from costwarden.operator.enforce import act, has_channels, notification, send_notification
from costwarden.operator.jobactions import waiting_on_slurm
from costwarden.operator.kube import ObjectRef
from costwarden.operator.resume import RESUME_ANNOTATION, resume
from costwarden.operator.runtime import Runtime
from costwarden.operator.throttle import status_due
from costwarden.operator.vmactions import waiting_on_clouds
from costwarden.records import NodeRecord, PodRecord, format_time

if TYPE_CHECKING:
    from costwarden.operator.billingfeed import BillingFeed

log = logging.getLogger(__name__)

CAP_MESSAGE = "waiting: the operator's cap on destructive actions per minute is reached"


class PodSource(Protocol):
    """Where a budget's pods come from: the watches' index."""

    def pods_in(self, namespace: str) -> Sequence[PodRecord]: ...

    def candidates(self, namespace: str, spec: CostBudgetSpec) -> Iterable[PodRecord]:
        """A superset of the pods ``spec`` covers in ``namespace`` (from the label index)."""
        ...


@dataclass(frozen=True, slots=True)
class BudgetObject:
    """The parts of a CostBudget body the evaluation reads."""

    namespace: str
    name: str
    uid: str
    generation: int | None
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    resume_request: str | None = None  # the costwarden.dev/resume annotation (a request time)
    resource_version: str | None = None  # metadata.resourceVersion: status writes' precondition

    @property
    def resume_requested(self) -> bool:
        return self.resume_request is not None

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> BudgetObject:
        meta = body.get("metadata") or {}
        return cls(
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            uid=str(meta.get("uid") or ""),
            generation=meta.get("generation"),
            spec=dict(body.get("spec") or {}),
            status=dict(body.get("status") or {}),
            resume_request=(meta.get("annotations") or {}).get(RESUME_ANNOTATION),
            resource_version=str(meta.get("resourceVersion") or "") or None,
        )

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(f"{GROUP}/{VERSION}", KIND, self.namespace, self.name, self.uid)


def previous_status(raw: Mapping[str, Any], budget: str) -> CostBudgetStatus:
    """The stored status; a corrupt one is logged and replaced, never a crash loop."""
    try:
        return CostBudgetStatus.model_validate(dict(raw or {}))
    except ValidationError as exc:
        log.error(
            "CostBudget %s: stored status is unreadable, starting a fresh ledger: %s",
            budget,
            explain(exc, "status"),
        )
        return CostBudgetStatus()


def state_of(runtime: Runtime, budget: BudgetObject) -> BudgetState:
    """The budget's state; a known one takes the watched resourceVersion where only the spec or
    metadata changed (its status is still the one stored), so the next status write need not
    fail with a 409 first."""
    known = runtime.budgets.get(budget.key)
    if known is not None and known.uid == budget.uid:
        if budget.resource_version != known.resource_version:
            known.observe(budget.resource_version, budget.status)
        return known
    stored = previous_status(budget.status, f"{budget.namespace}/{budget.name}")
    return runtime.budgets.state(budget.key, budget.uid, stored, budget.status, budget.resource_version)


def evaluate(
    runtime: Runtime,
    budget: BudgetObject,
    pods: PodSource,
    nodes: Mapping[str, NodeRecord],
    now: datetime,
) -> Counter[str]:
    """Evaluate one budget at ``now`` and queue what it decided; returns a Counter of it."""
    counts: Counter[str] = Counter()
    state = state_of(runtime, budget)
    try:
        spec = state.compile(budget.generation, budget.spec)
    except ValidationError as exc:
        decision = invalid_decision(
            BudgetInput(budget.namespace, budget.name, budget.generation, None, state.status),
            explain(exc),
            now,
        )
        state.replace_status(decision.status)
        _queue_events(runtime, budget, decision)
        counts["invalid"] += 1
        _queue_status(runtime, budget, state, force=False)
        return counts
    assert state.covers is not None
    covered: list[CoveredPod] = []
    for pod in state.covers.select(pods.candidates(budget.namespace, spec)):
        node = nodes.get(pod.node_name) if pod.node_name else None
        price = runtime.pods.price_of(node, runtime.prices) if node is not None else None
        covered.append(CoveredPod(pod, runtime.pods.figure(pod, price, now)))
    billing = runtime.billing
    clouds = _cloud_view(runtime, spec, (budget.namespace, state.status), now)
    slurm = _slurm_view(runtime, spec, (budget.namespace, state.status), now)
    decision = evaluate_budget(
        BudgetInput(budget.namespace, budget.name, budget.generation, spec, state.status),
        covered,
        now,
        _idle_of(runtime, covered),
        runtime.gpu.snapshot,
        billing.truth(budget.namespace, budget.name, spec) if billing is not None else None,
        runtime.pods.price_notes(c.pod.node_name for c in covered if c.pod.node_name),
        clouds,
        slurm,
    )
    if billing is not None:
        _note_billing(runtime, billing, budget, (covered, state.status, decision), (nodes, now))
    state.covered = frozenset(c.pod.uid for c in covered)
    counts["pods"] += len(covered)
    vms = [c.record for c in clouds.items if isinstance(c.record, VMRecord)] if clouds is not None else []
    jobs = [c.record for c in slurm.items if isinstance(c.record, SlurmJob)] if slurm is not None else []
    status, to_act = _plan(runtime, state, decision, (covered, vms, jobs), pods, now, counts)
    state.replace_status(status)
    new = state.status
    state.figures = BudgetFigures(
        spend=new.spend or Decimal(0),
        limit=spec.limit,
        hourly_rate=new.hourly_rate or Decimal(0),
        percent_used=new.percent_used or Decimal(0),
        phase=str(new.phase or ""),
    )
    _queue_events(runtime, budget, decision)
    unsent = any(r.id not in state.notifying for r in pending_notifications(new))
    _queue_status(runtime, budget, state, force=bool(to_act) or unsent)
    _queue_work(runtime, state, to_act, covered, now, counts)
    _queue_resume(runtime, budget, state, counts)
    return counts


def _note_billing(
    runtime: Runtime,
    billing: BillingFeed,
    budget: BudgetObject,
    evaluated: tuple[Sequence[CoveredPod], CostBudgetStatus, BudgetDecision],
    at: tuple[Mapping[str, NodeRecord], datetime],
) -> None:
    """What the budget's pods accrued, for reconciliation; its new billing anomalies, as a metric."""
    covered, before, decision = evaluated
    nodes, now = at
    ledgers = (before.ledger, decision.status.ledger)
    billing.buffer.note_budget(f"{budget.namespace}/{budget.name}", covered, ledgers, nodes, now)
    found = sum(1 for finding in decision.anomalies if finding.kind == BILLING)
    if found:
        runtime.metrics.billing_anomalies.labels(budget.namespace, budget.name).inc(found)


def _cloud_view(
    runtime: Runtime, spec: CostBudgetSpec, budget: tuple[str, CostBudgetStatus], now: datetime
) -> OutsideView | None:
    """The budget's covered VMs and the failing --cloud scopes; None without --cloud. A budget
    of a namespace --outside-namespace does not allow covers none, and says so."""
    feed = runtime.vms
    if feed is None:
        return None
    namespace, status = budget
    fence = runtime.limits.enforcement.outside
    chosen, refused = budget_vms(spec, namespace, feed.records() if spec.skypilot_cluster else (), fence)
    vms = tuple(feed.covered(vm, runtime.prices, now, status.ledger) for vm in chosen)
    problems = feed.problems(runtime.monotonic()) if spec.skypilot_cluster and not refused else ()
    return OutsideView(vms, problems, feed.all_read(), refused)


def _slurm_view(
    runtime: Runtime, spec: CostBudgetSpec, budget: tuple[str, CostBudgetStatus], now: datetime
) -> OutsideView | None:
    """The budget's covered Slurm jobs and the failing --slurm clusters; None without --slurm.
    A budget of a namespace --outside-namespace does not allow covers none, and says so."""
    feed = runtime.slurm
    if feed is None:
        return None
    namespace, status = budget
    covers_jobs = spec.slurm is not None or bool(spec.skypilot_cluster)
    fence = runtime.limits.enforcement.outside
    chosen, refused = budget_jobs(spec, namespace, feed.records() if covers_jobs else (), fence)
    if covers_jobs and not refused:
        feed.want(status.ledger)
    jobs = tuple(feed.covered(job, runtime.prices, now, status.ledger) for job in chosen)
    problems = feed.problems(runtime.monotonic()) if covers_jobs and not refused else ()
    return OutsideView(jobs, problems, feed.all_read(), refused)


def _plan(  # noqa: PLR0917
    runtime: Runtime,
    state: BudgetState,
    decision: BudgetDecision,
    covers: tuple[Sequence[CoveredPod], Sequence[VMRecord], Sequence[SlurmJob]],
    pods: PodSource,
    now: datetime,
    counts: Counter[str],
) -> tuple[CostBudgetStatus, list[ActionPlan]]:
    """The status with this pass's first outcomes folded in, and the destructive plans to carry
    out once it is stored."""
    assert state.spec is not None
    spec, status = state.spec, decision.status
    pending = [r for r in status.actions if r.result == ActionResult.PENDING and r.id not in state.acting]
    if not pending:
        return status, []
    namespace_pods = pods.pods_in(state.namespace)  # a Kill takes a SkyPilot cluster's other pods too
    covered, vms, jobs = covers
    plans = plan_pending(
        state.namespace,
        spec,
        pending,
        ([c.pod for c in covered], namespace_pods),
        runtime.limits.enforcement,
        vms=vms,
        jobs=jobs,
    )
    ready, capped = [], []
    for plan in plans:
        waiting = waiting_on_clouds(runtime, plan) or waiting_on_slurm(runtime, plan)
        if waiting is not None:
            capped.append(ActionOutcome(plan.record_id, ActionResult.PENDING, waiting))
            counts["cloud_deferred"] += 1
            continue
        real = plan.action in DESTRUCTIVE_ACTIONS and not plan.skipped and not plan.dry_run
        if real and not runtime.limits.destructive.take(runtime.monotonic()):
            capped.append(ActionOutcome(plan.record_id, ActionResult.PENDING, CAP_MESSAGE))
            counts["destructive_deferred"] += 1
            continue
        ready.append(plan)
    outcomes = [*first_outcomes(ready, status.actions, has_channels=has_channels(spec)), *capped]
    status = fold(status, outcomes, now_text=format_time(now), generation=state.generation)
    for outcome in outcomes:
        if outcome.result != ActionResult.PENDING:
            counts[f"action_{outcome.result.value.lower()}"] += 1
            runtime.metrics.actions.labels(outcome.result.value).inc()
    to_act = {o.record_id for o in outcomes if o.result == ActionResult.PENDING and o.attempted}
    return status, [plan for plan in ready if plan.record_id in to_act]


def _queue_work(  # noqa: PLR0917
    runtime: Runtime,
    state: BudgetState,
    to_act: Sequence[ActionPlan],
    covered: Sequence[CoveredPod],
    now: datetime,
    counts: Counter[str],
) -> None:
    """Queue the destructive plans and the notifications due, each to run once the status of
    the current revision (their Pending records) is stored."""
    assert state.spec is not None
    revision, status = state.revision, state.status
    for plan in to_act:
        state.acting.add(plan.record_id)
        if not runtime.work.actions.submit(state.key, functools.partial(act, runtime, state, plan, revision)):
            state.acting.discard(plan.record_id)
            counts["queue_full"] += 1
    for record in pending_notifications(status):
        if record.id in state.notifying:
            continue
        message = notification(state.namespace, state.name, state.spec, status, covered, record.id, now)
        state.notifying.add(record.id)
        job = functools.partial(send_notification, runtime, state, message, revision)
        if not runtime.work.notifications.submit(state.key, job):
            state.notifying.discard(record.id)
            counts["queue_full"] += 1


def _queue_resume(runtime: Runtime, budget: BudgetObject, state: BudgetState, counts: Counter[str]) -> None:
    if budget.resume_request is None or state.resuming or state.resume_handled == budget.resume_request:
        return
    state.resuming = True
    if resumable(state.status):
        counts["resume"] += 1
    job = functools.partial(resume, runtime, state, budget.resume_request)
    if not runtime.work.actions.submit(budget.key, job):
        state.resuming = False


def _idle_of(runtime: Runtime, covered: list[CoveredPod]) -> Decimal | None:
    nodes = {c.pod.node_name for c in covered if c.pod.node_name}
    if not nodes:
        return None
    return sum((runtime.pods.idle_costs.get(n, Decimal(0)) for n in nodes), Decimal(0))


def _queue_events(runtime: Runtime, budget: BudgetObject, decision: BudgetDecision) -> None:
    """The Kubernetes Events the engine asked for (crossings, anomalies, phase changes)."""
    for event in decision.events:
        runtime.work.events.submit(
            budget.key,
            functools.partial(_post_event, runtime, budget.ref, event.reason, event.message, event.type),
        )


async def _post_event(runtime: Runtime, ref: ObjectRef, reason: str, message: str, event_type: str) -> None:
    if not runtime.acting():
        return
    result = await runtime.kube.post_event(
        ref, reason=reason, message=message, event_type=event_type, now=runtime.clock()
    )
    runtime.metrics.api_writes.labels("event", result.value).inc()


def _queue_status(runtime: Runtime, budget: BudgetObject, state: BudgetState, *, force: bool) -> None:
    since = runtime.monotonic() - state.status_written_at
    interval = runtime.settings.status_interval
    if force:
        due = True
    elif runtime.kube.dry_run:  # nothing is stored, so every difference would stay "new"
        due = since >= interval
    elif state.stored_revision >= state.revision:
        due = False
    elif since >= interval:  # status_due's first rule, decided without rendering the status
        due = True
    else:
        due = status_due(state.stored, _due_view(state.status), since, interval)
    if due:
        runtime.work.writer.submit(state)


_NO_PODS = BudgetLedger()


def _due_view(status: CostBudgetStatus) -> dict[str, Any]:
    """``status.to_k8s()`` as ``status_due`` reads it, without packing the per-pod tables (a
    deflate of every pod's figures, most of an evaluation's cost when the status is not written):
    the ledger holds only its pods and idle times as maps, a form ``pod_set_key`` and
    ``idle_set_key`` read as they read the packed one. Anything else ``status_due`` might read in
    the ledger would be missing here, so differ: a write, never a lost one."""
    body = status.model_copy(update={"ledger": _NO_PODS}).to_k8s()
    body["ledger"] = {"pods": status.ledger.pods, "idleSince": status.ledger.idle_since}
    return body
