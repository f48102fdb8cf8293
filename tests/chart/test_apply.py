"""The default release applied with the real kubectl to the Kubernetes API stand-in.

As Helm does, CRDs go first (the CostBudget CRD template; the chart has no crds/ folder), then
everything else. The stand-in serves the core, apps, batch, rbac, admissionregistration,
apiextensions and coordination groups; objects of other groups (policy's PodDisruptionBudget here)
are left out by an explicit list so nothing else is silently skipped.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from costwarden.sim.testing import ThreadedSimCluster
from tests.chart.helm import NAMESPACE, Manifest, require_helm, template

KUBECTL = os.environ.get("KUBECTL", "")
NOT_SERVED = {"policy/v1": {"PodDisruptionBudget"}}

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(
        not KUBECTL or not Path(KUBECTL).is_file(), reason="KUBECTL is not set to a kubectl binary"
    ),
]


class Kubectl:
    def __init__(self, kubeconfig: Path, home: Path) -> None:
        self.env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(kubeconfig)}

    def __call__(self, *args: str) -> str:
        proc = subprocess.run(
            [KUBECTL, *args], env=self.env, capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.returncode == 0, f"kubectl {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout


@pytest.fixture
def kubectl(tmp_path: Path) -> Iterator[Kubectl]:
    with ThreadedSimCluster(tmp_path / "kubeconfig") as cluster:
        yield Kubectl(cluster.kubeconfig, tmp_path)


def write(path: Path, docs: list[Manifest]) -> str:
    path.write_text(yaml.safe_dump_all(docs))
    return str(path)


def test_default_release_is_accepted(kubectl: Kubectl, tmp_path: Path, helm_home: Path) -> None:
    require_helm()
    manifests = template(include_crds=True, home=helm_home)
    crds = [m for m in manifests if m["kind"] == "CustomResourceDefinition"]
    served = [m for m in manifests if m["kind"] not in NOT_SERVED.get(m["apiVersion"], set())]
    rest = [m for m in served if m["kind"] != "CustomResourceDefinition"]
    assert len(served) == len(manifests) - 1, "only the PodDisruptionBudget is left out"

    kubectl("create", "namespace", NAMESPACE)
    created = kubectl("apply", "-f", write(tmp_path / "crds.yaml", crds))
    assert created.count("created") == len(crds) == 1
    names = [f"crd/{c['metadata']['name']}" for c in crds]
    kubectl("wait", "--for=condition=Established", *names, "--timeout=20s")

    applied = kubectl("apply", "-f", write(tmp_path / "release.yaml", rest)).splitlines()
    assert len(applied) == len(rest)
    assert all(line.endswith(" created") for line in applied), applied

    deployment = yaml.safe_load(kubectl("get", "deployment", "-n", NAMESPACE, "cw-costwarden", "-o", "yaml"))
    assert deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"][
        "readOnlyRootFilesystem"
    ]
    role = yaml.safe_load(kubectl("get", "clusterrole", "cw-costwarden", "-o", "yaml"))
    assert role["rules"] == next(m for m in rest if m["kind"] == "ClusterRole")["rules"]
    # Leader election: the Role for the Lease lives in the release namespace, bound to the account.
    lease_role = yaml.safe_load(kubectl("get", "role", "-n", NAMESPACE, "cw-costwarden", "-o", "yaml"))
    assert lease_role["rules"] == next(m for m in rest if m["kind"] == "Role")["rules"]
    assert {rule["apiGroups"][0] for rule in lease_role["rules"]} == {"coordination.k8s.io"}
    binding = yaml.safe_load(kubectl("get", "rolebinding", "-n", NAMESPACE, "cw-costwarden", "-o", "yaml"))
    assert binding["roleRef"]["kind"] == "Role"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "cw-costwarden", "namespace": NAMESPACE}
    ]
    assert "leases" not in {r for rule in role["rules"] for r in rule["resources"]}
    assert kubectl("get", "crd", "-o", "name").split() == [
        "customresourcedefinition.apiextensions.k8s.io/costbudgets.costwarden.dev"
    ], "no kopf peering CRDs"
    assert kubectl("get", "validatingwebhookconfigurations", "-o", "name").split() == [
        "validatingwebhookconfiguration.admissionregistration.k8s.io/cw-costwarden"
    ]

    again = kubectl("apply", "-f", write(tmp_path / "release.yaml", rest)).splitlines()
    assert all(line.endswith(" unchanged") for line in again), again
