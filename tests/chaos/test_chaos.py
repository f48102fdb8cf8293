"""The fast slice of the chaos scenario (tests/chaos/scenario.py): the fault-free run and the
combined profile (every fault of the stand-in's fault layer at once, and every notification
receiver failing its first delivery), compared. ``make chaos``
runs every profile (bench/chaos.py); this slice runs in ``make test``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.chaos import scenario


def test_the_operator_converges_under_combined_faults_as_without(tmp_path: Path) -> None:
    (tmp_path / "free").mkdir()
    (tmp_path / "faults").mkdir()
    baseline = scenario.run(scenario.PROFILES["fault-free"], tmp_path / "free")
    assert baseline.converged, baseline.unconverged
    assert baseline.tracebacks == [] and baseline.operator_error is None
    # what the fault-free run reaches: every threshold acted on once, every notification sent once
    assert {key: str(spend) for key, spend in baseline.spend.items()} == {
        "team-a/llama": "495.36",
        "team-b/serve": "483.95",
        "team-c/evals": "161.32",
        "team-c/research": "282.3",
    }
    assert baseline.actions == {
        "team-a/llama": {
            ("threshold/50/lifetime", "Notify", "Done"),
            ("threshold/80/lifetime", "Notify", "Done"),
            ("threshold/100/lifetime", "Kill", "Done"),
        },
        "team-b/serve": {
            ("threshold/50/lifetime", "Notify", "Done"),
            ("threshold/100/lifetime", "Scale", "Done"),
        },
        "team-c/evals": {("threshold/100/lifetime", "Suspend", "Done")},
        "team-c/research": set(),
    }
    # 6 notifications, each acknowledged once on each of the three channels
    channels = Counter(key.split(":", 1)[0] for key in baseline.deliveries)
    assert channels == {"webhook": 6, "slack": 6, "pagerduty": 6}
    assert set(baseline.deliveries.values()) == {1}

    faulted = scenario.run(scenario.PROFILES[scenario.FAST], tmp_path / "faults")
    assert scenario.compare(baseline, faulted) == []
    injected = faulted.faults
    assert injected["requests"] > 100
    assert {"error", "throttle", "delay", "conflict", "cut_watch"} <= set(injected)  # each kind hit
    assert faulted.forced >= 18  # each channel's first delivery of each notification failed
