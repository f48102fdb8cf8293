"""The admission guard's decision: does an exhausted budget refuse this new pod?

With ``spec.enforcement.blockNewPods`` a budget in phase Exceeded or Enforced refuses the new
pods it would cover; otherwise SkyPilot's managed-job recovery (or any controller) relaunches what
was just killed. The webhook in the shell asks ``blocking_budget`` and answers with its message.
"""

from __future__ import annotations

from collections.abc import Sequence

from costwarden.engine.selection import budget_covers
from costwarden.models import CostBudgetSpec, Period, Phase
from costwarden.records import PodRecord

__all__ = ["BLOCKING_PHASES", "blocking_budget", "refusal_message"]

BLOCKING_PHASES = frozenset({Phase.EXCEEDED, Phase.ENFORCED})


def refusal_message(namespace: str, name: str, phase: Phase, period: Period) -> str:
    """What the user who created the pod reads: which budget, and how to get going again."""
    raise_it = f"raise spec.limit (kubectl edit costbudget {name} -n {namespace})"
    wait = "" if period is Period.LIFETIME else " or wait for the next period"
    return f"CostBudget {namespace}/{name} is {phase.value}; {raise_it}{wait}"


def blocking_budget(
    pod: PodRecord,
    budgets: Sequence[tuple[str, CostBudgetSpec, Phase | None]],
    protected: frozenset[str],
) -> tuple[str, str] | None:
    """The first budget (by name) that refuses ``pod``, as ``(name, message)``, or None.

    ``budgets`` are the budgets of the pod's namespace as ``(name, spec, phase)``. A budget
    refuses when it has ``blockNewPods``, its phase is Exceeded or Enforced and it covers the
    pod. Nothing is refused in a ``protected`` namespace.
    """
    if pod.namespace in protected:
        return None
    for name, spec, phase in sorted(budgets, key=lambda budget: budget[0]):
        if (
            phase is not None
            and phase in BLOCKING_PHASES
            and spec.enforcement.block_new_pods
            and budget_covers(spec, pod.namespace, pod)
        ):
            return name, refusal_message(pod.namespace, name, phase, spec.period)
    return None
