"""The chart's ClusterRole grants exactly what the operator uses: no verb missing, none extra.

``costwarden.operator.kube.REQUIRED_PERMISSIONS`` lists every (apiGroup, resource, verb) the
operator's client calls and kopf's own requests need. The chart grants kopf's peering rules only
with peering on, and the webhook-configuration rules only when kopf manages that configuration.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from costwarden.operator import kube
from tests.chart.helm import VALUES_ALL, Manifest, find, needs_helm, template

Permission = tuple[str, str, str]

REQUIRED: frozenset[Permission] = frozenset(kube.REQUIRED_PERMISSIONS)
PEERING = frozenset(p for p in REQUIRED if p[0] == "kopf.dev")
MANAGED_WEBHOOK = frozenset(p for p in REQUIRED if p[0] == "admissionregistration.k8s.io")

pytestmark = needs_helm


def granted(manifests: Iterable[Manifest]) -> set[Permission]:
    role = find(manifests, "ClusterRole")
    triples: set[Permission] = set()
    for rule in role["rules"]:
        assert set(rule) <= {"apiGroups", "resources", "verbs"}, f"unexpected rule fields in {rule}"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert "*" not in (group, resource, verb), f"wildcard in {rule}"
                    triples.add((group, resource, verb))
    return triples


def explain(missing: set[Permission], extra: set[Permission]) -> str:
    return f"missing from the chart: {sorted(missing)}; granted but unused: {sorted(extra)}"


def assert_grants(manifests: list[Manifest], expected: frozenset[Permission]) -> None:
    rules = granted(manifests)
    assert rules == expected, explain(set(expected - rules), set(rules - expected))


def test_optional_rules_are_ones_the_code_needs() -> None:
    assert PEERING, "REQUIRED_PERMISSIONS no longer lists kopf's peering: drop the chart's peering rules"
    assert MANAGED_WEBHOOK, "REQUIRED_PERMISSIONS no longer lists the managed webhook configuration"


def test_defaults_grant_required_minus_managed_webhook(default_manifests: list[Manifest]) -> None:
    assert_grants(default_manifests, REQUIRED - MANAGED_WEBHOOK)


def test_managed_webhook_grants_everything_required(managed_manifests: list[Manifest]) -> None:
    assert_grants(managed_manifests, REQUIRED)


def test_standalone_single_replica_grants_no_peering(helm_home: Path) -> None:
    manifests = template(values={"replicaCount": "1", "peering.enabled": "false"}, home=helm_home)
    assert_grants(manifests, REQUIRED - MANAGED_WEBHOOK - PEERING)


def test_secrets_are_read_only(all_manifests: list[Manifest]) -> None:
    assert {verb for group, resource, verb in granted(all_manifests) if resource == "secrets"} == {"get"}


def test_binding_names_the_deployments_service_account(all_manifests: list[Manifest]) -> None:
    binding = find(all_manifests, "ClusterRoleBinding")
    account = find(all_manifests, "ServiceAccount")
    pod = find(all_manifests, "Deployment")["spec"]["template"]["spec"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": find(all_manifests, "ClusterRole")["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "costwarden"}
    ]
    assert pod["serviceAccountName"] == account["metadata"]["name"] == "costwarden-operator"


def test_rbac_off_renders_no_roles(helm_home: Path) -> None:
    manifests = template(VALUES_ALL, values={"rbac.create": "false"}, home=helm_home)
    assert not [m for m in manifests if m["kind"] in {"ClusterRole", "ClusterRoleBinding"}]


@pytest.mark.parametrize("verb", ["get", "list", "watch"])
def test_the_comparison_would_catch_a_change(default_manifests: list[Manifest], verb: str) -> None:
    role = find(default_manifests, "ClusterRole")
    tampered = [
        {**role, "rules": [*role["rules"], {"apiGroups": [""], "resources": ["configmaps"], "verbs": [verb]}]}
    ]
    with pytest.raises(AssertionError, match="granted but unused"):
        assert_grants(tampered, REQUIRED - MANAGED_WEBHOOK)
