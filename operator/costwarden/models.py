"""Pydantic v2 models of the CostBudget spec and status (costwarden.dev/v1alpha1).

These mirror ``crds/costbudget.yaml``; a test keeps the two in agreement (every example is
accepted by both, every file in tests/data/invalid is refused by both, naming the field).
Money fields are ``Decimal``: they are parsed from the YAML number without a float round trip.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

GROUP = "costwarden.dev"
VERSION = "v1alpha1"
KIND = "CostBudget"
PLURAL = "costbudgets"
SINGULAR = "costbudget"
SHORT_NAME = "cb"


class Period(StrEnum):
    LIFETIME = "Lifetime"
    DAILY = "Daily"
    WEEKLY = "Weekly"
    MONTHLY = "Monthly"


class Action(StrEnum):
    NOTIFY = "Notify"
    SCALE = "Scale"
    SUSPEND = "Suspend"
    KILL = "Kill"


class Phase(StrEnum):
    OK = "Ok"
    WARNING = "Warning"
    EXCEEDED = "Exceeded"
    ENFORCED = "Enforced"
    INVALID = "Invalid"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


def _json_number(value: Any) -> Any:
    """Spec numbers are JSON numbers, as the CRD types them: no numeric strings, no booleans."""
    if isinstance(value, str | bool):
        raise ValueError("Input should be a number")
    return value


JsonNumber = BeforeValidator(_json_number)
PositiveMoney = Annotated[Decimal, JsonNumber, Field(gt=0, max_digits=20, decimal_places=6)]


class LabelSelectorRequirement(_Strict):
    key: str = Field(min_length=1)
    operator: str = Field(pattern=r"^(In|NotIn|Exists|DoesNotExist)$")
    values: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _values_match_operator(self) -> LabelSelectorRequirement:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs at least one value")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values")
        return self


class LabelSelector(_Strict):
    match_labels: dict[str, str] = Field(default_factory=dict, alias="matchLabels")
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, alias="matchExpressions", max_length=32
    )


class Threshold(_Strict):
    percent: Annotated[Decimal, JsonNumber] = Field(gt=0, le=1000)
    action: Action


class BurnRateAnomaly(_Strict):
    multiplier: Annotated[Decimal, JsonNumber] = Field(gt=1, le=1000)
    action: Action = Action.NOTIFY


class IdleGpuAnomaly(_Strict):
    below_percent: Annotated[Decimal, JsonNumber] = Field(alias="belowPercent", ge=0, le=100)
    for_minutes: Annotated[int, JsonNumber] = Field(alias="forMinutes", ge=1, le=10080)
    action: Action = Action.NOTIFY


class Anomalies(_Strict):
    burn_rate: BurnRateAnomaly | None = Field(default=None, alias="burnRate")
    idle_gpu: IdleGpuAnomaly | None = Field(default=None, alias="idleGpu")


class SecretKeyRef(_Strict):
    name: str = Field(min_length=1, max_length=253)
    key: str = Field(min_length=1, max_length=253)


class SlackNotify(_Strict):
    channel: str | None = Field(default=None, min_length=1)
    token_secret_ref: SecretKeyRef | None = Field(default=None, alias="tokenSecretRef")
    webhook_secret_ref: SecretKeyRef | None = Field(default=None, alias="webhookSecretRef")

    @model_validator(mode="after")
    def _one_way_to_post(self) -> SlackNotify:
        if self.token_secret_ref is None and self.webhook_secret_ref is None:
            raise ValueError("spec.notify.slack needs tokenSecretRef (with channel) or webhookSecretRef")
        if self.token_secret_ref is not None and not self.channel:
            raise ValueError("spec.notify.slack.tokenSecretRef needs spec.notify.slack.channel")
        return self


class WebhookNotify(_Strict):
    url_secret_ref: SecretKeyRef = Field(alias="urlSecretRef")


class PagerDutyNotify(_Strict):
    routing_key_secret_ref: SecretKeyRef = Field(alias="routingKeySecretRef")


class NotifySpec(_Strict):
    slack: SlackNotify | None = None
    webhook: WebhookNotify | None = None
    pagerduty: PagerDutyNotify | None = None


class Enforcement(_Strict):
    dry_run: bool = Field(default=False, alias="dryRun", strict=True)
    grace_period_seconds: Annotated[int, JsonNumber] = Field(
        default=30, alias="gracePeriodSeconds", ge=0, le=86400
    )
    block_new_pods: bool = Field(default=False, alias="blockNewPods", strict=True)


class CostBudgetSpec(_Strict):
    limit: PositiveMoney
    period: Period = Period.LIFETIME
    selector: LabelSelector = Field(default_factory=LabelSelector)
    skypilot_cluster: str | None = Field(default=None, alias="skypilotCluster", min_length=1, max_length=253)
    expected_hourly_rate: PositiveMoney | None = Field(default=None, alias="expectedHourlyRate")
    thresholds: list[Threshold] = Field(default_factory=list, max_length=20)
    anomalies: Anomalies = Field(default_factory=Anomalies)
    notify: NotifySpec = Field(default_factory=NotifySpec)
    enforcement: Enforcement = Field(default_factory=Enforcement)

    @field_validator("thresholds")
    @classmethod
    def _strictly_ascending(cls, thresholds: list[Threshold]) -> list[Threshold]:
        for before, after in itertools.pairwise(thresholds):
            if after.percent <= before.percent:
                order = f"{before.percent} then {after.percent}"
                raise ValueError(f"thresholds must be strictly ascending by percent ({order})")
        return thresholds

    @model_validator(mode="after")
    def _burn_rate_needs_expected_rate(self) -> CostBudgetSpec:
        if self.anomalies.burn_rate is not None and self.expected_hourly_rate is None:
            raise ValueError("spec.anomalies.burnRate needs spec.expectedHourlyRate")
        return self


class Condition(BaseModel):
    """metav1.Condition."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str = ""
    last_transition_time: str = Field(alias="lastTransitionTime")
    observed_generation: int | None = Field(default=None, alias="observedGeneration")


