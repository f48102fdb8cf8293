"""Evaluate one CostBudget: its spend in the period, thresholds, phase, conditions and events.

``evaluate_budget`` is a pure function of the budget (spec and previous status), the pods it
covers with their accruals of this pass, and ``now``. It returns the new status and, as data,
what the shell should do: threshold crossings to act on and Kubernetes Events to emit.

Spend. The budget's ledger (``status.ledger``, see ``budget_ledger``) is its restart memory:
``spend = closedSpend + sum(pod figure - pod baseline)`` over the covered pods, where a pod's
figure is its lifetime spend (never lower than the ledger's last figure) and its baseline its
lifetime spend when the period began or when the budget first covered it. Pods that stop being
covered are closed into ``closedSpend`` with their last figure; a new period (UTC calendar, see
``periods``) restarts ``closedSpend`` and moves every baseline to the boundary. Within a period
the spend never decreases. ``hourlyRate`` is the sum of the covered pods' rates; ``pods`` and
``gpus`` count the covered pods that have not ended.

Thresholds. ``percentUsed = spend / limit * 100``. A threshold is crossed when percentUsed
reaches its percent and its record ``threshold/<percent>/<period start | lifetime>`` is not in
``status.actions``; each crossing is returned and recorded as a Pending ActionRecord, so it fires
once per period and again in the next one. ``status.actions`` keeps the newest 50 records but
never drops one of the current period.

Anomalies (``anomalies``): burn rate above ``multiplier * expectedHourlyRate`` once per period
(``anomaly/burnRate/<period key>``) and idle GPUs once per pod (``anomaly/idleGpu/<pod uid>``),
returned and recorded as Pending ActionRecords like crossings, each with a Warning event; the
ledger's ``idleSince`` remembers since when each covered pod's GPUs have been idle.

Billing (``billing``, when the operator has a billing store; rules in ``engine.reconcile``): the
spend is trued up for the reconciled hours of the period (``status.billing``), windows billed
far above their estimate become ``anomaly/billing/<resource>/<day>`` Notify records with a Warning
event, and conditions ``BillingStale`` (no billing newer than the operator's limit) and
``BillingAnomaly`` say so. The ledger keeps the estimate; only the shown spend is trued up.
``nodePrices`` (what the covered nodes cost and where each price came from) is shown as given.

Phase, by precedence: Enforced (a Scale/Suspend/Kill of this period is Done: after a kill the
spend stays over the limit, so Exceeded would otherwise hide that we acted), Exceeded (percent
>= 100), Warning (a threshold reached, or 80 % when there are none), Ok. Conditions: ``Ready``
True/Evaluated and ``BudgetExceeded`` True/False. Events: one per crossing (Warning when the
threshold is >= 100 % or its action destructive) and one when the phase changes.

``invalid_decision`` marks a budget whose spec does not validate: phase Invalid, ``Ready`` False
with reason InvalidSpec, no crossings or anomalies, the ledger and actions untouched.

Money stays exact here; rounding happens only for display (``CostBudgetStatus.to_k8s``,
messages).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext

from costwarden.engine.anomalies import BILLING, BURN_RATE, AnomalyFinding, AnomalyScan, find_anomalies
from costwarden.engine.budget_ledger import settle_at
from costwarden.engine.conditions import BUDGET_EXCEEDED, READY, set_condition
from costwarden.engine.forecast import exhausts_at
from costwarden.engine.gpu import (
    DEFAULT_IDLE_PERCENT,
    NO_TELEMETRY,
    TELEMETRY_UNAVAILABLE,
    Telemetry,
    cost_per_million,
    counter_increase,
    gpu_utilization,
    telemetry_condition,
    wasted_increase,
)
from costwarden.engine.ledger import CoveredPod
from costwarden.engine.money import MONEY_CONTEXT, plain, usd
from costwarden.engine.outside import SLURM, VM, OutsideGroup, OutsideView
from costwarden.engine.periods import period_bounds
from costwarden.engine.reconcile import (
    BudgetTruth,
    ConditionState,
    billing_conditions,
    billing_findings,
    true_up,
)
from costwarden.engine.slurm import SLURM_UNAVAILABLE, slurm_condition
from costwarden.engine.thresholds import (
    DESTRUCTIVE_ACTIONS,
    LIFETIME_KEY,
    bound_actions,
    enforced,
    new_crossings,
)
from costwarden.engine.vms import CLOUD_UNAVAILABLE, cloud_condition
from costwarden.models import (
    Action,
    ActionRecord,
    ActionResult,
    BudgetLedger,
    Condition,
    CostBudgetSpec,
    CostBudgetStatus,
    NodePriceStatus,
    Phase,
    UnitEconomicsStatus,
)
from costwarden.records import format_time

__all__ = [
    "AnomalyFinding",
    "BudgetDecision",
    "BudgetInput",
    "CoveredPod",
    "EventIntent",
    "ThresholdCrossing",
    "evaluate_budget",
    "invalid_decision",
]

_HUNDRED = Decimal(100)
_DEFAULT_WARNING_PERCENT = Decimal(80)
_ALERTING_PHASES = frozenset({Phase.WARNING, Phase.EXCEEDED, Phase.ENFORCED, Phase.INVALID})


@dataclass(frozen=True, slots=True)
class BudgetInput:
    namespace: str
    name: str
    generation: int | None
    spec: CostBudgetSpec | None  # None only when the spec did not validate (``invalid_decision``)
    status: CostBudgetStatus


@dataclass(frozen=True, slots=True)
class ThresholdCrossing:
    percent: Decimal
    action: Action
    record_id: str


@dataclass(frozen=True, slots=True)
class EventIntent:
    reason: str
    message: str
    type: str  # "Normal" | "Warning"


@dataclass(frozen=True, slots=True)
class BudgetDecision:
    status: CostBudgetStatus
    crossings: tuple[ThresholdCrossing, ...]
    events: tuple[EventIntent, ...]
    anomalies: tuple[AnomalyFinding, ...] = ()


def _phase(spec: CostBudgetSpec, percent_used: Decimal, is_enforced: bool) -> Phase:
    if is_enforced:
        return Phase.ENFORCED
    if percent_used >= _HUNDRED:
        return Phase.EXCEEDED
    if spec.thresholds:
        warned = any(percent_used >= threshold.percent for threshold in spec.thresholds)
    else:
        warned = percent_used >= _DEFAULT_WARNING_PERCENT
    return Phase.WARNING if warned else Phase.OK


def _phase_event(budget: BudgetInput, before: Phase | None, after: Phase) -> EventIntent | None:
    if before == after or (before is None and after is Phase.OK):
        return None
    was = before.value if before is not None else "none"
    return EventIntent(
        reason="PhaseChanged",
        message=f"CostBudget {budget.namespace}/{budget.name} phase changed from {was} to {after.value}",
        type="Warning" if after in _ALERTING_PHASES else "Normal",
    )


def _crossing_event(
    budget: BudgetInput, crossing: ThresholdCrossing, spend: Decimal, limit: Decimal, percent_used: Decimal
) -> EventIntent:
    destructive = crossing.percent >= _HUNDRED or crossing.action in DESTRUCTIVE_ACTIONS
    return EventIntent(
        reason="ThresholdCrossed",
        message=(
            f"CostBudget {budget.namespace}/{budget.name}: spend ${usd(spend)} of ${plain(limit)} "
            f"({percent_used:.1f}% used) reached the {plain(crossing.percent)}% "
            f"threshold; action {crossing.action.value}"
        ),
        type="Warning" if destructive else "Normal",
    )


_ANOMALY_REASONS = {BURN_RATE: "BurnRateAnomaly", BILLING: "BillingAnomaly"}


def _anomaly_event(budget: BudgetInput, finding: AnomalyFinding) -> EventIntent:
    return EventIntent(
        reason=_ANOMALY_REASONS.get(finding.kind, "IdleGpu"),
        message=(
            f"CostBudget {budget.namespace}/{budget.name}: {finding.message}; action {finding.action.value}"
        ),
        type="Warning",
    )


def evaluate_budget(  # noqa: PLR0917 -- the budget, its pods, the clock and three optional feeds
    budget: BudgetInput,
    pods: Sequence[CoveredPod],
    now: datetime,
    idle_hourly: Decimal | None = None,
    telemetry: Telemetry = NO_TELEMETRY,
    billing: BudgetTruth | None = None,
    node_prices: tuple[NodePriceStatus, ...] | None = None,
    clouds: OutsideView | None = None,
    slurm: OutsideView | None = None,
) -> BudgetDecision:
    """The budget's new status, its new threshold crossings and the events to emit (see module doc).

    ``clouds`` holds the covered cloud VMs when the operator watches clouds (``--cloud``), else
    None (and ``status.vms`` / ``vmSpend`` stay unset); ``slurm`` likewise the covered Slurm
    jobs with ``--slurm`` (``status.slurmJobs`` / ``slurmSpend``)."""
    spec, status = budget.spec, budget.status
    if spec is None:
        raise ValueError(
            f"CostBudget {budget.namespace}/{budget.name} has no valid spec: use invalid_decision"
        )
    period_start, period_end = period_bounds(spec.period, now)
    stored_key = format_time(period_start) if period_start is not None else None
    key = stored_key or LIFETIME_KEY
    now_text = format_time(now)
    settlement = settle_at(
        status.ledger,
        (period_start, stored_key),
        pods,
        now,
        now_text,
        _outside(clouds, slurm),
    )
    spend, rate = settlement.spend, settlement.hourly_rate
    trued = true_up(billing.billing, period_start) if billing is not None else None
    spend = max(Decimal(0), spend + trued.adjustment) if trued is not None else spend
    with localcontext(MONEY_CONTEXT):
        percent_used = spend / spec.limit * _HUNDRED

    actions = list(status.actions)
    crossings = []
    for threshold, record_id in new_crossings(spec.thresholds, percent_used, key, actions):
        crossings.append(
            ThresholdCrossing(percent=threshold.percent, action=threshold.action, record_id=record_id)
        )
        actions.append(
            ActionRecord(
                id=record_id,
                time=now_text,
                trigger=f"spend {usd(spend)} reached {plain(threshold.percent)}% of {plain(spec.limit)}",
                action=threshold.action,
                result=ActionResult.PENDING,
            )
        )
    scan = AnomalyScan(findings=(), idle_since={})
    if spec.anomalies.burn_rate is not None or spec.anomalies.idle_gpu is not None:
        scan = find_anomalies(
            spec,
            (item.pod for item in pods),
            rate,
            (key, status.ledger.idle_since),
            now=now,
            fired={record.id for record in actions},
            telemetry=telemetry,
        )
    scan = _with_billing_findings(scan, billing, period_start, {r.id for r in actions})
    for finding in scan.findings:
        actions.append(
            ActionRecord(
                id=finding.record_id,
                time=now_text,
                trigger=finding.message,
                action=finding.action,
                result=ActionResult.PENDING,
            )
        )
    actions = bound_actions(actions, key, period_start)
    ledger = settlement.ledger
    if scan.idle_since:
        ledger = ledger.model_copy(update={"idle_since": scan.idle_since})
    usage = _gpu_usage(spec, status, pods, telemetry, now, settlement.ledger)
    ledger = ledger.model_copy(update=usage.ledger)

    phase = _phase(spec, percent_used, enforced(actions, key, period_start, percent_used))
    exceeded = percent_used >= _HUNDRED
    conditions = set_condition(
        status.conditions,
        READY,
        status="True",
        reason="Evaluated",
        message="spend evaluated",
        now_text=now_text,
        generation=budget.generation,
    )
    conditions = set_condition(
        conditions,
        BUDGET_EXCEEDED,
        status="True" if exceeded else "False",
        reason="LimitReached" if exceeded else "WithinLimit",
        message="spend has reached the limit" if exceeded else "spend is below the limit",
        now_text=now_text,
        generation=budget.generation,
    )
    counter = spec.unit_economics.counter if spec.unit_economics is not None else None
    needs = (spec.anomalies.idle_gpu is not None or counter is not None, counter)
    telemetry_state = telemetry_condition(needs, (c.pod for c in pods), telemetry, now)
    conditions = _with_state(
        conditions, TELEMETRY_UNAVAILABLE, telemetry_state, (now_text, budget.generation)
    )
    conditions = _outside_conditions(conditions, spec, (clouds, slurm), (now_text, budget.generation))
    billing_status = None
    if billing is not None and trued is not None:
        billing_status, states = billing_conditions(billing, trued, actions, period_start, now)
        conditions = _with_conditions(conditions, states, now_text, budget.generation)
    exhausts = exhausts_at(spend, spec.limit, rate, now, period_end)
    new_status = status.model_copy(
        update={
            "phase": phase,
            "spend": spend,
            "hourly_rate": rate,
            "percent_used": percent_used,
            "exhausts_at": format_time(exhausts) if exhausts is not None else None,
            "pods": settlement.live_pods,
            "gpus": settlement.live_gpus,
            "vms": settlement.kind(VM).live if clouds is not None else None,
            "vm_spend": settlement.kind(VM).spend if clouds is not None else None,
            "slurm_jobs": settlement.kind(SLURM).live if slurm is not None else None,
            "slurm_spend": settlement.kind(SLURM).spend if slurm is not None else None,
            "idle_node_hourly_cost": idle_hourly,
            "gpu_utilization": usage.utilization,
            "wasted_spend": ledger.wasted_spend,
            "unit_economics": _unit_economics(spec, spend, ledger.unit_count),
            "billing": billing_status,
            "node_prices": node_prices,
            "last_evaluated": now_text,
            "observed_generation": budget.generation,
            "conditions": conditions,
            "actions": actions,
            "ledger": ledger,
        }
    )
    events = [_crossing_event(budget, crossing, spend, spec.limit, percent_used) for crossing in crossings]
    events.extend(_anomaly_event(budget, finding) for finding in scan.findings)
    phase_event = _phase_event(budget, status.phase, phase)
    if phase_event is not None:
        events.append(phase_event)
    return BudgetDecision(
        status=new_status, crossings=tuple(crossings), events=tuple(events), anomalies=scan.findings
    )


def _outside(clouds: OutsideView | None, slurm: OutsideView | None) -> tuple[OutsideGroup, ...]:
    groups = [OutsideGroup(VM, clouds)] if clouds is not None else []
    if slurm is not None:
        groups.append(OutsideGroup(SLURM, slurm))
    return tuple(groups)


def _outside_conditions(
    conditions: list[Condition],
    spec: CostBudgetSpec,
    views: tuple[OutsideView | None, OutsideView | None],
    at: tuple[str, int | None],
) -> list[Condition]:
    """CloudUnavailable and SlurmUnavailable, for the kinds the operator reads."""
    clouds, slurm = views
    cloud_state = cloud_condition(spec, clouds) if clouds is not None else None
    conditions = _with_state(conditions, CLOUD_UNAVAILABLE, cloud_state, at)
    slurm_state = slurm_condition(spec, slurm) if slurm is not None else None
    return _with_state(conditions, SLURM_UNAVAILABLE, slurm_state, at)


def _with_state(
    conditions: list[Condition],
    kind: str,
    state: tuple[str, str, str] | None,
    at: tuple[str, int | None],
) -> list[Condition]:
    """``conditions`` with ``kind`` set to ``state`` (status, reason, message); unchanged for None."""
    if state is None:
        return conditions
    status, reason, message = state
    now_text, generation = at
    return set_condition(
        conditions,
        kind,
        status=status,
        reason=reason,
        message=message,
        now_text=now_text,
        generation=generation,
    )


def _with_billing_findings(
    scan: AnomalyScan, billing: BudgetTruth | None, period_start: datetime | None, fired: set[str]
) -> AnomalyScan:
    if billing is None:
        return scan
    found = billing_findings(billing, period_start, fired)
    return AnomalyScan(findings=(*scan.findings, *found), idle_since=scan.idle_since)


def _with_conditions(
    conditions: list[Condition], states: Sequence[ConditionState], now_text: str, generation: int | None
) -> list[Condition]:
    for kind, state, reason, message in states:
        conditions = set_condition(
            conditions,
            kind,
            status=state,
            reason=reason,
            message=message,
            now_text=now_text,
            generation=generation,
        )
    return conditions


@dataclass(frozen=True, slots=True)
class _GpuUsage:
    utilization: Decimal | None
    ledger: dict[str, object]  # the ledger's waste and unit-counter fields, updated


def _gpu_usage(  # noqa: PLR0917 -- the budget, its pods, the readings, the clock and both ledgers
    spec: CostBudgetSpec,
    status: CostBudgetStatus,
    pods: Sequence[CoveredPod],
    telemetry: Telemetry,
    now: datetime,
    settled: BudgetLedger,
) -> _GpuUsage:
    """Utilisation now, and the waste and units of work added since the last evaluation (both
    restart at a new period; the first evaluation of a period only sets the baselines)."""
    before = status.ledger
    same_period = before.period_start == settled.period_start
    wasted, units = (before.wasted_spend, before.unit_count) if same_period else (Decimal(0), Decimal(0))
    if same_period:
        rule = spec.anomalies.idle_gpu
        threshold = rule.below_percent if rule is not None else DEFAULT_IDLE_PERCENT
        previous = before.pods
        figures = [
            (c.pod, c.accrual.spend, previous[c.pod.uid].spend if c.pod.uid in previous else None)
            for c in pods
        ]
        wasted += wasted_increase(figures, telemetry, threshold, now)
    counters = dict(before.counters)
    if spec.unit_economics is not None and spec.unit_economics.counter in telemetry.counters:
        covered = {c.pod.uid for c in pods}
        read = telemetry.counters[spec.unit_economics.counter]
        current = {uid: value for uid, value in read.items() if uid in covered}
        increase, counters = counter_increase(before.counters, current)
        units += increase if same_period else Decimal(0)
    elif spec.unit_economics is None:
        counters = {}
    return _GpuUsage(
        utilization=gpu_utilization((c.pod for c in pods), telemetry, now),
        ledger={"wasted_spend": wasted, "unit_count": units, "counters": counters},
    )


def _unit_economics(spec: CostBudgetSpec, spend: Decimal, count: Decimal) -> UnitEconomicsStatus | None:
    if spec.unit_economics is None:
        return None
    return UnitEconomicsStatus(
        unit=spec.unit_economics.unit, count=count, cost_per_million=cost_per_million(spend, count)
    )


def invalid_decision(budget: BudgetInput, problems: Sequence[str], now: datetime) -> BudgetDecision:
    """Phase Invalid with ``Ready`` False/InvalidSpec listing ``problems``; ledger and actions untouched."""
    status = budget.status
    message = "; ".join(problems) or "the spec is invalid"
    previous_ready = next((c for c in status.conditions if c.type == READY), None)
    unchanged = (
        status.phase is Phase.INVALID
        and previous_ready is not None
        and previous_ready.reason == "InvalidSpec"
        and previous_ready.message == message
    )
    now_text = format_time(now)
    conditions = set_condition(
        status.conditions,
        READY,
        status="False",
        reason="InvalidSpec",
        message=message,
        now_text=now_text,
        generation=budget.generation,
    )
    new_status = status.model_copy(
        update={
            "phase": Phase.INVALID,
            "last_evaluated": now_text,
            "observed_generation": budget.generation,
            "conditions": conditions,
        }
    )
    events: tuple[EventIntent, ...] = ()
    if not unchanged:
        events = (
            EventIntent(
                reason="InvalidSpec",
                message=f"CostBudget {budget.namespace}/{budget.name} is invalid: {message}",
                type="Warning",
            ),
        )
    return BudgetDecision(status=new_status, crossings=(), events=events)
