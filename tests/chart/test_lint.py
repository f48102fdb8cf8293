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
    ],
)
def test_schema_refuses_bad_values(key: str, value: str, complaint: str, helm_home: Path) -> None:
    with pytest.raises(HelmError) as caught:
        template(values={key: value}, home=helm_home)
    assert complaint in caught.value.stderr


def test_several_replicas_need_peering(helm_home: Path) -> None:
    with pytest.raises(HelmError) as caught:
        template(values={"peering.enabled": "false"}, home=helm_home)
    assert "replicaCount > 1 needs peering.enabled" in caught.value.stderr
    single = template(values={"peering.enabled": "false", "replicaCount": "1"}, home=helm_home)
    assert not [m for m in single if m["kind"] in {"ClusterKopfPeering", "KopfPeering"}]
