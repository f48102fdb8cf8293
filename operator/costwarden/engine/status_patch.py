"""The merge patch (RFC 7386) that turns a budget's stored status into the new one.

A merge patch keeps every map key it does not mention, so what the new status no longer holds
is deleted explicitly with null: the ledger maps that releases before ``packedPods`` and
``packedIdleSince`` stored (``pods``, ``idleSince``), and ``exhaustsAt`` once no exhaustion is
forecast. The per-pod table and the idle-since times are strings (``ledger.packedPods``,
``ledger.packedIdleSince``), always written whole, so pods that left or recovered need no nulls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from costwarden.models import CostBudgetStatus


def status_merge_patch(new: CostBudgetStatus, stored: Mapping[str, Any]) -> dict[str, Any]:
    """The body of a status merge patch from ``stored`` (the object's status as read) to ``new``."""
    body = new.to_k8s()
    ledger: dict[str, Any] = body.setdefault("ledger", {})
    stored_ledger = stored.get("ledger") or {}
    for stale in ("pods", "idleSince"):
        if stored_ledger.get(stale) is not None:
            ledger[stale] = None
    if stored.get("exhaustsAt") and not new.exhausts_at:
        body["exhaustsAt"] = None
    return body
