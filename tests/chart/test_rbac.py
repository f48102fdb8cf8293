"""The chart's RBAC grants exactly what the operator uses: no verb missing, none extra.

``costwarden.operator.kube.REQUIRED_PERMISSIONS`` lists every (apiGroup, resource, verb) the
operator's client calls and kopf's own requests need. The chart grants them with a ClusterRole,
except the leader-election Lease: that lives in the release namespace, so its rules are a Role
there (rendered only with ``leaderElection.enabled``), and ``get``/``update`` name the one Lease
the Deployment holds. The webhook-configuration rules come only when kopf manages that
configuration. What the ClusterRole and the Role grant together must equal what is required.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from costwarden.operator import kube
from tests.chart.helm import NAMESPACE, VALUES_ALL, Manifest, find, needs_helm, template

Permission = tuple[str, str, str]

REQUIRED: frozenset[Permission] = frozenset(kube.REQUIRED_PERMISSIONS)
LEASES = frozenset(p for p in REQUIRED if p[:2] == (kube.LEASE_GROUP, "leases"))
MANAGED_WEBHOOK = frozenset(p for p in REQUIRED if p[0] == "admissionregistration.k8s.io")
# Verbs Kubernetes can authorize by object name (create cannot: the name is not known yet).
NAMEABLE_VERBS = {"get", "update", "patch", "delete"}

pytestmark = needs_helm


def roles(manifests: Iterable[Manifest]) -> list[Manifest]:
    return [m for m in manifests if m["kind"] in {"ClusterRole", "Role"}]


def rule_triples(role: Manifest) -> set[Permission]:
    triples: set[Permission] = set()
    for rule in role["rules"]:
        fields = {"apiGroups", "resources", "verbs"} | (
            {"resourceNames"} if role["kind"] == "Role" else set()
        )
        assert set(rule) <= fields, f"unexpected rule fields in {role['kind']}: {rule}"
        if "resourceNames" in rule:
            assert set(rule["verbs"]) <= NAMEABLE_VERBS, f"{rule['verbs']} cannot be limited by name"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert "*" not in (group, resource, verb), f"wildcard in {rule}"
                    triples.add((group, resource, verb))
    return triples


def granted(manifests: Iterable[Manifest]) -> set[Permission]:
    """What the ClusterRole and the Role (if any) grant together."""
    manifests = list(manifests)
    find(manifests, "ClusterRole")
    triples: set[Permission] = set()
    for role in roles(manifests):
        triples |= rule_triples(role)
    return triples


def explain(missing: set[Permission], extra: set[Permission]) -> str:
    return f"missing from the chart: {sorted(missing)}; granted but unused: {sorted(extra)}"


def assert_grants(manifests: list[Manifest], expected: frozenset[Permission]) -> None:
    rules = granted(manifests)
    assert rules == expected, explain(set(expected - rules), set(rules - expected))


def lease_role(manifests: list[Manifest], kind: str = "Role") -> Manifest:
    """The leader-election Role (or its RoleBinding), named as the ClusterRole; with
    operator.namespaces a Role per watched namespace is there too (test_chart_security.py)."""
    return find(manifests, kind, find(manifests, "ClusterRole")["metadata"]["name"])


def lease_flag(manifests: list[Manifest]) -> str:
    args = find(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    (name,) = [a.split("=", 1)[1] for a in args if a.startswith("--lease=")]
    return str(name)


def test_optional_rules_are_ones_the_code_needs() -> None:
    lease_verbs = {verb for group, resource, verb in LEASES}
    assert lease_verbs == {"get", "create", "update"}, (
        "REQUIRED_PERMISSIONS changed what leader election needs: update the chart's Role"
    )
    assert MANAGED_WEBHOOK, "REQUIRED_PERMISSIONS no longer lists the managed webhook configuration"
    assert not [p for p in REQUIRED if p[0] == "kopf.dev"], "kopf peering is gone: no kopf.dev rules"


def test_defaults_grant_required_minus_managed_webhook(default_manifests: list[Manifest]) -> None:
    assert_grants(default_manifests, REQUIRED - MANAGED_WEBHOOK)


def test_managed_webhook_grants_everything_required(managed_manifests: list[Manifest]) -> None:
    assert_grants(managed_manifests, REQUIRED)


@pytest.mark.parametrize("render", ["default_manifests", "all_manifests", "managed_manifests"])
def test_leases_are_granted_in_the_release_namespace_only(
    render: str, request: pytest.FixtureRequest
) -> None:
    manifests = request.getfixturevalue(render)
    assert not {p for p in rule_triples(find(manifests, "ClusterRole")) if p[1] == "leases"}
    role = lease_role(manifests)
    assert role["metadata"]["namespace"] == NAMESPACE
    assert rule_triples(role) == LEASES
    name = lease_flag(manifests)
    for rule in role["rules"]:
        if set(rule["verbs"]) & {"get", "update"}:
            assert rule["resourceNames"] == [name], "get/update only the Lease the Deployment holds"
        else:
            assert rule["verbs"] == ["create"] and "resourceNames" not in rule


def test_lease_name_override_reaches_the_role(all_manifests: list[Manifest]) -> None:
    assert lease_flag(all_manifests) == "costwarden-leader"
    names = [r.get("resourceNames") for r in lease_role(all_manifests)["rules"]]
    assert ["costwarden-leader"] in names


def test_standalone_single_replica_grants_no_leases(helm_home: Path) -> None:
    manifests = template(values={"replicaCount": "1", "leaderElection.enabled": "false"}, home=helm_home)
    assert not [m for m in manifests if m["kind"] in {"Role", "RoleBinding"}]
    assert_grants(manifests, REQUIRED - MANAGED_WEBHOOK - LEASES)


def test_secrets_are_read_only(all_manifests: list[Manifest]) -> None:
    assert {verb for group, resource, verb in granted(all_manifests) if resource == "secrets"} == {"get"}


@pytest.mark.parametrize(
    ("binding_kind", "role_kind"), [("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")]
)
def test_bindings_name_the_deployments_service_account(
    all_manifests: list[Manifest], binding_kind: str, role_kind: str
) -> None:
    binding = lease_role(all_manifests, binding_kind)
    account = find(all_manifests, "ServiceAccount")
    pod = find(all_manifests, "Deployment")["spec"]["template"]["spec"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": role_kind,
        "name": lease_role(all_manifests, role_kind)["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
    ]
    assert pod["serviceAccountName"] == account["metadata"]["name"] == "costwarden-operator"
    if binding_kind == "RoleBinding":
        assert binding["metadata"]["namespace"] == lease_role(all_manifests)["metadata"]["namespace"]


def test_rbac_off_renders_no_roles(helm_home: Path) -> None:
    manifests = template(VALUES_ALL, values={"rbac.create": "false"}, home=helm_home)
    assert not [
        m for m in manifests if m["kind"] in {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    ]


@pytest.mark.parametrize("kind", ["ClusterRole", "Role"])
@pytest.mark.parametrize("verb", ["get", "list", "watch"])
def test_the_comparison_would_catch_a_change(default_manifests: list[Manifest], kind: str, verb: str) -> None:
    extra = {"apiGroups": [""], "resources": ["configmaps"], "verbs": [verb]}
    tampered = [{**m, "rules": [*m["rules"], extra]} if m["kind"] == kind else m for m in default_manifests]
    with pytest.raises(AssertionError, match="granted but unused"):
        assert_grants(tampered, REQUIRED - MANAGED_WEBHOOK)


def test_the_comparison_would_catch_a_missing_lease_rule(default_manifests: list[Manifest]) -> None:
    tampered = [
        {**m, "rules": [r for r in m["rules"] if "create" not in r["verbs"]]} if m["kind"] == "Role" else m
        for m in default_manifests
    ]
    with pytest.raises(
        AssertionError, match=r"missing from the chart: \[\('coordination.k8s.io', 'leases', 'create'\)\]"
    ):
        assert_grants(tampered, REQUIRED - MANAGED_WEBHOOK)
