"""A budget evaluated pass after pass, as the operator does it (accruals kept in memory)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from costwarden.engine.evaluation import BudgetDecision, BudgetInput, evaluate_budget
from costwarden.engine.gpu import GpuReading, Telemetry
from costwarden.engine.ledger import CoveredPod, PodAccrual, accrue
from costwarden.models import CostBudgetSpec, CostBudgetStatus
from costwarden.records import PodRecord


def telemetry_of(pods: Iterable[PodRecord], at: datetime) -> Telemetry:
    """Telemetry that read, at ``at``, the utilisation each test pod was built with (``None``: no
    reading for that pod)."""
    readings = {
        pod.uid: GpuReading(pod.gpu_utilization, at) for pod in pods if pod.gpu_utilization is not None
    }
    return Telemetry(readings=readings, configured=bool(readings))


@dataclass
class Budget:
    spec: CostBudgetSpec
    pods: dict[str, tuple[PodRecord, Decimal]] = field(default_factory=dict)
    status: CostBudgetStatus = field(default_factory=CostBudgetStatus)
    accruals: dict[str, PodAccrual] = field(default_factory=dict)
    generation: int = 1
    name: str = "llama"

    def add(self, record: PodRecord, rate: str | Decimal = "1") -> None:
        self.pods[record.uid] = (record, Decimal(rate))

    def remove(self, name: str) -> None:
        del self.pods[f"uid-{name}"]

    def evaluate(self, now: datetime, restart: bool = False) -> BudgetDecision:
        """One pass at ``now``; ``restart`` round-trips the status through the CRD's form first."""
        if restart:
            self.status = CostBudgetStatus.model_validate(self.status.to_k8s())
        covered = []
        for record, rate in self.pods.values():
            accrual = accrue(record, rate, now, self.accruals.get(record.uid))
            self.accruals[record.uid] = accrual
            covered.append(CoveredPod(record, accrual))
        budget = BudgetInput("research", self.name, self.generation, self.spec, self.status)
        telemetry = telemetry_of((c.pod for c in covered), now)
        decision = evaluate_budget(budget, covered, now, telemetry=telemetry)
        self.status = decision.status
        return decision
