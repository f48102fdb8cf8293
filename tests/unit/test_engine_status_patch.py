"""The status merge patch (engine.status_patch) and when a status is due (throttle.status_due),
with the ledger's per-pod table and idle-since times stored packed, and stored statuses of
earlier releases."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from costwarden.engine.status_patch import status_merge_patch
from costwarden.models import BudgetLedger, CostBudgetStatus, PodLedgerEntry, pack_pods, unpack_pods
from costwarden.operator.throttle import status_due
from costwarden.sim.patching import merge_patch

AT = "2026-11-27T10:00:00Z"


def _status(figures: dict[str, str], idle: dict[str, str] | None = None, **fields: Any) -> CostBudgetStatus:
    pods = {uid: PodLedgerEntry(spend=Decimal(spend), at=AT) for uid, spend in figures.items()}
    return CostBudgetStatus(
        ledger=BudgetLedger(closed_spend=Decimal(3), pods=pods, idle_since=idle or {}), **fields
    )


def _stored_after(stored: dict[str, Any], new: CostBudgetStatus) -> CostBudgetStatus:
    return CostBudgetStatus.model_validate(merge_patch(stored, status_merge_patch(new, stored)))


def test_a_packed_status_is_replaced_whole() -> None:
    stored = _status({"a": "1", "b": "2"}).to_k8s()
    new = _status({"b": "5", "c": "1"})
    patch = status_merge_patch(new, stored)
    assert "pods" not in patch["ledger"]
    assert set(unpack_pods(patch["ledger"]["packedPods"])) == {"b", "c"}
    assert _stored_after(stored, new).ledger == new.ledger


def test_the_map_of_an_earlier_release_is_deleted() -> None:
    stored = {"ledger": {"closedSpend": "3", "pods": {"a": {"spend": "1", "at": AT, "name": "head"}}}}
    new = _status({"b": "2"})
    patch = status_merge_patch(new, stored)
    assert patch["ledger"]["pods"] is None
    after = merge_patch(stored, patch)
    assert "pods" not in after["ledger"]
    assert CostBudgetStatus.model_validate(after).ledger == new.ledger


def test_a_ledger_that_emptied_is_stored_empty() -> None:
    stored = _status({"a": "1"}).to_k8s()
    assert _stored_after(stored, _status({})).ledger.pods == {}


def test_idle_pods_that_recovered_need_no_nulls_and_a_gone_forecast_is_deleted() -> None:
    stored = _status({"a": "1"}, idle={"a": AT, "b": AT}, exhausts_at=AT).to_k8s()
    new = _status({"a": "1"}, idle={"a": AT})
    patch = status_merge_patch(new, stored)
    assert "idleSince" not in patch["ledger"]
    assert patch["exhaustsAt"] is None
    assert _stored_after(stored, new).ledger.idle_since == {"a": AT}
    assert "exhaustsAt" not in status_merge_patch(_status({}), {})


def test_the_idle_map_of_an_earlier_release_is_deleted() -> None:
    pods = pack_pods({"a": PodLedgerEntry(spend=Decimal(1), at=AT)})
    stored = {"ledger": {"closedSpend": "3", "packedPods": pods, "idleSince": {"a": AT, "b": AT}}}
    new = _status({"a": "1"}, idle={"a": AT})
    patch = status_merge_patch(new, stored)
    assert patch["ledger"]["idleSince"] is None
    after = merge_patch(stored, patch)
    assert "idleSince" not in after["ledger"]
    assert CostBudgetStatus.model_validate(after).ledger == new.ledger


PACKED = status_merge_patch(_status({"a": "1"}), {})


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        (status_merge_patch(_status({"a": "2"}), PACKED), False),  # only figures moved
        (status_merge_patch(_status({"a": "1", "b": "0"}), PACKED), True),  # a pod joined
        (status_merge_patch(_status({}), PACKED), True),  # a pod left
        (status_merge_patch(_status({"a": "1"}, idle={"a": AT}), PACKED), True),  # a pod went idle
    ],
)
def test_which_pods_are_in_the_ledger_is_written_at_once(new: dict[str, Any], expected: bool) -> None:
    assert status_due(PACKED, new, 1, interval=10) is expected
    assert status_due(PACKED, new, 10, interval=10) is True


def test_which_pods_are_idle_is_written_at_once_a_restarted_clock_with_the_figures() -> None:
    idle = status_merge_patch(_status({"a": "1", "b": "1"}, idle={"a": AT}), {})
    recovered = status_merge_patch(_status({"a": "1", "b": "1"}), idle)
    both = status_merge_patch(_status({"a": "1", "b": "1"}, idle={"a": AT, "b": AT}), idle)
    restarted = status_merge_patch(_status({"a": "1", "b": "1"}, idle={"a": "2026-11-27T10:05:00Z"}), idle)
    assert status_due(idle, recovered, 1, interval=10) is True
    assert status_due(idle, both, 1, interval=10) is True
    assert status_due(idle, restarted, 1, interval=10) is False


@pytest.mark.parametrize("idle", [{}, {"a": AT}])
def test_an_earlier_release_status_with_the_same_pods_waits_for_the_interval(idle: dict[str, str]) -> None:
    ledger = {"closedSpend": "3", "pods": {"a": {"spend": "1", "at": AT}}, "idleSince": idle}
    stored = {"conditions": [], "actions": [], "ledger": ledger}
    figures_moved = status_merge_patch(_status({"a": "2"}, idle=idle), stored)
    other_pods = status_merge_patch(_status({"b": "2"}, idle=idle), stored)
    other_idle = status_merge_patch(_status({"a": "2"}, idle={} if idle else {"a": AT}), stored)
    assert status_due(stored, figures_moved, 1, interval=10) is False
    assert status_due(stored, other_pods, 1, interval=10) is True
    assert status_due(stored, other_idle, 1, interval=10) is True
