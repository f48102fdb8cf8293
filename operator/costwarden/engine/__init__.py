"""The pure core: prices pods, accrues their spend and evaluates budgets.

No kopf, Kubernetes client, HTTP or clock in here (an import-linter contract enforces the
imports); ``now`` is always an argument. Money is ``Decimal`` throughout.
"""

from costwarden.engine.evaluation import (
    BudgetDecision,
    BudgetInput,
    CoveredPod,
    EventIntent,
    ThresholdCrossing,
    evaluate_budget,
    invalid_decision,
)
from costwarden.engine.forecast import exhausts_at
from costwarden.engine.idle import idle_node_costs
from costwarden.engine.ledger import PodAccrual, accrue, mark_annotations, spend_mark
from costwarden.engine.periods import period_bounds
from costwarden.engine.rates import ZERO_RATE, PodRate, UnitPrices, pod_rate
from costwarden.engine.selection import Coverage, budget_covers, coverage, covered_pods, selector_matches

__all__ = [
    "ZERO_RATE",
    "BudgetDecision",
    "BudgetInput",
    "Coverage",
    "CoveredPod",
    "EventIntent",
    "PodAccrual",
    "PodRate",
    "ThresholdCrossing",
    "UnitPrices",
    "accrue",
    "budget_covers",
    "coverage",
    "covered_pods",
    "evaluate_budget",
    "exhausts_at",
    "idle_node_costs",
    "invalid_decision",
    "mark_annotations",
    "period_bounds",
    "pod_rate",
    "selector_matches",
    "spend_mark",
]
