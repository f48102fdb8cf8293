"""Anomalies: burn rate once per period, idle GPUs once per pod, wired into evaluate_budget."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from costwarden.crd import load_crd, version_schema
from costwarden.engine.anomalies import (
    BURN_RATE,
    IDLE_GPU,
    burn_rate_finding,
    burn_rate_id,
    idle_gpu_id,
    idle_pod_uid,
    track_idle,
)
from costwarden.engine.evaluation import (
    BudgetInput,
    invalid_decision,
)
from costwarden.models import Action, CostBudgetSpec, CostBudgetStatus, IdleGpuAnomaly
from costwarden.records import PodRecord
from costwarden.sim.crdvalidation import validate_custom_object
from tests.unit.budget_harness import Budget, telemetry_of

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
NOV_3 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


def spec(**raw: Any) -> CostBudgetSpec:
    return CostBudgetSpec.model_validate({"limit": 100000, "period": "Monthly", **raw})


def burn_spec(multiplier: int = 3, action: str = "Kill", **raw: Any) -> CostBudgetSpec:
    return spec(
        expectedHourlyRate=Decimal("110.08"),
        anomalies={"burnRate": {"multiplier": multiplier, "action": action}},
        **raw,
    )


def idle_spec(below: int = 10, minutes: int = 30, action: str = "Notify") -> CostBudgetSpec:
    return spec(anomalies={"idleGpu": {"belowPercent": below, "forMinutes": minutes, "action": action}})


def gpu_pod(name: str, utilization: str | None = "3", gpus: int = 8, **overrides: Any) -> PodRecord:
    record = PodRecord(
        namespace="research",
        name=name,
        uid=f"uid-{name}",
        node_name="node-a",
        phase="Running",
        gpus=gpus,
        created=NOV_3 - HOUR,
        started=NOV_3 - HOUR,
        skypilot_cluster="llama-sweep",
        labels=(("parent", "skypilot"), ("skypilot-cluster-name", "llama-sweep-2ea4")),
        gpu_utilization=None if utilization is None else Decimal(utilization),
    )
    return replace(record, **overrides)


# --- burn rate -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "fires"),
    [("110.08", False), ("330.24", False), ("330.240000001", True), ("880.64", True), ("0", False)],
)
def test_burn_rate_fires_only_above_the_multiple(rate: str, fires: bool) -> None:
    finding = burn_rate_finding(burn_spec(multiplier=3), Decimal(rate), "2026-11-01T00:00:00Z", set())
    assert (finding is not None) is fires


def test_burn_rate_finding_names_rate_expected_rate_and_multiplier() -> None:
    finding = burn_rate_finding(burn_spec(multiplier=3), Decimal("880.64"), "2026-11-01T00:00:00Z", set())
    assert finding is not None
    assert finding.kind == BURN_RATE
    assert finding.action is Action.KILL
    assert finding.record_id == "anomaly/burnRate/2026-11-01T00:00:00Z"
    assert finding.pod_uids == ()
    assert finding.message == (
        "hourly rate $880.64/h is 8.0 times the expected $110.08/h (burn-rate limit 3 times: $330.24/h)"
    )


def test_burn_rate_without_the_rule_or_already_fired_finds_nothing() -> None:
    key = "2026-11-01T00:00:00Z"
    assert burn_rate_finding(spec(expectedHourlyRate=1), Decimal(1000), key, set()) is None
    assert burn_rate_finding(burn_spec(), Decimal(1000), key, {burn_rate_id(key)}) is None


def test_spot_failover_to_on_demand_fires_once_per_period_and_again_next_period() -> None:
    """Two spot H100 pods at the expected rate; they fail over to 8 on-demand pods."""
    budget = Budget(burn_spec(multiplier=3, action="Kill"), name="llama-sweep")
    budget.add(gpu_pod("spot-0", gpus=1), "55.04")
    budget.add(gpu_pod("spot-1", gpus=1), "55.04")
    assert budget.evaluate(NOV_3).anomalies == ()

    budget.pods.clear()
    for index in range(8):
        budget.add(gpu_pod(f"ondemand-{index}", gpus=1), "98.32")
    decision = budget.evaluate(NOV_3 + MINUTE)
    (finding,) = decision.anomalies
    assert finding.record_id == "anomaly/burnRate/2026-11-01T00:00:00Z"
    record = decision.status.actions[-1]
    assert (record.id, record.action, record.result, record.targets) == (
        finding.record_id,
        Action.KILL,
        "Pending",
        (),
    )
    assert record.trigger == finding.message
    assert record.time == "2026-11-03T10:01:00Z"
    (event,) = [e for e in decision.events if e.reason == "BurnRateAnomaly"]
    assert event.type == "Warning"
    assert event.message.startswith("CostBudget research/llama-sweep: hourly rate $786.56/h")
    assert event.message.endswith("; action Kill")

    assert budget.evaluate(NOV_3 + 2 * MINUTE).anomalies == ()
    assert budget.evaluate(NOV_3 + 3 * MINUTE, restart=True).anomalies == ()

    december = budget.evaluate(datetime(2026, 12, 1, 0, 1, tzinfo=UTC))
    assert [f.record_id for f in december.anomalies] == ["anomaly/burnRate/2026-12-01T00:00:00Z"]


def test_lifetime_burn_rate_fires_once() -> None:
    budget = Budget(burn_spec(period="Lifetime"), name="llama-sweep")
    budget.add(gpu_pod("big"), "1000")
    assert [f.record_id for f in budget.evaluate(NOV_3).anomalies] == ["anomaly/burnRate/lifetime"]
    assert budget.evaluate(NOV_3 + 40 * 24 * HOUR).anomalies == ()


# --- idle GPUs: the tracker --------------------------------------------------------------------


def track(rule, pods, since, now, fired, *, read_at=None):
    """``track_idle`` with telemetry that read each pod's built-in utilisation at ``read_at``."""
    return track_idle(rule, pods, since, now, fired, telemetry_of(pods, read_at or now))


