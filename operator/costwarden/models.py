"""Pydantic v2 models of the CostBudget spec and status (costwarden.dev/v1alpha1).

These mirror ``crds/costbudget.yaml``; a test keeps the two in agreement (every example is
accepted by both, every file in tests/data/invalid is refused by both, naming the field).
Money fields are ``Decimal``: they are parsed from the YAML number without a float round trip.
The ledger's per-pod table and its idle-since times are stored as packed strings (``pack_pods``,
``pack_idle_since``, at the end).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import sys
import weakref
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

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
# Below 1e14 (14 integer digits, as the CRD has it) with any number of decimal places: a JSON number
# such as 70.00000000000001, which a tool that computes limits may well send, is taken exactly
# rather than marked Invalid after the API server took it. At least a millionth of a dollar, as the
# CRD's rule ``self <= 0.0 || self >= 0.000001`` has it, in the same words (a rule, as Helm would
# render a minimum of 0.000001 as 1e-06, which YAML 1.1 reads as text): a smaller limit or expected
# rate would make percentUsed and the burn-rate ratio too large to show.
_MICRODOLLAR = Decimal("0.000001")
BELOW_A_MICRODOLLAR = "should be at least 0.000001 (a millionth of a dollar)"


def _not_below_a_microdollar(amount: Decimal) -> Decimal:
    if amount < _MICRODOLLAR:
        raise PydanticCustomError("greater_than_equal", BELOW_A_MICRODOLLAR)
    return amount


PositiveMoney = Annotated[
    Decimal,
    JsonNumber,
    Field(gt=0, lt=100_000_000_000_000, allow_inf_nan=False),
    AfterValidator(_not_below_a_microdollar),
]


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


class UnitEconomicsSpec(_Strict):
    """A Prometheus counter the budget's pods export (e.g. vLLM's ``vllm:generation_tokens_total``),
    turned into cost per million units."""

    counter: str = Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$", max_length=200)
    unit: str = Field(min_length=1, max_length=63)


_SLURM_NAME = Field(default=None, min_length=1, max_length=200)


class SlurmSelector(_Strict):
    """Which Slurm jobs a budget covers (``--slurm``): every filter given must hold (AND); an
    empty ``slurm: {}`` covers every job of every Slurm cluster the operator reads."""

    cluster: str | None = _SLURM_NAME  # the --slurm NAME
    account: str | None = _SLURM_NAME
    user: str | None = _SLURM_NAME
    partition: str | None = _SLURM_NAME
    job_name: str | None = Field(default=None, alias="jobName", min_length=1, max_length=200)


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
    unit_economics: UnitEconomicsSpec | None = Field(default=None, alias="unitEconomics")
    slurm: SlurmSelector | None = None

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


class ActionResult(StrEnum):
    """What became of an action record; Pending is the only state that is not final."""

    PENDING = "Pending"
    DONE = "Done"
    DRY_RUN = "DryRun"
    FAILED = "Failed"
    SKIPPED = "Skipped"


class NotificationState(StrEnum):
    """Delivery of an action's notification (Slack, webhook, PagerDuty).

    Pending is stored before anything is sent and Sent after the receivers answered, so a
    restart or a handover resends only what was in flight (the at-least-once window)."""

    PENDING = "Pending"
    SENT = "Sent"
    FAILED = "Failed"


class ActionRecord(BaseModel):
    """One entry of status.actions: the audit trail and the exactly-once memory.

    Frozen: the shell never edits a record in place; outcomes are folded into a new status
    (``engine.outcomes``)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    id: str  # stable key, e.g. "threshold/80/2026-11-01T00:00:00Z"
    time: str
    trigger: str
    action: Action
    targets: tuple[str, ...] = ()
    result: ActionResult = ActionResult.PENDING
    message: str = ""
    attempts: int = Field(default=0, ge=0)  # tries of the action itself
    resumed_at: str | None = Field(default=None, alias="resumedAt")
    notification: NotificationState | None = None  # None: no channel configured
    notify_attempts: int = Field(default=0, ge=0, alias="notifyAttempts")


