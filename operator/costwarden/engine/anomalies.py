"""Anomalies: spend that is wrong in shape rather than in total (``spec.anomalies``).

- Burn rate: the budget's hourly rate is above ``multiplier * spec.expectedHourlyRate`` (a spot
  job failed over to on-demand H100s; 8 GPUs were launched instead of 2). It fires once per
  period: its record id ``anomaly/burnRate/<period key>`` in ``status.actions`` is the memory,
  exactly as for thresholds, so it fires again in the next period if the rate is still high.
- Idle GPU: a covered pod that holds GPUs, is billed (running, not being deleted), and whose
  every fresh utilisation reading for at least ``forMinutes`` was below ``belowPercent``. When it
  was first seen idle is remembered in ``status.ledger.idleSince[uid]`` (so a restart does not
  restart the clock). A fresh reading at or above the threshold forgets it; so does the pod
  ending, being deleted or no longer being covered. An unknown reading (stale, missing, its
  source down) pauses the rule for that pod: the entry is kept, no new one starts, nothing fires
  (missing data is not idleness). It fires once per pod: record id ``anomaly/idleGpu/<pod uid>``.

Utilisation comes from telemetry (``engine.gpu.Telemetry``), never from the pod's own
annotations, which anyone allowed to patch pods could forge.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from costwarden.engine.gpu import NO_TELEMETRY, Telemetry
from costwarden.engine.money import MONEY_CONTEXT, plain, usd
from costwarden.models import Action, CostBudgetSpec, IdleGpuAnomaly
from costwarden.records import PodRecord, format_time, parse_time

__all__ = [
    "BILLING",
    "BURN_RATE",
    "IDLE_GPU",
    "AnomalyFinding",
    "AnomalyScan",
    "burn_rate_finding",
    "burn_rate_id",
    "find_anomalies",
    "idle_gpu_id",
    "idle_pod_uid",
    "track_idle",
]

BURN_RATE = "burnRate"
IDLE_GPU = "idleGpu"
BILLING = "billing"  # a billing window far above its estimate (engine.reconcile)
_IDLE_PREFIX = f"anomaly/{IDLE_GPU}/"


@dataclass(frozen=True, slots=True)
class AnomalyFinding:
    kind: str  # BURN_RATE | IDLE_GPU | BILLING
    action: Action
    record_id: str
    message: str
    pod_uids: tuple[str, ...] = ()  # the idle pod for IDLE_GPU; empty for BURN_RATE


@dataclass(frozen=True, slots=True)
class AnomalyScan:
    findings: tuple[AnomalyFinding, ...]
    idle_since: dict[str, str]  # the ledger's new ``idleSince``


def burn_rate_id(period_key: str) -> str:
    return f"anomaly/{BURN_RATE}/{period_key}"


def idle_gpu_id(uid: str) -> str:
    return f"{_IDLE_PREFIX}{uid}"


def idle_pod_uid(record_id: str) -> str | None:
    """The pod uid of an ``anomaly/idleGpu/<uid>`` record id, else None."""
    if record_id.startswith(_IDLE_PREFIX) and len(record_id) > len(_IDLE_PREFIX):
        return record_id[len(_IDLE_PREFIX) :]
    return None


def burn_rate_finding(
    spec: CostBudgetSpec, hourly_rate: Decimal, period_key: str, fired: Container[str]
) -> AnomalyFinding | None:
    """The burn-rate finding when the rate is above the allowed multiple and it has not fired
    in this period (``fired`` holds the record ids of ``status.actions``)."""
    rule, expected = spec.anomalies.burn_rate, spec.expected_hourly_rate
    if rule is None or expected is None:
        return None
    allowed = MONEY_CONTEXT.multiply(rule.multiplier, expected)
    record_id = burn_rate_id(period_key)
    if hourly_rate <= allowed or record_id in fired:
        return None
    ratio = MONEY_CONTEXT.divide(hourly_rate, expected).quantize(Decimal("0.1"), context=MONEY_CONTEXT)
    message = (
        f"hourly rate ${usd(hourly_rate)}/h is {ratio} times the expected ${usd(expected)}/h "
        f"(burn-rate limit {plain(rule.multiplier)} times: ${usd(allowed)}/h)"
    )
    return AnomalyFinding(kind=BURN_RATE, action=rule.action, record_id=record_id, message=message)


def _is_idle_candidate(pod: PodRecord) -> bool:
    return pod.gpus > 0 and not pod.is_terminal and not pod.deleting


def _idle_message(
    pod: PodRecord, rule: IdleGpuAnomaly, utilization: Decimal, span: tuple[datetime, datetime]
) -> str:
    since, now = span
    minutes = int((now - since).total_seconds() // 60)
    cluster = f" (SkyPilot cluster {pod.skypilot_cluster})" if pod.skypilot_cluster else ""
    gpus = "1 GPU" if pod.gpus == 1 else f"{pod.gpus} GPUs"
    return (
        f"pod {pod.namespace}/{pod.name}{cluster} holds {gpus} at {plain(utilization)}% utilisation, "
        f"below {plain(rule.below_percent)}% for {minutes} minutes (since {format_time(since)}; "
        f"limit {rule.for_minutes} minutes)"
    )


def track_idle(  # noqa: PLR0917 -- the rule, the pods, their memory, the clock, the readings
    rule: IdleGpuAnomaly | None,
    pods: Iterable[PodRecord],
    idle_since: Mapping[str, str],
    now: datetime,
    fired: Container[str],
    telemetry: Telemetry = NO_TELEMETRY,
) -> AnomalyScan:
    """The idle-GPU findings among the covered ``pods`` and the updated ``idleSince`` map.

    ``idle_since`` is the ledger's previous map; an entry that does not parse, or lies after
    ``now`` (the clock went back), restarts at ``now``.
    ``fired`` holds the record ids already in ``status.actions``.
    """
    if rule is None:
        return AnomalyScan(findings=(), idle_since={})
    now_text = format_time(now)
    window = timedelta(minutes=rule.for_minutes)
    updated: dict[str, str] = {}
    findings: list[AnomalyFinding] = []
    for pod in pods:
        if pod.uid in updated or not _is_idle_candidate(pod):
            continue
        utilization = telemetry.utilization(pod.uid, now)
        if utilization is None:  # unknown: pause, keeping the clock
            if pod.uid in idle_since:
                updated[pod.uid] = idle_since[pod.uid]
            continue
        if utilization >= rule.below_percent:
            continue
        since = parse_time(idle_since.get(pod.uid))
        if since is None or since > now:
            since = now
            updated[pod.uid] = now_text
        else:
            updated[pod.uid] = idle_since[pod.uid]
        record_id = idle_gpu_id(pod.uid)
        if now - since >= window and record_id not in fired:
            findings.append(
                AnomalyFinding(
                    kind=IDLE_GPU,
                    action=rule.action,
                    record_id=record_id,
                    message=_idle_message(pod, rule, utilization, (since, now)),
                    pod_uids=(pod.uid,),
                )
            )
    return AnomalyScan(findings=tuple(findings), idle_since=updated)


def find_anomalies(
    spec: CostBudgetSpec,
    covered: Iterable[PodRecord],
    hourly_rate: Decimal,
    period: tuple[str, Mapping[str, str]],
    *,
    now: datetime,
    fired: Container[str],
    telemetry: Telemetry = NO_TELEMETRY,
) -> AnomalyScan:
    """Burn-rate and idle-GPU findings of one evaluation (burn rate first) and the new ``idleSince``.

    ``period`` is ``(period key, previous idleSince)``; ``fired`` the ids in ``status.actions``.
    """
    period_key, idle_since = period
    idle = track_idle(spec.anomalies.idle_gpu, covered, idle_since, now, fired, telemetry)
    burn = burn_rate_finding(spec, hourly_rate, period_key, fired)
    findings = idle.findings if burn is None else (burn, *idle.findings)
    return AnomalyScan(findings=findings, idle_since=idle.idle_since)