RULE = IdleGpuAnomaly(below_percent=Decimal(10), for_minutes=30)


def test_idle_clock_starts_when_first_seen_idle() -> None:
    scan = track(RULE, [gpu_pod("head")], {}, NOV_3, set())
    assert scan.findings == ()
    assert scan.idle_since == {"uid-head": "2026-11-03T10:00:00Z"}


@pytest.mark.parametrize(
    ("idle_for", "fires"),
    [(29 * MINUTE + timedelta(seconds=59), False), (30 * MINUTE, True), (31 * MINUTE, True)],
)
def test_idle_fires_once_idle_for_at_least_for_minutes(idle_for: timedelta, fires: bool) -> None:
    since = {"uid-head": "2026-11-03T10:00:00Z"}
    scan = track(RULE, [gpu_pod("head")], since, NOV_3 + idle_for, set())
    assert scan.idle_since == since
    assert [f.record_id for f in scan.findings] == (["anomaly/idleGpu/uid-head"] if fires else [])


def test_idle_finding_names_the_pod_its_cluster_and_the_rule() -> None:
    since = {"uid-head": "2026-11-03T10:00:00Z"}
    (finding,) = track(RULE, [gpu_pod("head")], since, NOV_3 + 45 * MINUTE, set()).findings
    assert finding.kind == IDLE_GPU
    assert finding.action is Action.NOTIFY
    assert finding.pod_uids == ("uid-head",)
    assert finding.message == (
        "pod research/head (SkyPilot cluster llama-sweep) holds 8 GPUs at 3% utilisation, below 10% "
        "for 45 minutes (since 2026-11-03T10:00:00Z; limit 30 minutes)"
    )


