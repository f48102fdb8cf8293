"""Carrying out what a budget's evaluation decided: destructive actions and notifications.

These run as background jobs (``runtime.work``), never inside the evaluation pass. Each job
first waits until the status holding its record is stored (a destructive record Pending with its
targets and attempt, a notification Pending), so a crash or a handover after that point retries
rather than forgets, and a failed write means the job does nothing (the next pass tries again).

Every try shows in the record's ``attempts``; what becomes of the record depends on why a try
did not finish (``attempt_outcome``):

- failed for good (refused: 401/403; invalid: 400, 422, ...; a conflict that kept recurring):
  the record stays Pending while ``attempts < engine.outcomes.MAX_ATTEMPTS``, then is Failed;
- throttled (a 429; a cloud or Slurm answer that is stale or transient) or transient (a request
  answered 408, 500, 502, 503 or 504, or not answered: ``workloads.transient``): the record stays
  Pending, "throttled, will retry: ..." or "transient, will retry: ...", and the next pass tries
  again, for as long as it lasts, without ever making it Failed. Each such try counts in
  ``costwarden_action_retries_total{action,reason}``, and every
  ``engine.outcomes.RETRY_WARNING_EVERY`` tries a Warning Event on the budget
  (``CostBudgetActionRetrying``) says the action still waits. Retrying is safe: a pod is deleted
  only with its uid as a precondition (a delete carried out but answered 504 finds it gone, and
  the retry is Done), a scale carries the object's resourceVersion, a suspend is idempotent.

Each job checks the leader fence before every side effect (each pod deleted, each object
scaled or suspended, each Event), deletes a pod only if it is still the one decided on (its uid),
and reports its outcome as data (``engine.outcomes``), folded into the budget's next status.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from costwarden.engine.enforcement import ActionPlan
from costwarden.engine.ledger import CoveredPod
from costwarden.engine.outcomes import (
    VERBS,
    ActionOutcome,
    NotificationOutcome,
    Outcome,
    acted_before,
    destructive_result,
    fold,
    held_up_result,
    retry_warning,
)
from costwarden.models import (
    GROUP,
    KIND,
    VERSION,
    Action,
    ActionRecord,
    CostBudgetSpec,
    CostBudgetStatus,
    NotificationState,
)
from costwarden.notify.delivery import Channels
from costwarden.notify.message import Notification, PodSpend
from costwarden.operator.budgetstate import BudgetState
from costwarden.operator.jobactions import act_on_jobs
from costwarden.operator.kube import KubeError, ObjectRef
from costwarden.operator.runtime import Runtime
from costwarden.operator.vmactions import act_on_vms
from costwarden.operator.workloads import Outcome as TargetOutcome
from costwarden.operator.workloads import TargetResult, describe, kill_pods, scale_to_zero, suspend, transient
from costwarden.records import format_time, parse_time

log = logging.getLogger(__name__)

HELD_UP = (TargetOutcome.THROTTLED, TargetOutcome.TRANSIENT)
RETRY_EVENT = "CostBudgetActionRetrying"


def stored_wait(runtime: Runtime) -> float:
    """How long a job waits for its record to be stored before leaving it to a later pass."""
    return max(5.0, 3 * runtime.settings.interval)


def apply(runtime: Runtime, state: BudgetState, outcomes: Sequence[Outcome]) -> None:
    """Fold outcomes into the budget's status and have it written."""
    now = runtime.clock()
    state.replace_status(fold(state.status, outcomes, now_text=format_time(now), generation=state.generation))
    runtime.work.writer.submit(state)


async def act(runtime: Runtime, state: BudgetState, plan: ActionPlan, revision: int) -> None:
    """One destructive plan, once its Pending record (targets, attempt) is stored."""
    try:
        if not await state.wait_stored(revision, stored_wait(runtime)):
            log.warning(
                "CostBudget %s/%s: %s not stored; not acting, a later pass retries",
                state.namespace,
                state.name,
                plan.record_id,
            )
            return
        if state.retired or not runtime.acting():
            return
        results = await execute(runtime, plan)
        record = next((r for r in state.status.actions if r.id == plan.record_id), None)
        if record is None:
            return
        earlier = [
            _described(t, state.namespace) for t in acted_before(record, [str(t) for t in plan.targets])
        ]
        outcome, held_up = attempt_outcome(record, results, earlier)
        apply(runtime, state, [outcome])
        runtime.metrics.actions.labels(str(outcome.result)).inc()
        if held_up is not None:
            runtime.metrics.action_retries.labels(record.action.value, held_up).inc()
            warning = retry_warning(record, outcome)
            if warning is not None:
                log.warning("CostBudget %s/%s: %s", state.namespace, state.name, warning)
                await _post_budget_event(runtime, state, RETRY_EVENT, warning)
        if outcome.result.value != "Pending":
            await _post_pod_events(runtime, state, plan)
    finally:
        state.acting.discard(plan.record_id)


