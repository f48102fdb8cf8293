"""The real operator with ``--cloud aws:us-east-1`` against moto's EC2: a budget naming a SkyPilot
cluster that runs on VMs (no pod left on Kubernetes) counts and prices them, and at the crossing
terminates exactly that cluster's instances, workers before the head; another cluster's
instance and an untagged one stay running."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from azure.mgmt.compute import ComputeManagementClient
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1
from moto import mock_aws

from costwarden.clouds.aws import AwsInventory
from costwarden.clouds.azure import AzureInventory
from costwarden.clouds.gcp import GcpInventory
from costwarden.engine.vms import vm_node
from costwarden.pricing import PriceBook, load_bundled_catalog
from costwarden.sim.testing import ThreadedSimCluster
from tests import shapes
from tests.arm_fake import FakeArm, StaticToken
from tests.arm_fake import serve as serve_arm
from tests.cloud_fleet import CLUSTER, DECOY, Fleet, skypilot_tags
from tests.component.test_live_prices import metric
from tests.component.test_operator_spend import NS, budget, status_of
from tests.gce_fake import FakeGce
from tests.gce_fake import serve as serve_gce

REGION = "us-east-1"


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    with mock_aws():
        made = Fleet(boto3.client("ec2", region_name=REGION), "", [], "", "")
        made.head = made.launch("p4d.24xlarge", "us-east-1a", skypilot_tags(CLUSTER, True))
        made.workers = [
            made.launch("p4d.24xlarge", "us-east-1a", skypilot_tags(CLUSTER, False)) for _ in range(2)
        ]
        made.decoy = made.launch("g5.xlarge", "us-east-1b", skypilot_tags(DECOY, True))
        made.untagged = made.launch("p4d.24xlarge", "us-east-1a", [{"Key": "Name", "Value": "notebook"}])
        yield made


def vm_budget(limit: float) -> dict[str, Any]:
    """The cluster's budget; its pods are gone from Kubernetes (the job failed over to AWS)."""
    return budget(
        limit=limit, thresholds=[{"percent": 50, "action": "Notify"}, {"percent": 100, "action": "Kill"}]
    )


def hourly_list_price(instance_type: str) -> Decimal:
    """What the operator's own price resolution gives one of the cluster's instances."""
    vm = next(v for v in AwsInventory(REGION).discover().vms if v.instance_type == instance_type)
    return PriceBook(load_bundled_catalog()).price(vm_node(vm)).hourly


def record(status: dict[str, Any], prefix: str) -> dict[str, Any] | None:
    return next((r for r in status.get("actions") or [] if r["id"].startswith(prefix)), None)


def test_a_budget_follows_its_cluster_onto_ec2_and_terminates_exactly_its_instances(
    cluster: ThreadedSimCluster, start_operator: Any, clock: Any, fleet: Fleet
) -> None:
    cluster.create(shapes.namespace(NS))
    cluster.create(vm_budget(limit=100))
    rate = 3 * hourly_list_price("p4d.24xlarge")
    operator = start_operator(clouds=(f"aws:{REGION}",), cloud_interval=0.5)

    cluster.wait_for(lambda: status_of(cluster).get("vms") == 3, timeout=20)
    cluster.wait_for(lambda: status_of(cluster).get("hourlyRate") == float(round(rate, 4)), timeout=10)
    status = status_of(cluster)
    assert status["pods"] == 0 and status["gpus"] == 24  # 3 x 8 A100 from the catalog's shape
    cloud = next(c for c in status["conditions"] if c["type"] == "CloudUnavailable")
    assert cloud["status"] == "False"
    assert metric(operator.settings.metrics_port, "costwarden_cloud_up", f'scope="aws:{REGION}"') == 1.0

    clock.advance(timedelta(hours=1))  # 65.87 of 100: the Notify threshold, nothing stopped
    cluster.wait_for(lambda: record(status_of(cluster), "threshold/50") is not None, timeout=10)
    assert all(fleet.state(vm) == "running" for vm in [fleet.head, *fleet.workers])
    assert float(status_of(cluster)["vmSpend"]) == pytest.approx(float(rate), abs=0.01)

    clock.advance(timedelta(hours=1))  # 131.75 of 100: Kill
    cluster.wait_for(
        lambda: (record(status_of(cluster), "threshold/100") or {}).get("result") == "Done", timeout=15
    )
    killed = record(status_of(cluster), "threshold/100")
    assert killed is not None
    ours = [f"VM/aws:{vm}" for vm in sorted(fleet.workers)] + [f"VM/aws:{fleet.head}"]
    assert killed["targets"] == ours  # workers first, the head last
    for vm in [fleet.head, *fleet.workers]:
        assert fleet.state(vm) in ("shutting-down", "terminated")
    assert fleet.state(fleet.decoy) == "running"
    assert fleet.state(fleet.untagged) == "running"
    # the terminated VMs keep their spend in the budget; they no longer count as live
    cluster.wait_for(lambda: status_of(cluster).get("vms") == 0, timeout=15)
    assert float(status_of(cluster)["spend"]) >= 131.7
    assert operator.error is None


