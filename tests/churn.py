"""Pod churn and timed budget crossings: what the soak (``bench/soak.py``) and its fast slice
(``tests/component/test_soak_slice.py``) do to a cluster, and how they read what the operator did.

- Churn: a pod is replaced by one of the same shape (labels, node, resources) under a new name,
  so a new uid; each step replaces the next window of slots, so every pod is replaced in turn.
- Crossings: a one-GPU SkyPilot-shaped pod in ``CROSSING_NAMESPACE`` under a budget of its own
  (Notify at 80 %, Kill at 100 %, grace period 0) whose limit its spend reaches a chosen number of
  seconds after the pod started, so both crossing instants are known to the microsecond.
"""

from __future__ import annotations

import copy
import functools
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from decimal import ROUND_CEILING, Decimal
from typing import Any

from costwarden.engine.rates import pod_rate
from costwarden.pricing import PriceBook, load_bundled_catalog
from costwarden.records import NodeRecord, PodRecord
from tests import shapes

CROSSING_NAMESPACE = "crossings"
CROSSING_LABEL = "crossing"
NOTIFY_PERCENT, KILL_PERCENT = 80, 100
_THRESHOLD = re.compile(r"reached the (\d+(?:\.\d+)?)% threshold")


def replacement(body: Mapping[str, Any], generation: int) -> dict[str, Any]:
    """A pod of ``body``'s shape named ``<name>-g<generation>`` (``body`` itself for 0)."""
    clone = copy.deepcopy(dict(body))
    if generation:
        clone["metadata"]["name"] = f"{body['metadata']['name']}-g{generation}"
    return clone


def churn_slots(step: int, count: int, share: float) -> list[int]:
    """The slots (indices into ``count`` pods) replaced at ``step``: a window of ``share`` of
    them, the next one at each step, wrapping around."""
    size = max(1, round(count * share)) if count else 0
    first = step * size
    return [(first + k) % count for k in range(min(size, count))]


def crossing_pod(i: int, node: str) -> dict[str, Any]:
    """A one-GPU SkyPilot head pod, alone in its SkyPilot cluster, labelled for budget ``i``."""
    body = shapes.skypilot_pod(
        f"x{i}-beef", f"x{i}", namespace=CROSSING_NAMESPACE, node=node, gpus=1, cpu="8", memory="64Gi"
    )
    body["metadata"]["labels"][CROSSING_LABEL] = f"c{i}"
    return body


def crossing_budget(i: int, limit: Decimal) -> dict[str, Any]:
    """Budget ``i`` over ``crossing_pod(i)``: Notify at 80 %, Kill at 100 % with no grace period."""
    return {
        "apiVersion": "costwarden.dev/v1alpha1",
        "kind": "CostBudget",
        "metadata": {"name": f"crossing-{i}", "namespace": CROSSING_NAMESPACE},
        "spec": {
            "limit": float(limit),
            "selector": {"matchLabels": {CROSSING_LABEL: f"c{i}"}},
            "thresholds": [
                {"percent": NOTIFY_PERCENT, "action": "Notify"},
                {"percent": KILL_PERCENT, "action": "Kill"},
            ],
            "enforcement": {"gracePeriodSeconds": 0},
        },
    }


@functools.cache
def price_book() -> PriceBook:
    """The operator's prices without overrides: the bundled catalog."""
    return PriceBook(load_bundled_catalog())


def hourly_rate(pod: Mapping[str, Any], node: Mapping[str, Any]) -> Decimal:
    """USD/hour the operator charges ``pod`` on ``node`` (bodies), with the bundled prices."""
    return pod_rate(PodRecord.from_body(pod), price_book().price(NodeRecord.from_body(node))).total


def crossing_limit(rate: Decimal, seconds: float) -> Decimal:
    """The limit that a pod charged ``rate`` USD/hour reaches ``seconds`` after it started,
    rounded up to the microdollar (so never reached early)."""
    return (rate * Decimal(str(seconds)) / Decimal(3600)).quantize(Decimal("0.000001"), ROUND_CEILING)


def threshold_events(events: Iterable[Mapping[str, Any]]) -> Counter[tuple[str, str, int]]:
    """(namespace, budget, percent) -> how many ``ThresholdCrossed`` Events say it was crossed."""
    found: Counter[tuple[str, str, int]] = Counter()
    for event in events:
        if event.get("reason") != "ThresholdCrossed":
            continue
        match = _THRESHOLD.search(str(event.get("message") or ""))
        involved = event.get("involvedObject") or {}
        if match is not None:
            found[(str(involved.get("namespace")), str(involved.get("name")), round(float(match[1])))] += 1
    return found