def attempt_outcome(
    record: ActionRecord, results: Sequence[TargetResult], earlier: Sequence[str] = ()
) -> tuple[ActionOutcome, str | None]:
    """What one try did to ``record`` (see the module doc), and why it was held up: "throttled",
    "transient", or None (carried out, or failed for good: ``destructive_result``).

    ``earlier``: targets an earlier try acted on that this one no longer found, named as the
    results name theirs ("Pod ns/name")."""
    failing = [r for r in results if r.result in (TargetOutcome.FAILED, *HELD_UP)]
    summary = "; ".join(
        [
            *(f"{t}: gone (acted on by an earlier attempt)" for t in earlier),
            *(f"{r.target}: {r.message}" for r in results),
        ]
    )
    if not failing or any(r.result == TargetOutcome.FAILED for r in failing):
        return destructive_result(record, bool(failing), summary), None
    # "not now" (429, stale) or "maybe next time" (408, 5xx, unreachable), never "cannot"
    throttled = all(r.result == TargetOutcome.THROTTLED for r in failing)
    reason = "throttled" if throttled else "transient"
    return held_up_result(record, reason, summary), reason


def _described(stored: str, namespace: str) -> str:
    """A record's target ("Pod/name", "VM/aws:i-…") as the attempt's results name theirs."""
    kind, _, name = stored.partition("/")
    return f"{kind} {name}" if kind in ("VM", "SlurmJob") else describe(kind, namespace, name)


async def execute(runtime: Runtime, plan: ActionPlan) -> list[TargetResult]:
    """Pods and workloads first, then the cluster's cloud VMs (``vmactions``), then Slurm jobs
    (``jobactions``)."""
    kube = runtime.kube
    vms = [t for t in plan.targets if t.kind == "VM"]
    jobs = [t for t in plan.targets if t.kind == "SlurmJob"]
    if plan.action is Action.KILL:
        pods = [t for t in plan.targets if t.kind == "Pod"]
        namespace = pods[0].namespace if pods else ""
        results = await kill_pods(
            kube,
            namespace,
            [t.name for t in pods],
            plan.grace_period_seconds,
            uids={t.name: t.uid for t in pods if t.uid},
            acting=runtime.acting,
        )
    else:
        act_on = scale_to_zero if plan.action is Action.SCALE else suspend
        results = []
        for t in plan.targets:
            if t.kind in ("VM", "SlurmJob"):
                continue
            if not runtime.acting():  # the fence, before every object
                return results
            results.append(await act_on(kube, t.namespace, t.kind, t.name))
    if vms:
        results.extend(await act_on_vms(runtime, plan.action, vms))
    if jobs:
        results.extend(await act_on_jobs(runtime, plan.action, jobs, plan.grace_period_seconds))
    return results


async def _post_budget_event(runtime: Runtime, state: BudgetState, reason: str, message: str) -> None:
    if state.retired or not runtime.acting():
        return
    result = await runtime.kube.post_event(
        ObjectRef(f"{GROUP}/{VERSION}", KIND, state.namespace, state.name, state.uid),
        reason=reason,
        message=message,
        event_type="Warning",
        now=runtime.clock(),
    )
    runtime.metrics.api_writes.labels("event", result.value).inc()


async def _post_pod_events(runtime: Runtime, state: BudgetState, plan: ActionPlan) -> None:
    for target in plan.targets:
        if target.kind == "Pod" and runtime.acting():
            result = await runtime.kube.post_event(
                ObjectRef("v1", "Pod", target.namespace, target.name),
                reason=f"CostBudget{plan.action.value}",
                message=f"CostBudget {state.namespace}/{state.name}: {plan.trigger}",
                event_type="Warning",
                now=runtime.clock(),
            )
            runtime.metrics.api_writes.labels("event", result.value).inc()


@dataclass(frozen=True, slots=True)
class ChannelRead:
    channels: Channels
    error: str | None = None  # a Secret that could not be read
    transient: bool = False  # the error may go away (API server busy or unreachable)

    @property
    def any(self) -> bool:
        c = self.channels
        return any((c.slack_token, c.slack_webhook_url, c.webhook_url, c.pagerduty_routing_key))


def secret_retried(status: int | None) -> bool:
    """A Secret read that failed so leaves its notification Pending for a later pass: transient
    (``workloads.transient``), throttled (429) or a conflict (409)."""
    return status in (409, 429) or transient(status)


