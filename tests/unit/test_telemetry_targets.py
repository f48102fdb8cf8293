"""Label selectors in kubectl's syntax, and the exporter endpoints picked from pod records."""

from __future__ import annotations

from typing import Any

import pytest

from costwarden.records import PodRecord
from costwarden.telemetry.targets import exporter_targets, parse_selector

LABELS = {"app": "nvidia-dcgm-exporter", "app.kubernetes.io/part-of": "gpu-operator", "tier": "gpu"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("app=nvidia-dcgm-exporter", True),
        ("app==nvidia-dcgm-exporter", True),
        ("app = nvidia-dcgm-exporter , tier=gpu", True),
        ("app=nvidia-dcgm-exporter,tier=cpu", False),
        ("app!=other", True),
        ("missing!=x", True),  # != matches a pod without the key, as in Kubernetes
        ("app in (dcgm-exporter, nvidia-dcgm-exporter)", True),
        ("app notin (nvidia-dcgm-exporter)", False),
        ("missing notin (x)", True),
        ("app.kubernetes.io/part-of", True),
        ("!app.kubernetes.io/part-of", False),
        ("!missing,app", True),
        ("app.kubernetes.io/part-of=gpu-operator,app in (nvidia-dcgm-exporter),!missing", True),
        ("tier=", False),
    ],
)
def test_selectors_match_as_kubernetes_does(selector: str, matches: bool) -> None:
    assert parse_selector(selector).matches(LABELS) is matches


@pytest.mark.parametrize(
    "bad", ["", "   ", "app in ()", "app in (a", "=x", "app=a b", "app=x,,tier=y", "app>3"]
)
def test_malformed_selectors_are_refused_with_a_reason(bad: str) -> None:
    with pytest.raises(ValueError, match=r"label selector"):
        parse_selector(bad)


def pod(name: str, ip: str | None, labels: dict[str, str], phase: str = "Running", **meta: Any) -> PodRecord:
    status: dict[str, Any] = {"phase": phase}
    if ip is not None:
        status["podIP"] = ip
    return PodRecord.from_body(
        {"metadata": {"name": name, "namespace": "gpu-operator", "labels": labels, **meta}, "status": status}
    )


def test_pod_records_keep_the_pod_ip() -> None:
    assert pod("a", "10.0.0.7", {}).pod_ip == "10.0.0.7"
    assert pod("a", None, {}).pod_ip is None
    assert PodRecord.from_body({"status": {"podIP": ""}}).pod_ip is None


def test_exporter_targets_are_the_running_matching_pods_with_an_ip() -> None:
    exporter = {"app": "nvidia-dcgm-exporter"}
    pods = [
        pod("e1", "10.0.0.7", exporter),
        pod("e2", "10.0.1.9", exporter),
        pod("e2-again", "10.0.1.9", exporter),  # a repeat is scraped once
        pod("e3", "fd00::12", exporter),
        pod("pending", None, exporter, phase="Pending"),
        pod("no-ip", None, exporter),
        pod("done", "10.0.0.8", exporter, phase="Succeeded"),
        pod("leaving", "10.0.0.9", exporter, deletionTimestamp="2026-11-26T12:00:00Z"),
        pod("other", "10.0.0.10", {"app": "vllm"}),
    ]
    assert exporter_targets(pods, "app=nvidia-dcgm-exporter", 9400) == [
        "http://10.0.0.7:9400/metrics",
        "http://10.0.1.9:9400/metrics",
        "http://[fd00::12]:9400/metrics",
    ]
    assert exporter_targets(pods, parse_selector("app=vllm"), 8000, "/stats") == [
        "http://10.0.0.10:8000/stats"
    ]


def test_exporter_targets_refuse_a_malformed_selector() -> None:
    with pytest.raises(ValueError):
        exporter_targets([], "app in (", 9400)
