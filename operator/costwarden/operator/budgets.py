"""Evaluating one CostBudget: gather its pods, run the engine, carry out what it decided."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from costwarden.engine.evaluation import (
    BudgetDecision,
    BudgetInput,
    CoveredPod,
    evaluate_budget,
    invalid_decision,
)
from costwarden.models import GROUP, KIND, VERSION, CostBudgetStatus, explain
from costwarden.operator.enforce import BudgetScope, enforce
from costwarden.operator.kube import ObjectRef
from costwarden.operator.resume import RESUME_ANNOTATION, resume
from costwarden.operator.runtime import BudgetFigures, Runtime
from costwarden.records import NodeRecord, PodRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BudgetObject:
    """The parts of a CostBudget body the evaluation reads."""

    namespace: str
    name: str
    uid: str
    generation: int | None
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    resume_requested: bool = False  # the costwarden.dev/resume annotation is set

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
            resume_requested=RESUME_ANNOTATION in (meta.get("annotations") or {}),
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


async def evaluate(
    runtime: Runtime,
    budget: BudgetObject,
    pods: Sequence[PodRecord],
    nodes: Mapping[str, NodeRecord],
    now: datetime,
) -> tuple[dict[str, Any], Counter[str]]:
    """Evaluate one budget at ``now``; returns the status to write and a Counter of what was done."""
    counts: Counter[str] = Counter()
    key = (budget.namespace, budget.name)
    status = runtime.statuses.get(key, budget.uid) or previous_status(
        budget.status, f"{budget.namespace}/{budget.name}"
    )
    try:
        spec, covers = runtime.compiled.get(key, budget.uid, budget.generation, budget.spec)
    except ValidationError as exc:
        problems = explain(exc)
        decision = invalid_decision(
            BudgetInput(budget.namespace, budget.name, budget.generation, None, status), problems, now
        )
        runtime.coverage.drop(key)
        runtime.budgets.pop(key, None)
        runtime.specs.pop(key, None)
        counts["invalid"] += 1
    else:
        covered: list[CoveredPod] = []
        for pod in covers.select(pods):
            node = nodes.get(pod.node_name) if pod.node_name else None
            covered.append(CoveredPod(pod, runtime.book.figure(pod, runtime.price_of(node), now)))
        idle = _idle_of(runtime, covered)
        decision = evaluate_budget(
            BudgetInput(budget.namespace, budget.name, budget.generation, spec, status), covered, now, idle
        )
        runtime.coverage.set(key, (c.pod.uid for c in covered))
        runtime.specs[key] = spec
        counts.update(await enforce(runtime, BudgetScope(budget, spec, covered, pods), decision.status, now))
        if budget.resume_requested:
            counts.update(await resume(runtime, budget.namespace, decision.status, now))
        new = decision.status
        runtime.budgets[key] = BudgetFigures(
            spend=new.spend or Decimal(0),
            limit=spec.limit,
            hourly_rate=new.hourly_rate or Decimal(0),
            percent_used=new.percent_used or Decimal(0),
            phase=str(new.phase or ""),
        )
        counts["pods"] += len(covered)
    await _carry_out(runtime, budget, decision, now, counts)
    runtime.statuses.put(key, budget.uid, decision.status)
    return _status_patch(decision.status, budget.status), counts


def _idle_of(runtime: Runtime, covered: list[CoveredPod]) -> Decimal | None:
    nodes = {c.pod.node_name for c in covered if c.pod.node_name}
    if not nodes:
        return None
    return sum((runtime.idle_costs.get(n, Decimal(0)) for n in nodes), Decimal(0))


async def _carry_out(
    runtime: Runtime, budget: BudgetObject, decision: BudgetDecision, now: datetime, counts: Counter[str]
) -> None:
    """Post the Kubernetes Events the engine asked for (crossings, anomalies, phase changes)."""
    for event in decision.events:
        result = await runtime.kube.post_event(
            budget.ref, reason=event.reason, message=event.message, event_type=event.type, now=now
        )
        counts[f"event_{result.value}"] += 1
    if runtime.kube.dry_run:
        counts["status_dry_run"] += 1


def _status_patch(new: CostBudgetStatus, stored: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch against the stored status: ledger entries it holds for pods that left are
    deleted explicitly with null (a merge patch keeps map keys it does not mention)."""
    body = new.to_k8s()
    ledger = body.setdefault("ledger", {})
    stored_ledger = stored.get("ledger") or {}
    for part, current in (("pods", new.ledger.pods), ("idleSince", new.ledger.idle_since)):
        entries = ledger.setdefault(part, {})
        for uid in stored_ledger.get(part) or {}:
            if uid not in current:
                entries[uid] = None
    if stored.get("exhaustsAt") and not new.exhausts_at:
        body["exhaustsAt"] = None
    return body
