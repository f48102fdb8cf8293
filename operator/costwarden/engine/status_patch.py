"""The merge patch (RFC 7386) that turns a budget's stored status into the new one.

A merge patch keeps every map key it does not mention, so what the new status no longer holds
is deleted explicitly with null: the per-pod ledger map that releases before ``packedPods``
stored, ``idleSince`` entries of pods that are no longer idle, and ``exhaustsAt`` once no
exhaustion is forecast. The per-pod table itself is one string (``ledger.packedPods``), always
written whole, so pods that left need no nulls.
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
    if stored_ledger.get("pods") is not None:
        ledger["pods"] = None
    idle = ledger.setdefault("idleSince", {})
    for uid in stored_ledger.get("idleSince") or {}:
        if uid not in new.ledger.idle_since:
            idle[uid] = None
    if stored.get("exhaustsAt") and not new.exhausts_at:
        body["exhaustsAt"] = None
    return body
