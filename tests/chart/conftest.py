from __future__ import annotations

from pathlib import Path

import pytest

from tests.chart.helm import VALUES_ALL, Manifest, require_helm, template


@pytest.fixture(scope="session")
def helm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helm-home")


@pytest.fixture(scope="session")
def default_manifests(helm_home: Path) -> list[Manifest]:
    """The chart rendered with its defaults (one render shared by the session)."""
    require_helm()
    return template(home=helm_home)


@pytest.fixture(scope="session")
def all_manifests(helm_home: Path) -> list[Manifest]:
    """The chart rendered with every option on (tests/chart/values-all.yaml)."""
    require_helm()
    return template(VALUES_ALL, home=helm_home)


@pytest.fixture(scope="session")
def managed_manifests(helm_home: Path) -> list[Manifest]:
    """Every option on, with kopf managing the webhook configuration instead of the chart."""
    require_helm()
    return template(VALUES_ALL, values={"webhook.managedByOperator": "true"}, home=helm_home)