async def read_channels(runtime: Runtime, spec: CostBudgetSpec, namespace: str) -> ChannelRead:
    """Credentials from Secrets in the budget's own namespace; errors are reported, not raised."""
    notify = spec.notify
    refs = {
        "slack_token": notify.slack.token_secret_ref if notify.slack else None,
        "slack_webhook_url": notify.slack.webhook_secret_ref if notify.slack else None,
        "webhook_url": notify.webhook.url_secret_ref if notify.webhook else None,
        "pagerduty_routing_key": notify.pagerduty.routing_key_secret_ref if notify.pagerduty else None,
    }
    found: dict[str, str | None] = {}
    errors, retried = [], False
    for name, ref in refs.items():
        if ref is None:
            continue
        try:
            found[name] = await runtime.kube.read_secret_key(namespace, ref.name, ref.key)
        except KubeError as exc:
            errors.append(str(exc))
            retried = retried or secret_retried(exc.status)
    channel = notify.slack.channel if notify.slack else None
    return ChannelRead(Channels(slack_channel=channel, **found), "; ".join(errors) or None, retried)


def has_channels(spec: CostBudgetSpec) -> bool:
    return any((spec.notify.slack, spec.notify.webhook, spec.notify.pagerduty))


async def send_notification(
    runtime: Runtime, state: BudgetState, message: Notification, revision: int
) -> None:
    """Deliver one record's notification, once its Pending state is stored; mark it after."""
    record_id = message.record_id
    try:
        if (
            not await state.wait_stored(revision, stored_wait(runtime))
            or state.retired
            or not runtime.acting()
        ):
            return
        spec = state.spec
        if spec is None:
            return
        read = await read_channels(runtime, spec, state.namespace)
        if read.error and read.transient:
            apply(
                runtime,
                state,
                [NotificationOutcome(record_id, NotificationState.PENDING, secret_error=read.error)],
            )
            return
        if not read.any:
            outcome = NotificationOutcome(record_id, NotificationState.FAILED, secret_error=read.error)
        elif runtime.kube.dry_run:
            log.info("dry-run: would notify %s/%s about %s", state.namespace, state.name, record_id)
            outcome = NotificationOutcome(record_id, NotificationState.SENT)
        else:
            if state.retired or not runtime.acting():
                return
            deliveries = await runtime.notifier.send(read.channels, message)
            failures = tuple(f"{d.channel}: {d.error}" for d in deliveries if not d.ok)
            delivered = tuple(d.channel for d in deliveries if d.ok)
            failed = bool(failures) or bool(read.error)
            outcome = NotificationOutcome(
                record_id,
                NotificationState.FAILED if failed else NotificationState.SENT,
                delivered=delivered,
                failures=failures,
                secret_error=read.error,
            )
        apply(runtime, state, [outcome])
    finally:
        state.notifying.discard(record_id)


def notification(  # noqa: PLR0917 -- what a message is made of
    namespace: str,
    name: str,
    spec: CostBudgetSpec,
    status: CostBudgetStatus,
    covered: Sequence[CoveredPod],
    record_id: str,
    now: datetime,
) -> Notification:
    record = next(r for r in status.actions if r.id == record_id)
    pods = sorted(covered, key=lambda c: c.accrual.spend, reverse=True)[:5]
    sky = next((c.pod for c in pods if c.pod.skypilot_cluster), None)
    percent_used = status.percent_used or Decimal(0)
    return Notification(
        budget=name,
        namespace=namespace,
        spend=status.spend or Decimal(0),
        limit=spec.limit,
        percent_used=percent_used,
        hourly_rate=status.hourly_rate or Decimal(0),
        exhausts_at=parse_time(status.exhausts_at),
        period=spec.period.value,
        trigger=record.trigger,
        action=record.action.value,
        dry_run=record.result.value == "DryRun",
        next_step=next_step(spec, percent_used, record.action, record.message),
        top_pods=tuple(PodSpend(c.pod.name, c.accrual.spend, c.accrual.rate) for c in pods),
        skypilot_cluster=sky.skypilot_cluster if sky else None,
        skypilot_user=sky.skypilot_user if sky else None,
        console_hint=f"kubectl get costbudget {name} -n {namespace}",
        at=now,
        record_id=record_id,
    )


def next_step(spec: CostBudgetSpec, percent_used: Decimal, action: Action, done: str) -> str:
    """What happens next, in words: what this action did, then the next threshold ahead."""
    said = f"{done}. " if action is not Action.NOTIFY and done else ""
    ahead = [t for t in spec.thresholds if t.percent > percent_used]
    if not ahead:
        return said + "No further thresholds in this period; raise spec.limit to resume work."
    upcoming = ahead[0]
    return said + f"At {upcoming.percent}% of {spec.limit} USD the action is {upcoming.action.value}."


__all__ = [
    "VERBS",
    "act",
    "attempt_outcome",
    "execute",
    "has_channels",
    "notification",
    "read_channels",
    "secret_retried",
    "send_notification",
]
