"""Carrying out enforcement plans: notify, scale, suspend, kill — each recorded so it fires once.

The engine decides (``plan_pending`` over the Pending records of ``status.actions``); this
module acts and writes the outcome onto each record. A record is persisted as Pending before
anything destructive happens, so a restart between deciding and acting retries it rather than
losing or repeating the decision; Done, DryRun, Failed and Skipped are final.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from costwarden.engine.conditions import set_condition
from costwarden.engine.enforcement import ActionPlan, plan_pending
from costwarden.engine.ledger import CoveredPod
from costwarden.models import Action, ActionRecord, Condition, CostBudgetSpec, CostBudgetStatus
from costwarden.notify.delivery import Channels, Delivery
from costwarden.notify.message import Notification, PodSpend
from costwarden.operator.kube import KubeError, ObjectRef
from costwarden.operator.runtime import Runtime
from costwarden.operator.workloads import Outcome, TargetResult, kill_pods, scale_to_zero, suspend
from costwarden.records import PodRecord, format_time, parse_time

if TYPE_CHECKING:
    from costwarden.operator.budgets import BudgetObject

log = logging.getLogger(__name__)

NOTIFICATIONS = "NotificationsDelivered"
MAX_ATTEMPTS = 3
_VERBS = {Action.KILL: "kill", Action.SCALE: "scale to 0", Action.SUSPEND: "suspend"}


@dataclass(frozen=True, slots=True)
class BudgetScope:
    """What one evaluation hands to enforcement: the budget and the pods around it."""

    budget: BudgetObject
    spec: CostBudgetSpec
    covered: Sequence[CoveredPod]
    namespace_pods: Sequence[PodRecord]


async def enforce(
    runtime: Runtime, scope: BudgetScope, status: CostBudgetStatus, now: datetime
) -> Counter[str]:
    """Carry out every Pending record of ``status.actions`` (mutated in place with outcomes)."""
    counts: Counter[str] = Counter()
    covered = [c.pod for c in scope.covered]
    plans = plan_pending(
        scope.budget.namespace,
        scope.spec,
        status.actions,
        (covered, scope.namespace_pods),
        runtime.enforcement,
    )
    if not plans:
        return counts
    records = {record.id: record for record in status.actions}
    if any(p.action is not Action.NOTIFY and not p.skipped and not p.dry_run for p in plans):
        await _persist_pending(runtime, scope.budget, status, counts)
    channels, channel_error = await _channels(runtime, scope)
    sent: list[Delivery] = []
    for plan in plans:
        record = records[plan.record_id]
        _bump_attempts(record)
        if plan.skipped:
            _finish(record, "Skipped", plan.skipped)
        elif plan.action is not Action.NOTIFY:
            if not await _destroy(runtime, scope, plan, record, now):
                counts["destructive_deferred"] += 1
                continue
        else:
            _finish(record, "Done", "Kubernetes Event posted on the budget")
        deliveries = await _notify(runtime, scope=scope, status=status, plan=plan, channels=channels, now=now)
        sent.extend(deliveries)
        _note_deliveries(record, plan, deliveries, channel_error)
        counts[f"action_{record.result.lower()}"] += 1
    status.conditions = _notify_condition(status, sent, channel_error, now, scope.budget.generation)
    return counts


def _bump_attempts(record: ActionRecord) -> None:
    extra = record.model_extra if record.model_extra is not None else {}
    extra["attempts"] = int(extra.get("attempts") or 0) + 1


def _attempts(record: ActionRecord) -> int:
    return int((record.model_extra or {}).get("attempts") or 0)


def _finish(record: ActionRecord, result: str, message: str) -> None:
    record.result = result
    record.message = message


async def _persist_pending(
    runtime: Runtime, budget: BudgetObject, status: CostBudgetStatus, counts: Counter[str]
) -> None:
    """Write the Pending records before acting: a crash after this retries, never forgets."""
    body = {"actions": [r.model_dump(by_alias=True, mode="json", exclude_none=True) for r in status.actions]}
    result = await runtime.kube.patch_budget_status(budget.namespace, budget.name, body)
    counts[f"persist_{result.value}"] += 1


async def _destroy(
    runtime: Runtime, scope: BudgetScope, plan: ActionPlan, record: ActionRecord, now: datetime
) -> bool:
    """Run one destructive plan; False when the per-minute cap defers it to a later pass."""
    names = [str(t) for t in plan.targets]
    record.targets = names
    if plan.dry_run:
        why = "spec.enforcement.dryRun" if scope.spec.enforcement.dry_run else "--enforcement=dry-run"
        _finish(record, "DryRun", f"would {_VERBS[plan.action]} {', '.join(names)} ({why})")
        return True
    if not runtime.destructive_bucket.take(runtime.monotonic()):
        record.message = "waiting: the operator's cap on destructive actions per minute is reached"
        return False
    results = await _execute(runtime, plan)
    failed = [r for r in results if r.result in (Outcome.FAILED, Outcome.THROTTLED)]
    summary = "; ".join(f"{r.target}: {r.message}" for r in results)
    if failed and _attempts(record) < MAX_ATTEMPTS:
        record.message = f"attempt {_attempts(record)} failed, will retry: {summary}"
        return False
    _finish(record, "Failed" if failed else "Done", summary)
    for target in plan.targets:
        if target.kind == "Pod":
            await runtime.kube.post_event(
                ObjectRef("v1", "Pod", target.namespace, target.name),
                reason=f"CostBudget{plan.action.value}",
                message=f"CostBudget {scope.budget.namespace}/{scope.budget.name}: {plan.trigger}",
                event_type="Warning",
                now=now,
            )
    return True


async def _execute(runtime: Runtime, plan: ActionPlan) -> list[TargetResult]:
    kube = runtime.kube
    if plan.action is Action.KILL:
        pods = [t for t in plan.targets if t.kind == "Pod"]
        namespace = pods[0].namespace if pods else ""
        return await kill_pods(kube, namespace, [t.name for t in pods], plan.grace_period_seconds)
    act = scale_to_zero if plan.action is Action.SCALE else suspend
    return [await act(kube, t.namespace, t.kind, t.name) for t in plan.targets]


async def _channels(runtime: Runtime, scope: BudgetScope) -> tuple[Channels, str | None]:
    """Credentials from Secrets in the budget's own namespace; a missing one is reported, not raised."""
    notify, namespace = scope.spec.notify, scope.budget.namespace
    found: dict[str, str | None] = {}
    refs = {
        "slack_token": notify.slack.token_secret_ref if notify.slack else None,
        "slack_webhook_url": notify.slack.webhook_secret_ref if notify.slack else None,
        "webhook_url": notify.webhook.url_secret_ref if notify.webhook else None,
        "pagerduty_routing_key": notify.pagerduty.routing_key_secret_ref if notify.pagerduty else None,
    }
    errors = []
    for field, ref in refs.items():
        if ref is None:
            continue
        try:
            found[field] = await runtime.kube.read_secret_key(namespace, ref.name, ref.key)
        except KubeError as exc:
            errors.append(str(exc))
    channel = notify.slack.channel if notify.slack else None
    return Channels(slack_channel=channel, **found), "; ".join(errors) or None


