"""Cloud IAM is the minimum the adapters use: every API call each adapter makes, recorded while it
discovers, re-reads, stops and terminates a SkyPilot cluster, maps to exactly the permissions its
docstring names (which the chart's values, its README and docs/cloud-vms.md hand out:
tests/chart/test_chart_clouds.py) — no call the list lacks, no permission it names in vain.

AWS: moto's EC2, each operation noted by a botocore ``before-call`` hook (an EC2 API operation
is authorized as the IAM action ``ec2:<Operation>``). GCP and Azure: the local fakes of the
Compute Engine and ARM REST APIs (tests/gce_fake.py, tests/arm_fake.py) keep every request the
real SDK clients send; each is mapped to the permission Google and Azure check for that method.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from azure.mgmt.compute import ComputeManagementClient
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1
from moto import mock_aws

from costwarden.clouds.aws import AwsInventory
from costwarden.clouds.azure import AzureInventory
from costwarden.clouds.base import VMInventory
from costwarden.clouds.gcp import GcpInventory
from costwarden.engine.vms import RUNNING
from tests.arm_fake import SUBSCRIPTION, FakeArm, StaticToken
from tests.arm_fake import serve as serve_arm
from tests.chart.test_chart_clouds import AWS, AZURE, GCP
from tests.cloud_fleet import CLUSTER, Fleet, skypilot_tags
from tests.gce_fake import FakeGce
from tests.gce_fake import serve as serve_gce

SKY = {
    "skypilot-cluster-name": CLUSTER,
    "ray-cluster-name": CLUSTER,
    "skypilot-head-node": "0",
    "ray-node-type": "worker",
}


def exercise(inventory: VMInventory) -> None:
    """Everything the operator asks of an adapter: poll, re-read, stop, terminate."""
    found = inventory.discover()
    assert found.complete, found.error
    mine = [vm for vm in found.vms if vm.cluster == CLUSTER]
    assert mine, "the fleet has the cluster"
    assert inventory.describe(mine).complete
    running = [vm for vm in mine if vm.state == RUNNING]
    assert all(r.ok for r in inventory.stop(running[:1]))
    assert all(r.ok for r in inventory.terminate(mine))


# --- AWS -----------------------------------------------------------------------------------------


@pytest.fixture
def ec2() -> Iterator[tuple[Any, list[str]]]:
    with mock_aws():
        client = boto3.client("ec2", region_name="us-east-1")
        fleet = Fleet(client, "", [], "", "")
        fleet.launch("p4d.24xlarge", "us-east-1a", skypilot_tags(CLUSTER, True))
        fleet.launch("p4d.24xlarge", "us-east-1b", skypilot_tags(CLUSTER, False))
        fleet.launch("g5.xlarge", "us-east-1a", skypilot_tags(CLUSTER, False), spot=True)
        fleet.launch("g5.xlarge", "us-east-1a", [{"Key": "Name", "Value": "notebook"}])
        operations: list[str] = []

        def note(model: Any, **_: Any) -> None:
            operations.append(f"ec2:{model.name}")

        client.meta.events.register("before-call.ec2", note)
        yield client, operations


def test_aws_adapter_calls_exactly_the_iam_actions_it_names(ec2: tuple[Any, list[str]]) -> None:
    client, operations = ec2
    exercise(AwsInventory("us-east-1", client))
    assert set(operations) == AWS == {"ec2:DescribeInstances", "ec2:StopInstances", "ec2:TerminateInstances"}


# --- GCP -----------------------------------------------------------------------------------------


def gce_permission(method: str, path: str) -> str:
    """The IAM permission Compute Engine checks for a v1 instances request."""
    parts = path.split("/projects/", 1)[1].split("/")[1:]
    match (method, parts):
        case ("GET", ["aggregated", "instances"]) | ("GET", ["zones", _, "instances"]):
            return "compute.instances.list"
        case ("GET", ["zones", _, "instances", _]):
            return "compute.instances.get"
        case ("POST", ["zones", _, "instances", _, verb]):
            return f"compute.instances.{verb}"
        case ("DELETE", ["zones", _, "instances", _]):
            return "compute.instances.delete"
    raise AssertionError(f"a request no permission is listed for: {method} {path}")


def test_gcp_adapter_calls_exactly_the_permissions_it_names() -> None:
    fake = FakeGce(project="ml-project")
    fake.add("us-central1-a", f"{CLUSTER}-head-ab12cd34-compute", labels={**SKY, "skypilot-head-node": "1"})
    fake.add("us-central1-b", f"{CLUSTER}-worker-ef56ab78-compute", labels=SKY)
    fake.add("us-central1-b", "notebook", labels={"team": "ml"})
    with serve_gce(fake):
        client = compute_v1.InstancesClient(
            credentials=AnonymousCredentials(), client_options={"api_endpoint": fake.url}
        )
        exercise(GcpInventory("ml-project", client))
        assert fake.server is not None
        used = {gce_permission(call.method, call.path) for call in fake.server.calls}
    assert used == GCP
    assert {p.rsplit(".", 1)[1] for p in used} == {"list", "get", "stop", "delete"}


# --- Azure ---------------------------------------------------------------------------------------


def arm_permission(method: str, path: str) -> str:
    """The Azure RBAC action ARM checks for a Microsoft.Compute/virtualMachines request."""
    parts = path.lower().strip("/").split("/")
    provider = parts.index("microsoft.compute")
    rest = parts[provider + 2 :]  # after "virtualmachines": [] (the list), [name] or [name, action]
    base = "Microsoft.Compute/virtualMachines"
    match (method, rest):
        case ("GET", []) | ("GET", [_]):
            return f"{base}/read"
        case ("GET", [_, "instanceview"]):
            return f"{base}/instanceView/read"
        case ("POST", [_, action]):
            return f"{base}/{action}/action"
        case ("DELETE", [_]):
            return f"{base}/delete"
    raise AssertionError(f"a request no permission is listed for: {method} {path}")


def test_azure_adapter_calls_exactly_the_permissions_it_names() -> None:
    fake = FakeArm()
    group = f"{CLUSTER}-eastus"
    fake.add(group, f"{CLUSTER}-5e1d-0", tags={**SKY, "skypilot-head-node": "1"})
    worker = fake.add(group, f"{CLUSTER}-5e1d-1", tags=SKY)
    fake.add("infra", "build-box", tags={"team": "infra"})
    fake.missing_from_status.add(worker.lower())  # the instance-view fallback of the poll
    with serve_arm(fake):
        client = ComputeManagementClient(
            StaticToken(), SUBSCRIPTION, base_url=fake.url, connection_verify=fake.ca_file, retry_total=0
        )
        exercise(AzureInventory(SUBSCRIPTION, client=client))
        assert fake.server is not None
        used = {arm_permission(call.method, call.path) for call in fake.server.calls}
    assert used == AZURE
    assert f"{'Microsoft.Compute/virtualMachines'}/instanceView/read" in used, "the fallback ran"
