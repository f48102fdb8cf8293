"""metav1.Condition bookkeeping: ``lastTransitionTime`` moves only when a condition's status does."""

from __future__ import annotations

from collections.abc import Sequence

from costwarden.models import Condition

READY = "Ready"
BUDGET_EXCEEDED = "BudgetExceeded"


def set_condition(
    conditions: Sequence[Condition],
    kind: str,
    *,
    status: str,
    reason: str,
    message: str,
    now_text: str,
    generation: int | None,
) -> list[Condition]:
    """``conditions`` with the one of type ``kind`` replaced (or appended), others untouched."""
    previous = next((c for c in conditions if c.type == kind), None)
    if previous is not None and (
        previous.status == status
        and previous.reason == reason
        and previous.message == message
        and previous.observed_generation == generation
    ):
        return list(conditions)
    since = previous.last_transition_time if previous is not None and previous.status == status else now_text
    condition = Condition(
        type=kind,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
    if previous is None:
        return [*conditions, condition]
    return [condition if c is previous else c for c in conditions]
