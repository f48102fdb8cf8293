"""Billing truth and live prices in the chart: the billing store's volume and claim, the billing and
price-feed flags of `costwarden run`, the pod's cloud identity, and what the chart refuses.

The flags are parsed with the operator's own parser (`costwarden.cli.build_parser`) and turned into
its settings, so a flag the chart renders and the operator does not take fails here.
"""

from __future__ import annotations

import argparse
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from costwarden.cli import build_parser, operator_settings
from tests.chart.helm import (
    CHART,
    NAMESPACE,
    RELEASE,
    VALUES_ALL,
    HelmError,
    Manifest,
    Render,
    args_of,
    find,
    helm,
    kinds,
    needs_helm,
    pod_of,
    template,
    values_renderer,
)
from tests.chart.test_validate import VERSIONS, validate_all

pytestmark = needs_helm

STORE = "/var/lib/costwarden/billing.duckdb"

BILLING: dict[str, Any] = {
    "replicaCount": 1,
    "billing": {
        "store": {
            "enabled": True,
            "persistence": {"enabled": True, "size": "10Gi", "storageClassName": "gp3"},
        },
        "sources": [
            "s3://cur-exports/costwarden/data",
            "bq://billing-project.billing_export.gcp_billing_export_v1_0123AB",
            "azure://costexports/exports/costwarden",
        ],
        "interval": 1800,
        "staleAfterHours": 36,
        "anomalyFactor": "2.5",
    },
    "priceFeeds": ["aws", "gcp", "azure"],
    "priceFeedInterval": 600,
    "serviceAccount": {
        "annotations": {
            "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/costwarden",
            "iam.gke.io/gcp-service-account": "costwarden@billing-project.iam.gserviceaccount.com",
            "azure.workload.identity/client-id": "00000000-0000-0000-0000-000000000000",
        }
    },
    "podLabels": {"azure.workload.identity/use": "true"},
}


