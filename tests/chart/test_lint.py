"""`helm lint` and the values schema: good values pass, bad ones are refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chart.helm import CHART, VALUES_ALL, HelmError, helm, needs_helm, template

pytestmark = needs_helm


@pytest.mark.parametrize(
    "extra",
    [[], ["-f", str(VALUES_ALL)], ["-f", str(VALUES_ALL), "--set", "webhook.managedByOperator=true"]],
    ids=["defaults", "all-options", "managed-webhook"],
)
def test_helm_lint_strict(extra: list[str], helm_home: Path) -> None:
    out = helm("lint", "--strict", str(CHART), *extra, home=helm_home).stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in out


@pytest.mark.parametrize(
    ("key", "value", "complaint"),
    [
        ("operator.enforcement", "maybe", "/operator/enforcement"),
        ("webhook.failurePolicy", "Deny", "/webhook/failurePolicy"),
        ("webhook.timeoutSeconds", "31", "/webhook/timeoutSeconds"),
        ("replicaCount", "0", "/replicaCount"),
        ("operator.interval", "0", "/operator/interval"),
        ("operator.namespaces[0]", "Not_A_Namespace", "/operator/namespaces/0"),
        ("image.pullPolicy", "Sometimes", "/image/pullPolicy"),
        ("priceOverrides.instances.p5\\.48xlarge", "-1", "/priceOverrides/instances/p5.48xlarge"),
        ("replicaCunt", "2", "replicaCunt"),
        ("leaderElection.leaseName", "Not_A_Name", "/leaderElection/leaseName"),
        ("leaderElection.retryPeriod", "0", "/leaderElection/retryPeriod"),
        ("peering.enabled", "true", "peering"),
    ],
)
def test_schema_refuses_bad_values(key: str, value: str, complaint: str, helm_home: Path) -> None:
    with pytest.raises(HelmError) as caught:
        template(values={key: value}, home=helm_home)
    assert complaint in caught.value.stderr


def test_several_replicas_need_leader_election(helm_home: Path) -> None:
    with pytest.raises(HelmError) as caught:
        template(values={"leaderElection.enabled": "false"}, home=helm_home)
    assert "replicaCount > 1 needs leaderElection.enabled" in caught.value.stderr
    single = template(values={"leaderElection.enabled": "false", "replicaCount": "1"}, home=helm_home)
    assert not [m for m in single if m["kind"] in {"Role", "RoleBinding"}]


@pytest.mark.parametrize(
    ("timings", "got"),
    [
        ({"renewDeadline": "15"}, "(got 2, 15, 15)"),
        ({"retryPeriod": "10"}, "(got 10, 10, 15)"),
        ({"leaseDuration": "5"}, "(got 2, 10, 5)"),
    ],
)
def test_lease_timings_need_a_fencing_margin(timings: dict[str, str], got: str, helm_home: Path) -> None:
    values = {f"leaderElection.{key}": value for key, value in timings.items()}
    with pytest.raises(HelmError) as caught:
        template(values=values, home=helm_home)
    assert f"leaderElection needs retryPeriod < renewDeadline < leaseDuration {got}" in caught.value.stderr
    standalone = {**values, "leaderElection.enabled": "false", "replicaCount": "1"}
    assert template(values=standalone, home=helm_home), "unused timings are not checked"
