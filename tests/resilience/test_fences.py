"""The fences the two-replica runs showed were missing, each on its own, against the stand-in.

- A pod is deleted only if it is still the pod decided on (DeleteOptions.preconditions.uid): a
  delete that a cut-off leader sent before it lost the Lease, delivered after SkyPilot relaunched
  the cluster under the same names, killed the new pod.
- The leader fence is checked before every pod deleted: a leader paused between two deletes
  deleted the next pod, a relaunched one, after SIGCONT.
- Spend annotations are written only onto the pod priced (metadata.uid in the merge patch, which
  the API server refuses to change): a stale write landing on a relaunched pod gave it the old
  pod's lifetime spend, counted twice in the budget (45.33 USD instead of 24.67 in the scenario).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import kmock
import pytest

from costwarden.operator.kube import KubeClient, WriteResult, load_configuration
from costwarden.operator.workloads import Outcome, kill_pods
from costwarden.sim.errors import ApiError
from costwarden.sim.testing import ThreadedSimCluster
from tests import shapes

NS = "research"


@pytest.fixture
def sim() -> Iterator[ThreadedSimCluster]:
    with ThreadedSimCluster() as cluster:
        cluster.create(shapes.namespace(NS))
        yield cluster


@pytest.fixture
async def kube(sim: ThreadedSimCluster) -> AsyncIterator[KubeClient]:
    client = KubeClient(load_configuration(sim.kubeconfig))
    yield client
    await client.close()


def relaunched(sim: ThreadedSimCluster, name: str) -> tuple[str, str]:
    """``name`` created, deleted and created again: (old uid, new uid)."""
    old = sim.create(shapes.plain_pod(name, namespace=NS, node="n1"))["metadata"]["uid"]
    sim.delete("v1", "pods", name, namespace=NS)
    new = sim.create(shapes.plain_pod(name, namespace=NS, node="n1"))["metadata"]["uid"]
    assert old != new
    return old, new


async def test_a_pod_of_the_same_name_created_since_is_not_deleted(sim, kube):
    old, new = relaunched(sim, "head")
    sim.create(shapes.plain_pod("worker", namespace=NS, node="n1"))
    worker = sim.get("v1", "pods", "worker", namespace=NS)
    assert worker is not None

    results = await kill_pods(
        kube, NS, ["worker", "head"], 30, uids={"worker": worker["metadata"]["uid"], "head": old}
    )

    assert [r.result for r in results] == [Outcome.DONE, Outcome.GONE]
    assert "left alone" in results[1].message
    alive = sim.get("v1", "pods", "head", namespace=NS)
    assert alive is not None and alive["metadata"]["uid"] == new
    deletes = list(sim.cluster.emulator["delete", kmock.resource("", "v1", "pods")])
    assert [(r.name, (r.data or {}).get("preconditions")) for r in deletes] == [
        ("worker", {"uid": worker["metadata"]["uid"]}),
        ("head", {"uid": old}),
    ]


async def test_a_replica_that_stops_leading_midway_deletes_no_further_pod(sim, kube):
    for name in ("worker1", "worker2", "head"):
        sim.create(shapes.plain_pod(name, namespace=NS, node="n1"))
    fence = iter([True, False, False])

    results = await kill_pods(kube, NS, ["worker1", "worker2", "head"], 30, acting=lambda: next(fence))

    assert [r.target for r in results] == [f"Pod {NS}/worker1"]
    assert sorted(p["metadata"]["name"] for p in sim.list("v1", "pods", namespace=NS)) == ["head", "worker2"]


async def test_spend_annotations_are_written_only_onto_the_pod_priced(sim, kube):
    old, new = relaunched(sim, "head")

    stale = await kube.patch_pod_annotations(NS, "head", {"costwarden.dev/spend": "10.33"}, uid=old)
    fresh = await kube.patch_pod_annotations(NS, "head", {"costwarden.dev/spend": "0.5"}, uid=new)

    assert (stale, fresh) == (WriteResult.FAILED, WriteResult.DONE)
    pod = sim.get("v1", "pods", "head", namespace=NS) or {}
    assert pod["metadata"]["annotations"] == {"costwarden.dev/spend": "0.5"}


def test_the_stand_in_refuses_to_change_a_uid_as_the_api_server_does(sim):
    old, new = relaunched(sim, "head")
    with pytest.raises(ApiError) as refused:
        sim.patch("v1", "pods", "head", {"metadata": {"uid": old, "labels": {"a": "b"}}}, namespace=NS)
    assert refused.value.code == 422
    assert "metadata.uid" in refused.value.message and "field is immutable" in refused.value.message
    same = sim.patch("v1", "pods", "head", {"metadata": {"uid": new, "labels": {"a": "b"}}}, namespace=NS)
    assert same["metadata"]["labels"]["a"] == "b"