def sky_labels(cluster: str, head: bool) -> dict[str, str]:
    """SkyPilot's labels (GCE) / tags (Azure) on one VM of ``cluster``."""
    return {
        "skypilot-cluster-name": cluster,
        "ray-cluster-name": cluster,
        "skypilot-head-node": "1" if head else "0",
        "ray-node-type": "head" if head else "worker",
        "skypilot-user": "alice",
    }


def crossed_and_killed(cluster: ThreadedSimCluster, clock: Any, hours: int) -> dict[str, Any]:
    """Advance past the limit, wait for the Kill to be Done, and return its record."""
    cluster.wait_for(lambda: status_of(cluster).get("vms") == 3, timeout=20)
    clock.advance(timedelta(hours=hours))
    cluster.wait_for(
        lambda: (record(status_of(cluster), "threshold/100") or {}).get("result") == "Done", timeout=15
    )
    killed = record(status_of(cluster), "threshold/100")
    assert killed is not None
    return killed


def test_on_gce_the_crossing_deletes_the_clusters_vms_workers_first(
    cluster: ThreadedSimCluster, start_operator: Any, clock: Any
) -> None:
    fake = FakeGce(project="ml-project")
    head = fake.add(
        "us-central1-a",
        f"{CLUSTER}-head-ab12cd34-compute",
        machine_type="a2-highgpu-8g",
        labels=sky_labels(CLUSTER, True),
    )
    for suffix in ("ef56ab78", "99aa00bb"):
        fake.add(
            "us-central1-a",
            f"{CLUSTER}-worker-{suffix}-compute",
            machine_type="a2-highgpu-8g",
            labels=sky_labels(CLUSTER, False),
        )
    fake.add(
        "us-central1-a",
        f"{DECOY}-head-00000000-compute",
        machine_type="a2-highgpu-8g",
        labels=sky_labels(DECOY, True),
    )
    fake.add("us-central1-a", "build-box", labels={"team": "infra"})
    cluster.create(shapes.namespace(NS))
    cluster.create(vm_budget(limit=100))
    with serve_gce(fake):
        client = compute_v1.InstancesClient(
            credentials=AnonymousCredentials(), client_options={"api_endpoint": fake.url}
        )
        operator = start_operator(cloud_interval=0.5, vm_inventories=(GcpInventory("ml-project", client),))
        killed = crossed_and_killed(cluster, clock, hours=2)  # 3 x a2-highgpu-8g for 2 h > 100
        deleted = [name for verb, _, name in fake.actions if verb == "delete"]
        assert deleted == [
            f"{CLUSTER}-worker-99aa00bb-compute",
            f"{CLUSTER}-worker-ef56ab78-compute",
            head["name"],
        ]
        assert killed["targets"][-1] == f"VM/gcp:ml-project/us-central1-a/{head['name']}"
        assert ("us-central1-a", f"{DECOY}-head-00000000-compute") in fake.instances
        assert ("us-central1-a", "build-box") in fake.instances
        cluster.wait_for(
            lambda: status_of(cluster).get("vms") == 0, timeout=15
        )  # gone from the listing: closed
        assert float(status_of(cluster)["vmSpend"]) >= 100
        assert operator.error is None


