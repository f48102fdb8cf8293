"""The status merge patch (engine.status_patch) and when a status is due (throttle.status_due),
with the ledger's per-pod table stored packed, and stored statuses of earlier releases."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from costwarden.engine.status_patch import status_merge_patch
from costwarden.models import BudgetLedger, CostBudgetStatus, PodLedgerEntry, unpack_pods
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


def test_idle_pods_that_recovered_and_a_gone_forecast_are_deleted() -> None:
    stored = _status({"a": "1"}, idle={"a": AT, "b": AT}, exhausts_at=AT).to_k8s()
    patch = status_merge_patch(_status({"a": "1"}, idle={"a": AT}), stored)
    assert patch["ledger"]["idleSince"] == {"a": AT, "b": None}
    assert patch["exhaustsAt"] is None
    assert "exhaustsAt" not in status_merge_patch(_status({}), {})


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


def test_a_status_of_an_earlier_release_with_the_same_pods_waits_for_the_interval() -> None:
    ledger = {"closedSpend": "3", "pods": {"a": {"spend": "1", "at": AT}}, "idleSince": {}}
    stored = {"conditions": [], "actions": [], "ledger": ledger}
    new = status_merge_patch(_status({"a": "2"}), stored)
    assert status_due(stored, new, 1, interval=10) is False
    assert status_due(stored, status_merge_patch(_status({"b": "2"}), stored), 1, interval=10) is True
