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
from moto import mock_aws

from costwarden.clouds.aws import AwsInventory
from costwarden.engine.vms import vm_node
from costwarden.pricing import PriceBook, load_bundled_catalog
from costwarden.sim.testing import ThreadedSimCluster
from tests import shapes
from tests.cloud_fleet import CLUSTER, DECOY, Fleet, skypilot_tags
from tests.component.test_live_prices import metric
from tests.component.test_operator_spend import NS, budget, status_of

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
