from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from costwarden.operator.app import OperatorThread
from costwarden.operator.kube import KubeClient, load_configuration
from costwarden.operator.settings import OperatorSettings
from costwarden.sim.testing import ThreadedSimCluster
from tests.clock import ManualClock
from tests.prometheus_server import PrometheusUnavailable, prometheus_binary

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_crd() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "crds" / "costbudget.yaml").read_text()))


@pytest.fixture
def crd() -> dict[str, Any]:
    """The CostBudget CRD the cluster starts with (a module may override it)."""
    return load_crd()


@pytest.fixture
def cluster(crd: dict[str, Any]) -> Iterator[ThreadedSimCluster]:
    with ThreadedSimCluster() as sim:
        sim.create(crd)
        yield sim


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def start_operator(
    cluster: ThreadedSimCluster, clock: ManualClock
) -> Iterator[Callable[..., OperatorThread]]:
    running: list[OperatorThread] = []

    def start(**overrides: Any) -> OperatorThread:
        options: dict[str, Any] = {
            "kubeconfig": cluster.kubeconfig,
            "interval": 0.3,
            "accrual_interval": 0.3,
            "status_interval": 0.3,
            "metrics_port": free_port(),
            "metrics_host": "127.0.0.1",
            "annotation_interval": 60.0,
        }
        inventories = overrides.pop("vm_inventories", ())  # a simulated cloud, beside --cloud
        job_sources = overrides.pop("job_sources", ())  # job sources, beside --slurm
        options.update(overrides)
        operator = OperatorThread(
            OperatorSettings(**options), clock=clock, vm_inventories=inventories, job_sources=job_sources
        ).start()
        running.append(operator)
        return operator

    yield start
    for operator in running:
        operator.stop()


@pytest.fixture
async def kube(sim: ThreadedSimCluster) -> AsyncIterator[KubeClient]:
    """A client of the module's ``sim`` cluster, on the test's event loop."""
    client = KubeClient(load_configuration(sim.kubeconfig))
    yield client
    await client.close()


@pytest.fixture
async def dry_kube(sim: ThreadedSimCluster) -> AsyncIterator[KubeClient]:
    client = KubeClient(load_configuration(sim.kubeconfig), dry_run=True)
    yield client
    await client.close()


@pytest.fixture(scope="session")
def prometheus_path() -> str:
    """Debian's prometheus binary (installed when missing, see tests/prometheus_server.py); under CI
    a missing one fails the test with the reason, elsewhere it skips with the reason."""
    try:
        return prometheus_binary()
    except PrometheusUnavailable as exc:
        message = f"no Prometheus server for the telemetry tests: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