@pytest.mark.parametrize(
    ("pod", "why"),
    [
        (gpu_pod("head", utilization="10"), "at the threshold is not idle"),
        (gpu_pod("head", utilization="97"), "busy"),
        (gpu_pod("head", gpus=0), "no GPUs"),
        (gpu_pod("head", phase="Succeeded"), "ended"),
        (gpu_pod("head", deleting=True), "being deleted"),
    ],
)
def test_idle_clock_is_forgotten(pod: PodRecord, why: str) -> None:
    scan = track(RULE, [pod], {"uid-head": "2026-11-03T09:00:00Z"}, NOV_3, set())
    assert (scan.findings, scan.idle_since) == ((), {}), why


def test_unknown_utilisation_pauses_the_clock_and_never_fires() -> None:
    since = {"uid-head": "2026-11-03T09:00:00Z"}
    missing = track(RULE, [gpu_pod("head", utilization=None)], since, NOV_3, set())
    assert (missing.findings, missing.idle_since) == ((), since)  # kept, not fired, not forgotten
    stale = track(RULE, [gpu_pod("head")], since, NOV_3, set(), read_at=NOV_3 - 10 * MINUTE)
    assert (stale.findings, stale.idle_since) == ((), since)  # an old "3 %" is not idle now
    fresh = track(RULE, [gpu_pod("head")], since, NOV_3, set())
    assert [f.record_id for f in fresh.findings] == ["anomaly/idleGpu/uid-head"]


def test_an_unknown_pod_never_starts_a_clock() -> None:
    scan = track(RULE, [gpu_pod("head", utilization=None)], {}, NOV_3, set())
    assert (scan.findings, scan.idle_since) == ((), {})


def test_without_telemetry_nothing_is_idle() -> None:
    since = {"uid-head": "2026-11-03T09:00:00Z"}
    scan = track_idle(RULE, [gpu_pod("head", utilization="0")], since, NOV_3, set())  # no telemetry at all
    assert scan.findings == ()


def test_pods_no_longer_covered_are_dropped_and_bad_entries_restart() -> None:
    previous = {"uid-gone": "2026-11-03T09:00:00Z", "uid-head": "garbage", "uid-w1": "2027-01-01T00:00:00Z"}
    scan = track(RULE, [gpu_pod("head"), gpu_pod("w1")], previous, NOV_3, set())
    assert scan.findings == ()
    assert scan.idle_since == {"uid-head": "2026-11-03T10:00:00Z", "uid-w1": "2026-11-03T10:00:00Z"}


def test_idle_fires_once_per_pod() -> None:
    since = {"uid-head": "2026-11-03T09:00:00Z"}
    scan = track(RULE, [gpu_pod("head")], since, NOV_3, {idle_gpu_id("uid-head")})
    assert scan.findings == ()
    assert scan.idle_since == since


def test_no_rule_tracks_nothing() -> None:
    scan = track(None, [gpu_pod("head")], {"uid-head": "2026-11-03T09:00:00Z"}, NOV_3, set())
    assert (scan.findings, scan.idle_since) == ((), {})


def test_idle_pod_uid_round_trip() -> None:
    assert idle_pod_uid(idle_gpu_id("0b7c-9f")) == "0b7c-9f"
    assert idle_pod_uid("anomaly/idleGpu/") is None
    assert idle_pod_uid(burn_rate_id("lifetime")) is None
    assert idle_pod_uid("threshold/80/lifetime") is None


# --- idle GPUs: through evaluate_budget --------------------------------------------------------


def test_idle_gpu_through_evaluation_survives_a_restart_and_fires_once() -> None:
    budget = Budget(idle_spec(below=10, minutes=30, action="Kill"), name="llama-sweep")
    budget.add(gpu_pod("head", utilization="2"))
    budget.add(gpu_pod("worker1", utilization="95"))
    first = budget.evaluate(NOV_3)
    assert first.anomalies == ()
    assert first.status.ledger.idle_since == {"uid-head": "2026-11-03T10:00:00Z"}

    assert budget.evaluate(NOV_3 + 29 * MINUTE, restart=True).anomalies == ()
    decision = budget.evaluate(NOV_3 + 30 * MINUTE, restart=True)
    (finding,) = decision.anomalies
    assert finding.pod_uids == ("uid-head",)
    record = decision.status.actions[-1]
    assert (record.id, record.action, record.result) == ("anomaly/idleGpu/uid-head", Action.KILL, "Pending")
    (event,) = decision.events
    assert (event.reason, event.type) == ("IdleGpu", "Warning")
    assert "pod research/head" in event.message

    assert budget.evaluate(NOV_3 + 31 * MINUTE, restart=True).anomalies == ()


