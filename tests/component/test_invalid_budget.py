"""A CostBudget that slipped past validation (an old, lax CRD) is marked Invalid and never acts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.component.conftest import load_crd
from tests.component.test_operator_spend import NS, budget, events_with, seed_skypilot_cluster, status_of


@pytest.fixture
def crd() -> dict[str, Any]:
    """The CRD as an older install might have it: spec not validated at all."""
    lax = load_crd()
    schema = lax["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["properties"]["spec"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return lax


def test_invalid_spec_gets_phase_invalid_naming_the_fields_and_never_fires(cluster, clock, start_operator):
    seed_skypilot_cluster(cluster, workers=1)
    bad = budget(limit=-5)
    bad["spec"]["thresholds"] = [{"percent": 80, "action": "Notify"}, {"percent": 50, "action": "Kill"}]
    cluster.create(bad)
    start_operator()

    cluster.wait_for(lambda: status_of(cluster).get("phase") == "Invalid", timeout=20)
    ready = next(c for c in status_of(cluster)["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert "spec.limit" in ready["message"] and "spec.thresholds" in ready["message"]
    cluster.wait_for(lambda: len(events_with(cluster, "InvalidSpec")) == 1, timeout=20)

    clock.advance(timedelta(hours=100))  # far past every threshold, were the spec valid
    cluster.wait_for(lambda: status_of(cluster).get("lastEvaluated", "").startswith("2026-11-30"), timeout=20)
    status = status_of(cluster)
    assert status["phase"] == "Invalid"
    assert status.get("actions", []) == []
    assert events_with(cluster, "ThresholdCrossed") == []
    assert len(events_with(cluster, "InvalidSpec")) == 1

    # Fixing the spec brings the budget back.
    cluster.patch(
        "costwarden.dev/v1alpha1", "costbudgets", "llama-sweep", {"spec": {"limit": 100_000}}, namespace=NS
    )
    bad_thresholds = {"spec": {"thresholds": [{"percent": 50, "action": "Notify"}]}}
    cluster.patch("costwarden.dev/v1alpha1", "costbudgets", "llama-sweep", bad_thresholds, namespace=NS)
    cluster.wait_for(lambda: status_of(cluster).get("phase") == "Ok", timeout=20)
