"""The chart's security settings (docs/security.md):

- who may reach outside Kubernetes: ``operator.outsideNamespaces`` is required with cloud VMs
  or Slurm jobs, renders ``--outside-namespace`` as the operator parses it, and the optional
  ValidatingAdmissionPolicy refuses ``spec.slurm`` elsewhere (its CEL evaluated with cel-python);
- RBAC on namespaced objects (pods, workloads, Secrets, budgets, Events) is cluster-wide only when
  the operator watches the whole cluster, else in a Role per watched namespace; Secrets are only
  ever ``get``; nothing that escalates is granted;
- protected namespaces reach the operator and the webhook;
- the webhook serves the certificate the chart generates, TLS only, verified by the caBundle the
  chart gives the API server (the probes of tests/component/test_security_webhook.py);
- who may call the webhook: ``webhook.clientCA`` mounts the CA and passes ``--webhook-client-ca``
  (and ``--webhook-client-name``) as the operator parses them; ``networkPolicy`` renders only when
  enabled, admitting the webhook and metrics ports from their peers only, and refuses to render
  without the webhook's peers.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from celpy import celtypes

from costwarden.cli import build_parser, operator_settings
from costwarden.operator import kube
from costwarden.operator.settings import OperatorSettings
from tests.chart.helm import (
    CHART,
    NAMESPACE,
    VALUES_ALL,
    HelmError,
    Manifest,
    find,
    needs_helm,
    require_helm,
    template,
)
from tests.chart.test_rbac import rule_triples
from tests.component.conftest import free_port
from tests.component.test_security_webhook import assert_tls_only, probe

pytestmark = needs_helm

Render = Callable[[dict[str, Any]], list[Manifest]]
Permission = tuple[str, str, str]
CLUSTER_SCOPED = {"nodes", "namespaces", "customresourcedefinitions", "validatingwebhookconfigurations"}
REQUIRED = frozenset(kube.REQUIRED_PERMISSIONS)
NAMESPACED = frozenset(p for p in REQUIRED if p[1].split("/")[0] not in CLUSTER_SCOPED | {"leases"})
SLURM = {"slurm": {"clusters": ["hpc"]}}
CLOUDS = {"clouds": {"scopes": ["gcp:ml-research"]}}


@pytest.fixture(scope="module")
def render(tmp_path_factory: pytest.TempPathFactory, helm_home: Path) -> Render:
    require_helm()
    folder = tmp_path_factory.mktemp("security-values")
    numbers = itertools.count()

    def render(values: dict[str, Any]) -> list[Manifest]:
        path = folder / f"values-{next(numbers)}.yaml"
        path.write_text(yaml.safe_dump(values))
        return template(path, home=helm_home)

    return render


def settings_of(manifests: list[Manifest]) -> OperatorSettings:
    args = find(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    return operator_settings(build_parser(load=[]).parse_args(["run", *[str(a) for a in args]]))


# --- who may reach outside Kubernetes ------------------------------------------------------------


@pytest.mark.parametrize("values", [SLURM, CLOUDS, {**SLURM, **CLOUDS}], ids=["slurm", "clouds", "both"])
def test_vms_or_jobs_need_an_explicit_choice_of_namespaces(render: Render, values: dict[str, Any]) -> None:
    with pytest.raises(HelmError) as refused:
        render(values)
    assert "need operator.outsideNamespaces" in refused.value.stderr
    assert 'give ["*"] to allow every namespace' in refused.value.stderr


@pytest.mark.parametrize(
    ("outside", "expected"),
    [(["research", "inference"], ("inference", "research")), (["*"], ("*",))],
)
def test_outside_namespaces_reach_the_operator(
    render: Render, outside: list[str], expected: tuple[str, ...]
) -> None:
    settings = settings_of(render({**SLURM, **CLOUDS, "operator": {"outsideNamespaces": outside}}))
    assert settings.outside_namespaces == expected
    assert (settings.outside_warning() is not None) == (expected == ("*",))


def test_without_vms_or_jobs_nothing_is_required_or_rendered(default_manifests: list[Manifest]) -> None:
    settings = settings_of(default_manifests)
    assert settings.outside_namespaces == ("*",) and settings.outside_warning() is None
    assert not [m for m in default_manifests if m["kind"].startswith("ValidatingAdmissionPolicy")]


@pytest.mark.parametrize(
    ("name", "accepted"),
    [
        ("research", True),
        ("*", True),
        ("team-a1", True),
        ("Team", False),
        ("-a", False),
        ("a*", False),
        ("", False),
    ],
)
def test_the_schema_and_the_flag_accept_the_same_names(name: str, accepted: bool) -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    values["operator"]["outsideNamespaces"] = [name]
    assert jsonschema.Draft7Validator(schema).is_valid(values) is accepted
    try:
        build_parser(load=[]).parse_args(["run", "--outside-namespace", name])
    except SystemExit:
        parsed = False
    else:
        parsed = True
    assert parsed is accepted


# --- the ValidatingAdmissionPolicy ---------------------------------------------------------------

POLICY = {**SLURM, "operator": {"outsideNamespaces": ["research"], "outsideNamespacesPolicy": True}}


@pytest.fixture(scope="module")
def policy_manifests(render: Render) -> list[Manifest]:
    return render(POLICY)


def test_the_policy_is_rendered_only_when_asked(policy_manifests: list[Manifest]) -> None:
    policy = find(policy_manifests, "ValidatingAdmissionPolicy")
    binding = find(policy_manifests, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    assert policy["spec"]["failurePolicy"] == "Fail"
    assert policy["spec"]["matchConstraints"]["resourceRules"] == [
        {
            "apiGroups": ["costwarden.dev"],
            "apiVersions": ["*"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["costbudgets"],
        }
    ]
    for manifest in (policy, binding):  # its API is v1 from Kubernetes 1.30 (values.yaml says so)
        kubernetes_validate.validate(manifest, kubernetes_validate.latest_version(), strict=True)


@pytest.mark.parametrize(
    "operator",
    [{"outsideNamespaces": ["*"], "outsideNamespacesPolicy": True}, {"outsideNamespacesPolicy": True}],
    ids=["star", "none"],
)
def test_the_policy_needs_named_namespaces(render: Render, operator: dict[str, Any]) -> None:
    with pytest.raises(HelmError) as refused:
        render({"operator": operator})
    assert "operator.outsideNamespacesPolicy needs operator.outsideNamespaces naming namespaces" in (
        refused.value.stderr
    )


def join(items: Any, separator: Any) -> celtypes.StringType:  # Kubernetes' CEL strings library
    return celtypes.StringType(str(separator).join(str(item) for item in items))


def admit(
    policy: Manifest, operation: str, namespace: str, spec: dict[str, Any], old: dict[str, Any] | None
) -> str | None:
    """The policy's verdict as the API server reaches it: None (admitted) or its message."""
    env = celpy.Environment()

    def run(expression: str, activation: dict[str, Any]) -> Any:
        return env.program(env.compile(expression), functions={"join": join}).evaluate(activation)

    body = {"apiVersion": "costwarden.dev/v1alpha1", "kind": "CostBudget", "spec": spec}
    activation: dict[str, Any] = {
        "object": celpy.json_to_cel(body),
        "oldObject": celpy.json_to_cel(None if old is None else {**body, "spec": old}),
        "request": celpy.json_to_cel({"operation": operation, "namespace": namespace}),
    }
    variables = celtypes.MapType()
    for variable in policy["spec"]["variables"]:  # in order: each may use the ones before
        value = run(variable["expression"], {**activation, "variables": variables})
        variables = celtypes.MapType({**variables, celtypes.StringType(variable["name"]): value})
    activation["variables"] = variables
    for validation in policy["spec"]["validations"]:
        if not run(validation["expression"], activation):
            return str(run(validation["messageExpression"], activation))
    return None