def test_on_azure_the_crossing_deletes_the_clusters_vms_workers_first(
    cluster: ThreadedSimCluster, start_operator: Any, clock: Any
) -> None:
    fake = FakeArm()
    group = f"{CLUSTER}-eastus"
    size = "Standard_NC96ads_A100_v4"
    fake.add(group, f"{CLUSTER}-5e1d-0", size=size, tags=sky_labels(CLUSTER, True))
    fake.add(group, f"{CLUSTER}-5e1d-1", size=size, tags=sky_labels(CLUSTER, False))
    fake.add(group, f"{CLUSTER}-5e1d-2", size=size, tags=sky_labels(CLUSTER, False))
    fake.add(f"{DECOY}-eastus", f"{DECOY}-0a0b-0", size=size, tags=sky_labels(DECOY, True))
    fake.add("infra", "build-box", size="Standard_D4s_v5", tags={"team": "infra"})
    cluster.create(shapes.namespace(NS))
    cluster.create(vm_budget(limit=60))
    with serve_arm(fake):
        client = ComputeManagementClient(
            StaticToken(), fake.subscription, base_url=fake.url, connection_verify=fake.ca_file, retry_total=0
        )
        operator = start_operator(
            cloud_interval=0.5, vm_inventories=(AzureInventory(fake.subscription, client=client),)
        )
        crossed_and_killed(cluster, clock, hours=2)  # 3 x NC96ads_A100_v4 (14.692/h) for 2 h > 60
        assert fake.actions == [
            ("delete", f"{CLUSTER}-5e1d-1"),
            ("delete", f"{CLUSTER}-5e1d-2"),
            ("delete", f"{CLUSTER}-5e1d-0"),
        ]
        assert operator.error is None


def test_vm_spend_survives_an_operator_restart(
    cluster: ThreadedSimCluster, start_operator: Any, clock: Any, fleet: Fleet
) -> None:
    cluster.create(shapes.namespace(NS))
    cluster.create(vm_budget(limit=10_000))
    rate = 3 * hourly_list_price("p4d.24xlarge")
    first = start_operator(clouds=(f"aws:{REGION}",), cloud_interval=0.5)
    cluster.wait_for(lambda: status_of(cluster).get("vms") == 3, timeout=20)
    clock.advance(timedelta(hours=1))
    cluster.wait_for(lambda: status_of(cluster).get("vmSpend") == float(round(rate, 2)), timeout=10)
    first.stop()
    clock.advance(timedelta(hours=2))  # the VMs ran on while no operator was looking
    start_operator(clouds=(f"aws:{REGION}",), cloud_interval=0.5)
    cluster.wait_for(lambda: status_of(cluster).get("vmSpend") == float(round(3 * rate, 2)), timeout=20)


def test_nothing_is_deleted_while_the_cloud_does_not_answer_and_spend_keeps_accruing(
    cluster: ThreadedSimCluster, start_operator: Any, clock: Any
) -> None:
    fake = FakeGce(project="ml-project")
    for index in range(3):
        role = "head" if index == 0 else "worker"
        fake.add(
            "us-central1-a",
            f"{CLUSTER}-{role}-{index:08x}-compute",
            machine_type="a2-highgpu-8g",
            labels=sky_labels(CLUSTER, index == 0),
        )
    cluster.create(shapes.namespace(NS))
    cluster.create(vm_budget(limit=100))
    with serve_gce(fake):
        client = compute_v1.InstancesClient(
            credentials=AnonymousCredentials(), client_options={"api_endpoint": fake.url}
        )
        inventory = GcpInventory("ml-project", client, retry=None)
        start_operator(cloud_interval=0.5, cloud_stale_after=1.0, vm_inventories=(inventory,))
        cluster.wait_for(lambda: status_of(cluster).get("vms") == 3, timeout=20)
        hourly = status_of(cluster)["hourlyRate"]

        fake.fail = {"aggregatedList": (503, "The service is currently unavailable.", "backendError")}
        cluster.wait_for(lambda: condition(status_of(cluster), "CloudUnavailable") == "True", timeout=15)
        assert "503" in message(status_of(cluster), "CloudUnavailable")
        clock.advance(timedelta(hours=2))  # past the limit while the cloud is down
        cluster.wait_for(lambda: "waiting: no recent complete answer" in killing(cluster), timeout=15)
        assert status_of(cluster)["vms"] == 3  # last known state: the VMs still count and accrue
        assert status_of(cluster)["spend"] == pytest.approx(2 * hourly, abs=0.01)
        assert [verb for verb, *_ in fake.actions] == []  # nothing deleted on stale data

        fake.fail = {}  # the cloud answers again: the kill proceeds, attempts not used up
        cluster.wait_for(
            lambda: (record(status_of(cluster), "threshold/100") or {}).get("result") == "Done", timeout=20
        )
        assert sorted(verb for verb, *_ in fake.actions) == ["delete"] * 3
        assert condition(status_of(cluster), "CloudUnavailable") == "False"


def condition(status: dict[str, Any], kind: str) -> str | None:
    return next((c["status"] for c in status.get("conditions") or [] if c["type"] == kind), None)


def message(status: dict[str, Any], kind: str) -> str:
    return next((c["message"] for c in status.get("conditions") or [] if c["type"] == kind), "")


def killing(cluster: ThreadedSimCluster) -> str:
    return str((record(status_of(cluster), "threshold/100") or {}).get("message") or "")
