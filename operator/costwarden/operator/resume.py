"""Resuming what a budget scaled down or suspended, on request.

A person asks by annotating the CostBudget ``costwarden.dev/resume`` (``costwarden resume NAME``
does it); the operator then restores every Scale and Suspend it carried out in the current
records — but only once spend is back under the threshold that fired (raise ``spec.limit``
first), so a resume never undoes a guardrail that still applies. Each record is resumed once
(``resumedAt`` on the record); the annotation is removed once the outcome is stored.

A restore the API server could not serve now (throttled, or a transient answer: 408/5xx or no
answer) leaves the record unresumed and the annotation in place, so the next pass tries again
(a target restored by the earlier try is found with nothing left to restore). A restore refused
for good (403, an invalid request) leaves the record unresumed with the reason in its message,
and the annotation is withdrawn: ask again once the cause is fixed.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from costwarden.engine.outcomes import RESUME_RETRY_NOTE, ResumeOutcome, resumable
from costwarden.engine.thresholds import threshold_percent
from costwarden.models import Action
from costwarden.operator.budgetstate import BudgetState
from costwarden.operator.enforce import apply, stored_wait
from costwarden.operator.kube import KubeError
from costwarden.operator.runtime import Runtime
from costwarden.operator.workloads import Outcome, TargetResult, resume_scaled, resume_suspended
from costwarden.records import format_time

RESUME_ANNOTATION = "costwarden.dev/resume"

RETRIED = (Outcome.THROTTLED, Outcome.TRANSIENT)

log = logging.getLogger(__name__)


async def resume(runtime: Runtime, state: BudgetState, request: str) -> None:
    """Restore the targets of every resumable record whose threshold no longer applies."""
    try:
        if state.retired or not runtime.acting():
            return
        status = state.status
        used = status.percent_used or Decimal(0)
        outcomes = []
        again = False
        for record in resumable(status):
            percent = threshold_percent(record.id)
            if percent is not None and used >= percent:
                message = (
                    f"not resumed: spend is {used:.1f}% of the limit, at or above the "
                    f"{percent}% threshold that acted (raise spec.limit first)"
                )
                outcomes.append(ResumeOutcome(record.id, message, None))
                continue
            results = [
                await _resume_target(runtime, state.namespace, record.action, t) for t in record.targets
            ]
            said = "; ".join(f"{r.target}: {r.message}" for r in results)
            if any(r.result in RETRIED for r in results):
                again = True
                outcomes.append(ResumeOutcome(record.id, f"{RESUME_RETRY_NOTE}{said}", None))
            elif any(r.result is Outcome.FAILED for r in results):
                outcomes.append(ResumeOutcome(record.id, f"resume failed: {said}", None))
            else:
                outcomes.append(ResumeOutcome(record.id, f"resumed: {said}", format_time(runtime.clock())))
        apply(runtime, state, outcomes)
        if again:
            return  # the annotation stays: the next pass carries the request out again
        if await state.wait_stored(state.revision, stored_wait(runtime)):
            state.resume_handled = request
            await _withdraw(runtime, state, request)
    finally:
        state.resuming = False


async def _withdraw(runtime: Runtime, state: BudgetState, request: str) -> None:
    """Remove the resume annotation, but only if it still holds the request just carried out: a
    new request made meanwhile stays, and the next pass carries it out."""
    try:
        budget = await runtime.kube.read_budget(state.namespace, state.name)
    except KubeError as exc:
        log.warning("CostBudget %s/%s: resume carried out; the annotation stays: %s", *state.key, exc)
        return
    meta = (budget or {}).get("metadata") or {}
    if (meta.get("annotations") or {}).get(RESUME_ANNOTATION) != request:
        return
    await runtime.kube.annotate_budget(
        state.namespace, state.name, {RESUME_ANNOTATION: None}, resource_version=meta.get("resourceVersion")
    )


async def _resume_target(runtime: Runtime, namespace: str, action: Action, target: str) -> TargetResult:
    kind, _, name = target.partition("/")
    if action is Action.SCALE:
        return await resume_scaled(runtime.kube, namespace, kind, name)
    return await resume_suspended(runtime.kube, namespace, kind, name)
