"""The pod and node informer against the API stand-in: paged lists, watches, cuts, 410, bookmarks.

The informer runs on the test's event loop through the real ``KubeClient``; the stand-in runs on
its own thread. Faults come from kmock reactions gated by a ``threading.Event`` (answered while
it is set) and from the stand-in ending every watch, as an API server does when it restarts.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from typing import Any

import kmock
import pytest

from costwarden.operator.clusterindex import ClusterIndex
from costwarden.operator.informer import Backoff, Informer
from costwarden.operator.kube import KubeClient
from costwarden.records import NodeRecord, PodRecord
from costwarden.sim.testing import ThreadedSimCluster
from tests import shapes

NAMESPACES = ("research", "prod", "ops")
PODS = kmock.resource("", "v1", "pods")
FAST = Backoff(initial=0.05, cap=0.2)


@pytest.fixture
def cluster_options() -> dict[str, Any]:
    return {}


@pytest.fixture
def sim(cluster_options: dict[str, Any]) -> Iterator[ThreadedSimCluster]:
    with ThreadedSimCluster(**cluster_options) as cluster:
        for namespace in NAMESPACES:
            cluster.create(shapes.namespace(namespace))
        yield cluster


@pytest.fixture
async def informers(kube: KubeClient) -> AsyncIterator[Callable[..., Informer]]:
    started: list[Informer] = []

    def start(**options: Any) -> Informer:
        informer = Informer(kube, ClusterIndex(), backoff=FAST, **options).start()
        started.append(informer)
        return informer

    yield start
    for informer in started:
        await informer.stop()


async def eventually(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until ``predicate()`` holds, checking every 20 ms; TimeoutError after ``within`` s.

    Polling, because the state it checks spans two threads (the stand-in's and the informer's).
    """
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def synced(informer: Informer) -> None:
    async with asyncio.timeout(10):
        await informer.synced.wait()


def seed(sim: ThreadedSimCluster, pods_per_namespace: int, nodes: int = 3) -> None:
    for n in range(nodes):
        sim.create(shapes.eks_p5_node(f"node-{n}"))
    for namespace in NAMESPACES:
        for p in range(pods_per_namespace):
            sim.create(shapes.plain_pod(f"pod-{p}", namespace=namespace, node=f"node-{p % nodes}"))


def cluster_pods(sim: ThreadedSimCluster, namespace: str | None = None) -> dict[str, PodRecord]:
    return {body["metadata"]["uid"]: PodRecord.from_body(body) for body in sim.list("v1", "pods", namespace)}


def cluster_nodes(sim: ThreadedSimCluster) -> dict[str, NodeRecord]:
    return {body["metadata"]["name"]: NodeRecord.from_body(body) for body in sim.list("v1", "nodes")}


def index_pods(informer: Informer) -> dict[str, PodRecord]:
    return {pod.uid: pod for pod in informer.index.pods()}


def matches_cluster(sim: ThreadedSimCluster, informer: Informer) -> Callable[[], bool]:
    def index_matches_cluster() -> bool:
        return index_pods(informer) == cluster_pods(sim) and dict(informer.index.nodes()) == cluster_nodes(
            sim
        )

    return index_matches_cluster


def requests(sim: ThreadedSimCluster, *criteria: Any) -> list[Any]:
    return list(sim.cluster.emulator[criteria])


def watches(sim: ThreadedSimCluster) -> list[Any]:
    return requests(sim, "watch", PODS)


def cut_every_watch(sim: ThreadedSimCluster) -> None:
    """End every open watch stream, as an API server going away does."""

    async def close_all() -> None:
        sim.cluster.store.close_all()

    sim.call(close_all())


def gate(
    sim: ThreadedSimCluster, action: str, status: int, headers: dict[str, str] | None = None
) -> threading.Event:
    """From now on, while the returned event is set, pod ``action`` requests get ``status``."""
    blocked = threading.Event()
    blocked.set()
    reaction = sim.cluster.emulator[action, PODS, blocked] << status
    if headers:
        reaction << headers  # kmock's DSL: the reaction answers with these headers too
    return blocked


