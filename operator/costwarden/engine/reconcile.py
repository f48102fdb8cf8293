"""Billing reconciliation: what the operator estimated against what the cloud billed.

The shell records, per billed resource (a node's key, ``billing.resources``) and UTC hour, what
the operator estimated the resource cost (``split_hours`` spreads an amount over the hours it
was spent in), and per budget the part of that estimate its pods accrued. When billing lands,
the store joins the two (``billing.estimates``) and hands this module aggregates; the rules are
here (docs/billing.md, "Reconciliation"):

* **Billed** is a line's ``EffectiveCost``: what the hour really cost after savings plans,
  reservations and committed-use discounts (amortised), which is what a team pays for it.
* A billing window (a line's ``[ChargePeriodStart, ChargePeriodEnd)``: an hour, or a day in daily
  exports) of a resource is **reconciled** once a Usage line for the resource covers it. A budget's
  share of a reconciled window is its estimate scaled by the window's billed / estimated, so the
  shares of all budgets on a node add up to the node's bill (unshared node cost stays unshared).
* A budget's spend is **trued up**: ``spend - estimatedSpend + billedSpend + nonComputeSpend`` over
  the reconciled hours of the current period, where ``nonComputeSpend`` is what billed lines tagged
  with the budget's SkyPilot cluster cost that are not a node (volumes, egress, snapshots).
* The **effective-rate factor** of a (cloud, instance type, capacity type) is billed / list-price
  estimate over the reconciled hours of the look-back, once there are at least ``min_hours`` of
  them; anomalous windows are left out. Live estimates are multiplied by it (pricing.resolve).
* A window whose billed cost exceeds its estimate more than ``factor`` times is an **anomaly**:
  one record per resource and UTC day (``anomaly/billing/<resource>/<day>``), a Notify.
* Billing is **stale** when no line newer than ``stale_after`` is in the store. A line **dated in
  the future** (``future_dated``: its period starts more than ``FUTURE_SKEW`` after now, or ends
  more than ``FUTURE_END`` after now) is no evidence of that: a mistyped year would otherwise keep
  ``BillingStale`` off for years. Such lines are counted and named by file instead.

Pure: time is passed in; money is Decimal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from costwarden.engine.anomalies import BILLING, AnomalyFinding
from costwarden.engine.money import MONEY_CONTEXT, QUANTUM, micros_between, plain, usd
from costwarden.models import Action, ActionRecord, BillingStatus
from costwarden.pricing import NodeFacts, RateFactor
from costwarden.records import format_time, parse_time

BILLING_STALE = "BillingStale"  # condition: no billing newer than the operator's limit
BILLING_ANOMALY = "BillingAnomaly"  # condition: a window this period billed far above its estimate
MAX_FINDINGS = 10  # billing anomalies recorded per evaluation (the rest come in the next ones)
# How far ahead of the operator's clock a billing line may be dated and still be evidence that
# billing is fresh: its period may start up to FUTURE_SKEW ahead (clocks differ) and end up to
# FUTURE_END ahead (a daily line of today, a monthly one of this month ends in the future).
FUTURE_SKEW = timedelta(hours=1)
FUTURE_END = timedelta(days=32)
MAX_FUTURE_NAMED = 3  # files named in a condition message (the log names up to MAX_FUTURE_FILES)
MAX_FUTURE_FILES = 10
_ANOMALY_PREFIX = f"anomaly/{BILLING}/"
_HOUR = timedelta(hours=1)
_ZERO = Decimal(0)
FACTOR_PLACES = Decimal("0.0001")

FactorKey = tuple[str, str, str]  # cloud, instance type, capacity type


@dataclass(frozen=True, slots=True)
class DayFigures:
    """One budget, one UTC day: its estimate and its share of the bill over reconciled windows."""

    day: date
    estimated: Decimal
    billed: Decimal


@dataclass(frozen=True, slots=True)
class WindowAnomaly:
    """A billing window of one resource whose billed cost is far above the estimate."""

    resource: str
    start: datetime
    end: datetime
    estimated: Decimal
    billed: Decimal


@dataclass(frozen=True, slots=True)
class BudgetBilling:
    """What reconciliation knows about one budget (all periods; the evaluation picks its own)."""

    days: tuple[DayFigures, ...] = ()
    reconciled_through: datetime | None = None
    non_compute: tuple[tuple[date, Decimal], ...] = ()  # SkyPilot-tagged lines that are no node
    anomalies: tuple[WindowAnomaly, ...] = ()


def evidence_horizon(now: datetime) -> tuple[datetime, datetime]:
    """The latest start and the latest end of a billing line that is evidence of fresh billing
    at ``now`` (the store's query takes them; ``future_dated`` is the same rule on one line)."""
    return now + FUTURE_SKEW, now + FUTURE_END


def future_dated(start: datetime, end: datetime | None, now: datetime) -> bool:
    """Whether a line of ``[start, end)`` (no end: ``start``) is dated in the future at ``now``."""
    latest_start, latest_end = evidence_horizon(now)
    return start > latest_start or (end if end is not None else start) > latest_end


@dataclass(frozen=True, slots=True)
class FutureLines:
    """Billing lines of one file (or, for lines that came as no file, one source) dated in the
    future: ``first`` is the earliest start among them."""

    origin: str
    lines: int
    first: datetime


@dataclass(frozen=True, slots=True)
class Freshness:
    """How new the store's billing is: ``newest`` is the latest end of a billed line that is not
    dated in the future (when the snapshot was taken); ``future_lines`` counts those that are,
    ``future`` names the files (or sources) most of them came from."""

    newest: datetime | None
    stale_after: timedelta
    future_lines: int = 0
    future: tuple[FutureLines, ...] = ()  # the first MAX_FUTURE_FILES of them, most lines first

    def stale(self, now: datetime) -> bool:
        """No evidence newer than ``stale_after`` at ``now``; a ``newest`` dated in the future at
        ``now`` is none."""
        newest = self.newest
        return newest is None or now - newest > self.stale_after or newest > now + FUTURE_END

    def future_note(self) -> str:
        """What the condition message says of the lines dated in the future ("" when none)."""
        if not self.future_lines:
            return ""
        named = ", ".join(
            f"{f.lines} in {f.origin} (the first from {format_time(f.first)})"
            for f in self.future[:MAX_FUTURE_NAMED]
        )
        rest = sum(f.lines for f in self.future[:MAX_FUTURE_NAMED])
        more = f", {self.future_lines - rest} elsewhere" if self.future_lines > rest else ""
        lines = (
            "1 billing line dated in the future is"
            if self.future_lines == 1
            else (f"{self.future_lines} billing lines dated in the future are")
        )
        return f"; {lines} not counted as recent billing: {named}{more}"


@dataclass(frozen=True, slots=True)
class BillingSnapshot:
    """One reconciliation, published whole by the shell; read by evaluations and pricing."""

    at: datetime
    budgets: Mapping[tuple[str, str], BudgetBilling] = field(default_factory=dict)
    by_cluster: Mapping[str, tuple[tuple[date, Decimal], ...]] = field(default_factory=dict)
    factors: Mapping[FactorKey, RateFactor] = field(default_factory=dict)
    freshness: Freshness | None = None
    anomaly_factor: Decimal = Decimal(2)


@dataclass(frozen=True, slots=True)
class FactorRow:
    key: FactorKey
    billed: Decimal
    listed: Decimal
    hours: Decimal
    through: datetime


@dataclass(frozen=True, slots=True)
class TrueUp:
    """A budget's reconciled figures in one period."""

    estimated: Decimal
    billed: Decimal
    non_compute: Decimal
    reconciled_through: datetime | None

    @property
    def adjustment(self) -> Decimal:
        return self.billed - self.estimated + self.non_compute

    @property
    def factor(self) -> Decimal | None:
        if self.estimated <= 0:
            return None
        return MONEY_CONTEXT.divide(self.billed, self.estimated).quantize(
            FACTOR_PLACES, context=MONEY_CONTEXT
        )


def split_hours(start: datetime, end: datetime, amount: Decimal) -> list[tuple[datetime, Decimal]]:
    """``amount``, spent evenly over ``[start, end)``, per UTC hour: telescoping nanodollars, so the
    parts add up to ``amount`` exactly (an amount finer than a nanodollar keeps its remainder in
    the last hour). An empty or reversed span puts it all in ``start``'s hour."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    first = start.replace(minute=0, second=0, microsecond=0)
    total = micros_between(start, end)
    if total <= 0 or end <= first + _HOUR:  # empty, or within one hour (most passes): no division
        return [(first, amount)]
    parts: list[tuple[datetime, Decimal]] = []
    given, hour = _ZERO, first
    while hour < end:
        upto = min(hour + _HOUR, end)
        if upto >= end:
            share = amount - given
        else:
            fraction = MONEY_CONTEXT.divide(Decimal(micros_between(start, upto)), Decimal(total))
            share = MONEY_CONTEXT.multiply(amount, fraction).quantize(QUANTUM, context=MONEY_CONTEXT) - given
        parts.append((hour, share))
        given += share
        hour += _HOUR
    return parts


def learned_factors(rows: Iterable[FactorRow], min_hours: Decimal) -> dict[FactorKey, RateFactor]:
    """Billed / list estimate per (cloud, instance type, capacity type) with enough reconciled hours."""
    factors: dict[FactorKey, RateFactor] = {}
    for row in rows:
        if row.hours < min_hours or row.listed <= 0 or row.billed < 0:
            continue
        factor = MONEY_CONTEXT.divide(row.billed, row.listed).quantize(FACTOR_PLACES, context=MONEY_CONTEXT)
        if factor <= 0:
            continue
        cloud, kind, capacity = row.key
        factors[row.key] = RateFactor(
            factor,
            f"billing: {plain(row.hours)} reconciled {cloud} {kind} {capacity} node-hours "
            f"through {format_time(row.through)}",
        )
    return factors


def true_up(billing: BudgetBilling, period_start: datetime | None) -> TrueUp:
    """The budget's reconciled figures from ``period_start`` (None: its lifetime) on."""
    first_day = period_start.astimezone(UTC).date() if period_start is not None else None
    days = [d for d in billing.days if first_day is None or d.day >= first_day]
    lines = [amount for day, amount in billing.non_compute if first_day is None or day >= first_day]
    return TrueUp(
        estimated=sum((d.estimated for d in days), _ZERO),
        billed=sum((d.billed for d in days), _ZERO),
        non_compute=sum(lines, _ZERO),
        reconciled_through=billing.reconciled_through,
    )


def cluster_lines(
    by_cluster: Mapping[str, Sequence[tuple[date, Decimal]]], covers: Iterable[str]
) -> tuple[tuple[date, Decimal], ...]:
    """The non-compute lines, by day, of the clusters whose tag values are ``covers``."""
    found: dict[date, Decimal] = {}
    for tag in covers:
        for day, amount in by_cluster.get(tag, ()):
            found[day] = found.get(day, _ZERO) + amount
    return tuple(sorted(found.items()))


def billing_anomaly_id(anomaly: WindowAnomaly) -> str:
    return f"{_ANOMALY_PREFIX}{anomaly.resource}/{anomaly.start.astimezone(UTC).date().isoformat()}"


def is_billing_anomaly(record_id: str) -> bool:
    return record_id.startswith(_ANOMALY_PREFIX)


@dataclass(frozen=True, slots=True)
class BudgetTruth:
    """What one evaluation gets from reconciliation: the budget's figures, how fresh billing is
    and the anomaly factor."""

    billing: BudgetBilling
    freshness: Freshness | None = None
    anomaly_factor: Decimal = Decimal(2)


def billing_findings(
    truth: BudgetTruth, period_start: datetime | None, fired: set[str] | frozenset[str]
) -> tuple[AnomalyFinding, ...]:
    """One Notify per resource and UTC day with an anomalous window in the period, not yet fired
    (at most ``MAX_FINDINGS``, oldest first)."""
    found: dict[str, AnomalyFinding] = {}
    for anomaly in sorted(truth.billing.anomalies, key=lambda a: (a.start, a.resource)):
        if len(found) >= MAX_FINDINGS:
            break
        if period_start is not None and anomaly.start < period_start:
            continue
        record_id = billing_anomaly_id(anomaly)
        if record_id in fired or record_id in found or anomaly.estimated <= 0:
            continue
        ratio = MONEY_CONTEXT.divide(anomaly.billed, anomaly.estimated).quantize(
            Decimal("0.1"), context=MONEY_CONTEXT
        )
        found[record_id] = AnomalyFinding(
            kind=BILLING,
            action=Action.NOTIFY,
            record_id=record_id,
            message=(
                f"resource {anomaly.resource} was billed ${usd(anomaly.billed)} for "
                f"{format_time(anomaly.start)} to {format_time(anomaly.end)}, {ratio} times the "
                f"estimate ${usd(anomaly.estimated)} "
                f"(billing anomaly limit {plain(truth.anomaly_factor)} times)"
            ),
        )
    return tuple(found.values())


ConditionState = tuple[str, str, str, str]  # type, status, reason, message


def billing_conditions(
    truth: BudgetTruth,
    trued: TrueUp,
    actions: Sequence[ActionRecord],
    period_start: datetime | None,
    now: datetime,
) -> tuple[BillingStatus, list[ConditionState]]:
    """``status.billing`` and the BillingStale and BillingAnomaly conditions."""
    fired = [
        r
        for r in actions
        if is_billing_anomaly(r.id) and (period_start is None or _at_or_after(r.time, period_start))
    ]
    status = BillingStatus(
        reconciled_through=format_time(trued.reconciled_through) if trued.reconciled_through else None,
        estimated_spend=trued.estimated,
        billed_spend=trued.billed,
        effective_rate_factor=trued.factor,
        non_compute_spend=trued.non_compute,
        anomalies=len(fired),
    )
    states: list[ConditionState] = []
    freshness = truth.freshness
    if freshness is not None:
        note = freshness.future_note()
        if freshness.stale(now):
            newest = format_time(freshness.newest) if freshness.newest else "none"
            hours = plain(Decimal(int(freshness.stale_after.total_seconds())) / 3600)
            states.append(
                (
                    BILLING_STALE,
                    "True",
                    "NoRecentBilling",
                    f"newest billing line ends {newest}; expected within {hours} h{note}",
                )
            )
        else:
            states.append(
                (
                    BILLING_STALE,
                    "False",
                    "BillingCurrent",
                    f"billing has landed within the expected delay{note}",
                )
            )
    if fired:
        states.append(
            (
                BILLING_ANOMALY,
                "True",
                "BilledAboveEstimate",
                f"{len(fired)} billing anomalies this period; see status.actions",
            )
        )
    else:
        states.append(
            (BILLING_ANOMALY, "False", "BilledAsEstimated", "no billing window this period is anomalous")
        )
    return status, states


def _at_or_after(text: str, boundary: datetime) -> bool:
    at = parse_time(text)
    return at is not None and at >= boundary


def factor_lookup(factors: Mapping[FactorKey, RateFactor]) -> Callable[[NodeFacts], RateFactor | None]:
    """The price book's ``factors`` callable over a snapshot's learned factors."""

    def lookup(facts: NodeFacts) -> RateFactor | None:
        if not facts.instance_type:
            return None
        return factors.get((facts.cloud, facts.instance_type, facts.capacity_type))

    return lookup