PLAIN = {"limit": 10}
WITH_SLURM = {"limit": 10, "slurm": {"user": "alice"}}


@pytest.mark.parametrize(
    ("operation", "namespace", "spec", "old", "admitted"),
    [
        ("CREATE", "research", WITH_SLURM, None, True),
        ("CREATE", "sandbox", WITH_SLURM, None, False),
        ("CREATE", "sandbox", PLAIN, None, True),
        ("CREATE", "sandbox", {"limit": 10, "skypilotCluster": "llama"}, None, True),
        ("UPDATE", "sandbox", {**WITH_SLURM, "limit": 20}, WITH_SLURM, True),  # budgets already there
        ("UPDATE", "sandbox", WITH_SLURM, PLAIN, False),
        ("UPDATE", "sandbox", {"limit": 10, "slurm": {}}, WITH_SLURM, False),
        ("UPDATE", "research", {"limit": 10, "slurm": {}}, WITH_SLURM, True),
    ],
)
def test_the_policy_refuses_spec_slurm_outside_the_allowed_namespaces(
    policy_manifests: list[Manifest],
    operation: str,
    namespace: str,
    spec: dict[str, Any],
    old: dict[str, Any] | None,
    admitted: bool,
) -> None:
    verdict = admit(find(policy_manifests, "ValidatingAdmissionPolicy"), operation, namespace, spec, old)
    if admitted:
        assert verdict is None
    else:
        assert verdict == (
            f"CostBudgets in namespace {namespace} may not set spec.slurm: only namespaces research may "
            "cover Slurm jobs (the chart value operator.outsideNamespaces)"
        )