# ---- listing


async def test_initial_sync_lists_page_by_page_and_holds_records_only(sim, informers):
    seed(sim, pods_per_namespace=80, nodes=4)
    informer = informers(page_size=100)
    await synced(informer)

    assert index_pods(informer) == cluster_pods(sim)
    assert len(index_pods(informer)) == 240
    assert dict(informer.index.nodes()) == cluster_nodes(sim)
    pod_lists = requests(sim, "list", PODS)
    assert [r.params.get("limit") for r in pod_lists] == ["100", "100", "100"]
    assert [bool(r.params.get("continue")) for r in pod_lists] == [False, True, True]
    assert (informer.stats.lists, informer.stats.relists, informer.stats.errors) == (2, 0, 0)
    assert all(isinstance(pod, PodRecord) for pod in informer.index.pods())


async def test_adds_updates_and_deletes_are_seen(sim, informers):
    seed(sim, pods_per_namespace=2)
    informer = informers()
    await synced(informer)

    sim.create(shapes.plain_pod("new", namespace="prod", node="node-0", labels={"app": "train"}))
    sim.patch("v1", "pods", "pod-0", {"metadata": {"labels": {"app": "serve"}}}, "research")
    sim.delete("v1", "pods", "pod-1", "ops")
    sim.create(shapes.eks_p5_node("node-new"))
    sim.patch("v1", "nodes", "node-1", {"metadata": {"annotations": {"costwarden.dev/hourly-price": "9"}}})
    sim.delete("v1", "nodes", "node-2")
    await eventually(matches_cluster(sim, informer))

    index = informer.index
    assert [p.name for p in index.records(index.candidates("prod", {"app": "train"}))] == ["new"]
    assert [p.name for p in index.records(index.candidates("research", {"app": "serve"}))] == ["pod-0"]
    assert "pod-1" not in {p.name for p in index.pods_in("ops")}
    assert index.nodes()["node-1"].price_override == 9
    assert "node-2" not in index.nodes() and "node-new" in index.nodes()
    assert (informer.stats.relists, informer.stats.reconnects) == (0, 0)


async def test_only_the_given_namespaces_are_listed_and_watched(sim, informers):
    seed(sim, pods_per_namespace=3)
    informer = informers(namespaces=["research", "prod"])
    await synced(informer)

    assert informer.index.namespaces() == ["prod", "research"]
    assert index_pods(informer) == {**cluster_pods(sim, "research"), **cluster_pods(sim, "prod")}
    sim.create(shapes.plain_pod("elsewhere", namespace="ops", node="node-0"))
    sim.create(shapes.plain_pod("here", namespace="research", node="node-0"))
    await eventually(lambda: "here" in {p.name for p in informer.index.pods_in("research")})
    assert informer.index.pods_in("ops") == ()
    pod_requests = requests(sim, PODS)
    assert {r.namespace for r in pod_requests} == {"research", "prod"}  # never cluster-wide


# ---- faults


async def test_a_cut_watch_resumes_from_its_resource_version_and_loses_nothing(sim, informers):
    seed(sim, pods_per_namespace=3)
    informer = informers()
    await synced(informer)
    sim.create(shapes.plain_pod("before-the-cut", namespace="ops", node="node-0"))
    await eventually(matches_cluster(sim, informer))
    kept = informer.resource_versions()["pods"]

    blocked = gate(sim, "watch", 503)
    cut_every_watch(sim)
    sim.create(shapes.plain_pod("during-the-cut", namespace="ops", node="node-0"))
    sim.delete("v1", "pods", "pod-0", "research")
    sim.patch("v1", "pods", "pod-1", {"metadata": {"labels": {"moved": "yes"}}}, "prod")
    await eventually(lambda: informer.stats.errors >= 2)  # it tried, was refused, backs off
    blocked.clear()
    await eventually(matches_cluster(sim, informer))

    assert informer.stats.relists == 0  # resumed, not listed again
    assert informer.stats.reconnects >= 2
    resumed = [r for r in watches(sim) if r.params.get("resourceVersion") == kept]
    assert len(resumed) >= 2  # the refused attempts and the one that got through, all from `kept`
    assert informer.index.candidates("prod", {"moved": "yes"})