class ActionRecord(BaseModel):
    """One entry of status.actions: the audit trail and the exactly-once memory."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str  # stable key, e.g. "threshold/80/2026-11-01T00:00:00Z"
    time: str
    trigger: str
    action: Action
    targets: list[str] = Field(default_factory=list)
    result: str = "Pending"  # Pending | Done | DryRun | Failed | Skipped
    message: str = ""


class PodLedgerEntry(BaseModel):
    """The last figure of an active pod, kept in status so a pod that vanishes is closed with it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    spend: Decimal  # the pod's lifetime spend at ``at``
    at: str
    baseline: Decimal = Decimal(0)  # the pod's lifetime spend when the current period began
    name: str = ""


class BudgetLedger(BaseModel):
    """Per-budget accounting memory kept in status (see DESIGN.md: nothing lost on restart)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    period_start: str | None = Field(default=None, alias="periodStart")
    closed_spend: Decimal = Field(default=Decimal(0), alias="closedSpend")
    pods: dict[str, PodLedgerEntry] = Field(default_factory=dict)  # keyed by pod uid
    # pod uid -> when its GPUs were first seen below spec.anomalies.idleGpu.belowPercent
    idle_since: dict[str, str] = Field(default_factory=dict, alias="idleSince")


class CostBudgetStatus(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    phase: Phase | None = None
    spend: Decimal | None = None
    hourly_rate: Decimal | None = Field(default=None, alias="hourlyRate")
    percent_used: Decimal | None = Field(default=None, alias="percentUsed")
    exhausts_at: str | None = Field(default=None, alias="exhaustsAt")
    pods: int | None = None
    gpus: int | None = None
    idle_node_hourly_cost: Decimal | None = Field(default=None, alias="idleNodeHourlyCost")
    last_evaluated: str | None = Field(default=None, alias="lastEvaluated")
    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    conditions: list[Condition] = Field(default_factory=list)
    actions: list[ActionRecord] = Field(default_factory=list)
    ledger: BudgetLedger = Field(default_factory=BudgetLedger)

    def to_k8s(self) -> dict[str, Any]:
        """The status as the CRD stores it: display figures as JSON numbers rounded here, at the
        edge, and the ledger's money as exact decimal strings (it is the restart memory)."""
        body: dict[str, Any] = self.model_dump(by_alias=True, mode="json", exclude_none=True)
        for key, places in _DISPLAY_PLACES.items():
            value = getattr(self, _DISPLAY_ATTRS[key])
            if value is not None:
                body[key] = float(round(Decimal(value), places))
        return body


_DISPLAY_ATTRS = {
    "spend": "spend",
    "hourlyRate": "hourly_rate",
    "percentUsed": "percent_used",
    "idleNodeHourlyCost": "idle_node_hourly_cost",
}
_DISPLAY_PLACES = {"spend": 2, "hourlyRate": 4, "percentUsed": 1, "idleNodeHourlyCost": 4}


def field_path(loc: tuple[int | str, ...], prefix: str = "spec") -> str:
    """Render a pydantic error location as a Kubernetes-style field path (spec.thresholds[1].percent)."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}"
    return path


def explain(error: ValidationError, prefix: str = "spec") -> list[str]:
    """One readable line per problem, each starting with the field path."""
    return [f"{field_path(e['loc'], prefix)}: {e['msg']}" for e in error.errors()]


def parse_spec(raw: Any) -> CostBudgetSpec:
    """Validate a raw spec dict; raises ``ValidationError`` (use ``explain`` for messages)."""
    return CostBudgetSpec.model_validate(raw or {})