class PodLedgerEntry(BaseModel):
    """The last figure of an active pod, kept in status so a pod that vanishes is closed with it.

    Frozen: budgets that agree on a pod's figure share one entry. Extra keys are ignored:
    releases before ``packedPods`` stored the pod's ``name`` here too."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    spend: Decimal  # the pod's lifetime spend at ``at``
    at: str
    baseline: Decimal = Decimal(0)  # the pod's lifetime spend when the current period began


def _unpacked(value: object) -> object:
    return value if isinstance(value, dict) else unpack_pods(value)


class BudgetLedger(BaseModel):
    """Per-budget accounting memory kept in status: nothing is lost on restart (docs/ledger.md).

    ``pods`` is stored as one string, ``packedPods`` (``pack_pods``), and ``idle_since`` as
    another, ``packedIdleSince`` (``pack_idle_since``, its pods named by their place in
    ``packedPods``), both always written; the maps under ``pods`` and ``idleSince`` that earlier
    releases stored are still read. Frozen, and its maps are never changed in place: the stored
    forms are packed once per ledger (``_packed``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    period_start: str | None = Field(default=None, alias="periodStart")
    closed_spend: Decimal = Field(default=Decimal(0), alias="closedSpend")
    # the part of closed_spend that cloud VMs spent (their entries are keyed vm:<cloud>:<id>)
    closed_vm_spend: Decimal = Field(default=Decimal(0), alias="closedVmSpend")
    # the part of closed_spend that Slurm jobs spent (their entries are keyed slurm:<cluster>:<id>)
    closed_slurm_spend: Decimal = Field(default=Decimal(0), alias="closedSlurmSpend")
    wasted_spend: Decimal = Field(default=Decimal(0), alias="wastedSpend")  # exact, this period
    unit_count: Decimal = Field(default=Decimal(0), alias="unitCount")  # units of work this period
    counters: dict[str, Decimal] = Field(default_factory=dict)  # unit counter's last value by pod uid
    pods: Annotated[dict[str, PodLedgerEntry], BeforeValidator(_unpacked)] = Field(
        default_factory=dict, validation_alias=AliasChoices("packedPods", "pods"), exclude=True
    )  # keyed by pod uid
    # pod uid -> when its GPUs were first seen below spec.anomalies.idleGpu.belowPercent
    idle_since: dict[str, str] = Field(
        default_factory=dict, validation_alias=AliasChoices("packedIdleSince", "idleSince"), exclude=True
    )

    @field_validator("idle_since", mode="before")
    @classmethod
    def _unpacked_idle(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, dict):
            return value
        if "pods" not in info.data:
            raise ValueError("its pods are named by their place in packedPods, which is unreadable")
        pods: dict[str, PodLedgerEntry] = info.data["pods"]
        return unpack_idle_since(value, pods)

    @model_validator(mode="before")
    @classmethod
    def _packed_over_map(cls, data: Any) -> Any:
        if isinstance(data, dict):
            stale = {old for packed, old in _STORED_FORMS if data.get(packed) is not None and old in data}
            if stale:
                return {key: value for key, value in data.items() if key not in stale}
        return data

    @model_serializer(mode="wrap")
    def _store_packed_pods(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        body: dict[str, Any] = handler(self)
        pods, idle_since = _packed(self)
        body["packedPods" if info.by_alias else "pods"] = pods
        body["packedIdleSince" if info.by_alias else "idle_since"] = idle_since
        return body


_STORED_FORMS = (("packedPods", "pods"), ("packedIdleSince", "idleSince"))  # (written, read only)


class UnitEconomicsStatus(BaseModel):
    """Units of work done by the covered pods this period, and what a million of them cost."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    unit: str
    count: Decimal = Decimal(0)
    cost_per_million: Decimal | None = Field(default=None, alias="costPerMillion")


class NodePriceStatus(BaseModel):
    """A covered node's price and its provenance, for people reading the status."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    name: str
    hourly_rate: Decimal = Field(alias="hourlyRate")
    source: str


MAX_NODE_PRICES = 20  # nodes listed in status.nodePrices


class BillingStatus(BaseModel):
    """The budget's reconciliation with cloud billing in the current period (engine.reconcile)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    reconciled_through: str | None = Field(default=None, alias="reconciledThrough")
    estimated_spend: Decimal = Field(default=Decimal(0), alias="estimatedSpend")
    billed_spend: Decimal = Field(default=Decimal(0), alias="billedSpend")
    effective_rate_factor: Decimal | None = Field(default=None, alias="effectiveRateFactor")
    non_compute_spend: Decimal = Field(default=Decimal(0), alias="nonComputeSpend")
    anomalies: int = Field(default=0, ge=0)


class CostBudgetStatus(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    phase: Phase | None = None
    spend: Decimal | None = None
    hourly_rate: Decimal | None = Field(default=None, alias="hourlyRate")
    percent_used: Decimal | None = Field(default=None, alias="percentUsed")
    exhausts_at: str | None = Field(default=None, alias="exhaustsAt")
    pods: int | None = None
    gpus: int | None = None
    vms: int | None = None  # covered cloud VMs not terminated (--cloud); None when not watching clouds
    vm_spend: Decimal | None = Field(default=None, alias="vmSpend")  # USD of those VMs this period
    slurm_jobs: int | None = Field(default=None, alias="slurmJobs")  # covered Slurm jobs not ended (--slurm)
    slurm_spend: Decimal | None = Field(default=None, alias="slurmSpend")  # USD of covered jobs this period
    idle_node_hourly_cost: Decimal | None = Field(default=None, alias="idleNodeHourlyCost")
    gpu_utilization: Decimal | None = Field(default=None, alias="gpuUtilization")  # percent, GPU-weighted
    wasted_spend: Decimal | None = Field(default=None, alias="wastedSpend")  # USD on idle GPUs, this period
    unit_economics: UnitEconomicsStatus | None = Field(default=None, alias="unitEconomics")
    node_prices: tuple[NodePriceStatus, ...] | None = Field(default=None, alias="nodePrices")
    billing: BillingStatus | None = None
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
                body[key] = _shown(value, places)
        if self.unit_economics is not None:
            units = self.unit_economics
            body["unitEconomics"] = {"unit": units.unit, "count": int(units.count)}
            if units.cost_per_million is not None:
                body["unitEconomics"]["costPerMillion"] = _shown(units.cost_per_million, 4)
        if self.node_prices is not None:
            body["nodePrices"] = [
                {"name": p.name, "hourlyRate": _shown(p.hourly_rate, 4), "source": p.source}
                for p in self.node_prices
            ]
        if self.billing is not None:
            billing = self.billing
            body["billing"] = {
                "estimatedSpend": _shown(billing.estimated_spend, 2),
                "billedSpend": _shown(billing.billed_spend, 2),
                "nonComputeSpend": _shown(billing.non_compute_spend, 2),
                "anomalies": billing.anomalies,
            }
            if billing.reconciled_through is not None:
                body["billing"]["reconciledThrough"] = billing.reconciled_through
            if billing.effective_rate_factor is not None:
                body["billing"]["effectiveRateFactor"] = _shown(billing.effective_rate_factor, 4)
        return body


def _shown(value: Decimal | float, places: int) -> float:
    """A figure for display as a JSON number: rounded half-even to ``places`` as ``round`` does,
    but never out of the context's precision however large the figure, and within a float's range."""
    rounded = Decimal(value).quantize(Decimal(1).scaleb(-places), context=_EXACT)
    return float(min(max(rounded, -_FLOAT_MAX), _FLOAT_MAX))


_FLOAT_MAX = Decimal(sys.float_info.max)
_DISPLAY_ATTRS = {
    "spend": "spend",
    "hourlyRate": "hourly_rate",
    "percentUsed": "percent_used",
    "idleNodeHourlyCost": "idle_node_hourly_cost",
    "gpuUtilization": "gpu_utilization",
    "wastedSpend": "wasted_spend",
    "vmSpend": "vm_spend",
    "slurmSpend": "slurm_spend",
}
_DISPLAY_PLACES = {
    "spend": 2,
    "hourlyRate": 4,
    "percentUsed": 1,
    "idleNodeHourlyCost": 4,
    "gpuUtilization": 1,
    "wastedSpend": 2,
    "vmSpend": 2,
    "slurmSpend": 2,
}


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


# status.ledger.packedPods and packedIdleSince: a budget's per-pod table and its idle-since
# times, each in one string, exact and versioned (docs/ledger.md). "v1:<pods>:<digest>:<base64
# of zlib>", where <pods>:<digest> tells which pods the table holds without unpacking it
# (``pod_set_key``, ``idle_set_key``): their number and BLAKE2b over the sorted uids. The zlib
# payload is a JSON header line ({"n": uids stored, "at": [distinct times, most common first],
# "uids": [...] only when some stored uid is not a lowercase UUID}), the stored uids as 16 bytes
# each (sorted), then text lines (``_store``, ``_open``).
# packedPods stores every pod's uid, then 3n lines: spend in nanodollars, baseline in
# nanodollars ("" for 0), index into "at" ("" for 0). Figures are plain decimal strings of
# nanodollars: an integer for every figure the engine makes; a finer one (from an edited
# annotation) stays exact, e.g. "1.5".
# packedIdleSince names its pods by their place in packedPods (its header adds "pods": the
# number of pods there): one line per pod of packedPods, "" when it is not idle, else the index
# into "at" of its idle-since time; then one line per stored uid, an idle pod that packedPods
# does not hold (none, as the engine keeps a ledger). An all-idle budget adds a few bytes.

PACKED_VERSION = "v1"
_MAX_PACKED_BYTES = 64 * 1024 * 1024
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
_UUIDS = re.compile(r"(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\n)*")
_UNREADABLE = (ValueError, LookupError, TypeError, ArithmeticError, zlib.error)
_ZERO = Decimal(0)


_PACKED: dict[int, tuple[str, str]] = {}  # id of a live ledger -> its pods and idle times packed


def _packed(ledger: BudgetLedger) -> tuple[str, str]:
    key = id(ledger)
    packed = _PACKED.get(key)
    if packed is None:
        uids = sorted(ledger.pods)
        packed = _PACKED[key] = (_pack_pods(ledger.pods, uids), _pack_idle(ledger.idle_since, uids))
        weakref.finalize(ledger, _PACKED.pop, key, None)
    return packed


def _pod_set(joined_uids: str, count: int) -> str:
    digest = hashlib.blake2b(joined_uids.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    return f"{count}:{digest}"


def _plain(number: str) -> str:
    return f"{Decimal(number).normalize(_EXACT):f}"


def _usd(nanos: str) -> Decimal:
    return Decimal(nanos).scaleb(-9, _EXACT)


def _time_index(times: list[str]) -> tuple[list[str], dict[str, int]]:
    """The distinct ``times``, most common first, and each one's place in that list."""
    distinct = list(dict.fromkeys(times))
    if len(distinct) > 1:
        distinct = [at for at, _ in Counter(times).most_common()]
    return distinct, {at: position for position, at in enumerate(distinct)}


def _store(pod_set: str, uids: list[str], header: dict[str, Any], text: str, *, rle: bool = True) -> str:
    """A packed table: ``header`` with "n", the sorted ``uids`` (16 bytes each when all are
    lowercase UUIDs, else listed in the header) and the ``text`` lines, zlib and base64.

    ``rle``: run-length matches only (``Z_RLE``), for tables of random uids and figures, where
    longer matches cost time without saving bytes; otherwise zlib's default, for text that
    repeats (idle-since times, lines that name no uid)."""
    joined = "\n".join(uids)
    head: dict[str, Any] = {"n": len(uids), **header}
    uid_bytes = b""
    if _UUIDS.fullmatch(joined + "\n" if uids else ""):
        uid_bytes = bytes.fromhex(joined.replace("-", "").replace("\n", ""))
    else:
        head["uids"] = uids
    payload = b"%s\n%s%s" % (json.dumps(head).encode(), uid_bytes, text.encode())
    level, strategy = (9, zlib.Z_RLE) if rle else (6, zlib.Z_DEFAULT_STRATEGY)
    deflate = zlib.compressobj(level, zlib.DEFLATED, 15, 8, strategy)
    packed = base64.b64encode(deflate.compress(payload) + deflate.flush()).decode("ascii")
    return f"{PACKED_VERSION}:{pod_set}:{packed}"


def pack_pods(pods: Mapping[str, PodLedgerEntry]) -> str:
    """The stored form of a ledger's per-pod table (``status.ledger.packedPods``)."""
    return _pack_pods(pods, sorted(pods))


def _pack_pods(pods: Mapping[str, PodLedgerEntry], uids: list[str]) -> str:
    rows = [pods[uid] for uid in uids]
    times, index = _time_index([row.at for row in rows])
    marks = {at: str(position) if position else "" for at, position in index.items()}
    lines = [str(row.spend.scaleb(9, _EXACT)) for row in rows]
    lines += [str(row.baseline.scaleb(9, _EXACT)) if row.baseline else "" for row in rows]
    lines += [marks[row.at] for row in rows]
    text = "\n".join(lines)
    if "E" in text:  # only a figure not made by the engine has an exponent here
        text = "\n".join(_plain(line) if "E" in line else line for line in lines)
    return _store(_pod_set("\n".join(uids), len(uids)), uids, {"at": times}, text)


def pack_idle_since(idle_since: Mapping[str, str], pods: Iterable[str]) -> str:
    """The stored form of a ledger's idle-since times (``status.ledger.packedIdleSince``); ``pods``
    are the uids of the ledger's per-pod table, to which it refers."""
    return _pack_idle(idle_since, sorted(pods))


def _pack_idle(idle_since: Mapping[str, str], pods: list[str]) -> str:
    idle = sorted(idle_since)
    times, index = _time_index([idle_since[uid] for uid in idle])
    marks = {at: str(position) for at, position in index.items()}
    others: list[str] = []
    lines = [""] * len(pods)
    if idle:
        lines = [marks[idle_since[uid]] if uid in idle_since else "" for uid in pods]
        held = set(pods)
        others = [uid for uid in idle if uid not in held]
        lines += [marks[idle_since[uid]] for uid in others]
    header = {"at": times, "pods": len(pods)}
    return _store(_pod_set("\n".join(idle), len(idle)), others, header, "\n".join(lines), rle=False)


def unpack_pods(packed: object) -> dict[str, PodLedgerEntry]:
    """The per-pod table ``pack_pods`` stored; ValueError saying what is wrong with it otherwise."""
    rest = _versioned(packed)
    try:
        return _decode_pods(rest)
    except _UNREADABLE as exc:
        raise ValueError(f"not a readable {PACKED_VERSION} table: {exc}") from None


def unpack_idle_since(packed: object, pods: Iterable[str]) -> dict[str, str]:
    """The idle-since times ``pack_idle_since`` stored for the per-pod table of ``pods``;
    ValueError saying what is wrong with it otherwise."""
    rest = _versioned(packed)
    try:
        return _decode_idle(rest, sorted(pods))
    except _UNREADABLE as exc:
        raise ValueError(f"not a readable {PACKED_VERSION} table: {exc}") from None


def _versioned(packed: object) -> str:
    if not isinstance(packed, str):
        raise ValueError(f"expected a {PACKED_VERSION} table string, got {type(packed).__name__}")
    version, _, rest = packed.partition(":")
    if version != PACKED_VERSION:
        raise ValueError(f"unknown format {version[:16]!r} (this release reads {PACKED_VERSION})")
    return rest


def _open(rest: str) -> tuple[str, dict[str, Any], list[str], list[str], bytes]:
    """A packed table's ``<pods>:<digest>``, header, stored uids, distinct times and text lines."""
    count, digest, data = rest.split(":")
    inflate = zlib.decompressobj()
    payload = inflate.decompress(base64.b64decode(data, validate=True), _MAX_PACKED_BYTES)
    if inflate.unconsumed_tail or not inflate.eof:
        raise ValueError("truncated, or larger than 64 MiB unpacked")
    head, _, body = payload.partition(b"\n")
    header = json.loads(head)
    if not isinstance(header, dict):
        raise ValueError("bad header")
    n, times, uids = header["n"], header["at"], header.get("uids")
    if not isinstance(n, int) or n < 0 or not isinstance(times, list):
        raise ValueError("bad header")
    if uids is None:
        hexed = body[: 16 * n].hex()
        body = body[16 * n :]
        uids = [f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}" for h in _chunks(hexed, 32)]
    if not isinstance(uids, list) or len(uids) != n or not all(isinstance(i, str) for i in [*uids, *times]):
        raise ValueError("uids or times do not match the pod count")
    return f"{count}:{digest}", header, uids, times, body


def _lines(body: bytes, count: int) -> list[str]:
    lines = body.decode("ascii").split("\n") if count else []
    if len(lines) != count or (not count and body):
        raise ValueError(f"{len(lines)} lines where {count} were expected")
    return lines


def _time(times: list[str], line: str) -> str:
    position = int(line) if line else 0
    if position < 0:
        raise ValueError(f"time index {position}")
    return times[position]


def _decode_pods(rest: str) -> dict[str, PodLedgerEntry]:
    pod_set, _, uids, times, body = _open(rest)
    n = len(uids)
    lines = _lines(body, 3 * n)
    if _pod_set("\n".join(uids), n) != pod_set:
        raise ValueError("its pods do not match its pod count and digest")
    make = PodLedgerEntry.__pydantic_validator__.validate_python
    entries: dict[str, PodLedgerEntry] = {}
    for position, uid in enumerate(uids):
        spend, baseline, at = lines[position], lines[n + position], lines[2 * n + position]
        entries[uid] = make(
            {"spend": _usd(spend), "baseline": _usd(baseline) if baseline else _ZERO, "at": _time(times, at)}
        )
    if len(entries) != n:
        raise ValueError("a uid appears twice")
    return entries


def _decode_idle(rest: str, pods: list[str]) -> dict[str, str]:
    pod_set, header, others, times, body = _open(rest)
    if header.get("pods") != len(pods):
        raise ValueError(f"it refers to {header.get('pods')} pods in packedPods, which holds {len(pods)}")
    lines = _lines(body, len(pods) + len(others))
    if not all(lines[len(pods) :]):
        raise ValueError("a pod stored without its idle-since time")
    idle = {uid: _time(times, line) for uid, line in zip([*pods, *others], lines, strict=True) if line}
    if len(idle) != sum(1 for line in lines if line):
        raise ValueError("a uid appears twice")
    if _pod_set("\n".join(sorted(idle)), len(idle)) != pod_set:
        raise ValueError("its pods do not match its pod count and digest")
    return idle


def _chunks(text: str, size: int) -> list[str]:
    return [text[start : start + size] for start in range(0, len(text), size)]


def pod_set_key(ledger: Mapping[str, Any]) -> str:
    """``<pods>:<digest>`` of the pods a stored ledger holds, in either form, without unpacking."""
    return _set_key(ledger, "packedPods", "pods")


def idle_set_key(ledger: Mapping[str, Any]) -> str:
    """``<pods>:<digest>`` of the pods a stored ledger has idle, in either form, without unpacking."""
    return _set_key(ledger, "packedIdleSince", "idleSince")


def _set_key(ledger: Mapping[str, Any], packed_field: str, map_field: str) -> str:
    packed = ledger.get(packed_field)
    if isinstance(packed, str) and packed.startswith(f"{PACKED_VERSION}:"):
        return ":".join(packed.split(":", 3)[1:3])
    held = ledger.get(map_field)
    if not isinstance(held, Mapping):
        held = {}
    uids = sorted(uid for uid, value in held.items() if value is not None)
    return _pod_set("\n".join(uids), len(uids))