@pytest.mark.parametrize("cluster_options", [{"history_limit": 5}])
async def test_410_gone_relists_and_drops_pods_deleted_meanwhile(sim, informers):
    seed(sim, pods_per_namespace=3)
    informer = informers()
    await synced(informer)

    blocked = gate(sim, "watch", 503)
    cut_every_watch(sim)
    sim.delete("v1", "pods", "pod-0", "research")
    for p in range(8):  # more writes than the stand-in keeps: the informer's version expires
        sim.create(shapes.plain_pod(f"later-{p}", namespace="prod", node="node-0"))
    blocked.clear()
    await eventually(matches_cluster(sim, informer))
    # pods and nodes both expired; the nodes stream (nothing changed there) may relist a moment
    # after the pods already match
    await eventually(lambda: informer.stats.relists >= 2)

    assert informer.stats.relists == 2
    assert "pod-0" not in {p.name for p in informer.index.pods_in("research")}
    assert len(informer.index.pods_in("prod")) == 11
    assert informer.synced.is_set()


@pytest.mark.parametrize("cluster_options", [{"bookmark_interval": 0.2}])
async def test_bookmarks_advance_the_resource_version_a_reconnect_starts_from(sim, informers):
    seed(sim, pods_per_namespace=1)
    informer = informers()
    await synced(informer)
    listed_at = int(informer.resource_versions()["pods"] or 0)

    sim.create(shapes.namespace("unrelated"))  # moves the cluster's version, no pod event
    now = sim.cluster.store.resource_version
    assert now > listed_at
    await eventually(lambda: informer.resource_versions()["pods"] == str(now))
    assert informer.stats.bookmarks >= 1

    cut_every_watch(sim)
    await eventually(lambda: any(r.params.get("resourceVersion") == str(now) for r in watches(sim)))
    assert all(r.params.get("allowWatchBookmarks") == "true" for r in watches(sim))


async def test_a_refused_list_is_retried_until_it_works(sim, informers):
    seed(sim, pods_per_namespace=1)
    blocked = gate(sim, "list", 403)
    informer = informers()
    await eventually(lambda: informer.stats.errors >= 2)
    assert not informer.synced.is_set() and informer.running
    assert "pods in all namespaces: forbidden" in (informer.stats.last_error or "")

    blocked.clear()
    await synced(informer)
    assert index_pods(informer) == cluster_pods(sim)


class TimedLists:
    """The client, noting when each pod list was asked for."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube
        self.pod_lists: list[float] = []

    async def list_raw(self, resource: str, **options: Any) -> dict[str, Any]:
        if resource == "pods":
            self.pod_lists.append(time.monotonic())
        return await self.kube.list_raw(resource, **options)

    def watch_raw(self, *args: Any, **options: Any) -> AsyncGenerator[dict[str, Any], None]:
        return self.kube.watch_raw(*args, **options)


async def test_a_throttled_list_waits_for_retry_after(sim, kube):
    seed(sim, pods_per_namespace=1)
    blocked = gate(sim, "list", 429, {"Retry-After": "1"})
    timed = TimedLists(kube)
    async with Informer(timed, ClusterIndex(), backoff=FAST) as informer:
        await eventually(lambda: informer.stats.errors >= 1)
        blocked.clear()
        await synced(informer)

    assert "throttled" in (informer.stats.last_error or "")
    assert timed.pod_lists[1] - timed.pod_lists[0] >= 1.0  # not the 0.05-0.2 s backoff


async def test_stop_ends_the_streams_and_keeps_the_index(sim, informers):
    seed(sim, pods_per_namespace=2)
    informer = informers()
    await synced(informer)
    await informer.stop()

    assert not informer.running
    sim.create(shapes.plain_pod("after-stop", namespace="ops", node="node-0"))
    assert len(informer.index.pods()) == 6
