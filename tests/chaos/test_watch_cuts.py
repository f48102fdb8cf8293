"""The informer under watch streams that a proxy keeps cutting (the stand-in's fault layer).

Found by the chaos scenario: a quiet resource (nodes) gets no event to reset its failure streak,
so every cut lengthened the wait before the next watch, up to the 30 s cap; after 40 s of cuts
every second, the operator saw a new node 25 s late. A stream that broke after it had been open a
while was cut, not refused: the back-off starts over.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from costwarden.operator.clusterindex import ClusterIndex
from costwarden.operator.informer import Backoff, Informer, _Stream
from costwarden.operator.kube import KubeClient, load_configuration
from costwarden.sim.faults import Faults
from costwarden.sim.testing import ThreadedSimCluster
from tests import shapes


class Recording(Informer):
    """Notes each stream's failure streak when it pauses."""

    streaks: list[tuple[str, int]]

    async def _pause(self, stream: _Stream, error: str, retry_after: float | None) -> None:
        self.streaks.append((stream.resource, stream.failures))
        await super()._pause(stream, error, retry_after)


@pytest.fixture
def sim() -> Iterator[ThreadedSimCluster]:
    with ThreadedSimCluster() as cluster:
        cluster.create(shapes.eks_p5_node("node-0"))
        yield cluster


@pytest.fixture
async def kube(sim: ThreadedSimCluster) -> AsyncIterator[KubeClient]:
    client = KubeClient(load_configuration(sim.kubeconfig))
    yield client
    await client.close()


async def test_a_watch_cut_after_a_while_starts_the_back_off_over(sim: ThreadedSimCluster, kube: KubeClient):
    informer = Recording(kube, ClusterIndex(), backoff=Backoff(initial=0.2, cap=5.0), healthy_watch_s=0.2)
    informer.streaks = []
    sim.set_faults(Faults(cut_watch_s=0.4))  # every watch stream is cut at 0.4 s
    informer.start()
    try:
        async with asyncio.timeout(10):
            await informer.synced.wait()
        await asyncio.sleep(4)
        nodes = [streak for resource, streak in informer.streaks if resource == "nodes"]
        assert len(nodes) >= 4 and sim.fault_counts()["cut_watch"] >= 4
        assert nodes == [0] * len(nodes)  # never a growing streak: each wait is the first one

        sim.create(shapes.eks_p5_node("node-1"))
        started = time.monotonic()
        async with asyncio.timeout(5):
            while "node-1" not in informer.index.nodes():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert time.monotonic() - started < 1.5  # at most a cut and the first wait (0.1-0.2 s)
    finally:
        sim.set_faults(None)
        await informer.stop()


async def test_a_refused_watch_still_backs_off_longer_each_time(sim: ThreadedSimCluster, kube: KubeClient):
    informer = Recording(kube, ClusterIndex(), backoff=Backoff(initial=0.05, cap=5.0), healthy_watch_s=0.0)
    informer.streaks = []
    sim.set_faults(Faults(cut_watch_s=0.2))
    informer.start()
    try:
        async with asyncio.timeout(10):
            await informer.synced.wait()
        sim.set_faults(Faults(error=1.0))  # the streams are cut, then every watch is answered 500
        await asyncio.sleep(2)
        nodes = [streak for resource, streak in informer.streaks if resource == "nodes"]
        assert len(nodes) >= 3
        assert nodes[-3:] == sorted(nodes[-3:]) and nodes[-1] >= 2  # refusals are a growing streak
    finally:
        sim.set_faults(None)
        await informer.stop()