# --- RBAC: namespaced where it can be; Secrets get only ------------------------------------------


def role_grants(manifests: list[Manifest]) -> dict[str, set[Permission]]:
    """What each namespace's Roles grant (the ClusterRole under "*")."""
    grants: dict[str, set[Permission]] = {"*": rule_triples(find(manifests, "ClusterRole"))}
    for role in (m for m in manifests if m["kind"] == "Role"):
        grants.setdefault(role["metadata"]["namespace"], set()).update(rule_triples(role))
    return grants


def test_watching_the_whole_cluster_grants_namespaced_rules_cluster_wide(
    default_manifests: list[Manifest],
) -> None:
    grants = role_grants(default_manifests)
    assert grants["*"] >= NAMESPACED
    assert set(grants) == {"*", NAMESPACE}, "only the Lease's Role besides"


def test_watching_some_namespaces_grants_namespaced_rules_only_there(all_manifests: list[Manifest]) -> None:
    watched = yaml.safe_load(VALUES_ALL.read_text())["operator"]["namespaces"]
    grants = role_grants(all_manifests)
    assert {resource for _, resource, _ in grants["*"]} <= CLUSTER_SCOPED, (
        "the ClusterRole: cluster-scoped kinds only"
    )
    for namespace in watched:
        assert grants[namespace] == NAMESPACED, namespace
    assert set(grants) == {"*", NAMESPACE, *watched}
    assert not {p for p in grants[NAMESPACE] if p[1] == "secrets"}, (
        "the release namespace's Secrets are mounted"
    )
    account = find(all_manifests, "ServiceAccount")["metadata"]["name"]
    roles = {
        (m["metadata"]["namespace"], m["metadata"]["name"]) for m in all_manifests if m["kind"] == "Role"
    }
    bindings = [m for m in all_manifests if m["kind"] == "RoleBinding"]
    assert {(b["metadata"]["namespace"], b["roleRef"]["name"]) for b in bindings} == roles
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}]


@pytest.mark.parametrize("render_name", ["default_manifests", "all_manifests", "managed_manifests"])
def test_secrets_are_read_one_by_name_never_listed_and_cluster_wide_only_when_needed(
    render_name: str, request: pytest.FixtureRequest
) -> None:
    manifests: list[Manifest] = request.getfixturevalue(render_name)
    watched = bool(settings_of(manifests).namespaces)
    grants = role_grants(manifests)
    secret_verbs = {verb for perms in grants.values() for _, resource, verb in perms if resource == "secrets"}
    assert secret_verbs == {"get"}
    assert (("", "secrets", "get") in grants["*"]) is not watched


