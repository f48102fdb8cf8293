"""The informer's first sync of a large cluster: 10,000 SkyPilot-style pods and 1,000 nodes.

The stand-in runs in a child process (seeded in-process there), so the figures are the
informer's own: the parent's event loop, memory and CPU hold nothing but the client, the
informer and the index. Reports, as JSON: wall seconds until ``synced``, CPU seconds spent by
this process meanwhile, peak RSS growth during the sync and RSS kept after it, and the longest
event-loop block seen by a probe task that asks to wake every millisecond.

    .venv/bin/python bench/informer_bench.py [PODS] [NODES] [--operator-gc]

``--operator-gc`` applies the collector settings ``costwarden run`` uses (a frozen startup heap,
generation-0 threshold 50,000); without it, Python's defaults.
"""

from __future__ import annotations

import asyncio
import gc
import json
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PODS = 10_000
NODES = 1_000
NAMESPACES = 50
PROBE_INTERVAL_S = 0.001


def serve(kubeconfig: str, pods: int, nodes: int, ready: Any, stop: Any) -> None:
    """The child: a seeded stand-in until ``stop`` is set."""
    from tests import shapes

    from costwarden.sim.cluster import SimCluster

    async def main() -> None:
        cluster = SimCluster(history_limit=pods + nodes + 1000)
        await cluster.start()
        try:
            for n in range(NAMESPACES):
                await cluster.create(shapes.namespace(f"team-{n}"))
            for n in range(nodes):
                await cluster.create(shapes.eks_p5_node(f"node-{n}"))
            for p in range(pods):
                body = shapes.skypilot_pod(
                    f"job-{p // 4}-beef",
                    f"job-{p // 4}",
                    namespace=f"team-{p % NAMESPACES}",
                    node=f"node-{p % nodes}",
                    role="head" if p % 4 == 0 else "worker",
                    index=p % 4,
                    gpus=1,
                )
                await cluster.create(body)
            cluster.write_kubeconfig(kubeconfig)
            ready.set()
            await asyncio.to_thread(stop.wait)  # serve until the parent is done
        finally:
            await cluster.stop()

    asyncio.run(main())


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


async def sync(kubeconfig: Path) -> dict[str, Any]:
    from costwarden.operator.clusterindex import ClusterIndex
    from costwarden.operator.informer import Informer
    from costwarden.operator.kube import KubeClient, load_configuration

    kube = KubeClient(load_configuration(kubeconfig))
    index = ClusterIndex()
    loop = asyncio.get_running_loop()
    longest = 0.0
    done = asyncio.Event()

    async def probe() -> None:
        nonlocal longest
        while not done.is_set():
            asked = loop.time()
            await asyncio.sleep(PROBE_INTERVAL_S)
            longest = max(longest, loop.time() - asked - PROBE_INTERVAL_S)

    pauses: list[float] = []
    began: list[float] = []

    def timed_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            began[:] = [time.perf_counter()]
        elif began:
            pauses.append(time.perf_counter() - began[0])

    gc.collect()
    gc.callbacks.append(timed_gc)
    rss_before = rss_kib()
    cpu_before = time.process_time()
    started = time.perf_counter()
    prober = asyncio.create_task(probe())
    informer = Informer(kube, index).start()
    await asyncio.wait_for(informer.synced.wait(), 600)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    done.set()
    await prober
    gc.callbacks.remove(timed_gc)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, since process start
    await informer.stop()
    await kube.close()
    gc.collect()
    return {
        "pods": index.pod_count,
        "nodes": index.node_count,
        "sync_seconds": round(seconds, 2),
        "sync_cpu_seconds": round(cpu, 2),
        "peak_rss_delta_mib": round((peak - rss_before) / 1024, 1),
        "rss_kept_after_sync_mib": round((rss_kib() - rss_before) / 1024, 1),
        "longest_loop_block_ms": round(longest * 1000, 1),
        "gc_collections": len(pauses),
        "longest_gc_pause_ms": round(max(pauses, default=0.0) * 1000, 1),
        "lists": informer.stats.lists,
        "errors": informer.stats.errors,
    }


def main() -> None:
    arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
    pods = int(arguments[0]) if arguments else PODS
    nodes = int(arguments[1]) if len(arguments) > 1 else NODES
    if "--operator-gc" in sys.argv:  # as `costwarden run` sets it up (cli.py)
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    with tempfile.TemporaryDirectory(prefix="informer-bench-") as tmp:
        kubeconfig = Path(tmp) / "kubeconfig"
        child = context.Process(target=serve, args=(str(kubeconfig), pods, nodes, ready, stop), daemon=True)
        seeding = time.perf_counter()
        child.start()
        try:
            if not ready.wait(900):
                raise TimeoutError("the stand-in was not seeded within 15 minutes")
            seeded = time.perf_counter() - seeding
            result = asyncio.run(sync(kubeconfig))
        finally:
            stop.set()
            child.join(30)
    result["seed_seconds"] = round(seeded, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
