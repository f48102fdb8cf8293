"""The real kubectl (1.30+, from `make tools`) against the stand-in."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from costwarden.sim import schema
from costwarden.sim.testing import ThreadedSimCluster
from tests.kubectl_cli import Kubectl, needs_kubectl, table
from tests.sim.crd import API_VERSION, budget, budget_crd, pod

pytestmark = needs_kubectl


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ThreadedSimCluster]:
    with ThreadedSimCluster(tmp_path / "kubeconfig") as sim:
        yield sim


@pytest.fixture
def kubectl(cluster: ThreadedSimCluster, tmp_path: Path) -> Kubectl:
    return Kubectl(cluster.kubeconfig, tmp_path / "home")


def write(tmp_path: Path, name: str, *docs: dict[str, object]) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(docs))
    return str(path)


def test_apply_crd_and_custom_object_then_get_printer_columns(
    kubectl: Kubectl, cluster: ThreadedSimCluster, tmp_path: Path
) -> None:
    assert "created" in kubectl.run("apply", "-f", write(tmp_path, "crd.yaml", budget_crd())).stdout
    kubectl.run("wait", "--for=condition=Established", "crd/budgets.testing.costwarden.dev", "--timeout=10s")
    assert (
        "budget.testing.costwarden.dev/b created"
        in kubectl.run("apply", "-f", write(tmp_path, "b.yaml", budget("b", limit=500))).stdout
    )
    cluster.patch(
        API_VERSION, "budgets", "b", {"status": {"spend": 412.07, "phase": "Warning"}}, subresource="status"
    )
    rows = table(kubectl.run("get", "budgets").stdout)
    assert rows[0] == ["NAME", "SPEND", "LIMIT", "PHASE", "AGE"]
    assert rows[1][:4] == ["b", "412.07", "500", "Warning"]
    assert table(kubectl.run("get", "bu", "-A").stdout)[1][:2] == ["default", "b"]
    again = kubectl.run("apply", "-f", write(tmp_path, "b2.yaml", budget("b", limit=600))).stdout
    assert "configured" in again
    assert (cluster.get(API_VERSION, "budgets", "b") or {})["spec"]["limit"] == 600


def test_get_pods_by_label(kubectl: Kubectl, cluster: ThreadedSimCluster, tmp_path: Path) -> None:
    kubectl.run(
        "apply",
        "-f",
        write(tmp_path, "pods.yaml", pod("a", labels={"app": "web"}), pod("b", labels={"app": "db"})),
    )
    rows = table(kubectl.run("get", "pods", "-l", "app=web").stdout)
    assert rows[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [r[0] for r in rows[1:]] == ["a"]
    names = kubectl.run("get", "pods", "--field-selector", "metadata.name=b", "-o", "name").stdout.split()
    assert names == ["pod/b"]


def test_patch_and_delete(kubectl: Kubectl, cluster: ThreadedSimCluster, tmp_path: Path) -> None:
    cluster.create(budget_crd())
    cluster.create(budget("b"))
    cluster.create(pod("a"))
    kubectl.run("patch", "pod", "a", "-p", '{"metadata":{"labels":{"patched":"yes"}}}')
    kubectl.run("patch", "budget", "b", "--type=merge", "-p", '{"spec":{"limit":7}}')
    kubectl.run(
        "patch", "budget", "b", "--subresource=status", "--type=merge", "-p", '{"status":{"spend":2}}'
    )
    assert (cluster.get("v1", "pods", "a") or {})["metadata"]["labels"] == {"patched": "yes"}
    stored = cluster.get(API_VERSION, "budgets", "b") or {}
    assert (stored["spec"]["limit"], stored["status"]["spend"]) == (7, 2)
    assert 'pod "a" deleted' in kubectl.run("delete", "pod", "a").stdout
    kubectl.run("delete", "budget", "b", "--wait=true", "--timeout=10s")
    assert cluster.get("v1", "pods", "a") is None and cluster.get(API_VERSION, "budgets", "b") is None


def test_server_side_apply(kubectl: Kubectl, cluster: ThreadedSimCluster, tmp_path: Path) -> None:
    cluster.create(budget_crd())
    out = kubectl.run("apply", "--server-side", "-f", write(tmp_path, "b.yaml", budget("b"), pod("p"))).stdout
    assert "serverside-applied" in out
    assert cluster.get(API_VERSION, "budgets", "b") is not None and cluster.get("v1", "pods", "p") is not None


@pytest.mark.skipif(schema.load_validator() is None, reason="crdvalidation not written yet")
def test_invalid_object_is_refused_naming_the_field(
    kubectl: Kubectl, cluster: ThreadedSimCluster, tmp_path: Path
) -> None:
    cluster.create(budget_crd())
    refused = kubectl.run("apply", "-f", write(tmp_path, "bad.yaml", budget("bad", limit=0)), check=False)
    assert refused.returncode != 0
    # kubectl words 422s itself from the Status details: 'The Budget "bad" is invalid: <causes>'
    assert 'Budget "bad" is invalid: spec.limit: Invalid value: 0' in refused.stderr


def test_unknown_field_is_refused_by_strict_validation(
    kubectl: Kubectl, cluster: ThreadedSimCluster, tmp_path: Path
) -> None:
    cluster.create(budget_crd())
    refused = kubectl.run("create", "-f", write(tmp_path, "junk.yaml", budget("junk", junk=1)), check=False)
    assert refused.returncode != 0
    assert 'unknown field "spec.junk"' in refused.stderr
    assert cluster.get(API_VERSION, "budgets", "junk") is None


def test_typed_client_protobuf_bodies(kubectl: Kubectl, cluster: ThreadedSimCluster) -> None:
    kubectl.run("create", "namespace", "team")
    kubectl.run("create", "configmap", "c", "-n", "team", "--from-literal=a=b")
    kubectl.run("create", "secret", "generic", "s", "--from-literal=p=q")
    assert (cluster.get("v1", "configmaps", "c", "team") or {})["data"] == {"a": "b"}
    assert (cluster.get("v1", "secrets", "s") or {})["type"] == "Opaque"
    refused = kubectl.run("create", "deployment", "d", "--image=nginx", check=False)
    assert refused.returncode != 0 and "apps/v1/Deployment are not decoded" in refused.stderr


HELM = os.environ.get("HELM", "")


@pytest.mark.skipif(not HELM or not Path(HELM).is_file(), reason="HELM is not set to a helm binary")
def test_helm_install_upgrade_uninstall(
    kubectl: Kubectl, cluster: ThreadedSimCluster, tmp_path: Path
) -> None:
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: demo\nversion: 0.1.0\n")
    template = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: demo}\n"
    template += 'data: {value: {{ .Values.value | default "a" | quote }}}\n'
    (chart / "templates" / "cm.yaml").write_text(template)

    def helm(*args: str) -> str:
        proc = subprocess.run(
            [HELM, *args], env=kubectl.env, capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    helm("install", "demo", str(chart))
    helm("upgrade", "demo", str(chart), "--set", "value=b")
    assert (cluster.get("v1", "configmaps", "demo") or {})["data"] == {"value": "b"}
    assert "demo" in helm("list", "-q")
    helm("uninstall", "demo")
    assert cluster.get("v1", "configmaps", "demo") is None
    assert [s for s in cluster.list("v1", "secrets", "default") if s["type"] == "helm.sh/release.v1"] == []