DANGEROUS: set[Permission] = {
    ("", "pods", "create"),
    ("", "pods/exec", "create"),
    ("", "pods/attach", "create"),
    ("", "pods/portforward", "create"),
    ("", "nodes/proxy", "get"),
    ("", "serviceaccounts/token", "create"),
    ("", "secrets", "list"),
    ("", "secrets", "watch"),
    ("", "configmaps", "get"),
    ("rbac.authorization.k8s.io", "clusterroles", "escalate"),
    ("rbac.authorization.k8s.io", "clusterroles", "bind"),
    ("rbac.authorization.k8s.io", "roles", "bind"),
    ("", "users", "impersonate"),
    ("", "serviceaccounts", "impersonate"),
    ("apps", "deployments", "create"),
    ("batch", "jobs", "create"),
    ("costwarden.dev", "costbudgets", "create"),
}


@pytest.mark.parametrize("render_name", ["default_manifests", "all_manifests", "managed_manifests"])
def test_nothing_that_escalates_is_granted(render_name: str, request: pytest.FixtureRequest) -> None:
    """The operator can stop workloads, never start one, run code in one, or mint credentials."""
    manifests: list[Manifest] = request.getfixturevalue(render_name)
    granted = set().union(*role_grants(manifests).values())
    assert granted & DANGEROUS == set()
    assert not [m for m in manifests if m["kind"] == "ClusterRole" and m.get("aggregationRule")]
    labels = [m["metadata"].get("labels", {}) for m in manifests if m["kind"] == "ClusterRole"]
    assert not [
        k for label in labels for k in label if k.startswith("rbac.authorization.k8s.io/aggregate-to")
    ]


# --- protected namespaces ------------------------------------------------------------------------


def test_protected_namespaces_reach_the_operator_and_the_webhook(all_manifests: list[Manifest]) -> None:
    configured = yaml.safe_load(VALUES_ALL.read_text())["operator"]["protectedNamespaces"]
    settings = settings_of(all_manifests)
    assert {"kube-system", NAMESPACE, *configured} <= set(settings.protected_namespaces)
    (hook,) = find(all_manifests, "ValidatingWebhookConfiguration")["webhooks"]
    excluded = next(e for e in hook["namespaceSelector"]["matchExpressions"] if e["operator"] == "NotIn")
    assert set(excluded["values"]) == {"kube-system", NAMESPACE, *configured}


# --- the webhook: the chart's certificate, TLS only -----------------------------------------------


async def test_the_webhook_serves_the_charts_certificate_over_tls_only(
    default_manifests: list[Manifest], tmp_path: Path
) -> None:
    secret = find(default_manifests, "Secret")
    (hook,) = find(default_manifests, "ValidatingWebhookConfiguration")["webhooks"]
    folder = tmp_path / "webhook"  # as the Deployment mounts the Secret
    folder.mkdir()
    for key in ("ca.crt", "tls.crt", "tls.key"):
        (folder / key).write_bytes(base64.b64decode(secret["data"][key]))
    service = hook["clientConfig"]["service"]
    host = f"{service['name']}.{service['namespace']}.svc"
    settings = OperatorSettings(
        webhook_port=free_port(), webhook_addr="127.0.0.1", webhook_host=host, webhook_cert_dir=folder
    )
    found = await probe(settings, host)
    assert found.client_config["caBundle"] == hook["clientConfig"]["caBundle"]
    assert_tls_only(found)


# --- who may call the webhook: client CA and NetworkPolicy ----------------------------------------

PEERS = [{"ipBlock": {"cidr": "10.0.0.10/32"}}]


def pod_spec(manifests: list[Manifest]) -> dict[str, Any]:
    return dict(find(manifests, "Deployment")["spec"]["template"]["spec"])


def container_ports(manifests: list[Manifest]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in pod_spec(manifests)["containers"][0]["ports"]}


