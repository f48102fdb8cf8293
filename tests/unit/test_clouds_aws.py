"""The AWS adapter against moto's EC2 (instances tagged as SkyPilot's provisioner tags them) and
against botocore's Stubber for the errors moto does not make (throttling, expired credentials)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import NoCredentialsError
from botocore.stub import ANY, Stubber
from moto import mock_aws

from costwarden.clouds.aws import AwsInventory
from costwarden.clouds.base import VMInventory
from costwarden.engine.vms import PENDING, RUNNING, STOPPED, STOPPING, TERMINATED, VMRecord
from tests.cloud_fleet import CLUSTER, DECOY, USER, Fleet, skypilot_tags

REGION = "us-east-1"


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    with mock_aws():
        client = boto3.client("ec2", region_name=REGION)
        made = Fleet(client, "", [], "", "")
        # A 1-head + 2-worker cluster; SkyPilot keeps a multi-node cluster in one zone, but a
        # resumed worker may come back in another (run_instances warns of it).
        made.head = made.launch("p4d.24xlarge", "us-east-1a", skypilot_tags(CLUSTER, True, team="ml"))
        made.workers = [
            made.launch("p4d.24xlarge", "us-east-1a", skypilot_tags(CLUSTER, False)),
            made.launch("p4d.24xlarge", "us-east-1b", skypilot_tags(CLUSTER, False)),
        ]
        made.decoy = made.launch("g5.xlarge", "us-east-1b", skypilot_tags(DECOY, True), spot=True)
        made.untagged = made.launch("g5.xlarge", "us-east-1a", [{"Key": "Name", "Value": "notebook"}])
        yield made


def by_id(vms: tuple[VMRecord, ...]) -> dict[str, VMRecord]:
    return {vm.vm_id: vm for vm in vms}


def test_it_is_a_vm_inventory_and_makes_no_client_until_used() -> None:
    made: list[str] = []
    inventory = AwsInventory("eu-west-1", make_client=made.append)
    assert isinstance(inventory, AwsInventory)
    typed: VMInventory = inventory
    assert (typed.cloud, typed.scope) == ("aws", "aws:eu-west-1")
    assert made == []


def test_discover_finds_exactly_the_skypilot_instances_with_their_facts(fleet: Fleet) -> None:
    found = AwsInventory(REGION).discover()  # the default client, from boto3's chain (moto's here)

    assert found.complete and found.error is None
    vms = by_id(found.vms)
    assert set(vms) == {fleet.head, *fleet.workers, fleet.decoy}
    head = vms[fleet.head]
    assert (head.cloud, head.scope, head.region, head.zone) == ("aws", "aws:us-east-1", REGION, "us-east-1a")
    assert (head.name, head.instance_type, head.capacity_type) == (
        f"sky-{CLUSTER}-head",
        "p4d.24xlarge",
        "on-demand",
    )
    assert head.state in (PENDING, RUNNING)
    assert head.cluster == CLUSTER and head.is_head and head.user == USER
    assert head.tag_map["team"] == "ml"
    assert head.provider_id == f"aws:///us-east-1a/{fleet.head}"
    assert head.key == f"vm:aws:{fleet.head}"
    assert head.launched is not None and head.launched.tzinfo is not None
    worker = vms[fleet.workers[1]]
    assert (worker.zone, worker.is_head, worker.cluster) == ("us-east-1b", False, CLUSTER)
    assert worker.provider_id == f"aws:///us-east-1b/{fleet.workers[1]}"
    decoy = vms[fleet.decoy]
    assert (decoy.capacity_type, decoy.instance_type, decoy.cluster) == ("spot", "g5.xlarge", DECOY)


def test_discover_keeps_every_state_and_maps_it(fleet: Fleet) -> None:
    fleet.client.stop_instances(InstanceIds=[fleet.workers[0]])
    fleet.client.terminate_instances(InstanceIds=[fleet.workers[1]])

    vms = by_id(AwsInventory(REGION, fleet.client).discover().vms)

    assert vms[fleet.workers[0]].state in (STOPPING, STOPPED)
    assert vms[fleet.workers[1]].state == TERMINATED  # shutting-down or terminated
    assert vms[fleet.head].state == RUNNING


def test_an_instance_with_only_the_legacy_ray_tag_is_found(fleet: Fleet) -> None:
    legacy = fleet.launch("g5.2xlarge", "us-east-1a", [{"Key": "ray-cluster-name", "Value": "old-1"}])

    vm = by_id(AwsInventory(REGION, fleet.client).discover().vms)[legacy]

    assert (vm.cluster, vm.name) == ("old-1", legacy)  # no Name tag: the id


def test_stop_changes_only_the_clusters_instances(fleet: Fleet) -> None:
    inventory = AwsInventory(REGION, fleet.client)
    mine = [vm for vm in inventory.discover().vms if vm.cluster == CLUSTER]

    results = inventory.stop(mine)

    assert [r.vm_id for r in results] == [vm.vm_id for vm in mine]
    assert all(r.ok and r.message in ("stopping", "stopped") for r in results), results
    for vm_id in (fleet.head, *fleet.workers):
        assert fleet.state(vm_id) in ("stopping", "stopped")
    assert fleet.state(fleet.decoy) == "running"
    assert fleet.state(fleet.untagged) == "running"
    again = inventory.stop(mine)
    assert all(r.ok and r.message.startswith("already ") for r in again), again


def test_terminate_changes_only_the_clusters_instances_and_again_is_ok(fleet: Fleet) -> None:
    inventory = AwsInventory(REGION, fleet.client)
    mine = [vm for vm in inventory.discover().vms if vm.cluster == CLUSTER]

    results = inventory.terminate(mine)

    assert all(r.ok for r in results), results
    for vm_id in (fleet.head, *fleet.workers):
        assert fleet.state(vm_id) in ("shutting-down", "terminated")
    assert fleet.state(fleet.decoy) == "running"
    assert fleet.state(fleet.untagged) == "running"
    again = inventory.terminate(mine)
    assert [(r.ok, r.message) for r in again] == [(True, "already terminated")] * 3
    assert all(vm.state == TERMINATED for vm in inventory.describe(mine).vms)


def test_a_forged_record_pointing_at_another_instance_is_left_alone(fleet: Fleet) -> None:
    inventory = AwsInventory(REGION, fleet.client)
    head = by_id(inventory.discover().vms)[fleet.head]
    at_untagged = replace(head, vm_id=fleet.untagged)  # claims llama-sweep-2ea4's tags
    at_decoy = replace(head, vm_id=fleet.decoy)
    untagged_record = replace(head, vm_id=fleet.untagged, tags=())  # claims no cluster at all

    for act in (inventory.stop, inventory.terminate):
        results = act([at_untagged, at_decoy, untagged_record])
        assert [r.ok for r in results] == [False, False, False], results
        assert all(r.message.endswith("left alone") and not r.transient for r in results)
        assert "no SkyPilot cluster tag on the instance" in results[0].message
        assert f"tagged for cluster {DECOY}, not {CLUSTER}" in results[1].message
    assert fleet.state(fleet.untagged) == "running"
    assert fleet.state(fleet.decoy) == "running"


def test_a_record_claiming_another_cluster_or_region_is_left_alone(fleet: Fleet) -> None:
    inventory = AwsInventory(REGION, fleet.client)
    head = by_id(inventory.discover().vms)[fleet.head]
    claims_decoy = replace(head, tags=(("skypilot-cluster-name", DECOY),))
    elsewhere = replace(head, scope="aws:us-west-2", region="us-west-2")

    results = inventory.terminate([claims_decoy, elsewhere])

    assert [r.ok for r in results] == [False, False]
    assert f"tagged for cluster {CLUSTER}, not {DECOY}" in results[0].message
    assert "not aws:us-east-1" in results[1].message
    assert fleet.state(fleet.head) == "running"


def test_a_spot_instance_is_not_stopped_but_can_be_terminated(fleet: Fleet) -> None:
    inventory = AwsInventory(REGION, fleet.client)
    decoy = by_id(inventory.discover().vms)[fleet.decoy]

    (stopped,) = inventory.stop([decoy])
    assert not stopped.ok and "spot" in stopped.message
    assert fleet.state(fleet.decoy) == "running"
    (terminated,) = inventory.terminate([decoy])
    assert terminated.ok
    assert fleet.state(fleet.decoy) in ("shutting-down", "terminated")


def test_an_id_ec2_no_longer_knows_is_terminated(fleet: Fleet) -> None:
    inventory = AwsInventory(REGION, fleet.client)
    head = by_id(inventory.discover().vms)[fleet.head]
    gone = replace(head, vm_id="i-0123456789abcdef0")

    now = inventory.describe([gone, head])

    assert now.complete
    assert [(vm.vm_id, vm.state) for vm in now.vms] == [(gone.vm_id, TERMINATED), (head.vm_id, RUNNING)]
    assert [(r.ok, r.message) for r in inventory.terminate([gone])] == [
        (True, "already terminated (EC2 no longer knows it)")
    ]


# -- failures: nothing raises ----------------------------------------------------------------------


def stubbed() -> tuple[Any, Stubber]:
    client = boto3.client(
        "ec2", region_name=REGION, aws_access_key_id="k", aws_secret_access_key="s", aws_session_token="t"
    )
    return client, Stubber(client)


def instance_page(vm_id: str, cluster: str = CLUSTER) -> dict[str, Any]:
    return {
        "Reservations": [
            {
                "Instances": [
                    {
                        "InstanceId": vm_id,
                        "InstanceType": "g5.xlarge",
                        "State": {"Code": 16, "Name": "running"},
                        "Placement": {"AvailabilityZone": "us-east-1a"},
                        "Tags": skypilot_tags(cluster, True),
                    }
                ]
            }
        ]
    }


def test_throttled_discovery_is_incomplete_with_what_was_read_and_the_wait() -> None:
    client, stub = stubbed()
    stub.add_response("describe_instances", {**instance_page("i-0aaaaaaaaaaaaaaa1"), "NextToken": "p2"})
    stub.add_client_error(
        "describe_instances",
        "RequestLimitExceeded",
        "Request limit exceeded.",
        http_status_code=503,
        response_meta={"HTTPHeaders": {"retry-after": "7"}},
    )
    with stub:
        found = AwsInventory(REGION, client).discover()

    assert not found.complete
    assert [vm.vm_id for vm in found.vms] == ["i-0aaaaaaaaaaaaaaa1"]
    assert found.error == "aws:us-east-1 DescribeInstances: RequestLimitExceeded: Request limit exceeded."
    assert found.retry_after == 7.0


def test_expired_credentials_make_discovery_incomplete() -> None:
    client, stub = stubbed()
    stub.add_client_error(
        "describe_instances", "ExpiredToken", "The security token included in the request is expired"
    )
    with stub:
        found = AwsInventory(REGION, client).discover()

    assert (found.complete, found.vms, found.retry_after) == (False, (), None)
    assert found.error is not None and found.error.startswith(
        "aws:us-east-1 DescribeInstances: ExpiredToken: "
    )


def test_an_unreachable_endpoint_or_no_credentials_make_discovery_incomplete() -> None:
    unreachable = boto3.client(
        "ec2",
        region_name=REGION,
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="k",
        aws_secret_access_key="s",
        config=Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=2),
    )
    found = AwsInventory(REGION, unreachable).discover()
    assert not found.complete
    assert found.error is not None and "DescribeInstances: EndpointConnectionError" in found.error

    def no_credentials(region: str) -> Any:
        raise NoCredentialsError()

    found = AwsInventory(REGION, make_client=no_credentials).discover()
    assert not found.complete
    assert found.error == "aws:us-east-1 DescribeInstances: NoCredentialsError: Unable to locate credentials"


def test_a_throttled_stop_is_transient_and_denied_is_not() -> None:
    client, stub = stubbed()
    vm_id = "i-0aaaaaaaaaaaaaaa1"
    stub.add_response("describe_instances", instance_page(vm_id), {"Filters": ANY})
    stub.add_client_error("stop_instances", "RequestLimitExceeded", "Request limit exceeded.", 503)
    stub.add_response("describe_instances", instance_page(vm_id), {"Filters": ANY})
    stub.add_client_error("terminate_instances", "UnauthorizedOperation", "You are not authorized.", 403)
    stub.add_client_error("describe_instances", "Throttling", "Rate exceeded", 400)
    inventory = AwsInventory(REGION, client)
    with stub:
        record = _record(vm_id)
        (stopped,) = inventory.stop([record])
        (terminated,) = inventory.terminate([record])
        (unread,) = inventory.stop([record])
        stub.assert_no_pending_responses()

    assert (stopped.ok, stopped.transient) == (False, True)
    assert stopped.message == "aws:us-east-1 StopInstances: RequestLimitExceeded: Request limit exceeded."
    assert (terminated.ok, terminated.transient) == (False, False)
    assert "UnauthorizedOperation" in terminated.message
    assert (unread.ok, unread.transient) == (False, True)
    assert unread.message.startswith("could not re-read it (aws:us-east-1 DescribeInstances: Throttling")


def test_one_refused_instance_does_not_keep_the_others_running() -> None:
    client, stub = stubbed()
    first, second = "i-0aaaaaaaaaaaaaaa1", "i-0aaaaaaaaaaaaaaa2"
    page = instance_page(first)
    page["Reservations"] += instance_page(second)["Reservations"]
    stub.add_response(
        "describe_instances", page, {"Filters": [{"Name": "instance-id", "Values": [first, second]}]}
    )
    stub.add_client_error("stop_instances", "IncorrectInstanceState", "not in a state to stop", 400)
    stub.add_client_error("stop_instances", "IncorrectInstanceState", "not in a state to stop", 400)
    stopping = {
        "CurrentState": {"Code": 64, "Name": "stopping"},
        "PreviousState": {"Code": 16, "Name": "running"},
    }
    stub.add_response(
        "stop_instances",
        {"StoppingInstances": [{"InstanceId": second, **stopping}]},
        {"InstanceIds": [second]},
    )
    with stub:
        results = AwsInventory(REGION, client).stop([_record(first), _record(second)])
        stub.assert_no_pending_responses()

    assert [(r.vm_id, r.ok) for r in results] == [(first, False), (second, True)]
    assert "IncorrectInstanceState" in results[0].message and not results[0].transient
    assert results[1].message == "stopping"


def _record(vm_id: str) -> VMRecord:
    return VMRecord(
        cloud="aws",
        scope="aws:us-east-1",
        vm_id=vm_id,
        name=vm_id,
        region=REGION,
        zone="us-east-1a",
        instance_type="g5.xlarge",
        capacity_type="on-demand",
        state=RUNNING,
        launched=None,
        tags=(("skypilot-cluster-name", CLUSTER),),
    )
