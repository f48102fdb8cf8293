"""AzureInventory with the real azure-mgmt-compute ComputeManagementClient (a static bearer token,
over https to a self-signed local server) against a local fake of ARM's virtualMachines
(tests/arm_fake.py): a SkyPilot cluster ``train-3f2a`` in its resource group ``train-3f2a-eastus``
(a head, a spot worker, a deallocated worker), a decoy cluster's VM and an untagged VM."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.mgmt.compute import ComputeManagementClient

from costwarden.clouds.azure import AzureInventory, state_of
from costwarden.engine.vms import PENDING, RUNNING, STOPPED, STOPPING, TERMINATED, VMRecord
from tests.arm_fake import SUBSCRIPTION, FakeArm, StaticToken, serve

CLUSTER = "train-3f2a"
GROUP = f"{CLUSTER}-eastus"
HEAD, WORKER, PARKED = f"{CLUSTER}-5e1d-0", f"{CLUSTER}-5e1d-1", f"{CLUSTER}-77c0-0"
DECOY, UNTAGGED = "decoy-7c1e-0a0b-0", "build-box"


def _sky(cluster: str, head: bool) -> dict[str, str]:
    return {
        "skypilot-cluster-name": cluster,
        "ray-cluster-name": cluster,
        "skypilot-head-node": "1" if head else "0",
        "ray-node-type": "head" if head else "worker",
        "skypilot-vm-id": "5e1d",
        "skypilot-user": "alice",
    }


@pytest.fixture
def fake() -> Iterator[FakeArm]:
    fake = FakeArm()
    fake.add(GROUP, HEAD, tags=_sky(CLUSTER, head=True), zones=["2"])
    fake.add(GROUP, WORKER, size="Standard_NC24ads_A100_v4", tags=_sky(CLUSTER, head=False), spot=True)
    fake.add(GROUP, PARKED, tags=_sky(CLUSTER, head=False), power="deallocated")
    fake.add("decoy-7c1e-eastus", DECOY, tags=_sky("decoy-7c1e", head=True))
    fake.add("infra", UNTAGGED, size="Standard_D4s_v5", tags={"team": "infra"})
    with serve(fake):
        yield fake


def _client(fake: FakeArm, token: str | None = None) -> ComputeManagementClient:
    credential = StaticToken() if token is None else StaticToken(token)
    return ComputeManagementClient(
        credential, SUBSCRIPTION, base_url=fake.url, connection_verify=fake.ca_file, retry_total=0
    )


def _inventory(fake: FakeArm, token: str | None = None) -> AzureInventory:
    return AzureInventory(SUBSCRIPTION, client=_client(fake, token))


def _by_name(records: tuple[VMRecord, ...]) -> dict[str, VMRecord]:
    return {r.name: r for r in records}


def _vm_id(group: str, name: str) -> str:
    vms = "providers/microsoft.compute/virtualmachines"
    return f"/subscriptions/{SUBSCRIPTION}/resourcegroups/{group}/{vms}/{name}"


def _lists(fake: FakeArm) -> list[str]:
    assert fake.server is not None
    return [
        "status" if c.query.get("statusOnly") else "list"
        for c in fake.server.calls
        if c.path.lower().endswith("/providers/microsoft.compute/virtualmachines")
    ]


def test_discover_finds_the_tagged_vms_with_their_facts(fake: FakeArm) -> None:
    found = _inventory(fake).discover()

    assert found.complete and found.error is None
    vms = _by_name(found.vms)
    assert set(vms) == {HEAD, WORKER, PARKED, DECOY}
    head = vms[HEAD]
    assert head == VMRecord(
        cloud="azure",
        scope=f"azure:{SUBSCRIPTION}",
        vm_id=_vm_id(GROUP, HEAD),
        name=HEAD,
        region="eastus",
        zone="2",
        instance_type="Standard_NC4as_T4_v3",
        capacity_type="on-demand",
        state=RUNNING,
        launched=datetime(2026, 11, 30, 16, 0, 12, 500000, tzinfo=UTC),
        tags=tuple(sorted(_sky(CLUSTER, head=True).items())),
        provider_id=(
            f"azure:///subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP.upper()}"
            f"/providers/Microsoft.Compute/virtualMachines/{HEAD}"
        ),
    )
    assert head.cluster == CLUSTER and head.is_head and head.user == "alice"
    worker = vms[WORKER]
    assert (worker.instance_type, worker.capacity_type, worker.zone, worker.state, worker.is_head) == (
        "Standard_NC24ads_A100_v4",
        "spot",
        None,
        RUNNING,
        False,
    )
    assert vms[PARKED].state == STOPPED
    assert vms[DECOY].cluster == "decoy-7c1e"
    # Two paged lists (3 pages each at 2 VMs a page), no call per VM; every call with an api-version.
    assert _lists(fake) == ["list"] * 3 + ["status"] * 3
    assert fake.server is not None and all(c.query.get("api-version") for c in fake.server.calls)


def test_a_vm_missing_from_the_status_list_gets_its_own_instance_view(fake: FakeArm) -> None:
    fake.missing_from_status.add(_vm_id(GROUP, WORKER).replace(GROUP, GROUP.upper()).lower())

    found = _inventory(fake).discover()

    assert found.complete and _by_name(found.vms)[WORKER].state == RUNNING
    assert fake.server is not None
    views = [c.path for c in fake.server.calls if c.path.endswith("/instanceView")]
    assert len(views) == 1 and views[0].endswith(f"/{WORKER}/instanceView")


def test_a_subscription_without_skypilot_vms_costs_one_list(fake: FakeArm) -> None:
    for key in list(fake.vms):
        fake.vms[key].pop("tags", None)

    found = _inventory(fake).discover()

    assert (found.complete, found.vms) == (True, ())
    assert _lists(fake) == ["list"] * 3


@pytest.mark.parametrize(
    ("provisioning", "power", "state"),
    [
        ("Succeeded", "starting", PENDING),
        ("Succeeded", "running", RUNNING),
        ("Succeeded", "stopping", STOPPING),
        ("Succeeded", "stopped", RUNNING),  # powered off but allocated: still billed
        ("Succeeded", "deallocating", STOPPING),
        ("Succeeded", "deallocated", STOPPED),
        ("Deleting", "running", TERMINATED),
        ("Updating", "running", RUNNING),
        ("Creating", None, PENDING),
        ("Deleting", None, TERMINATED),
    ],
)
def test_azure_states_map_onto_the_normalised_states(
    provisioning: str, power: str | None, state: str
) -> None:
    @dataclasses.dataclass
    class Status:
        code: str
        time: datetime | None = None

    statuses = [Status(f"ProvisioningState/{provisioning.lower()}")]
    if power is not None:
        statuses.append(Status(f"PowerState/{power}"))

    assert state_of(provisioning, statuses) == state


def test_stop_deallocates_only_the_clusters_running_vms(fake: FakeArm) -> None:
    inventory = _inventory(fake)
    cluster = [vm for vm in inventory.discover().vms if vm.cluster == CLUSTER]

    results = {r.vm_id: r for r in inventory.stop(cluster)}

    assert {(r.ok, r.message) for r in results.values()} == {
        (True, "deallocating"),
        (True, "already deallocated"),
    }
    assert results[_vm_id(GROUP, PARKED)].message == "already deallocated"
    assert sorted(fake.actions) == [("deallocate", HEAD), ("deallocate", WORKER)]
    assert fake.server is not None
    posts = [c for c in fake.server.calls if c.method == "POST"]
    assert len(posts) == 2 and all(c.query.get("api-version") for c in posts)
    # Not awaited: no call to the async operation's URL followed the 202s.
    assert not any("/operations/" in c.path for c in fake.server.calls)
    # Stopping again: the re-read says deallocating, nothing is sent.
    assert {r.message for r in inventory.stop(cluster)} == {"already deallocating", "already deallocated"}
    assert len(fake.actions) == 2


def test_a_powered_off_vm_is_running_for_billing_and_stop_deallocates_it(fake: FakeArm) -> None:
    vm_id = fake.add(GROUP, f"{CLUSTER}-5e1d-2", tags=_sky(CLUSTER, head=False), power="stopped")
    inventory = _inventory(fake)
    off = next(vm for vm in inventory.discover().vms if vm.vm_id == vm_id.lower())

    assert off.state == RUNNING
    assert [(r.ok, r.message) for r in inventory.stop([off])] == [(True, "deallocating")]


def test_terminate_deletes_only_the_clusters_vms(fake: FakeArm) -> None:
    inventory = _inventory(fake)
    cluster = [vm for vm in inventory.discover().vms if vm.cluster == CLUSTER]

    results = inventory.terminate(cluster)

    assert [(r.ok, r.message) for r in results] == [(True, "deleting")] * 3
    assert sorted(fake.actions) == sorted([("delete", HEAD), ("delete", WORKER), ("delete", PARKED)])
    after = inventory.describe(cluster)
    assert after.complete and {vm.state for vm in after.vms} == {TERMINATED}
    assert [r.message for r in inventory.terminate(cluster)] == ["already being deleted"] * 3
    assert len(fake.actions) == 3


def test_forged_records_are_left_alone(fake: FakeArm) -> None:
    inventory = _inventory(fake)
    head = _by_name(inventory.discover().vms)[HEAD]
    untagged = dataclasses.replace(head, vm_id=_vm_id("infra", UNTAGGED), name=UNTAGGED)
    decoy = dataclasses.replace(head, vm_id=_vm_id("decoy-7c1e-eastus", DECOY), name=DECOY)
    elsewhere = dataclasses.replace(head, vm_id=head.vm_id.replace(SUBSCRIPTION, "1" * 8 + SUBSCRIPTION[8:]))
    untold = dataclasses.replace(head, tags=())

    results = inventory.stop([untagged, decoy, elsewhere, untold]) + inventory.terminate(
        [untagged, decoy, elsewhere, untold]
    )

    assert [r.ok for r in results] == [False] * 8
    assert all(r.message.endswith("left alone") for r in results)
    assert results[0].message == "no SkyPilot cluster tag on the VM: left alone"
    assert results[1].message == f"its cluster tag is decoy-7c1e, not {CLUSTER}: left alone"
    assert results[2].message == f"not a VM of azure:{SUBSCRIPTION}: left alone"
    assert results[3].message == "no SkyPilot cluster tag in the record: left alone"
    assert fake.actions == []


def test_a_vm_retagged_since_discovery_is_left_alone(fake: FakeArm) -> None:
    inventory = _inventory(fake)
    head = _by_name(inventory.discover().vms)[HEAD]
    fake.vms[head.vm_id.replace(GROUP, GROUP.upper()).lower()]["tags"] = {
        "skypilot-cluster-name": "someone-else",
        "ray-cluster-name": "someone-else",
    }

    [result] = inventory.terminate([head])

    assert (result.ok, result.message) == (
        False,
        f"its cluster tag is someone-else, not {CLUSTER}: left alone",
    )
    assert fake.actions == []


@pytest.mark.parametrize(
    ("operation", "status", "code", "expected"),
    [
        ("list", 429, "TooManyRequests", "virtualMachines.listAll: HTTP 429 TooManyRequests: "),
        ("list", 500, "InternalServerError", "virtualMachines.listAll: HTTP 500 InternalServerError: "),
        ("list", 403, "AuthorizationFailed", "virtualMachines.listAll: HTTP 403 AuthorizationFailed: "),
        (
            "status",
            503,
            "ServiceUnavailable",
            "virtualMachines.listAll(statusOnly): HTTP 503 ServiceUnavailable: ",
        ),
    ],
)
def test_api_errors_make_discovery_incomplete_not_raise(
    fake: FakeArm, operation: str, status: int, code: str, expected: str
) -> None:
    fake.fail[operation] = (status, code, "Something went wrong.")
    fake.fail_headers = {"Retry-After": "17"} if status == 429 else {}

    found = _inventory(fake).discover()

    assert (found.complete, found.vms) == (False, ())
    assert found.error is not None and "\n" not in found.error
    assert found.error == f"azure:{SUBSCRIPTION} {expected}Something went wrong."
    assert found.retry_after == (17.0 if status == 429 else None)


def test_a_refused_token_makes_discovery_incomplete(fake: FakeArm) -> None:
    found = _inventory(fake, token="expired").discover()

    assert not found.complete
    assert found.error == (
        f"azure:{SUBSCRIPTION} virtualMachines.listAll: HTTP 401 InvalidAuthenticationToken: "
        "The access token is invalid."
    )


def test_a_credential_that_cannot_get_a_token_is_an_error_line() -> None:
    class NoToken:
        def get_token(self, *scopes: str, **kwargs: object) -> object:
            raise ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token")

    # The default client: the credential fails before any request leaves the process.
    found = AzureInventory(SUBSCRIPTION, credential=NoToken()).discover()

    assert not found.complete
    assert found.error == (
        f"azure:{SUBSCRIPTION} virtualMachines.listAll: credentials: "
        "DefaultAzureCredential failed to retrieve a token"
    )


@pytest.mark.parametrize(
    ("status", "code", "transient"),
    [(429, "TooManyRequests", True), (500, "InternalServerError", True), (409, "OperationNotAllowed", False)],
)
def test_action_errors_are_per_vm(fake: FakeArm, status: int, code: str, transient: bool) -> None:
    inventory = _inventory(fake)
    head = _by_name(inventory.discover().vms)[HEAD]
    fake.fail["deallocate"] = (status, code, "Not now.")

    [result] = inventory.stop([head])

    assert (result.ok, result.transient) == (False, transient)
    assert (
        result.message == f"azure:{SUBSCRIPTION} virtualMachines.deallocate: HTTP {status} {code}: Not now."
    )


def test_a_failed_reread_leaves_the_vm_alone(fake: FakeArm) -> None:
    inventory = _inventory(fake)
    head = _by_name(inventory.discover().vms)[HEAD]
    fake.fail["get"] = (503, "ServiceUnavailable", "Try later.")

    [result] = inventory.terminate([head])

    assert (result.ok, result.transient) == (False, True)
    assert result.message == (
        f"could not re-read it (azure:{SUBSCRIPTION} virtualMachines.get: HTTP 503 ServiceUnavailable: "
        "Try later.): left alone"
    )
    assert fake.actions == []


def test_describe_rereads_and_reports_what_it_cannot(fake: FakeArm) -> None:
    inventory = _inventory(fake)
    head = _by_name(inventory.discover().vms)[HEAD]
    fake.power[head.vm_id.replace(GROUP, GROUP.upper()).lower()] = "deallocating"
    gone = dataclasses.replace(head, vm_id=_vm_id(GROUP, f"{CLUSTER}-5e1d-9"))
    foreign = dataclasses.replace(
        head, vm_id="/subscriptions/x/resourceGroups/y/providers/Microsoft.Storage/z"
    )

    described = inventory.describe([head, gone, foreign])

    assert [vm.state for vm in described.vms] == [STOPPING, TERMINATED]
    assert not described.complete and described.error is not None
    assert described.error.endswith("is not a VM of this subscription: not read")
