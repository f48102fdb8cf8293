"""What `helm template` renders: objects, hardening, the CRD, config, webhook and leader-election wiring."""

from __future__ import annotations

import base64
import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from costwarden.pricing import load_overrides_text
from tests.chart.helm import CHART, NAMESPACE, ROOT, VALUES_ALL, Manifest, find, kinds, needs_helm, template

pytestmark = needs_helm

CRD_SOURCE = ROOT / "crds" / "costbudget.yaml"
CRD_COPY = CHART / "files" / "crds" / "costbudget.yaml"


def container(manifests: list[Manifest]) -> dict[str, Any]:
    pod = find(manifests, "Deployment")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["operator"]
    return dict(pod["containers"][0])


def args_of(manifests: list[Manifest]) -> list[str]:
    return list(container(manifests)["args"])


def flag(args: list[str], name: str) -> list[str]:
    return [a.split("=", 1)[1] for a in args if a.startswith(f"{name}=")]


def test_defaults_render_the_operator_and_its_guard(default_manifests: list[Manifest]) -> None:
    assert kinds(default_manifests) == sorted(
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "CustomResourceDefinition",
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Secret",
            "Service",
            "ServiceAccount",
            "ValidatingWebhookConfiguration",
        ]
    )
    deployment = find(default_manifests, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["metadata"]["namespace"] == NAMESPACE
    assert flag(args_of(default_manifests), "--lease") == ["cw-costwarden"]
    assert container(default_manifests)["image"] == "costwarden:0.1.0"


def test_every_option_renders_its_objects(all_manifests: list[Manifest]) -> None:
    assert kinds(all_manifests) == sorted(
        [
            "Certificate",
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "ConfigMap",
            "CustomResourceDefinition",
            "DaemonSet",
            "Deployment",
            "Issuer",
            "NetworkPolicy",
            "PersistentVolumeClaim",
            "PodDisruptionBudget",
            "PrometheusRule",
            *["Role", "RoleBinding"] * 3,  # the Lease's, and one per namespace of operator.namespaces
            "Service",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
            "ValidatingWebhookConfiguration",
        ]
    )


@pytest.mark.parametrize("render", ["default_manifests", "all_manifests"])
def test_pods_are_hardened(render: str, request: pytest.FixtureRequest) -> None:
    manifests = request.getfixturevalue(render)
    pod = find(manifests, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    ctx = container(manifests)["securityContext"]
    assert ctx["runAsNonRoot"] is True
    assert ctx["runAsUser"] == 65532
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["privileged"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "add" not in ctx["capabilities"]
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    mounts = {m["mountPath"]: m for m in container(manifests)["volumeMounts"]}
    assert "/tmp" in mounts, "a read-only root filesystem needs a writable /tmp"
    # Writable: /tmp and the billing store's directory (tests/chart/test_chart_billing.py).
    writable = {"/tmp", *(str(Path(p).parent) for p in flag(args_of(manifests), "--billing-store"))}
    assert all(m.get("readOnly") for path, m in mounts.items() if path not in writable)


@pytest.mark.parametrize(
    ("render", "lease", "timings"),
    [
        ("default_manifests", "cw-costwarden", ["15", "10", "2"]),
        ("all_manifests", "costwarden-leader", ["30", "20", "2.5"]),
    ],
)
def test_leader_election_names_the_lease_and_the_pod(
    render: str, lease: str, timings: list[str], request: pytest.FixtureRequest
) -> None:
    manifests = request.getfixturevalue(render)
    args = args_of(manifests)
    assert flag(args, "--lease") == [lease]
    assert flag(args, "--lease-namespace") == ["$(POD_NAMESPACE)"]
    assert flag(args, "--lease-identity") == ["$(POD_NAME)"]
    assert [
        *flag(args, "--lease-duration"),
        *flag(args, "--renew-deadline"),
        *flag(args, "--retry-period"),
    ] == timings
    env = {e["name"]: e for e in container(manifests)["env"]}
    assert env["POD_NAME"] == {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    assert env["POD_NAMESPACE"] == {
        "name": "POD_NAMESPACE",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
    }
    assert "POD_ID" not in env, "kopf peering's identity variable is gone"
    names = [e["name"] for e in container(manifests)["env"]]
    assert names[:2] == ["POD_NAME", "POD_NAMESPACE"], "extraEnv follows"
    if render == "all_manifests":
        assert env["TZ"]["value"] == "UTC"


def test_standalone_has_no_lease(helm_home: Path) -> None:
    manifests = template(values={"replicaCount": "1", "leaderElection.enabled": "false"}, home=helm_home)
    assert not [a for a in args_of(manifests) if a.startswith("--lease")]
    assert not {"Role", "RoleBinding"} & set(kinds(manifests))


def test_probes_and_resources(default_manifests: list[Manifest]) -> None:
    c = container(default_manifests)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert flag(c["args"], "--metrics-port") == [str(ports["metrics"])]
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    assert c["resources"]["requests"]["memory"] and c["resources"]["limits"]["memory"]


def test_values_reach_the_command_line(all_manifests: list[Manifest]) -> None:
    args = args_of(all_manifests)
    assert flag(args, "--namespace") == ["research", "inference"]
    assert flag(args, "--enforcement") == ["dry-run"]
    assert flag(args, "--interval") == ["5"]
    assert flag(args, "--accrual-interval") == ["2.5"]
    assert flag(args, "--metrics-port") == ["9100"]
    assert flag(args, "--lease") == ["costwarden-leader"]
    assert flag(args, "--protected-namespace") == ["kube-system", "monitoring"]
    assert flag(args, "--operator-namespace") == ["costwarden"]
    assert flag(args, "--max-destructive-per-minute") == ["10"]
    assert "--dry-run" in args and "--verbose" in args


def test_price_overrides_are_mounted_where_the_flag_points(all_manifests: list[Manifest]) -> None:
    (path,) = flag(args_of(all_manifests), "--price-overrides")
    mount = next(m for m in container(all_manifests)["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
    pod = find(all_manifests, "Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    configmap = find(all_manifests, "ConfigMap", volume["configMap"]["name"])
    text = configmap["data"][Path(path).name]
    overrides = load_overrides_text(text, path)
    assert overrides.instances, "the operator's own loader reads the rendered file"
    assert Decimal("40.00") in overrides.instances.values()


def test_no_overrides_no_flag(default_manifests: list[Manifest]) -> None:
    assert flag(args_of(default_manifests), "--price-overrides") == []


def test_config_checksum_rolls_the_pods(helm_home: Path, default_manifests: list[Manifest]) -> None:
    def checksum(manifests: list[Manifest]) -> str:
        return str(
            find(manifests, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        )

    changed = template(values={"priceOverrides.instances.g5\\.xlarge": "1.2"}, home=helm_home)
    assert checksum(changed) != checksum(default_manifests)
    assert checksum(template(home=helm_home)) == checksum(default_manifests)


def test_chart_crd_copy_is_byte_identical_to_crds_folder() -> None:
    assert CRD_COPY.read_bytes() == CRD_SOURCE.read_bytes(), "run `make chart-docs` to sync the chart's copy"


def test_rendered_crd_is_the_source_crd_plus_release_metadata(default_manifests: list[Manifest]) -> None:
    rendered = copy.deepcopy(find(default_manifests, "CustomResourceDefinition"))
    source = yaml.safe_load(CRD_SOURCE.read_text())
    assert rendered["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert source["metadata"]["labels"].items() <= rendered["metadata"]["labels"].items()
    assert rendered["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    for doc in (rendered, source):
        doc["metadata"].pop("labels")
        doc["metadata"].pop("annotations", None)
    assert rendered == source


def test_crd_switches(helm_home: Path) -> None:
    unkept = find(template(values={"crds.keep": "false"}, home=helm_home), "CustomResourceDefinition")
    assert "helm.sh/resource-policy" not in unkept["metadata"].get("annotations", {})
    off = template(values={"crds.enabled": "false"}, home=helm_home)
    assert "CustomResourceDefinition" not in kinds(off)


def test_generated_webhook_certificate_serves_the_service(default_manifests: list[Manifest]) -> None:
    webhook = find(default_manifests, "ValidatingWebhookConfiguration")
    (hook,) = webhook["webhooks"]
    service = find(default_manifests, "Service")
    client = hook["clientConfig"]
    assert client["service"]["name"] == service["metadata"]["name"]
    assert client["service"]["namespace"] == NAMESPACE
    assert client["service"]["port"] in {p["port"] for p in service["spec"]["ports"]}
    assert hook["failurePolicy"] == "Ignore"
    assert hook["rules"] == [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["CREATE"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    (excluded,) = hook["namespaceSelector"]["matchExpressions"]
    assert excluded["operator"] == "NotIn"
    assert set(excluded["values"]) == {"kube-system", NAMESPACE}

    secret = find(default_manifests, "Secret")
    assert secret["type"] == "kubernetes.io/tls"
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["ca.crt"]))
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    assert client["caBundle"] == secret["data"]["ca.crt"]
    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    host = f"{service['metadata']['name']}.{NAMESPACE}.svc"
    assert host in sans.get_values_for_type(x509.DNSName)

    pod = find(default_manifests, "Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if "secret" in v)
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    mount = next(m for m in container(default_manifests)["volumeMounts"] if m["name"] == volume["name"])
    assert flag(args_of(default_manifests), "--webhook-cert-dir") == [mount["mountPath"]]
    assert flag(args_of(default_manifests), "--webhook-failure-policy") == ["Ignore"]


def test_webhook_path_is_the_operator_handler(default_manifests: list[Manifest]) -> None:
    admission = pytest.importorskip("costwarden.operator.admission", reason="no admission guard yet")
    (hook,) = find(default_manifests, "ValidatingWebhookConfiguration")["webhooks"]
    assert hook["clientConfig"]["service"]["path"] == f"/{admission.HANDLER_ID}"


def test_cert_manager_certificate_feeds_pod_and_webhook(all_manifests: list[Manifest]) -> None:
    certificate = find(all_manifests, "Certificate")
    webhook = find(all_manifests, "ValidatingWebhookConfiguration")
    name = certificate["metadata"]["name"]
    assert webhook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == f"{NAMESPACE}/{name}"
    assert "caBundle" not in webhook["webhooks"][0]["clientConfig"]
    assert "Secret" not in kinds(all_manifests), "cert-manager writes the Secret"
    pod = find(all_manifests, "Deployment")["spec"]["template"]["spec"]
    assert {"secretName": certificate["spec"]["secretName"]} in [v.get("secret") for v in pod["volumes"]]
    issuer = find(all_manifests, "Issuer")
    assert certificate["spec"]["issuerRef"] == {"kind": "Issuer", "name": issuer["metadata"]["name"]}
    assert "cw.costwarden.svc" in certificate["spec"]["dnsNames"]
    (hook,) = webhook["webhooks"]
    assert hook["failurePolicy"] == "Fail"
    expressions = {e["operator"]: e["values"] for e in hook["namespaceSelector"]["matchExpressions"]}
    assert expressions == {
        "NotIn": ["costwarden", "kube-system", "monitoring"],
        "In": ["research", "inference"],
    }


def test_managed_webhook_leaves_the_configuration_to_kopf(managed_manifests: list[Manifest]) -> None:
    assert "ValidatingWebhookConfiguration" not in kinds(managed_manifests)
    args = args_of(managed_manifests)
    assert flag(args, "--webhook-host") == ["cw.costwarden.svc"]
    assert "--no-webhook-managed" not in args
    (port,) = [
        p for p in find(managed_manifests, "Service", "cw")["spec"]["ports"] if p["name"] == "https-webhook"
    ]
    assert port["port"] == 8443, "kopf's URL clientConfig names the server's own port"


def test_webhook_off(helm_home: Path) -> None:
    manifests = template(values={"webhook.enabled": "false"}, home=helm_home)
    assert "ValidatingWebhookConfiguration" not in kinds(manifests)
    assert "Secret" not in kinds(manifests)
    assert not [a for a in args_of(manifests) if a.startswith("--webhook")]
    assert [p["name"] for p in find(manifests, "Service")["spec"]["ports"]] == ["http-metrics"]


def test_no_kopf_peering_is_left(helm_home: Path) -> None:
    """Leadership is a Lease now: no kopf peering objects, CRDs or RBAC, with any option."""
    for manifests in (
        template(include_crds=True, home=helm_home),
        template(VALUES_ALL, include_crds=True, home=helm_home),
    ):
        assert not [m for m in manifests if m["apiVersion"].startswith("kopf.dev/")]
        assert not [
            m
            for m in manifests
            if m["kind"] == "CustomResourceDefinition" and m["spec"]["group"] == "kopf.dev"
        ]
        assert "kopf.dev" not in yaml.safe_dump(manifests)
    assert not (CHART / "crds").exists(), "the chart's crds/ folder held kopf's peering CRDs only"


def test_values_all_sets_every_value() -> None:
    """values-all.yaml sets every top-level value but those kept at their defaults on purpose."""
    at_defaults = {"nameOverride", "podSecurityContext", "securityContext", "livenessProbe", "readinessProbe"}
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    everything = yaml.safe_load(VALUES_ALL.read_text())
    assert set(defaults) - at_defaults == set(everything)