def test_busy_again_restarts_the_idle_clock() -> None:
    budget = Budget(idle_spec(minutes=30), name="llama-sweep")
    budget.add(gpu_pod("head", utilization="1"))
    budget.evaluate(NOV_3)
    budget.add(gpu_pod("head", utilization="80"))
    assert budget.evaluate(NOV_3 + 20 * MINUTE).status.ledger.idle_since == {}
    budget.add(gpu_pod("head", utilization="1"))
    assert budget.evaluate(NOV_3 + 40 * MINUTE).anomalies == ()
    assert budget.evaluate(NOV_3 + 69 * MINUTE).anomalies == ()
    assert len(budget.evaluate(NOV_3 + 70 * MINUTE).anomalies) == 1


def test_removed_pod_leaves_the_idle_map() -> None:
    budget = Budget(idle_spec(), name="llama-sweep")
    budget.add(gpu_pod("head", utilization="1"))
    budget.evaluate(NOV_3)
    del budget.pods["uid-head"]
    assert budget.evaluate(NOV_3 + MINUTE).status.ledger.idle_since == {}


def test_both_anomalies_at_once_burn_rate_first() -> None:
    both = spec(
        expectedHourlyRate=10,
        anomalies={"burnRate": {"multiplier": 2}, "idleGpu": {"belowPercent": 5, "forMinutes": 1}},
    )
    budget = Budget(both, name="llama-sweep")
    budget.add(gpu_pod("head", utilization="0"), "100")
    assert [f.kind for f in budget.evaluate(NOV_3).anomalies] == [BURN_RATE]
    assert [f.kind for f in budget.evaluate(NOV_3 + MINUTE).anomalies] == [IDLE_GPU]


def test_invalid_budget_has_no_anomalies() -> None:
    status = CostBudgetStatus.model_validate({"ledger": {"idleSince": {"uid-head": "2026-11-03T09:00:00Z"}}})
    budget = BudgetInput("research", "llama-sweep", 2, None, status)
    decision = invalid_decision(budget, ["spec.limit: required"], NOV_3)
    assert decision.anomalies == ()
    assert decision.status.ledger.idle_since == {"uid-head": "2026-11-03T09:00:00Z"}


def test_status_with_idle_since_fits_the_crd_schema() -> None:
    budget = Budget(idle_spec(), name="llama-sweep")
    budget.add(gpu_pod("head", utilization="1"))
    status = budget.evaluate(NOV_3).status.to_k8s()
    assert "idleSince" not in status["ledger"]  # stored packed, as packedIdleSince
    assert CostBudgetStatus.model_validate(status).ledger.idle_since == {"uid-head": "2026-11-03T10:00:00Z"}
    schema = version_schema(load_crd())
    body = {"apiVersion": "costwarden.dev/v1alpha1", "kind": "CostBudget", "spec": {"limit": 1}}
    assert validate_custom_object(schema, {**body, "status": status}) == []
    earlier = {**status["ledger"], "idleSince": {"uid-head": "2026-11-03T10:00:00Z"}}  # a map, as before
    assert validate_custom_object(schema, {**body, "status": {**status, "ledger": earlier}}) == []
    for bad in ({"packedIdleSince": "v2:1:0:AA=="}, {"idleSince": {"uid-head": 5}}):
        wrong = {**status, "ledger": {**status["ledger"], **bad}}
        assert validate_custom_object(schema, {**body, "status": wrong}) != []