RWX_MESSAGE = (
    "billing.store.persistence with replicaCount 2 needs billing.store.persistence.accessModes "
    "[ReadWriteMany] (got [ReadWriteOnce])"
)


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = (
            merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


@pytest.fixture(scope="module")
def render(tmp_path_factory: pytest.TempPathFactory, helm_home: Path) -> Render:
    """Render the chart with these values (written to a values file)."""
    return values_renderer(tmp_path_factory.mktemp("billing-values"), helm_home)


@pytest.fixture(scope="module")
def billing_manifests(render: Render) -> list[Manifest]:
    return render(BILLING)


def parse_run(manifests: list[Manifest]) -> argparse.Namespace:
    namespace, unknown = build_parser(load=[]).parse_known_args(["run", *args_of(manifests)])
    assert unknown == [], f"`costwarden run` does not accept {unknown}"
    return namespace


def billing_args(manifests: list[Manifest]) -> list[str]:
    return [a for a in args_of(manifests) if a.startswith(("--billing", "--price-feed"))]


def store_volume(manifests: list[Manifest]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The mount and the volume of the billing store, found from the `--billing-store` flag."""
    (path,) = [a.split("=", 1)[1] for a in args_of(manifests) if a.startswith("--billing-store=")]
    container = pod_of(manifests)["containers"][0]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(Path(path).parent)]
    (volume,) = [v for v in pod_of(manifests)["volumes"] if v["name"] == mount["name"]]
    return mount, volume


def test_billing_and_price_feed_flags_parse(billing_manifests: list[Manifest]) -> None:
    args = parse_run(billing_manifests)
    assert args.billing_store == Path(STORE)
    assert args.billing_sources == BILLING["billing"]["sources"]
    assert args.billing_interval == 1800.0
    assert args.billing_stale_after == 36.0
    assert args.billing_anomaly_factor == Decimal("2.5")
    assert args.price_feeds == ("aws", "gcp", "azure")
    assert args.price_feed_interval == 600.0
    settings = operator_settings(args)
    assert settings.billing_store == Path(STORE)
    assert settings.billing_stale_after == 36 * 3600.0
    assert settings.price_feeds == ("aws", "gcp", "azure")


def test_every_option_parses_with_billing(all_manifests: list[Manifest]) -> None:
    args = parse_run(all_manifests)
    assert args.billing_store == Path("/var/lib/costwarden/store/billing.duckdb")
    assert [s.split("://")[0] for s in args.billing_sources] == ["s3", "bq", "azure", "file"]
    assert (args.billing_interval, args.billing_stale_after) == (1800.0, 48.0)
    assert args.billing_anomaly_factor == Decimal("1.5")
    assert args.price_feeds == ("aws", "gcp", "azure")
    assert args.price_feed_interval == 900.0


def test_claim_is_kept_on_uninstall(billing_manifests: list[Manifest]) -> None:
    claim = find(billing_manifests, "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == "cw-costwarden-billing"
    assert claim["metadata"]["namespace"] == NAMESPACE
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": "gp3",
        "resources": {"requests": {"storage": "10Gi"}},
    }


def test_store_volume_is_mounted_where_the_flag_points(billing_manifests: list[Manifest]) -> None:
    mount, volume = store_volume(billing_manifests)
    assert mount["mountPath"] == "/var/lib/costwarden"
    assert not mount.get("readOnly"), "the leader writes the store"
    claim = find(billing_manifests, "PersistentVolumeClaim")
    assert volume["persistentVolumeClaim"] == {"claimName": claim["metadata"]["name"]}


def test_store_keeps_the_pod_hardened(billing_manifests: list[Manifest]) -> None:
    pod = pod_of(billing_manifests)
    ctx = pod["containers"][0]["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["fsGroup"] == 65532, "the volume is writable by the operator's group"
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    tmp = next(v for v in pod["volumes"] if v["name"] == mounts["/tmp"]["name"])
    assert "emptyDir" in tmp, "DuckDB and the SDKs get a writable /tmp on a read-only root"
    writable = {path for path, m in mounts.items() if not m.get("readOnly")}
    assert writable == {"/tmp", "/var/lib/costwarden"}


def test_store_without_persistence_is_an_empty_dir(render: Render) -> None:
    manifests = render(merge(BILLING, {"billing": {"store": {"persistence": {"enabled": False}}}}))
    assert "PersistentVolumeClaim" not in kinds(manifests)
    _, volume = store_volume(manifests)
    assert volume["emptyDir"] == {"sizeLimit": "10Gi"}
    assert parse_run(manifests).billing_store == Path(STORE)


def test_existing_claim_is_used_not_created(render: Render) -> None:
    persistence = {"existingClaim": "billing-history", "accessModes": ["ReadWriteMany"]}
    manifests = render(
        merge(BILLING, {"replicaCount": 2, "billing": {"store": {"persistence": persistence}}})
    )
    assert "PersistentVolumeClaim" not in kinds(manifests)
    _, volume = store_volume(manifests)
    assert volume["persistentVolumeClaim"] == {"claimName": "billing-history"}


def test_store_path_picks_the_mount(render: Render) -> None:
    manifests = render(merge(BILLING, {"billing": {"store": {"path": "/data/billing/costs.duckdb"}}}))
    mount, _ = store_volume(manifests)
    assert mount["mountPath"] == "/data/billing"
    assert parse_run(manifests).billing_store == Path("/data/billing/costs.duckdb")


@pytest.mark.parametrize(("storage_class", "rendered"), [("", None), ("-", ""), ("efs-sc", "efs-sc")])
def test_storage_class(render: Render, storage_class: str, rendered: str | None) -> None:
    persistence = {"storageClassName": storage_class}
    claim = find(
        render(merge(BILLING, {"billing": {"store": {"persistence": persistence}}})), "PersistentVolumeClaim"
    )
    assert claim["spec"].get("storageClassName", None) == rendered
    assert ("storageClassName" in claim["spec"]) == (rendered is not None)


def test_several_replicas_need_a_read_write_many_store(render: Render) -> None:
    with pytest.raises(HelmError) as caught:
        render(merge(BILLING, {"replicaCount": 2}))
    assert RWX_MESSAGE in caught.value.stderr
    assert "Use a ReadWriteMany storage class" in caught.value.stderr
    persistence = {"accessModes": ["ReadWriteMany"], "storageClassName": "efs-sc"}
    shared = render(merge(BILLING, {"replicaCount": 2, "billing": {"store": {"persistence": persistence}}}))
    assert find(shared, "PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteMany"]
    assert find(shared, "Deployment")["spec"]["replicas"] == 2


def test_chart_defaults_with_persistence_refuse_read_write_once(helm_home: Path) -> None:
    """replicaCount defaults to 2: switching persistence on alone is refused, by name."""
    with pytest.raises(HelmError) as caught:
        template(
            values={"billing.store.enabled": "true", "billing.store.persistence.enabled": "true"},
            home=helm_home,
        )
    assert RWX_MESSAGE in caught.value.stderr


def test_several_replicas_may_share_an_empty_dir_store(render: Render) -> None:
    manifests = render(
        merge(BILLING, {"replicaCount": 3, "billing": {"store": {"persistence": {"enabled": False}}}})
    )
    assert "emptyDir" in store_volume(manifests)[1]


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        (
            {"billing": {"store": {"enabled": False}}},
            "billing.sources need billing.store.enabled",
        ),
        (
            {"billing": {"anomalyFactor": "1"}},
            "billing.anomalyFactor must be a number > 1 (billed / estimated), got 1",
        ),
        (
            {"billing": {"store": {"path": "/tmp/billing/billing.duckdb"}}},
            "billing.store.path /tmp/billing/billing.duckdb: its directory /tmp/billing is mounted",
        ),
        (
            {"billing": {"store": {"path": "/etc/costwarden/billing.duckdb"}}},
            "its directory /etc/costwarden is mounted as the store's volume",
        ),
    ],
)
def test_chart_refuses_billing_it_cannot_run(render: Render, values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(HelmError) as caught:
        render(merge(BILLING, values))
    assert complaint in caught.value.stderr


@pytest.mark.parametrize(
    ("key", "value", "complaint"),
    [
        ("priceFeeds[0]", "oracle", "/priceFeeds/0"),
        ("priceFeedInterval", "0", "/priceFeedInterval"),
        ("billing.sources[0]", "https://example.com/cur", "/billing/sources/0"),
        ("billing.interval", "0", "/billing/interval"),
        ("billing.staleAfterHours", "-1", "/billing/staleAfterHours"),
        ("billing.anomalyFactor", "1", "/billing/anomalyFactor"),
        ("billing.store.path", "billing.duckdb", "/billing/store/path"),
        (
            "billing.store.persistence.accessModes[0]",
            "ReadOnlyMany",
            "/billing/store/persistence/accessModes/0",
        ),
        ("billing.store.persistence.accessKeyId", "AKIA0000", "accessKeyId"),
        ("billing.awsSecretAccessKey", "secret", "awsSecretAccessKey"),
    ],
)
def test_schema_refuses_bad_billing_values(key: str, value: str, complaint: str, helm_home: Path) -> None:
    """Including credentials: the values have no place for them (the pod's cloud identity reads)."""
    with pytest.raises(HelmError) as caught:
        template(values={key: value}, home=helm_home)
    assert complaint in caught.value.stderr


def test_defaults_render_no_billing(default_manifests: list[Manifest]) -> None:
    assert billing_args(default_manifests) == []
    assert "PersistentVolumeClaim" not in kinds(default_manifests)
    pod = pod_of(default_manifests)
    assert "billing-store" not in {v["name"] for v in pod["volumes"]}
    args = parse_run(default_manifests)
    assert args.billing_store is None
    assert args.billing_sources == []
    assert args.price_feeds == ()


def test_price_feeds_alone_need_no_store(render: Render) -> None:
    manifests = render({"priceFeeds": ["gcp"]})
    assert billing_args(manifests) == ["--price-feed=gcp", "--price-feed-interval=3600"]
    assert "PersistentVolumeClaim" not in kinds(manifests)
    args = parse_run(manifests)
    assert (args.price_feeds, args.billing_store) == (("gcp",), None)


def test_store_alone_passes_the_chart_defaults(render: Render) -> None:
    manifests = render({"billing": {"store": {"enabled": True}}})
    assert billing_args(manifests) == [
        f"--billing-store={STORE}",
        "--billing-interval=3600",
        "--billing-stale-after=72",
        "--billing-anomaly-factor=2",
    ]
    defaults = build_parser(load=[]).parse_args(["run"])
    args = parse_run(manifests)
    for name in ("billing_interval", "billing_stale_after", "billing_anomaly_factor"):
        assert getattr(args, name) == getattr(defaults, name), (
            f"values.yaml's {name} is the operator's default"
        )


def test_cloud_identity_reaches_the_service_account_and_pod(billing_manifests: list[Manifest]) -> None:
    account = find(billing_manifests, "ServiceAccount")
    assert account["metadata"]["annotations"] == BILLING["serviceAccount"]["annotations"]
    deployment = find(billing_manifests, "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["azure.workload.identity/use"] == "true"
    assert "azure.workload.identity/use" not in deployment["spec"]["selector"]["matchLabels"]
    env = {e["name"] for e in pod_of(billing_manifests)["containers"][0]["env"]}
    assert not {n for n in env if "KEY" in n or "SECRET" in n or "CREDENTIAL" in n}


@pytest.mark.parametrize("version", VERSIONS)
def test_billing_release_is_valid(billing_manifests: list[Manifest], version: str) -> None:
    assert validate_all(billing_manifests, version) == set()


def test_values_all_switches_billing_on() -> None:
    everything = yaml.safe_load(VALUES_ALL.read_text())
    assert (
        everything["billing"]["store"]["enabled"] and everything["billing"]["store"]["persistence"]["enabled"]
    )
    assert everything["priceFeeds"]


def test_notes_say_the_claim_is_kept(helm_home: Path, tmp_path: Path) -> None:
    path = tmp_path / "billing.yaml"
    path.write_text(yaml.safe_dump(BILLING))
    out = helm(
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--dry-run=client",
        "-f",
        str(path),
        home=helm_home,
    ).stdout
    notes = out[out.index("NOTES:") :]
    assert (
        f"Billing store: {STORE} on the PersistentVolumeClaim cw-costwarden-billing (kept on helm uninstall"
        in notes
    )
    assert "Live price feeds: aws, gcp, azure." in notes
