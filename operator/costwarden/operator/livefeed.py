"""The live price pass: ask the price feeds for what the cluster's nodes need, swap the price book.

Each refresh classifies the nodes (cloud, region, instance and capacity type), lets the feeds
fetch in their worker threads (``PriceFeeds.refresh`` never raises: a failed feed keeps its last
good prices until they are too old, then the catalog prices those nodes again), and gives the
runtime a new book; the next accrual pass prices every node with it.
"""

from __future__ import annotations

from collections.abc import Mapping

from costwarden.engine.vms import vm_node
from costwarden.operator.runtime import Runtime
from costwarden.records import NodeRecord


async def refresh_prices(runtime: Runtime, nodes: Mapping[str, NodeRecord]) -> int:
    """One refresh; the number of live prices held afterwards."""
    feeds = runtime.price_feeds
    if feeds is None:
        return 0
    facts = [runtime.prices.facts(node) for node in nodes.values()]
    if runtime.vms is not None:  # the SkyPilot VMs of --cloud are priced by the same feeds
        facts.extend(runtime.prices.facts(vm_node(vm)) for vm in runtime.vms.records())
    live = await feeds.refresh(facts, runtime.clock())
    runtime.live = live.lookup
    runtime.reprice()
    held = 0
    for status in feeds.statuses():
        runtime.metrics.price_feed_up.labels(status.name).set(1 if status.state == "ok" else 0)
        runtime.metrics.price_feed_prices.labels(status.name).set(status.prices)
        held += status.prices
    return held
