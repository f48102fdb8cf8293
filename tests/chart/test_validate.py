"""The rendered objects against the Kubernetes API schemas, offline (PyPI kubernetes-validate).

kubernetes-validate bundles the OpenAPI schemas of each Kubernetes release; strict mode refuses
fields the release does not know. Objects of custom resource types (cert-manager, prometheus-operator)
have no schema there and are skipped, by an explicit list, so nothing else slips by.
"""

from __future__ import annotations

import re

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from tests.chart.helm import CHART, Manifest

CUSTOM_KINDS = {
    "cert-manager.io/v1": {"Certificate", "Issuer"},
    "monitoring.coreos.com/v1": {"PrometheusRule", "ServiceMonitor"},
}


def minimum_kubernetes() -> str:
    """The lowest release the chart claims (Chart.yaml kubeVersion ">=1.28.0-0" → "1.28.0")."""
    constraint = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    match = re.fullmatch(r">=\s*(\d+\.\d+)\.\d+(-0)?", constraint)
    assert match, f"unexpected kubeVersion {constraint!r}"
    return f"{match[1]}.0"


VERSIONS = sorted({minimum_kubernetes(), kubernetes_validate.latest_version()})


def validate_all(manifests: list[Manifest], version: str) -> set[str]:
    """Validate every built-in object; return the custom kinds skipped."""
    skipped: set[str] = set()
    for manifest in manifests:
        if manifest["kind"] in CUSTOM_KINDS.get(manifest["apiVersion"], set()):
            skipped.add(manifest["kind"])
            continue
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            name = f"{manifest['kind']} {manifest['metadata']['name']}"
            pytest.fail(f"{name} is invalid for Kubernetes {version} at {list(exc.path)}: {exc.message}")
    return skipped


@pytest.mark.parametrize("version", VERSIONS)
def test_defaults_are_valid(default_manifests: list[Manifest], version: str) -> None:
    assert validate_all(default_manifests, version) == set()


@pytest.mark.parametrize("version", VERSIONS)
def test_every_option_is_valid(all_manifests: list[Manifest], version: str) -> None:
    skipped = validate_all(all_manifests, version)
    assert skipped == {"Certificate", "Issuer", "PrometheusRule", "ServiceMonitor"}


@pytest.mark.parametrize("version", VERSIONS)
def test_managed_webhook_variant_is_valid(managed_manifests: list[Manifest], version: str) -> None:
    validate_all(managed_manifests, version)


def test_the_validator_catches_a_bad_field(default_manifests: list[Manifest]) -> None:
    deployment = next(m for m in default_manifests if m["kind"] == "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsNonroot"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)