def test_by_default_any_caller_no_policy_no_client_ca(default_manifests: list[Manifest]) -> None:
    assert not [m for m in default_manifests if m["kind"] == "NetworkPolicy"]
    settings = settings_of(default_manifests)
    assert settings.webhook_client_ca is None and settings.webhook_client_names == ()
    assert "webhook-client-ca" not in {v["name"] for v in pod_spec(default_manifests)["volumes"]}


def test_the_client_ca_is_mounted_where_the_flag_points(all_manifests: list[Manifest]) -> None:
    client = yaml.safe_load(VALUES_ALL.read_text())["webhook"]["clientCA"]
    settings = settings_of(all_manifests)
    assert settings.webhook_client_ca is not None
    assert settings.webhook_client_names == tuple(client["allowedNames"])
    pod = pod_spec(all_manifests)
    mounts = pod["containers"][0]["volumeMounts"]
    (mount,) = [m for m in mounts if Path(m["mountPath"]) == settings.webhook_client_ca.parent]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == client["secretName"]
    assert volume["secret"]["items"] == [{"key": client["key"], "path": settings.webhook_client_ca.name}]


@pytest.mark.parametrize(
    ("webhook", "message"),
    [
        (
            {"clientCA": {"secretName": "", "key": "ca.crt", "allowedNames": ["x"]}},
            "needs webhook.clientCA.secretName",
        ),
        (
            {"enabled": False, "clientCA": {"secretName": "ca", "key": "ca.crt"}},
            "webhook.clientCA needs webhook.enabled",
        ),
    ],
)
def test_client_ca_values_that_cannot_work_are_refused(
    render: Render, webhook: dict[str, Any], message: str
) -> None:
    with pytest.raises(HelmError) as refused:
        render({"webhook": webhook})
    assert message in refused.value.stderr


def test_the_network_policy_admits_each_port_from_its_peers_only(all_manifests: list[Manifest]) -> None:
    values = yaml.safe_load(VALUES_ALL.read_text())["networkPolicy"]
    policy = find(all_manifests, "NetworkPolicy")["spec"]
    template = find(all_manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= template.items()
    agent = find(all_manifests, "DaemonSet")["spec"]["template"]["metadata"]["labels"]
    assert not policy["podSelector"]["matchLabels"].items() <= agent.items(), (
        "the agents are not the operator"
    )
    ports = container_ports(all_manifests)
    assert policy["ingress"] == [
        {"from": values["webhook"]["allowedFrom"], "ports": [{"protocol": "TCP", "port": ports["webhook"]}]},
        {"from": values["metrics"]["allowedFrom"], "ports": [{"protocol": "TCP", "port": ports["metrics"]}]},
    ]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["egress"] == values["egress"]


def test_without_egress_rules_egress_is_not_restricted(render: Render) -> None:
    manifests = render({"networkPolicy": {"enabled": True, "webhook": {"allowedFrom": PEERS}}})
    policy = find(manifests, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress"] and "egress" not in policy
    port = container_ports(manifests)["webhook"]
    assert policy["ingress"] == [{"from": PEERS, "ports": [{"protocol": "TCP", "port": port}]}]


def test_without_the_webhook_and_scrapers_nothing_may_connect(render: Render) -> None:
    manifests = render({"webhook": {"enabled": False}, "networkPolicy": {"enabled": True}})
    assert find(manifests, "NetworkPolicy")["spec"]["ingress"] == []


def test_a_policy_without_the_webhooks_peers_is_refused(render: Render) -> None:
    with pytest.raises(HelmError) as refused:
        render({"networkPolicy": {"enabled": True, "metrics": {"allowedFrom": PEERS}}})
    assert "needs networkPolicy.webhook.allowedFrom" in refused.value.stderr


def test_the_schema_refuses_what_is_not_a_peer(render: Render) -> None:
    with pytest.raises(HelmError) as refused:
        render(
            {
                "networkPolicy": {
                    "enabled": True,
                    "webhook": {"allowedFrom": [{"ipblock": {"cidr": "10.0.0.0/8"}}]},
                }
            }
        )
    assert "ipblock" in refused.value.stderr
