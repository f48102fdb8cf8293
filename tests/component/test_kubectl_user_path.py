"""The user path with the real kubectl: apply the CRD and examples, watch spend in `get costbudgets`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from costwarden.sim.testing import ThreadedSimCluster
from tests import shapes
from tests.component.conftest import ROOT, T0
from tests.kubectl_cli import Kubectl, needs_kubectl, table

pytestmark = needs_kubectl
NS = "research"


@pytest.fixture
def bare_cluster(tmp_path: Path):
    with ThreadedSimCluster(tmp_path / "kubeconfig") as sim:
        yield sim


@pytest.fixture
def kubectl(bare_cluster: ThreadedSimCluster, tmp_path: Path) -> Kubectl:
    return Kubectl(bare_cluster.kubeconfig, tmp_path / "home")


def seed_llama_sweep(cluster: ThreadedSimCluster) -> None:
    """The SkyPilot cluster examples/costbudget-skypilot.yaml governs: head + 1 worker on p5 nodes."""
    for index, role in enumerate(("head", "worker")):
        node = f"ip-10-0-2-{index}.ec2.internal"
        cluster.create(shapes.eks_p5_node(node))
        body = shapes.skypilot_pod(
            "llama-sweep-2ea4", "llama-sweep", namespace=NS, node=node, role=role, index=index
        )
        name = cluster.create(body)["metadata"]["name"]
        status = {"status": shapes.running_status(T0 - timedelta(hours=1))}
        cluster.patch("v1", "pods", name, status, namespace=NS, subresource="status")


def test_apply_examples_and_watch_spend_live(bare_cluster, kubectl, clock, tmp_path):
    from costwarden.operator.app import OperatorThread
    from costwarden.operator.settings import OperatorSettings

    kubectl.run("apply", "-f", str(ROOT / "crds" / "costbudget.yaml"))
    kubectl.run("create", "namespace", NS)
    applied = kubectl.run("apply", "-n", NS, "-f", str(ROOT / "examples" / "costbudget-skypilot.yaml"))
    assert "costbudget.costwarden.dev/llama-sweep created" in applied.stdout
    seed_llama_sweep(bare_cluster)
    settings = OperatorSettings(
        kubeconfig=bare_cluster.kubeconfig,
        interval=0.3,
        accrual_interval=0.3,
        status_interval=0.3,
        metrics_port=0,
    )
    with OperatorThread(settings, clock=clock):

        def row() -> dict[str, str]:
            rows = table(kubectl.run("get", "costbudgets", "-n", NS).stdout)
            return dict(zip(rows[0], rows[1], strict=False)) if len(rows) > 1 else {}

        bare_cluster.wait_for(lambda: row().get("SPEND") == "110.08", timeout=20)
        first = row()
        assert list(first)[:8] == [
            "NAME",
            "SPEND",
            "VM SPEND",
            "LIMIT",
            "USED",
            "RATE/H",
            "PHASE",
            "EXHAUSTS",
        ]
        assert first["VM SPEND"] == "", "no --cloud: the operator writes no status.vmSpend"
        assert first["NAME"] == "llama-sweep" and first["LIMIT"] == "500"
        assert first["RATE/H"] == "110.08" and first["PHASE"] == "Ok"

        clock.advance(timedelta(hours=2))
        bare_cluster.wait_for(lambda: row().get("SPEND") == "330.24", timeout=20)
        assert row()["PHASE"] == "Warning"
        short = table(kubectl.run("get", "cb", "-n", NS).stdout)
        assert short[1][0] == "llama-sweep"

        pods = kubectl.run("get", "pods", "-n", NS, "-o", "yaml").stdout
        assert "costwarden.dev/spend:" in pods and "costwarden.dev/budgets: llama-sweep" in pods


def test_every_example_applies_and_invalid_budgets_are_refused_naming_the_field(bare_cluster, kubectl):
    kubectl.run("apply", "-f", str(ROOT / "crds" / "costbudget.yaml"))
    examples = sorted((ROOT / "examples").glob("costbudget-*.yaml"))
    namespaces = {yaml.safe_load(e.read_text())["metadata"].get("namespace", "default") for e in examples}
    for namespace in sorted(namespaces | {NS}):
        if namespace != "default":
            kubectl.run("create", "namespace", namespace)
    for example in examples:
        kubectl.run("apply", "-f", str(example))
    rows = table(kubectl.run("get", "costbudgets", "--all-namespaces").stdout)[1:]
    assert len(rows) == len(examples)

    for invalid in sorted((ROOT / "tests" / "data" / "invalid").glob("*.yaml")):
        expected = invalid.read_text().splitlines()[0].removeprefix("# expect:").strip()
        proc = kubectl.run("apply", "-n", NS, "-f", str(invalid), check=False)
        assert proc.returncode != 0, f"{invalid.name} was accepted"
        assert expected in proc.stderr, f"{invalid.name}: {proc.stderr}"
