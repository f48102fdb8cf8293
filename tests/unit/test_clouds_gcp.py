"""GcpInventory with the real google-cloud-compute InstancesClient (REST, anonymous credentials)
against a local fake of the Compute Engine API (tests/gce_fake.py): a SkyPilot cluster ``train-3f2a``
(an on-demand N1 head with a T4, a spot worker, a stopped worker), a decoy cluster's VM and an
untagged VM."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from google.api_core import retry as retries
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from costwarden.clouds.gcp import CLUSTER_FILTER, GcpInventory
from costwarden.engine.vms import PENDING, RUNNING, STOPPED, STOPPING, TERMINATED, VMRecord
from tests.gce_fake import FakeGce, serve

PROJECT = "ml-project"
CLUSTER = "train-3f2a"


def _sky(cluster: str, head: bool) -> dict[str, str]:
    return {
        "skypilot-cluster-name": cluster,
        "ray-cluster-name": cluster,
        "skypilot-head-node": "1" if head else "0",
        "ray-node-type": "head" if head else "worker",
        "skypilot-user": "alice",
    }


@pytest.fixture
def fake() -> Iterator[FakeGce]:
    fake = FakeGce(project=PROJECT)
    fake.add(
        "us-central1-a",
        f"{CLUSTER}-head-ab12cd34-compute",
        labels=_sky(CLUSTER, head=True),
        gpus=("nvidia-tesla-t4", 1),
    )
    fake.add(
        "us-central1-b",
        f"{CLUSTER}-worker-ef56ab78-compute",
        machine_type="a2-highgpu-1g",
        labels=_sky(CLUSTER, head=False),
        spot=True,
        started="2026-11-30T16:05:00Z",
    )
    fake.add(
        "europe-west4-a",
        f"{CLUSTER}-worker-99aa00bb-compute",
        labels=_sky(CLUSTER, head=False),
        status="TERMINATED",
    )
    fake.add("us-central1-a", "decoy-7c1e-head-00000000-compute", labels=_sky("decoy-7c1e", head=True))
    fake.add("us-central1-a", "build-box", labels={"team": "infra"}, machine_type="e2-standard-4")
    with serve(fake):
        yield fake


def _inventory(fake: FakeGce, retry: retries.Retry | None = None) -> GcpInventory:
    client = compute_v1.InstancesClient(
        credentials=AnonymousCredentials(), client_options={"api_endpoint": fake.url}
    )
    return GcpInventory(PROJECT, client, retry=retry)


def _by_name(records: tuple[VMRecord, ...]) -> dict[str, VMRecord]:
    return {r.name: r for r in records}


def test_discover_finds_the_labelled_vms_with_their_facts(fake: FakeGce) -> None:
    found = _inventory(fake).discover()

    assert found.complete and found.error is None
    vms = _by_name(found.vms)
    assert set(vms) == {
        f"{CLUSTER}-head-ab12cd34-compute",
        f"{CLUSTER}-worker-ef56ab78-compute",
        f"{CLUSTER}-worker-99aa00bb-compute",
        "decoy-7c1e-head-00000000-compute",
    }
    head = vms[f"{CLUSTER}-head-ab12cd34-compute"]
    assert head == VMRecord(
        cloud="gcp",
        scope=f"gcp:{PROJECT}",
        vm_id=f"{PROJECT}/us-central1-a/{CLUSTER}-head-ab12cd34-compute",
        name=f"{CLUSTER}-head-ab12cd34-compute",
        region="us-central1",
        zone="us-central1-a",
        instance_type="n1-standard-8",
        capacity_type="on-demand",
        state=RUNNING,
        launched=datetime(2026, 11, 30, 16, 0, 12, 500000, tzinfo=UTC),
        tags=tuple(sorted(_sky(CLUSTER, head=True).items())),
        provider_id=f"gce://{PROJECT}/us-central1-a/{CLUSTER}-head-ab12cd34-compute",
        accelerators=(("nvidia-tesla-t4", 1),),  # guestAccelerators: priced with the host
    )
    assert head.cluster == CLUSTER and head.is_head and head.user == "alice"
    worker = vms[f"{CLUSTER}-worker-ef56ab78-compute"]
    assert (worker.instance_type, worker.capacity_type, worker.region, worker.state) == (
        "a2-highgpu-1g",
        "spot",
        "us-central1",
        RUNNING,
    )
    assert worker.launched == datetime(2026, 11, 30, 16, 5, tzinfo=UTC) and not worker.is_head
    stopped = vms[f"{CLUSTER}-worker-99aa00bb-compute"]
    assert (stopped.state, stopped.region) == (STOPPED, "europe-west4")  # GCE's TERMINATED
    assert vms["decoy-7c1e-head-00000000-compute"].cluster == "decoy-7c1e"

    # What was asked: SkyPilot's cluster labels, every page (2 VMs a page).
    lists = [c for c in fake.server.calls if c.path.endswith("/aggregated/instances")]
    assert len(lists) == 2
    assert lists[0].query["filter"] == CLUSTER_FILTER
    assert CLUSTER_FILTER == "(labels.skypilot-cluster-name:*) OR (labels.ray-cluster-name:*)"
    assert lists[1].query["pageToken"] == "2"


def test_an_untagged_vm_is_dropped_even_when_the_api_ignores_the_filter(fake: FakeGce) -> None:
    fake.honour_filter = False

    found = _inventory(fake).discover()

    assert found.complete
    assert "build-box" not in _by_name(found.vms) and len(found.vms) == 4


def test_a_vm_with_only_the_legacy_ray_label_is_skypilots(fake: FakeGce) -> None:
    fake.add("us-central1-b", "old-7d-head-1", labels={"ray-cluster-name": "old-7d"})

    vms = _by_name(_inventory(fake).discover().vms)

    assert vms["old-7d-head-1"].cluster == "old-7d"


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("PROVISIONING", PENDING),
        ("STAGING", PENDING),
        ("REPAIRING", PENDING),
        ("RUNNING", RUNNING),
        ("STOPPING", STOPPING),
        ("SUSPENDING", STOPPING),
        ("TERMINATED", STOPPED),
        ("SUSPENDED", STOPPED),
        ("SOMETHING_NEW", RUNNING),
    ],
)
def test_gce_statuses_map_onto_the_normalised_states(status: str, state: str) -> None:
    instance = compute_v1.Instance(
        name="n",
        zone=f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/zones/asia-east1-c",
        machine_type="zones/asia-east1-c/machineTypes/g2-standard-8",
        status=status,
        creation_timestamp="2026-11-01T00:00:00.000-07:00",
        scheduling=compute_v1.Scheduling(preemptible=True),
    )

    record = GcpInventory(PROJECT).record(instance)

    assert record.state == state
    assert (record.region, record.instance_type, record.capacity_type) == (
        "asia-east1",
        "g2-standard-8",
        "spot",
    )
    assert record.launched == datetime(2026, 11, 1, 7, tzinfo=UTC)  # no lastStartTimestamp: creation


def test_stop_stops_only_the_clusters_vms_and_keeps_local_ssds(fake: FakeGce) -> None:
    inventory = _inventory(fake)
    cluster = [vm for vm in inventory.discover().vms if vm.cluster == CLUSTER and vm.state == RUNNING]

    results = inventory.stop(cluster)

    assert [(r.ok, r.message) for r in results] == [(True, "stopping"), (True, "stopping")]
    assert sorted(fake.actions) == [
        ("stop", "us-central1-a", f"{CLUSTER}-head-ab12cd34-compute"),
        ("stop", "us-central1-b", f"{CLUSTER}-worker-ef56ab78-compute"),
    ]
    stops = [c for c in fake.server.calls if c.method == "POST"]
    assert all(c.query["discardLocalSsd"].lower() == "false" for c in stops)
    assert fake.instances[("us-central1-a", "decoy-7c1e-head-00000000-compute")]["status"] == "RUNNING"
    assert fake.instances[("us-central1-a", "build-box")]["status"] == "RUNNING"
    # Stopping again: the re-read says STOPPING, nothing is sent.
    again = inventory.stop(cluster)
    assert [(r.ok, r.message) for r in again] == [(True, "already stopping")] * 2
    assert len(fake.actions) == 2


def test_stop_of_a_stopped_vm_sends_nothing(fake: FakeGce) -> None:
    inventory = _inventory(fake)
    stopped = [vm for vm in inventory.discover().vms if vm.state == STOPPED]

    assert [(r.ok, r.message) for r in inventory.stop(stopped)] == [(True, "already stopped")]
    assert fake.actions == []


def test_terminate_deletes_only_the_clusters_vms(fake: FakeGce) -> None:
    inventory = _inventory(fake)
    cluster = [vm for vm in inventory.discover().vms if vm.cluster == CLUSTER]

    results = inventory.terminate(cluster)

    assert [(r.ok, r.message) for r in results] == [(True, "deleting")] * 3
    assert {name for _zone, name in fake.instances} == {"decoy-7c1e-head-00000000-compute", "build-box"}
    after = inventory.describe(cluster)
    assert after.complete and {vm.state for vm in after.vms} == {TERMINATED}
    assert [(r.ok, r.message) for r in inventory.terminate(cluster[:1])] == [(True, "already deleted")]


def test_forged_records_are_left_alone(fake: FakeGce) -> None:
    inventory = _inventory(fake)
    vms = _by_name(inventory.discover().vms)
    head = vms[f"{CLUSTER}-head-ab12cd34-compute"]
    untagged = dataclasses.replace(head, vm_id=f"{PROJECT}/us-central1-a/build-box", name="build-box")
    decoy = dataclasses.replace(head, vm_id=f"{PROJECT}/us-central1-a/decoy-7c1e-head-00000000-compute")
    elsewhere = dataclasses.replace(head, vm_id=f"other-project/us-central1-a/{head.name}")
    unlabelled = dataclasses.replace(head, tags=())

    results = inventory.stop([untagged, decoy, elsewhere, unlabelled]) + inventory.terminate(
        [untagged, decoy, elsewhere, unlabelled]
    )

    assert [r.ok for r in results] == [False] * 8
    assert all(r.message.endswith("left alone") for r in results)
    assert results[0].message == "no SkyPilot cluster label on the VM: left alone"
    assert results[1].message == f"its cluster label is decoy-7c1e, not {CLUSTER}: left alone"
    assert results[2].message == f"not a VM of gcp:{PROJECT}: left alone"
    assert fake.actions == []
    assert len(fake.instances) == 5


def test_a_vm_relabelled_since_discovery_is_left_alone(fake: FakeGce) -> None:
    inventory = _inventory(fake)
    head = _by_name(inventory.discover().vms)[f"{CLUSTER}-head-ab12cd34-compute"]
    fake.instances[("us-central1-a", head.name)]["labels"] = {"team": "infra"}

    [result] = inventory.terminate([head])

    assert (result.ok, result.message) == (False, "no SkyPilot cluster label on the VM: left alone")
    assert fake.actions == []


def test_an_unreachable_zone_makes_discovery_incomplete(fake: FakeGce) -> None:
    fake.unreachables = ["zones/europe-west4-a"]

    found = _inventory(fake).discover()

    assert not found.complete
    assert found.error == f"gcp:{PROJECT} compute.instances.aggregatedList: unreachable: zones/europe-west4-a"
    assert len(found.vms) == 4  # what was read is still handed back


def test_a_scoped_unreachable_warning_makes_discovery_incomplete(fake: FakeGce) -> None:
    fake.unreachable_scopes = ["europe-west4-a"]

    found = _inventory(fake).discover()

    assert not found.complete and found.error is not None
    assert found.error.endswith("unreachable: zones/europe-west4-a")


@pytest.mark.parametrize(
    ("status", "message", "reason", "expected"),
    [
        (429, "Rate Limit Exceeded", "rateLimitExceeded", "HTTP 429 Rate Limit Exceeded"),
        (500, "Internal error. Please try again.", "backendError", "HTTP 500 Internal error"),
        (
            403,
            "Required 'compute.instances.list' permission for 'projects/ml-project'",
            "forbidden",
            "HTTP 403 Required 'compute.instances.list' permission",
        ),
    ],
)
def test_api_errors_make_discovery_incomplete_not_raise(
    fake: FakeGce, status: int, message: str, reason: str, expected: str
) -> None:
    fake.fail["aggregatedList"] = (status, message, reason)
    fake.fail_headers = {"Retry-After": "7"} if status == 429 else {}

    found = _inventory(fake).discover()

    assert (found.complete, found.vms) == (False, ())
    assert found.error is not None and "\n" not in found.error
    assert found.error.startswith(f"gcp:{PROJECT} compute.instances.aggregatedList: {expected}")
    assert found.retry_after == (7.0 if status == 429 else None)


def test_an_unauthorised_answer_is_a_credentials_error(fake: FakeGce) -> None:
    fake.fail["aggregatedList"] = (401, "Request had invalid authentication credentials.", "authError")

    found = _inventory(fake).discover()

    # Anonymous credentials cannot be refreshed after a 401: google-auth says so.
    assert not found.complete
    assert found.error is not None
    assert found.error.startswith(f"gcp:{PROJECT} compute.instances.aggregatedList: credentials: ")


def test_no_credentials_at_all_is_an_error_line(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))

    found = GcpInventory(PROJECT).discover()

    assert not found.complete and found.error is not None
    assert "credentials: DefaultCredentialsError" in found.error


def test_the_retry_given_is_used(fake: FakeGce) -> None:
    fake.fail["aggregatedList"] = (503, "Service Unavailable", "backendError")
    fake.fail_times = 1
    quick = retries.Retry(predicate=retries.if_transient_error, initial=0.01, maximum=0.01, timeout=5)

    found = _inventory(fake, retry=quick).discover()

    assert found.complete and len(found.vms) == 4
    assert len([c for c in fake.server.calls if c.path.endswith("/aggregated/instances")]) == 3


@pytest.mark.parametrize(("status", "transient"), [(429, True), (503, True), (403, False), (400, False)])
def test_action_errors_are_per_vm(fake: FakeGce, status: int, transient: bool) -> None:
    inventory = _inventory(fake)
    head = _by_name(inventory.discover().vms)[f"{CLUSTER}-head-ab12cd34-compute"]
    fake.fail["delete"] = (status, "no", "x")

    [result] = inventory.terminate([head])

    assert (result.ok, result.transient) == (False, transient)
    assert result.message.startswith(f"gcp:{PROJECT} compute.instances.delete: HTTP {status}")
    assert (("us-central1-a", head.name)) in fake.instances


def test_a_failed_reread_leaves_the_vm_alone(fake: FakeGce) -> None:
    inventory = _inventory(fake)
    head = _by_name(inventory.discover().vms)[f"{CLUSTER}-head-ab12cd34-compute"]
    fake.fail["get"] = (500, "Internal error", "backendError")

    [result] = inventory.stop([head])

    assert (result.ok, result.transient) == (False, True)
    assert result.message.startswith(f"could not re-read it (gcp:{PROJECT} compute.instances.get: HTTP 500")
    assert result.message.endswith("left alone") and fake.actions == []


def test_describe_rereads_and_reports_what_it_cannot(fake: FakeGce) -> None:
    inventory = _inventory(fake)
    vms = _by_name(inventory.discover().vms)
    head = vms[f"{CLUSTER}-head-ab12cd34-compute"]
    fake.instances[("us-central1-a", head.name)]["status"] = "STOPPING"
    gone = dataclasses.replace(head, vm_id=f"{PROJECT}/us-central1-a/{CLUSTER}-worker-deadbeef-compute")
    foreign = dataclasses.replace(head, vm_id=f"other-project/us-central1-a/{head.name}")

    described = inventory.describe([head, gone, foreign])

    assert [vm.state for vm in described.vms] == [STOPPING, TERMINATED]
    assert not described.complete
    assert described.error == (
        f"gcp:{PROJECT} compute.instances.get: other-project/us-central1-a/{head.name} "
        "is not a VM of this project: not read"
    )