async def _notify(
    runtime: Runtime,
    *,
    scope: BudgetScope,
    status: CostBudgetStatus,
    plan: ActionPlan,
    channels: Channels,
    now: datetime,
) -> list[Delivery]:
    if not any(
        (
            channels.slack_token,
            channels.slack_webhook_url,
            channels.webhook_url,
            channels.pagerduty_routing_key,
        )
    ):
        return []
    if runtime.kube.dry_run:
        log.info("dry-run: would notify %s about %s", scope.budget.name, plan.record_id)
        return []
    return await runtime.notifier.send(channels, notification(scope, status, plan, now))


def notification(
    scope: BudgetScope, status: CostBudgetStatus, plan: ActionPlan, now: datetime
) -> Notification:
    pods = sorted(scope.covered, key=lambda c: c.accrual.spend, reverse=True)[:5]
    sky = next((c.pod for c in pods if c.pod.skypilot_cluster), None)
    return Notification(
        budget=scope.budget.name,
        namespace=scope.budget.namespace,
        spend=status.spend or Decimal(0),
        limit=scope.spec.limit,
        percent_used=status.percent_used or Decimal(0),
        hourly_rate=status.hourly_rate or Decimal(0),
        exhausts_at=parse_time(status.exhausts_at),
        period=scope.spec.period.value,
        trigger=plan.trigger,
        action=plan.action.value,
        dry_run=plan.dry_run,
        next_step=next_step(scope.spec, status.percent_used or Decimal(0), plan),
        top_pods=tuple(PodSpend(c.pod.name, c.accrual.spend, c.accrual.rate) for c in pods),
        skypilot_cluster=sky.skypilot_cluster if sky else None,
        skypilot_user=sky.skypilot_user if sky else None,
        console_hint=f"kubectl get costbudget {scope.budget.name} -n {scope.budget.namespace}",
        at=now,
    )


def next_step(spec: CostBudgetSpec, percent_used: Decimal, plan: ActionPlan) -> str:
    """What happens next, in words: what this action did, then the next threshold ahead."""
    done = ""
    if plan.action is not Action.NOTIFY:
        verb = "would " + _VERBS[plan.action] if plan.dry_run else _VERBS[plan.action]
        targets = ", ".join(str(t) for t in plan.targets) or "nothing"
        done = f"{plan.skipped}. " if plan.skipped else f"costwarden will {verb}: {targets}. "
    ahead = [t for t in spec.thresholds if t.percent > percent_used]
    if not ahead:
        return done + "No further thresholds in this period; raise spec.limit to resume work."
    upcoming = ahead[0]
    return done + f"At {upcoming.percent}% of {spec.limit} USD the action is {upcoming.action.value}."


def _note_deliveries(
    record: ActionRecord, plan: ActionPlan, deliveries: Sequence[Delivery], channel_error: str | None
) -> None:
    failed = [d for d in deliveries if not d.ok]
    notes = [f"{d.channel}: {d.error}" for d in failed]
    if channel_error:
        notes.append(channel_error)
    if not notes:
        if deliveries:
            record.message = f"{record.message}; notified {', '.join(d.channel for d in deliveries)}".lstrip(
                "; "
            )
        return
    record.message = f"{record.message}; notification failed: {'; '.join(notes)}".lstrip("; ")
    if plan.action is Action.NOTIFY:
        record.result = "Failed"


def _notify_condition(
    status: CostBudgetStatus,
    sent: Sequence[Delivery],
    channel_error: str | None,
    now: datetime,
    generation: int | None,
) -> list[Condition]:
    """``NotificationsDelivered``: False with the reason when a Secret or a receiver failed."""
    failed = [f"{d.channel}: {d.error}" for d in sent if not d.ok]
    if channel_error:
        state, reason, message = "False", "SecretUnavailable", channel_error
    elif failed:
        state, reason, message = "False", "DeliveryFailed", "; ".join(failed)
    elif sent:
        state, reason, message = "True", "Delivered", ", ".join(sorted({d.channel for d in sent}))
    else:
        return status.conditions
    return set_condition(
        status.conditions,
        NOTIFICATIONS,
        status=state,
        reason=reason,
        message=message,
        now_text=format_time(now),
        generation=generation,
    )
