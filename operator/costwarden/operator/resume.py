"""Resuming what a budget scaled down or suspended, on request.

A person asks by annotating the CostBudget ``costwarden.dev/resume`` (``costwarden resume NAME``
does it); the operator then restores every Scale and Suspend it carried out in the current
records — but only once spend is back under the threshold that fired (raise ``spec.limit``
first), so a resume never undoes a guardrail that still applies. Each record is resumed once
(``resumedAt`` on the record) and the annotation is removed.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from decimal import Decimal

from costwarden.engine.thresholds import threshold_percent
from costwarden.models import Action, ActionRecord, CostBudgetStatus
from costwarden.operator.runtime import Runtime
from costwarden.operator.workloads import TargetResult, resume_scaled, resume_suspended
from costwarden.records import format_time

RESUME_ANNOTATION = "costwarden.dev/resume"


def resumable(status: CostBudgetStatus) -> list[ActionRecord]:
    return [
        r
        for r in status.actions
        if r.action in (Action.SCALE, Action.SUSPEND)
        and r.result == "Done"
        and not (r.model_extra or {}).get("resumedAt")
    ]


async def resume(runtime: Runtime, namespace: str, status: CostBudgetStatus, now: datetime) -> Counter[str]:
    """Restore the targets of every resumable record whose threshold no longer applies."""
    counts: Counter[str] = Counter()
    used = status.percent_used or Decimal(0)
    for record in resumable(status):
        percent = threshold_percent(record.id)
        if percent is not None and used >= percent:
            record.message = (
                f"{record.message}; not resumed: spend is {used:.1f}% of the limit, at or above the "
                f"{percent}% threshold that acted (raise spec.limit first)"
            ).lstrip("; ")
            counts["resume_refused"] += 1
            continue
        results = [
            await _resume_target(runtime, namespace, record.action, target) for target in record.targets
        ]
        extra = record.model_extra if record.model_extra is not None else {}
        extra["resumedAt"] = format_time(now)
        record.message = f"{record.message}; resumed: " + "; ".join(
            f"{r.target}: {r.message}" for r in results
        )
        counts["resumed"] += 1
    return counts


async def _resume_target(runtime: Runtime, namespace: str, action: Action, target: str) -> TargetResult:
    kind, _, name = target.partition("/")
    if action is Action.SCALE:
        return await resume_scaled(runtime.kube, namespace, kind, name)
    return await resume_suspended(runtime.kube, namespace, kind, name)
